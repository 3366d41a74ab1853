package imageapi

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	imagev1 "github.com/openshift/api/image/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clienttesting "k8s.io/client-go/testing"

	"github.com/hardprune/image-registry/prune/ordinary"
)

// removing is a decide that removes the items naming these images, and counts its calls and
// the streams it saw.
type removing struct {
	images map[digest.Digest]bool
	seen   []ordinary.Stream
}

func remove(images ...digest.Digest) *removing {
	r := &removing{images: map[digest.Digest]bool{}}
	for _, img := range images {
		r.images[img] = true
	}
	return r
}

func (r *removing) decide(s *ordinary.Stream) *ordinary.StreamPlan {
	r.seen = append(r.seen, *s)
	plan := &ordinary.StreamPlan{Stream: s}
	for _, tag := range s.Tags {
		left := 0
		for i, item := range tag.Items {
			gone := r.images[item.Image]
			plan.Items = append(plan.Items, ordinary.ItemDecision{
				Tag: tag.Name, Revision: i, Of: len(tag.Items), Item: item, Remove: gone,
			})
			if gone {
				plan.Removed++
			} else {
				left++
			}
		}
		if left == 0 {
			plan.EmptyTags = append(plan.EmptyTags, tag.Name)
		}
	}
	return plan
}

var streamsResource = schema.GroupVersionResource{Group: "image.openshift.io", Version: "v1", Resource: "imagestreams"}

func storedStream(t *testing.T, f *fakeCluster, ns, name string) *imagev1.ImageStream {
	t.Helper()
	obj, err := f.images.Tracker().Get(streamsResource, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*imagev1.ImageStream)
}

func statusWrites(f *fakeCluster) int {
	n := 0
	for _, a := range f.images.Actions() {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" {
			n++
		}
	}
	return n
}

// tagImages is each tag of the status with its items' images ("-" for none).
func tagImages(is *imagev1.ImageStream) map[string][]string {
	out := map[string][]string{}
	for _, tag := range is.Status.Tags {
		imgs := []string{}
		for _, item := range tag.Items {
			if item.Image == "" {
				imgs = append(imgs, "-")
				continue
			}
			imgs = append(imgs, item.Image)
		}
		out[tag.Tag] = imgs
	}
	return out
}

func testStream() *imagev1.ImageStream {
	return stream("ns", "app",
		imagev1.NamedTagEventList{Tag: "latest", Items: items(d("a").String(), "", d("b").String(), d("c").String())},
		imagev1.NamedTagEventList{Tag: "v1", Items: items(d("x").String())},
		imagev1.NamedTagEventList{Tag: "empty"},
		imagev1.NamedTagEventList{Tag: "reference", Items: items("")},
	)
}

// TestUpdateStreamWritesTheStatus: the items removed go by position, the tags left empty go,
// a tag holding only a reference item stays, the rest of the status is unchanged.
func TestUpdateStreamWritesTheStatus(t *testing.T) {
	f := newFakeCluster(testStream())
	r := remove(d("b"), d("x"))
	plan, err := f.UpdateStream(context.Background(), "ns", "app", r.decide)
	if err != nil {
		t.Fatal(err)
	}
	if plan == nil || plan.Removed != 2 || len(r.seen) != 1 || r.seen[0].ResourceVersion != "7" {
		t.Fatalf("plan %+v, decide saw %d streams", plan, len(r.seen))
	}
	got := storedStream(t, f, "ns", "app")
	want := map[string][]string{
		"latest":    {d("a").String(), "-", d("c").String()},
		"reference": {"-"},
	}
	if !reflect.DeepEqual(tagImages(got), want) {
		t.Errorf("status tags %v, want %v", tagImages(got), want)
	}
	if order := []string{got.Status.Tags[0].Tag, got.Status.Tags[1].Tag}; order[0] != "latest" || order[1] != "reference" {
		t.Errorf("tag order %v", order)
	}
	// What stays is as it was: the remaining items keep their fields.
	orig := testStream().Status.Tags[0].Items
	if kept := got.Status.Tags[0].Items; !reflect.DeepEqual(kept[0], orig[0]) || !reflect.DeepEqual(kept[2], orig[3]) {
		t.Errorf("items changed: %+v", kept)
	}
	if statusWrites(f) != 1 {
		t.Errorf("%d status writes", statusWrites(f))
	}
}

func TestUpdateStreamNothingToRemove(t *testing.T) {
	f := newFakeCluster(testStream())
	plan, err := f.UpdateStream(context.Background(), "ns", "app", remove().decide)
	if err != nil || plan == nil {
		t.Fatalf("plan %v, err %v", plan, err)
	}
	if statusWrites(f) != 0 || !reflect.DeepEqual(storedStream(t, f, "ns", "app").Status, testStream().Status) {
		t.Error("the stream was written")
	}
}

func TestUpdateStreamGone(t *testing.T) {
	f := newFakeCluster()
	r := remove(d("b"))
	plan, err := f.UpdateStream(context.Background(), "ns", "app", r.decide)
	if plan != nil || err != nil || len(r.seen) != 0 {
		t.Errorf("plan %v, err %v, decide called %d times", plan, err, len(r.seen))
	}

	// Gone between the read and the write.
	f = newFakeCluster(testStream())
	f.images.PrependReactor("update", "imagestreams", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(streamsResource.GroupResource(), "app")
	})
	if plan, err := f.UpdateStream(context.Background(), "ns", "app", r.decide); plan != nil || err != nil {
		t.Errorf("gone before the write: plan %v, err %v", plan, err)
	}
}

// TestUpdateStreamConflict: the stream changed between the read and the write: the update
// starts over from a fresh read, and decide sees the new stream.
func TestUpdateStreamConflict(t *testing.T) {
	f := newFakeCluster(testStream())
	conflicts := 0
	f.images.PrependReactor("update", "imagestreams", func(clienttesting.Action) (bool, runtime.Object, error) {
		if conflicts > 0 {
			return false, nil, nil
		}
		conflicts++
		// Someone pushed e to latest meanwhile.
		is := testStream()
		is.ResourceVersion = "8"
		is.Status.Tags[0].Items = append(items(d("e").String()), is.Status.Tags[0].Items...)
		if err := f.images.Tracker().Update(streamsResource, is, "ns"); err != nil {
			t.Error(err)
		}
		return true, nil, apierrors.NewConflict(streamsResource.GroupResource(), "app", errors.New("changed"))
	})
	r := remove(d("b"))
	plan, err := f.UpdateStream(context.Background(), "ns", "app", r.decide)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.seen) != 2 || r.seen[1].ResourceVersion != "8" || len(r.seen[1].Tags[0].Items) != 4 {
		t.Fatalf("decide saw %+v", r.seen)
	}
	if plan.Stream.ResourceVersion != "8" || plan.Removed != 1 {
		t.Errorf("plan %+v", plan)
	}
	want := []string{d("e").String(), d("a").String(), "-", d("c").String()}
	if got := tagImages(storedStream(t, f, "ns", "app"))["latest"]; !reflect.DeepEqual(got, want) {
		t.Errorf("latest %v, want %v", got, want)
	}
}

func TestUpdateStreamErrors(t *testing.T) {
	failing := func(err error) clienttesting.ReactionFunc {
		return func(clienttesting.Action) (bool, runtime.Object, error) { return true, nil, err }
	}
	conflict := apierrors.NewConflict(streamsResource.GroupResource(), "app", errors.New("changed"))
	forbidden := apierrors.NewForbidden(streamsResource.GroupResource(), "app", errors.New("no"))
	tests := map[string]struct {
		verb string
		err  error
		want string
	}{
		"always conflicts": {"update", conflict, "updating the status of image stream ns/app: Operation cannot be fulfilled"},
		"update forbidden": {
			"update", forbidden,
			`updating the status of image stream ns/app: forbidden: the pruner needs "update" on imagestreams/status in namespace ns (bind the ClusterRole system:image-pruner)`,
		},
		"get fails": {"get", apierrors.NewInternalError(errors.New("etcd")), "reading image stream ns/app: "},
	}
	for name, tt := range tests {
		f := newFakeCluster(testStream())
		f.images.PrependReactor(tt.verb, "imagestreams", failing(tt.err))
		plan, err := f.UpdateStream(context.Background(), "ns", "app", remove(d("b")).decide)
		if plan != nil || err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: plan %v, err %v", name, plan, err)
		}
	}

	// A plan that names an item the stream does not have writes nothing.
	f := newFakeCluster(testStream())
	bad := func(s *ordinary.Stream) *ordinary.StreamPlan {
		item := ordinary.Item{Image: d("b"), Raw: 9}
		return &ordinary.StreamPlan{Stream: s, Removed: 1, Items: []ordinary.ItemDecision{{Tag: "latest", Item: item, Remove: true}}}
	}
	if _, err := f.UpdateStream(context.Background(), "ns", "app", bad); err == nil ||
		!strings.Contains(err.Error(), `tag "latest": the plan removes item 9`) || statusWrites(f) != 0 {
		t.Errorf("bad plan: err %v, %d writes", err, statusWrites(f))
	}
}

func TestDeleteImage(t *testing.T) {
	img := image(d("a").String())
	f := newFakeCluster(&img)
	if err := f.DeleteImage(context.Background(), d("a")); err != nil {
		t.Fatal(err)
	}
	for _, a := range f.images.Actions() {
		if del, ok := a.(clienttesting.DeleteActionImpl); ok {
			if g := del.DeleteOptions.GracePeriodSeconds; g == nil || *g != 0 || del.Name != d("a").String() {
				t.Errorf("delete %s with grace period %v", del.Name, g)
			}
		}
	}
	if _, err := f.images.Tracker().Get(imagev1.GroupVersion.WithResource("images"), "", d("a").String()); !apierrors.IsNotFound(err) {
		t.Errorf("the image is still there: %v", err)
	}
	if err := f.DeleteImage(context.Background(), d("a")); err != nil {
		t.Errorf("already gone: %v", err)
	}

	f.images.PrependReactor("delete", "images", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "images"}, "", errors.New("no"))
	})
	want := `deleting image ` + d("a").String() +
		`: forbidden: the pruner needs "delete" on images (bind the ClusterRole system:image-pruner)`
	if err := f.DeleteImage(context.Background(), d("a")); err == nil || err.Error() != want {
		t.Errorf("err %v", err)
	}
}

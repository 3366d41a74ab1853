package prune

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
)

// recorder is a Remover that records the order of deletions and fails where told.
type recorder struct {
	mu     sync.Mutex
	calls  []string
	failOn string
	cancel context.CancelFunc // called after the cancelAfter-th deletion
	after  int
}

func (r *recorder) do(what string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if what == r.failOn {
		return errors.New("storage said no")
	}
	r.calls = append(r.calls, what)
	if r.cancel != nil && len(r.calls) == r.after {
		r.cancel()
	}
	return nil
}

// names of the recorded deletions, e.g. "layer ns/app", "blob 3f".
func (r *recorder) Delete(_ context.Context, o Object) error {
	switch o.Kind {
	case KindRepository:
		return r.do("repo " + o.Repository)
	case KindTag:
		return r.do("tag " + o.Name)
	case KindTagIndexEntry:
		return r.do("index " + o.Name)
	case KindManifestLink:
		return r.do("manifest " + o.Repository)
	case KindLayerLink:
		return r.do("layer " + o.Repository)
	case KindUpload:
		return r.do("upload " + o.Name)
	}
	return r.do("blob " + o.Digest.String()[7:9])
}

func samplePlan() *Plan {
	return NewPlan(
		Object{Kind: KindRepository, Repository: "ns/gone"},
		Object{Kind: KindTag, Repository: "ns/app", Name: "old"},
		Object{Kind: KindManifestLink, Repository: "ns/app", Digest: dg("m")},
		Object{Kind: KindLayerLink, Repository: "ns/app", Digest: dg("l")},
		Object{Kind: KindUpload, Repository: "ns/app", Name: "u", Size: 3},
		Object{Kind: KindBlob, Digest: dg("m"), Size: 10},
		Object{Kind: KindBlob, Digest: dg("l"), Size: 20},
	)
}

func TestSweepOrderAndSummary(t *testing.T) {
	for _, workers := range []int{1, 8} {
		r := &recorder{}
		sum, err := Sweep(context.Background(), samplePlan(), r, workers, nil)
		if err != nil {
			t.Fatal(err)
		}
		var want Summary
		want.Count[KindBlob], want.Bytes[KindBlob], want.Count[KindRepository], want.Count[KindTag] = 2, 30, 1, 1
		want.Count[KindManifestLink], want.Count[KindLayerLink], want.Count[KindUpload], want.Bytes[KindUpload] = 1, 1, 1, 3
		if sum != want {
			t.Errorf("workers=%d: summary %+v, want %+v", workers, sum, want)
		}
		// Every blob deletion comes after every other deletion.
		firstBlob := -1
		for i, c := range r.calls {
			if strings.HasPrefix(c, "blob ") && firstBlob < 0 {
				firstBlob = i
			}
			if !strings.HasPrefix(c, "blob ") && firstBlob >= 0 {
				t.Errorf("workers=%d: %q after a blob deletion: %v", workers, c, r.calls)
			}
		}
		if r.calls[0] != "repo ns/gone" {
			t.Errorf("workers=%d: repositories should go first: %v", workers, r.calls)
		}
	}
}

func TestSweepStopsBeforeBlobsOnLinkError(t *testing.T) {
	r := &recorder{failOn: "layer ns/app"}
	sum, err := Sweep(context.Background(), samplePlan(), r, 1, nil)
	if err == nil || !strings.Contains(err.Error(), "deleting layer link ns/app@") ||
		!strings.Contains(err.Error(), "storage said no") {
		t.Fatalf("err = %v", err)
	}
	for _, c := range r.calls {
		if strings.HasPrefix(c, "blob ") {
			t.Errorf("a blob was deleted after a link deletion failed: %v", r.calls)
		}
	}
	if sum.Count[KindBlob] != 0 || sum.Count[KindLayerLink] != 0 || sum.Count[KindRepository] != 1 {
		t.Errorf("summary %+v should count only what was done", sum)
	}
}

func TestSweepStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{cancel: cancel, after: 2}
	sum, err := Sweep(ctx, samplePlan(), r, 1, nil)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped before the sweep finished") {
		t.Fatalf("err = %v", err)
	}
	if len(r.calls) != 2 || sum.Count[KindRepository]+sum.Count[KindTag] != 2 {
		t.Errorf("calls %v, summary %+v: want exactly the two deletions before the cancel", r.calls, sum)
	}
}

type staticSource struct {
	refs *References
	inv  *Inventory
	err  error
}

func (s staticSource) References(context.Context) (*References, error) { return s.refs, s.err }
func (s staticSource) Inventory(context.Context) (*Inventory, error)   { return s.inv, s.err }

func TestRunRefusesToDeleteEverything(t *testing.T) {
	inv := &Inventory{Blobs: blobs("a", "b")}
	quiet := logrus.New()
	quiet.SetLevel(logrus.PanicLevel)
	for name, refs := range map[string]*References{
		"no references":             refsOf(nil, nil),
		"references elsewhere only": refsOf([]Image{img("zzz", "")}, nil),
	} {
		t.Run(name, func(t *testing.T) {
			r := &recorder{}
			cfg := Config{
				References: staticSource{refs: refs},
				Inventory:  staticSource{inv: inv},
				Remover:    r,
				Options:    opts(),
				Workers:    1,
				Log:        quiet,
			}
			_, _, err := Run(context.Background(), cfg)
			if !errors.Is(err, ErrWouldDeleteEverything) || !strings.Contains(err.Error(), "-prune-allow-delete-all") {
				t.Fatalf("err = %v", err)
			}
			if len(r.calls) != 0 {
				t.Fatalf("deleted %v", r.calls)
			}
			cfg.AllowDeleteAll = true
			if _, sum, err := Run(context.Background(), cfg); err != nil || sum.Count[KindBlob] != 2 {
				t.Fatalf("with the override: %+v, %v", sum, err)
			}
			// A dry run only warns.
			cfg.AllowDeleteAll, cfg.Remover = false, DryRun{}
			if _, sum, err := Run(context.Background(), cfg); err != nil || sum.Count[KindBlob] != 2 {
				t.Fatalf("dry run: %+v, %v", sum, err)
			}
		})
	}
}

func TestRunDeletesNothingOnSourceErrors(t *testing.T) {
	inv := &Inventory{Blobs: blobs("a")}
	boom := errors.New("boom")
	for name, cfg := range map[string]Config{
		"references": {References: staticSource{err: boom}, Inventory: staticSource{inv: inv}},
		"inventory":  {References: staticSource{refs: refsOf(nil, nil)}, Inventory: staticSource{err: boom}},
	} {
		r := &recorder{}
		cfg.Remover, cfg.Options = r, opts()
		plan, _, err := Run(context.Background(), cfg)
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "nothing was deleted") || plan != nil ||
			len(r.calls) != 0 {
			t.Errorf("%s: plan %v, err %v, calls %v", name, plan, err, r.calls)
		}
	}
}

// failingOnStop cancels the run in the middle of a tag deletion that then fails for its own
// reason, as a Redis invalidation that cannot reach the server does during a SIGTERM.
type failingOnStop struct {
	recorder
	stop context.CancelFunc
}

func (f *failingOnStop) Delete(ctx context.Context, o Object) error {
	if o.Kind != KindTag {
		return f.recorder.Delete(ctx, o)
	}
	f.stop()
	return errors.New("entries of the tag left in Redis")
}

func TestSweepStoppedKeepsTheDeletionsOwnError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &failingOnStop{stop: cancel}
	_, err := Sweep(ctx, samplePlan(), r, 1, nil)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped before the sweep finished") ||
		!strings.Contains(err.Error(), "entries of the tag left in Redis") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %q, want one line with the stop and the deletion's own error", err)
	}
}

// batchRecorder is a BatchRemover: it records each batch as the kinds it holds, and refuses
// the objects named in failOn.
type batchRecorder struct {
	recorder
	batches [][]Kind
	failOn  map[string]bool
}

func (b *batchRecorder) DeleteBatch(_ context.Context, objs []Object) []error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var kinds []Kind
	errs := make([]error, len(objs))
	for i, o := range objs {
		kinds = append(kinds, o.Kind)
		if b.failOn[o.Ref()] {
			errs[i] = errors.New("per-key error: AccessDenied")
		}
	}
	b.batches = append(b.batches, kinds)
	return errs
}

func manyObjects(kind Kind, n int) []Object {
	objs := make([]Object, n)
	for i := range objs {
		objs[i] = Object{Kind: kind, Repository: "ns/app", Digest: dg(fmt.Sprint(kind, i)), Size: 1}
	}
	return objs
}

// TestSweepBatches: a BatchRemover gets each phase in batches of at most BatchSize objects of
// one kind, never a link and a blob together, every blob batch after every link batch (also
// through the logging wrapper); a per-object error fails that object alone, and stops the
// blob phase.
func TestSweepBatches(t *testing.T) {
	objs := append(manyObjects(KindLayerLink, 2*BatchSize+1), manyObjects(KindManifestLink, 3)...)
	objs = append(objs, manyObjects(KindBlob, BatchSize+5)...)
	for _, logged := range []bool{false, true} {
		b := &batchRecorder{}
		var r Remover = b
		if logged {
			r = withLog(b, logrus.New())
		}
		sum, err := Sweep(context.Background(), NewPlan(objs...), r, 4, nil)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Count[KindLayerLink] != 2*BatchSize+1 || sum.Count[KindBlob] != BatchSize+5 ||
			sum.Bytes[KindBlob] != BatchSize+5 || len(b.calls) != 0 {
			t.Fatalf("logged=%v: summary %+v, single deletions %d", logged, sum, len(b.calls))
		}
		sizes := map[Kind][]int{}
		sawBlob := false
		for _, kinds := range b.batches {
			if len(kinds) > BatchSize || slices.ContainsFunc(kinds, func(k Kind) bool { return k != kinds[0] }) {
				t.Fatalf("logged=%v: a batch of %d objects of kinds %v", logged, len(kinds), slices.Compact(kinds))
			}
			if kinds[0] == KindBlob {
				sawBlob = true
			} else if sawBlob {
				t.Fatalf("logged=%v: a %s batch after a blob batch", logged, kinds[0])
			}
			sizes[kinds[0]] = append(sizes[kinds[0]], len(kinds))
		}
		for k, want := range map[Kind]int{KindLayerLink: 3, KindManifestLink: 1, KindBlob: 2} {
			if len(sizes[k]) != want {
				t.Errorf("logged=%v: %s batches %v, want %d", logged, k, sizes[k], want)
			}
		}
	}

	plan := NewPlan(objs...)
	failing := plan.Of(KindLayerLink)[5] // in the first batch of layer links
	b := &batchRecorder{failOn: map[string]bool{failing.Ref(): true}}
	sum, err := Sweep(context.Background(), plan, b, 1, nil)
	if err == nil || !strings.Contains(err.Error(), "deleting layer link "+failing.Ref()) ||
		!strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("err = %v", err)
	}
	if sum.Count[KindLayerLink] != BatchSize-1 || sum.Count[KindBlob] != 0 {
		t.Errorf("summary %+v: want the first batch's other links counted, and no blob deleted", sum)
	}
}

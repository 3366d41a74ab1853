package ordinary

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/prune"
)

var digestPattern = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

// withNames replaces the digests in text by their names.
func withNames(text string) string {
	return digestPattern.ReplaceAllStringFunc(text, func(d string) string { return nameOf(digest.Digest(d)) })
}

// recorder is the calls the fakes received, in order, in names.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) add(call string) {
	r.mu.Lock()
	r.calls = append(r.calls, call)
	r.mu.Unlock()
}

// fakeCluster holds the streams as they are now (which may differ from what Run was given),
// applies updates, and fails the calls it is told to.
type fakeCluster struct {
	rec       *recorder
	mu        sync.Mutex
	streams   map[string]*Stream // by "ns/name"; absent: the stream no longer exists
	updateErr map[string]error
	deleteErr map[string]error // by Image name
}

func (c *fakeCluster) UpdateStream(
	ctx context.Context, namespace, name string, decide func(*Stream) *StreamPlan,
) (*StreamPlan, error) {
	key := namespace + "/" + name
	c.rec.add("update " + key)
	if err := c.updateErr[key]; err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[key]
	if s == nil {
		return nil, nil
	}
	plan := decide(s)
	c.streams[key] = plan.Remaining()
	return plan, nil
}

func (c *fakeCluster) DeleteImage(ctx context.Context, d digest.Digest) error {
	c.rec.add("delete image " + nameOf(d))
	return c.deleteErr[nameOf(d)]
}

// fakeRegistry records deletions as "delete layer link ns/app@x" and fails those it is told to.
type fakeRegistry struct {
	rec  *recorder
	errs map[string]error
}

func (r *fakeRegistry) Delete(ctx context.Context, o prune.Object) error {
	call := "delete " + withNames(o.String())
	r.rec.add(call)
	return r.errs[call]
}

var errBoom = errors.New("boom")

// scenario is the runner's usual world: ns/app's latest names m2 then m1, ns/web's names w1.
// With keep-tag-revisions=1, m1 goes from ns/app with the layer links and the blobs only it
// names (l1, m1.cfg); base, which every Image names, stays.
type scenario struct {
	images  map[digest.Digest]*Image
	streams []*Stream
	refs    *Referrers
	opts    Options
	// now are the streams as the cluster holds them when Run reads them afresh; nil: as given.
	now []*Stream
}

func usual() *scenario {
	return &scenario{
		images: imageSet(
			img("m1", "m1.cfg", "base", "l1"),
			img("m2", "m2.cfg", "base", "l2"),
			img("w1", "w1.cfg", "base", "wl"),
		),
		streams: []*Stream{
			stream("ns", "app", tagOf("latest", "m2", "m1")),
			stream("ns", "web", tagOf("latest", "w1")),
		},
		refs: NewReferrers(),
		opts: keep(1),
	}
}

func (s *scenario) cluster(rec *recorder) *fakeCluster {
	c := &fakeCluster{rec: rec, streams: map[string]*Stream{}, updateErr: map[string]error{}, deleteErr: map[string]error{}}
	streams := s.now
	if streams == nil {
		streams = s.streams
	}
	for _, st := range streams {
		cp := *st
		c.streams[st.Repository()] = &cp
	}
	return c
}

func (s *scenario) input() *Input {
	return &Input{Images: s.images, Streams: s.streams, Referrers: s.refs, Options: s.opts}
}

// The usual run's output and calls.
var (
	usualOut = []string{
		"Deleting 1 items from image stream ns/app",
		"Deleting layer link l1 in repository ns/app",
		"Deleting layer link m1.cfg in repository ns/app",
		"Deleting manifest link m1 in repository ns/app",
		"Deleting image m1",
		"Deleting blob l1",
		"Deleting blob m1",
		"Deleting blob m1.cfg",
		"Summary: deleted 1 image object(s), deleted 1 image stream tag item(s), updated 1 image stream(s), " +
			"deleted 2 layer link(s), deleted 1 manifest link(s), deleted 3 blob(s)",
	}
	usualCalls = []string{
		"update ns/app",
		"delete layer link ns/app@l1",
		"delete layer link ns/app@m1.cfg",
		"delete manifest link ns/app@m1",
		"update ns/web",
		"delete image m1",
		"delete blob l1",
		"delete blob m1",
		"delete blob m1.cfg",
	}
	usualStats = Stats{
		DeletedImages: 1, DeletedImageStreamTagItems: 1, UpdatedImageStreams: 1,
		DeletedLayerLinks: 2, DeletedManifestLinks: 1, DeletedBlobs: 3,
	}
)

const invalidBlock = "The following objects have invalid references:\n\n" +
	"  pod/web-1 namespace=shop: container web: invalid image reference \"Bad:Ref\": invalid reference format\n" +
	"  buildconfig/b namespace=shop: invalid ImageStreamTag reference \"x\": expected name:tag\n" +
	"\nEither fix the references or delete the objects to make the pruner proceed.\n"

const dryRunHeader = "Dry run enabled - no modifications will be made. Add --confirm to remove images\n"

func withInvalid(s *scenario) {
	s.refs.Invalid = []InvalidRef{
		{
			Referrer: Referrer{Resource: "pod", Namespace: "shop", Name: "web-1"}, Where: "container web",
			Kind: "image", Reference: "Bad:Ref", Err: "invalid reference format",
		},
		{
			Referrer: Referrer{Resource: "buildconfig", Namespace: "shop", Name: "b"},
			Kind:     "ImageStreamTag", Reference: "x", Err: "expected name:tag",
		},
	}
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup changes the scenario, the fakes and the configuration.
		setup      func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config)
		ctx        func() context.Context
		wantCalls  []string
		wantOut    []string
		wantErrOut string
		wantStats  Stats
		// wantErrs are the lines of the error returned, in names; wantIs what it wraps.
		wantErrs []string
		wantIs   []error
	}{
		{
			name:      "the stream's update, then its links; the Image, then its blobs",
			wantCalls: usualCalls, wantOut: usualOut, wantStats: usualStats,
		},
		{
			name: "a dry run prints the same lines and changes nothing",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				cfg.DryRun = true
			},
			wantCalls:  nil,
			wantOut:    usualOut,
			wantErrOut: dryRunHeader,
			wantStats:  usualStats,
		},
		{
			name: "a dry run needs no registry",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				cfg.DryRun = true
				cfg.Registry = nil
			},
			wantCalls:  nil,
			wantOut:    usualOut,
			wantErrOut: dryRunHeader,
			wantStats:  usualStats,
		},
		{
			name: "-prune-registry=false removes API objects only",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				s.opts.PruneRegistry = false
				cfg.Registry = nil
			},
			wantCalls: []string{"update ns/app", "update ns/web", "delete image m1"},
			wantOut: []string{
				"Only API objects will be removed.  No modifications to the image registry will be made.",
				"Deleting 1 items from image stream ns/app",
				"Deleting image m1",
				"Summary: deleted 1 image object(s), deleted 1 image stream tag item(s), updated 1 image stream(s)",
			},
			wantStats: Stats{DeletedImages: 1, DeletedImageStreamTagItems: 1, UpdatedImageStreams: 1},
		},
		{
			name: "pruning the registry without a registry is refused before any call",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				cfg.Registry = nil
			},
			wantOut:  []string{"Summary: deleted 0 objects"},
			wantErrs: []string{"pruning the registry needs a Registry to delete its data with"},
		},
		{
			name: "a failed update keeps the stream's links and the Images it names",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				c.updateErr["ns/app"] = errBoom
			},
			wantCalls: []string{"update ns/app", "update ns/web"},
			wantOut:   []string{"Summary: deleted 0 objects"},
			wantErrs:  []string{"imagestream ns/app: boom"},
			wantIs:    []error{errBoom},
		},
		{
			name: "a stream that no longer exists keeps the Images it named",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				delete(c.streams, "ns/app")
			},
			wantCalls: []string{"update ns/app", "update ns/web"},
			wantOut:   []string{"Summary: deleted 0 objects"},
		},
		{
			name: "an item added since the streams were listed keeps its Image",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				c.streams["ns/web"] = stream("ns", "web", tagOf("latest", "w1"), tagOf("copy", "m1"))
			},
			wantCalls: usualCalls[:5],
			wantOut: append(usualOut[:4:4],
				"Summary: deleted 1 image stream tag item(s), updated 1 image stream(s), deleted 2 layer link(s), deleted 1 manifest link(s)"),
			wantStats: Stats{DeletedImageStreamTagItems: 1, UpdatedImageStreams: 1, DeletedLayerLinks: 2, DeletedManifestLinks: 1},
		},
		{
			name: "a failed link deletion is collected and the run goes on",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				r.errs["delete layer link ns/app@l1"] = errBoom
			},
			wantCalls: usualCalls, wantOut: append(usualOut[:8:8],
				"Summary: deleted 1 image object(s), deleted 1 image stream tag item(s), updated 1 image stream(s), "+
					"deleted 1 layer link(s), deleted 1 manifest link(s), deleted 3 blob(s)"),
			wantStats: Stats{
				DeletedImages: 1, DeletedImageStreamTagItems: 1, UpdatedImageStreams: 1,
				DeletedLayerLinks: 1, DeletedManifestLinks: 1, DeletedBlobs: 3,
			},
			wantErrs: []string{"deleting layer link ns/app@l1: boom"},
			wantIs:   []error{errBoom},
		},
		{
			name: "a failed Image deletion keeps its blobs",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				c.deleteErr["m1"] = errBoom
			},
			wantCalls: usualCalls[:6],
			wantOut: append(usualOut[:5:5],
				"Summary: deleted 1 image stream tag item(s), updated 1 image stream(s), deleted 2 layer link(s), deleted 1 manifest link(s)"),
			wantStats: Stats{DeletedImageStreamTagItems: 1, UpdatedImageStreams: 1, DeletedLayerLinks: 2, DeletedManifestLinks: 1},
			wantErrs:  []string{"deleting image m1: boom"},
			wantIs:    []error{errBoom},
		},
		{
			name: "a blob two deleted Images name stays when one of them stays",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				s.images[dg("m0")] = img("m0", "m0.cfg", "base", "l1")
				s.streams[0] = stream("ns", "app", tagOf("latest", "m2", "m1", "m0"))
				c.streams["ns/app"] = s.streams[0]
				c.deleteErr["m0"] = errBoom
			},
			wantCalls: []string{
				"update ns/app",
				"delete layer link ns/app@l1",
				"delete layer link ns/app@m0.cfg",
				"delete layer link ns/app@m1.cfg",
				"delete manifest link ns/app@m0",
				"delete manifest link ns/app@m1",
				"update ns/web",
				"delete image m0",
				"delete image m1",
				"delete blob m1",
				"delete blob m1.cfg",
			},
			wantOut: []string{
				"Deleting 2 items from image stream ns/app",
				"Deleting layer link l1 in repository ns/app",
				"Deleting layer link m0.cfg in repository ns/app",
				"Deleting layer link m1.cfg in repository ns/app",
				"Deleting manifest link m0 in repository ns/app",
				"Deleting manifest link m1 in repository ns/app",
				"Deleting image m0",
				"Deleting image m1",
				"Deleting blob m1",
				"Deleting blob m1.cfg",
				"Summary: deleted 1 image object(s), deleted 2 image stream tag item(s), updated 1 image stream(s), " +
					"deleted 3 layer link(s), deleted 2 manifest link(s), deleted 2 blob(s)",
			},
			wantStats: Stats{
				DeletedImages: 1, DeletedImageStreamTagItems: 2, UpdatedImageStreams: 1,
				DeletedLayerLinks: 3, DeletedManifestLinks: 2, DeletedBlobs: 2,
			},
			wantErrs: []string{"deleting image m0: boom"},
		},
		{
			name: "blobs written within the grace period stay; one whose age is unknown stays too",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				cfg.Grace = time.Hour
				cfg.BlobModified = func(ctx context.Context, d digest.Digest) (time.Time, error) {
					switch nameOf(d) {
					case "l1":
						return now.Add(-59 * time.Minute), nil
					case "m1":
						return time.Time{}, errBoom
					}
					return now.Add(-time.Hour), nil
				}
			},
			wantCalls: append(usualCalls[:6:6], "delete blob m1.cfg"),
			wantOut: append(usualOut[:5:5], "Deleting blob m1.cfg",
				"Summary: deleted 1 image object(s), deleted 1 image stream tag item(s), updated 1 image stream(s), "+
					"deleted 2 layer link(s), deleted 1 manifest link(s), deleted 1 blob(s)"),
			wantStats: Stats{
				DeletedImages: 1, DeletedImageStreamTagItems: 1, UpdatedImageStreams: 1,
				DeletedLayerLinks: 2, DeletedManifestLinks: 1, DeletedBlobs: 1,
			},
			wantErrs: []string{"blob m1: reading when it was last written: boom (the blob is kept)"},
			wantIs:   []error{errBoom},
		},
		{
			name: "a blob written after the run started stays, with no grace period",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				cfg.BlobModified = func(ctx context.Context, d digest.Digest) (time.Time, error) {
					if nameOf(d) == "l1" {
						return now.Add(time.Second), nil
					}
					return now, nil
				}
			},
			wantCalls: append(usualCalls[:6:6], "delete blob m1", "delete blob m1.cfg"),
			wantOut: append(usualOut[:5:5], "Deleting blob m1", "Deleting blob m1.cfg",
				"Summary: deleted 1 image object(s), deleted 1 image stream tag item(s), updated 1 image stream(s), "+
					"deleted 2 layer link(s), deleted 1 manifest link(s), deleted 2 blob(s)"),
			wantStats: Stats{
				DeletedImages: 1, DeletedImageStreamTagItems: 1, UpdatedImageStreams: 1,
				DeletedLayerLinks: 2, DeletedManifestLinks: 1, DeletedBlobs: 2,
			},
		},
		{
			name:       "invalid references stop everything before any call",
			setup:      func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) { withInvalid(s) },
			wantOut:    []string{"Summary: deleted 0 objects"},
			wantErrOut: invalidBlock,
			wantErrs: []string{"invalid image references: 2 references do not parse, so nothing was pruned; " +
				"fix or delete the objects naming them, or run with -ignore-invalid-refs to go on without them"},
			wantIs: []error{ErrInvalidReferences},
		},
		{
			name: "one invalid reference stops everything",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				withInvalid(s)
				s.refs.Invalid = s.refs.Invalid[1:]
			},
			wantOut: []string{"Summary: deleted 0 objects"},
			wantErrOut: "The following objects have invalid references:\n\n" +
				"  buildconfig/b namespace=shop: invalid ImageStreamTag reference \"x\": expected name:tag\n" +
				"\nEither fix the references or delete the objects to make the pruner proceed.\n",
			wantErrs: []string{"invalid image references: 1 reference does not parse, so nothing was pruned; " +
				"fix or delete the objects naming them, or run with -ignore-invalid-refs to go on without them"},
			wantIs: []error{ErrInvalidReferences},
		},
		{
			name: "invalid references stop a dry run too",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				withInvalid(s)
				cfg.DryRun = true
			},
			wantOut:    []string{"Summary: deleted 0 objects"},
			wantErrOut: invalidBlock,
			wantErrs: []string{"invalid image references: 2 references do not parse, so nothing was pruned; " +
				"fix or delete the objects naming them, or run with -ignore-invalid-refs to go on without them"},
			wantIs: []error{ErrInvalidReferences},
		},
		{
			name: "-ignore-invalid-refs warns and goes on",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				withInvalid(s)
				cfg.IgnoreInvalidRefs = true
			},
			wantCalls: usualCalls, wantOut: usualOut, wantStats: usualStats,
			wantErrOut: "Warning: the following objects have invalid references; -ignore-invalid-refs goes on without them, " +
				"so the images they name are not protected:\n\n" +
				"  pod/web-1 namespace=shop: container web: invalid image reference \"Bad:Ref\": invalid reference format\n" +
				"  buildconfig/b namespace=shop: invalid ImageStreamTag reference \"x\": expected name:tag\n\n",
		},
		{
			name: "a namespaced prune deletes links and neither Images nor blobs",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				s.opts.Namespace = "ns"
			},
			wantCalls: usualCalls[:5],
			wantOut: append(usualOut[:4:4],
				"Summary: deleted 1 image stream tag item(s), updated 1 image stream(s), deleted 2 layer link(s), deleted 1 manifest link(s)"),
			wantStats: Stats{DeletedImageStreamTagItems: 1, UpdatedImageStreams: 1, DeletedLayerLinks: 2, DeletedManifestLinks: 1},
		},
		{
			name: "nothing to prune",
			setup: func(s *scenario, c *fakeCluster, r *fakeRegistry, cfg *Config) {
				s.opts = keep(3)
			},
			wantCalls: []string{"update ns/app", "update ns/web"},
			wantOut:   []string{"Summary: deleted 0 objects"},
		},
		{
			name: "a cancelled run stops before any call",
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			wantOut:  []string{"Summary: deleted 0 objects"},
			wantErrs: []string{"stopped before the prune finished: context canceled"},
			wantIs:   []error{context.Canceled},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := usual()
			rec := &recorder{}
			reg := &fakeRegistry{rec: rec, errs: map[string]error{}}
			var out, errOut bytes.Buffer
			cfg := Config{Registry: reg, Workers: 1, Out: &out, ErrOut: &errOut}
			c := s.cluster(rec)
			cfg.Cluster = c
			if tc.setup != nil {
				tc.setup(s, c, reg, &cfg)
			}
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			stats, err := Run(ctx, cfg, s.input())

			if !reflect.DeepEqual(rec.calls, tc.wantCalls) {
				t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(rec.calls, "\n"), strings.Join(tc.wantCalls, "\n"))
			}
			if got, want := withNames(out.String()), strings.Join(tc.wantOut, "\n")+"\n"; got != want {
				t.Errorf("out:\n%s\nwant:\n%s", got, want)
			}
			if got := errOut.String(); got != tc.wantErrOut {
				t.Errorf("err out:\n%s\nwant:\n%s", got, tc.wantErrOut)
			}
			if stats != tc.wantStats {
				t.Errorf("stats %+v, want %+v", stats, tc.wantStats)
			}
			var errs []string
			if err != nil {
				errs = strings.Split(withNames(err.Error()), "\n")
			}
			if !reflect.DeepEqual(errs, tc.wantErrs) {
				t.Errorf("errors %q, want %q", errs, tc.wantErrs)
			}
			for _, target := range tc.wantIs {
				if !errors.Is(err, target) {
					t.Errorf("the error does not wrap %v", target)
				}
			}
		})
	}
}

// TestRunWorkers: with several workers, each stream's lines come together and each stream's
// links come after its update; every Image's blobs after the Image.
func TestRunWorkers(t *testing.T) {
	const n = 12
	s := &scenario{images: map[digest.Digest]*Image{}, refs: NewReferrers(), opts: keep(1)}
	for i := range n {
		keepName, goName := fmt.Sprintf("k%02d", i), fmt.Sprintf("g%02d", i)
		s.images[dg(keepName)] = img(keepName, "", "base")
		s.images[dg(goName)] = img(goName, goName+".cfg", "base", goName+".l")
		s.streams = append(s.streams, stream("ns", fmt.Sprintf("s%02d", i), tagOf("latest", keepName, goName)))
	}
	rec := &recorder{}
	var out bytes.Buffer
	cfg := Config{Registry: &fakeRegistry{rec: rec}, Workers: 4, Out: &out}
	cfg.Cluster = s.cluster(rec)
	stats, err := Run(context.Background(), cfg, s.input())
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		DeletedImages: n, DeletedImageStreamTagItems: n, UpdatedImageStreams: n,
		DeletedLayerLinks: 2 * n, DeletedManifestLinks: n, DeletedBlobs: 3 * n,
	}
	if stats != want {
		t.Errorf("stats %+v, want %+v", stats, want)
	}

	lines := strings.Split(strings.TrimSuffix(withNames(out.String()), "\n"), "\n")
	if last := lines[len(lines)-1]; last != "Summary: "+want.String() {
		t.Errorf("last line %q", last)
	}
	seen := map[string]bool{}
	for i, line := range lines {
		repo, ok := strings.CutPrefix(line, "Deleting 1 items from image stream ")
		if !ok {
			continue
		}
		g := "g" + strings.TrimPrefix(repo, "ns/s")
		wantGroup := []string{
			"Deleting layer link " + g + ".cfg in repository " + repo,
			"Deleting layer link " + g + ".l in repository " + repo,
			"Deleting manifest link " + g + " in repository " + repo,
		}
		if i+3 >= len(lines) || !reflect.DeepEqual(lines[i+1:i+4], wantGroup) {
			t.Errorf("the lines of %s do not come together: %q", repo, lines[i:min(i+4, len(lines))])
		}
		seen[repo] = true
	}
	if len(seen) != n {
		t.Errorf("%d streams updated, want %d", len(seen), n)
	}

	position := map[string]int{}
	for i, call := range rec.calls {
		position[call] = i
	}
	if len(position) != len(rec.calls) {
		t.Errorf("a call was made twice: %q", rec.calls)
	}
	for i := range n {
		repo, g := fmt.Sprintf("ns/s%02d", i), fmt.Sprintf("g%02d", i)
		update := position["update "+repo]
		for _, link := range []string{"layer link " + repo + "@" + g + ".cfg", "layer link " + repo + "@" + g + ".l", "manifest link " + repo + "@" + g} {
			if p, ok := position["delete "+link]; !ok || p < update {
				t.Errorf("%s: deleted at %d (made: %v), the update at %d", link, p, ok, update)
			}
		}
		image := position["delete image "+g]
		for _, b := range []string{g, g + ".cfg", g + ".l"} {
			if p, ok := position["delete blob "+b]; !ok || p < image {
				t.Errorf("blob %s: deleted at %d (made: %v), its Image at %d", b, p, ok, image)
			}
		}
		if image < update {
			t.Errorf("Image %s deleted before its stream was updated", g)
		}
	}
	if _, ok := position["delete blob base"]; ok {
		t.Error("base, which kept Images name, was deleted")
	}
}

// TestRunCancelledBetweenStreams: a run cancelled while it updates the streams updates no
// more of them and deletes no Image.
func TestRunCancelledBetweenStreams(t *testing.T) {
	s := usual()
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	c := s.cluster(rec)
	cancelling := &cancelOnUpdate{fakeCluster: c, cancel: cancel}
	var out bytes.Buffer
	cfg := Config{Cluster: cancelling, Registry: &fakeRegistry{rec: rec}, Workers: 1, Out: &out}
	stats, err := Run(ctx, cfg, s.input())
	if want := []string{"update ns/app"}; !reflect.DeepEqual(rec.calls, want) {
		t.Errorf("calls %q, want %q", rec.calls, want)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v", err)
	}
	want := Stats{DeletedImageStreamTagItems: 1, UpdatedImageStreams: 1}
	if stats != want {
		t.Errorf("stats %+v, want %+v", stats, want)
	}
	if got := withNames(out.String()); got != "Deleting 1 items from image stream ns/app\n"+
		"Summary: deleted 1 image stream tag item(s), updated 1 image stream(s)\n" {
		t.Errorf("out:\n%s", got)
	}
}

// cancelOnUpdate cancels the run once its first update is done.
type cancelOnUpdate struct {
	*fakeCluster
	cancel context.CancelFunc
}

func (c *cancelOnUpdate) UpdateStream(
	ctx context.Context, namespace, name string, decide func(*Stream) *StreamPlan,
) (*StreamPlan, error) {
	plan, err := c.fakeCluster.UpdateStream(ctx, namespace, name, decide)
	c.cancel()
	return plan, err
}
func TestStatsString(t *testing.T) {
	for _, tc := range []struct {
		stats Stats
		want  string
	}{
		{Stats{}, "deleted 0 objects"},
		{Stats{DeletedBlobs: 1}, "deleted 1 blob(s)"},
		{Stats{UpdatedImageStreams: 2, DeletedImageStreamTagItems: 5}, "deleted 5 image stream tag item(s), updated 2 image stream(s)"},
		{
			Stats{DeletedImages: 1, DeletedImageStreamTagItems: 2, UpdatedImageStreams: 3, DeletedLayerLinks: 4, DeletedManifestLinks: 5, DeletedBlobs: 6},
			"deleted 1 image object(s), deleted 2 image stream tag item(s), updated 3 image stream(s), " +
				"deleted 4 layer link(s), deleted 5 manifest link(s), deleted 6 blob(s)",
		},
		{Stats{DeletedImages: 7, DeletedManifestLinks: 1}, "deleted 7 image object(s), deleted 1 manifest link(s)"},
	} {
		if got := tc.stats.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.stats, got, tc.want)
		}
	}
}

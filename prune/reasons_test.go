package prune

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
)

// TestReasonsAreTrueOnTheirOwn: each reason reads as a sentence of its own and says what is
// really the case.
func TestReasonsAreTrueOnTheirOwn(t *testing.T) {
	// v1's history still names m1, whose Image was deleted by hand; m2 is named nowhere.
	refs := refsOf([]Image{img("m3", "c3", "l3")}, []Stream{stream("ns/app", "m1", "m3")})
	inv := &Inventory{
		Blobs: blobs("m1", "m2", "m3", "c3", "l3"),
		Repositories: []Repository{
			{Name: "a/b/c", Manifests: links("m3"), Layers: links("c3", "l3")},
			{Name: "ns/BadName", Manifests: links("m3")},
			{Name: "ns/app", Manifests: links("m1", "m2", "m3"), Layers: links("c3", "l3"), Tags: []Tag{
				{Name: "v1", Current: dg("m1"), State: TagRead, Index: []digest.Digest{dg("m1")}, ModTime: old},
				{Name: "v2", Current: dg("m2"), State: TagRead, Index: []digest.Digest{dg("m2")}, ModTime: old},
			}},
			{Name: "ns/gone", Manifests: links("m3")},
		},
	}
	plan := Decide(refs, inv, opts())
	reasons := map[string]string{}
	for _, r := range plan.Of(KindRepository) {
		reasons["repo "+r.Repository] = r.Why()
	}
	for _, l := range plan.Of(KindManifestLink) {
		reasons["manifest "+l.Repository+"@"+names(NewPlan(Object{Kind: KindBlob, Digest: l.Digest}), []string{"m1", "m2"}).Blobs[0]] = l.Why()
	}
	for _, tg := range plan.Of(KindTag) {
		reasons["tag "+tg.Repository+":"+tg.Name] = tg.Why()
	}
	want := map[string]string{
		"repo a/b/c":         "no image stream can name it: a/b/c is not <namespace>/<name>",
		"repo ns/BadName":    "no image stream can name it: ns/BadName is not a valid <namespace>/<name>",
		"repo ns/gone":       "image stream ns/gone does not exist",
		"manifest ns/app@m1": "its Image does not exist (the tag history of image stream ns/app still names it)",
		"manifest ns/app@m2": "not in the tag history of image stream ns/app",
		"tag ns/app:v1":      "the manifest it points at goes (its Image does not exist (the tag history of image stream ns/app still names it))",
		"tag ns/app:v2":      "the manifest it points at goes (not in the tag history of image stream ns/app)",
	}
	for k, w := range want {
		if reasons[k] != w {
			t.Errorf("%s: reason %q, want %q", k, reasons[k], w)
		}
	}
	if len(reasons) != len(want) {
		t.Errorf("reasons %v", reasons)
	}
}

// TestExplainFutureDate: a blob dated after the run's start is said to be so, and kept.
func TestExplainFutureDate(t *testing.T) {
	refs := refsOf(nil, nil)
	inv := &Inventory{Blobs: []Blob{{Digest: dg("x"), Size: 1, ModTime: now.Add(365 * 24 * time.Hour)}}}
	exp := Explain(dg("x"), &Usage{Target: dg("x")}, refs, inv, opts())
	var buf bytes.Buffer
	WriteExplanation(&buf, exp)
	if exp.Deleted || strings.Contains(buf.String(), "-8760h") ||
		!strings.Contains(
			buf.String(),
			"the grace period holds it: modified 8760h0m0s in the future (a date after the run's start, which the grace period keeps)",
		) {
		t.Errorf("explanation:\n%s", buf.String())
	}
}

// tenRepositories are ten stored repositories r0/r0..r9/r9, r0 linking m0.
func tenRepositories() []Repository {
	var out []Repository
	for i := range 10 {
		r := Repository{Name: fmt.Sprintf("r%d/r%d", i, i)}
		if i == 0 {
			r.Manifests = links("m0")
		}
		out = append(out, r)
	}
	return out
}

// tenStreams are the image streams of the first n of tenRepositories, r0/r0 naming m0.
func tenStreams(n int) []Stream {
	out := []Stream{stream("r0/r0", "m0")}
	for i := 1; i < n; i++ {
		out = append(out, stream(fmt.Sprintf("r%d/r%d", i, i)))
	}
	return out
}

// TestWrongClusterInterlock: a delete run refuses what a pruner reading the wrong cluster
// would do, says why in one error, and deletes nothing; a dry run only warns.
func TestWrongClusterInterlock(t *testing.T) {
	repo := func(name string, manifests ...string) Repository {
		return Repository{Name: name, Manifests: links(manifests...)}
	}
	big := func(name string, size int64) Blob { return Blob{Digest: dg(name), Size: size, ModTime: old} }
	tests := []struct {
		name     string
		images   []Image
		streams  []Stream
		inv      Inventory
		want     string // in the error; empty: no refusal
		override func(*Config)
	}{
		{
			name:    "an API naming none of the stored repositories, one shared base layer",
			images:  []Image{img("x", "cx", "base")},
			streams: []Stream{stream("other/x", "x")},
			inv: Inventory{Blobs: append(blobs("m1", "m2", "m3", "m4", "m5"), big("base", 100)),
				Repositories: []Repository{
					repo("a/a", "m1"),
					repo("b/b", "m2"),
					repo("c/c", "m3"),
					repo("d/d", "m4"),
					repo("e/e", "m5"),
				}},
			want:     "none of the 5 stored repositories has an image stream",
			override: func(c *Config) { c.AllowDeleteAll = true },
		},
		{
			name:     "more than half the repositories",
			images:   []Image{img("m0", "")},
			streams:  tenStreams(4),
			inv:      Inventory{Blobs: append(blobs("m0"), big("keep", 1000)), Repositories: tenRepositories()},
			want:     "6 of the 10 stored repositories (60%, more than -prune-max-delete-ratio=0.5)",
			override: func(c *Config) { c.MaxDeleteRatio = 1 },
		},
		{
			name:    "more than half the bytes",
			images:  []Image{img("m0", "")},
			streams: tenStreams(10),
			inv:     Inventory{Blobs: append(blobs("m0"), big("huge", 1000)), Repositories: tenRepositories()},
			want:    "1000 B of the 1002 B of stored blobs (100%, more than -prune-max-delete-ratio=0.5)",
			override: func(c *Config) {
				c.MaxDeleteRatio = 1
			},
		},
		{
			// Below ten repositories a share says little: a small registry is pruned.
			name:    "a small registry: three of five repositories and most bytes",
			images:  []Image{img("m1", "")},
			streams: []Stream{stream("a/a", "m1"), stream("b/b")},
			inv: Inventory{Blobs: append(blobs("m1", "m2", "m3"), big("junk", 1000)),
				Repositories: []Repository{
					repo("a/a", "m1"),
					repo("b/b"),
					repo("c/c", "m2"),
					repo("d/d", "m3"),
					repo("e/e"),
				}},
		},
		{
			name:     "storage without repositories",
			images:   []Image{img("m1", "")},
			inv:      Inventory{Blobs: append(blobs("m1"), big("a", 1), big("b", 1)), RepositoriesMissing: true},
			want:     "no repositories/ directory",
			override: func(c *Config) { c.AllowDeleteAll = true },
		},
		{
			// The one stored repository lost its stream; its Image keeps the blobs.
			name:    "a single repository whose stream was deleted",
			images:  []Image{img("m1", "c1")},
			streams: []Stream{stream("other/x")},
			inv:     Inventory{Blobs: blobs("m1", "c1"), Repositories: []Repository{repo("a/a", "m1")}},
		},
		{
			// Everything is young: nothing goes, so there is nothing to refuse.
			name: "no stream for any repository, but nothing to delete",
			inv: Inventory{Blobs: []Blob{{Digest: dg("m1"), Size: 1, ModTime: fresh}},
				Repositories: []Repository{{Name: "a/a", Manifests: []Link{{Digest: dg("m1"), ModTime: fresh}}}}},
		},
		{
			name:    "half the repositories and a sixth of the bytes: an ordinary run",
			images:  []Image{img("m1", "", "keep")},
			streams: []Stream{stream("a/a", "m1")},
			inv: Inventory{Blobs: append(blobs("m1", "m2"), big("keep", 10)),
				Repositories: []Repository{repo("a/a", "m1"), repo("b/b", "m2")}},
		},
	}
	quiet := logrus.New()
	quiet.SetLevel(logrus.PanicLevel)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{}
			inv := tt.inv
			cfg := Config{
				References: staticSource{refs: refsOf(tt.images, tt.streams)},
				Inventory:  staticSource{inv: &inv},
				Remover:    r,
				Options:    opts(),
				Workers:    1,
				Log:        quiet,
			}
			_, _, err := Run(context.Background(), cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused an ordinary run: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrWouldDeleteEverything) || !strings.Contains(err.Error(), tt.want) ||
				strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line with %q", err, tt.want)
			}
			if len(r.calls) != 0 {
				t.Fatalf("deleted %v", r.calls)
			}
			// A dry run warns and goes on.
			var logged bytes.Buffer
			warn := logrus.New()
			warn.SetOutput(&logged)
			dry := cfg
			dry.Remover, dry.Log = DryRun{}, warn
			inv2 := tt.inv
			dry.Inventory = staticSource{inv: &inv2}
			if _, _, err := Run(context.Background(), dry); err != nil ||
				!strings.Contains(logged.String(), "a delete run will refuse without") {
				t.Fatalf("dry run: %v\n%s", err, logged.String())
			}
			tt.override(&cfg)
			inv3 := tt.inv
			cfg.Inventory = staticSource{inv: &inv3}
			if _, _, err := Run(context.Background(), cfg); err != nil || len(r.calls) == 0 {
				t.Fatalf("with the override: %v, calls %v", err, r.calls)
			}
		})
	}
}

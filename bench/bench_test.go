package bench

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hardprune/image-registry/e2e/harness"
)

// requireBinaries skips test (what names it) when a binary that one of finds looks up is
// missing, and fails it instead with E2E_REQUIRED=1.
func requireBinaries(t *testing.T, test string, finds ...func() (string, error)) {
	t.Helper()
	for _, find := range finds {
		if _, err := find(); err != nil {
			if errors.Is(err, harness.ErrBinaryMissing) && os.Getenv("E2E_REQUIRED") != "1" {
				t.Skipf("skipping %s: %v (set E2E_REQUIRED=1 to fail instead)", test, err)
			}
			t.Fatal(err)
		}
	}
}

// TestHarnessSmoke runs the whole benchmark at the tiny size on both backends: generation,
// API objects, -prune=check (which must find exactly the generated orphans), find and
// distribution's garbage-collect, a check through the S3 latency proxy, and a profiled prune run. Skipped when the binaries are missing, failing instead with
// E2E_REQUIRED=1.
func TestHarnessSmoke(t *testing.T) {
	requireBinaries(t, "the benchmark smoke test", harness.DockerRegistryBinary, harness.ImageAPIServerBinary,
		harness.EtcdBinary, harness.VersityGWBinary, distributionRegistryBinary)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Run(
		ctx,
		Config{
			Size:      Sizes["tiny"],
			Runs:      1,
			GCRuns:    1,
			S3GCRuns:  1,
			Backends:  []string{"filesystem", "s3"},
			WorkDir:   t.TempDir(),
			Profile:   true,
			S3Latency: 20 * time.Millisecond,
			Log:       testWriter{t},
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.WriteMarkdown(&b)
	t.Log("\n" + b.String())
	for _, want := range []string{
		"### Targets (issue 14)",
		"### filesystem",
		"### s3",
		"ours / find",
		"garbage-collect / ours",
		"S3 requests",
		"image API requests",
		"ours / rm",
		"S3 requests of `-prune=delete`",
		"with latency / without",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the report has no %q", want)
		}
	}
	for _, be := range res.Backends {
		if got := be.Prune.API["list images"]; got != 1 {
			t.Errorf("%s: %d image list requests, want 1 (%s)", be.Backend, got, be.Prune.API)
		}
		if be.Backend == "s3" && be.Prune.Storage["LIST"] == 0 {
			t.Errorf("s3: no LIST request counted (%s)", be.Prune.Storage)
		}
		if be.Backend == "s3" && (be.Latency == nil || be.Latency.Runs != 1 || be.Latency.Storage["LIST"] == 0) {
			t.Errorf("s3: the check through the latency proxy %+v, want one run with its requests counted", be.Latency)
		}
		// The delete runs: on the filesystem against rm, each round's copies compared (a
		// difference fails Run); on S3 with their requests classed.
		switch d := be.Delete; {
		case d == nil || d.TotalObjects() == 0 || d.Prune.Runs == 0:
			t.Errorf("%s: delete runs %+v, want runs deleting the plan's objects", be.Backend, d)
		case be.Backend == "filesystem" && (d.Rm == nil || d.Rm.Runs != 1 || d.Paths == 0):
			t.Errorf("filesystem: xargs rm %+v of %d paths, want one run", d.Rm, d.Paths)
		case be.Backend == "s3" && (d.Deleted == 0 || d.Prune.Storage["DELETE-BATCH keys"] == 0 ||
			d.Prune.Storage["LIST walk"] == 0):
			t.Errorf("s3: %d keys deleted, requests %s; want keys deleted in batches after a walk",
				d.Deleted, d.Prune.Storage)
		}
		if len(be.Profiles) != 2 {
			t.Errorf("%s: profiles %v, want a CPU and an allocation profile", be.Backend, be.Profiles)
		}
		for _, p := range be.Profiles {
			if info, err := os.Stat(p); err != nil || info.Size() == 0 {
				t.Errorf("%s: profile %s: %v, want a profile", be.Backend, p, err)
			}
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

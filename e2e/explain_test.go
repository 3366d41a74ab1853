package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/prune"
)

// TestPruneExplain: -prune-explain says whether a blob goes, and every reason it stays: the
// Images that use it, the tag history positions naming them (through manifest lists too), the
// grace period, and what becomes of each link to it.
func TestPruneExplain(t *testing.T) {
	e := newEnv(t)
	e.startRegistry()
	a1 := image(t, "a1", "base", "a1-only")
	a2 := image(t, "a2", "base", "a2-only")
	a3 := image(t, "a3", "base", "a3-only")
	a1d := e.mustPush("ns/app:v1", a1)
	a2d := e.mustPush("ns/app:latest", a2)
	a3d := e.mustPush("ns/app:latest", a3) // latest: [a3, a2]
	amd := image(t, "amd64", "base", "amd64-only")
	idx := harness.PlatformIndex(amd, nil)
	if err := remote.WriteIndex(e.ref("ns/multi:latest"), idx); err != nil {
		t.Fatal(err)
	}
	idxd, _ := idx.Digest()
	amdd, _ := amd.Digest()
	mustDeleteImage(t, e, a1d) // a1's own blobs become orphans

	base := blobsOf(t, a1)[2]
	res := e.prune(nil, "-prune-explain="+base.String(), noGrace)
	if res.ExitCode != 0 {
		t.Fatalf("exit %d\n%s", res.ExitCode, res.Stderr)
	}
	t.Logf("explain the shared base layer:\n%s", res.Stdout)
	for _, want := range []string{
		fmt.Sprintf("Blob %s (%s) would be kept:\n", base, prune.FormatSize(e.blobSize(base))),
		fmt.Sprintf("  - used by Image %s as layer\n      ns/app:latest at position 1 out of 2\n", a2d),
		fmt.Sprintf("  - used by Image %s as layer\n      ns/app:latest at position 0 out of 2\n", a3d),
		fmt.Sprintf("  - used by Image %s as layer\n      ns/multi:latest at position 0 out of 1, through manifest list %s\n", amdd, idxd),
		"  the grace period does not hold it: modified ",
		" ago (-prune-keep-younger-than=0s)\n",
		"  layer link ns/app: kept: an image of image stream ns/app uses it\n",
		"  layer link ns/multi: kept: an image of image stream ns/multi uses it\n",
	} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	orphan := blobsOf(t, a1)[3]
	res = e.prune(nil, "-prune-explain="+orphan.String(), noGrace)
	t.Logf("explain an orphan:\n%s", res.Stdout)
	if want := fmt.Sprintf("Blob %s (%s) would be deleted: no image references it\n", orphan, prune.FormatSize(e.blobSize(orphan))); res.ExitCode != 0 ||
		!strings.HasPrefix(res.Stdout, want) {
		t.Errorf("exit %d, output lacks %q", res.ExitCode, want)
	}
	if !strings.Contains(
		res.Stdout,
		"  layer link ns/app: would be deleted: not used by any image of image stream ns/app\n",
	) {
		t.Error("the orphan's layer link is not explained")
	}

	// The manifest of the deleted Image: its tag v1 still names it, but no Image does.
	res = e.prune(nil, "-prune-explain="+a1d.String(), noGrace)
	t.Logf("explain the manifest whose Image was deleted:\n%s", res.Stdout)
	for _, want := range []string{"would be deleted: no image references it", "  manifest link ns/app: would be deleted", "  tag ns/app:v1: would be deleted"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	// Within the default grace period the orphan stays, and says why.
	res = e.prune(nil, "-prune-explain="+orphan.String())
	t.Logf("explain an orphan within the grace period:\n%s", res.Stdout)
	if !strings.Contains(res.Stdout, "would be kept:\n") ||
		!strings.Contains(res.Stdout, "  - the grace period holds it: modified ") ||
		!strings.Contains(res.Stdout, "(-prune-keep-younger-than=1h0m0s)") {
		t.Error("the grace period is not given as the reason")
	}

	res = e.prune(nil, "-prune-explain=sha256:nope")
	if res.ExitCode != 2 {
		t.Errorf("a bad digest: exit %d, want 2\n%s", res.ExitCode, res.Stderr)
	}
}

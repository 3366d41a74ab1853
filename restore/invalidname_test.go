package restore

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hardprune/image-registry/prune"
)

// TestInvalidNameIsNotAdoptable: a repository whose name distribution refuses (the inventory
// keeps it, so the prune can remove it) is reported, but recovery does not try to record its
// manifests under an image stream that cannot exist.
func TestInvalidNameIsNotAdoptable(t *testing.T) {
	c := NewChecker(
		inventory([]string{"m"}, prune.Repository{Name: "ns/BadName", Manifests: manifests("m"), InvalidName: true}),
	)
	r := c.Report()
	var buf bytes.Buffer
	WriteReport(&buf, r)
	if want := "Unknown repository ns/BadName: no image stream (not recoverable: the name is not a valid repository name"; !strings.Contains(
		buf.String(),
		want,
	) {
		t.Errorf("output lacks %q:\n%s", want, buf.String())
	}
	if recs := r.Recoverable(); len(recs) != 0 {
		t.Errorf("recoverable %+v, want none", recs)
	}
}

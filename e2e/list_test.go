package e2e

import (
	"sort"
	"strings"
	"testing"
)

// TestListModes: -list-repositories, -list-blobs and -list-manifests print one item a line on
// standard output, for scripts.
func TestListModes(t *testing.T) {
	e := newEnv(t)
	e.startRegistry()
	a := image(t, "a", "base", "a-only")
	b := image(t, "b", "base", "b-only")
	ad := e.mustPush("ns/app:v1", a)
	e.mustPush("ns/other:latest", b)

	res := e.prune(nil, "-list-repositories")
	if res.ExitCode != 0 || res.Stdout != "ns/app\nns/other\n" {
		t.Errorf("-list-repositories: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}

	res = e.prune(nil, "-list-blobs")
	want := map[string]bool{}
	for _, h := range append(blobsOf(t, a), blobsOf(t, b)...) {
		want[h.String()] = true
	}
	var wantLines []string
	for d := range want {
		wantLines = append(wantLines, d)
	}
	sort.Strings(wantLines)
	got := strings.Split(strings.TrimSuffix(res.Stdout, "\n"), "\n")
	sort.Strings(got)
	if res.ExitCode != 0 || strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf(
			"-list-blobs: exit %d\n%s\nwant (any order):\n%s",
			res.ExitCode,
			res.Stdout,
			strings.Join(wantLines, "\n"),
		)
	}

	res = e.prune(nil, "-list-manifests=ns/app")
	if res.ExitCode != 0 || res.Stdout != ad.String()+"\n" {
		t.Errorf("-list-manifests=ns/app: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}

	res = e.prune(nil, "-list-manifests=ns/nope")
	if res.ExitCode != 1 || res.Stdout != "" || !strings.Contains(res.Stderr, "repository ns/nope is not in storage") {
		t.Errorf("-list-manifests of a missing repository: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	res = e.prune(nil, "-list-blobs", "-list-repositories")
	if res.ExitCode != 2 || !strings.Contains(res.Stderr, "one mode at a time") {
		t.Errorf("two modes: exit %d\n%s", res.ExitCode, res.Stderr)
	}
	t.Logf("-list-repositories:\n%s", e.prune(nil, "-list-repositories").Stdout)
}

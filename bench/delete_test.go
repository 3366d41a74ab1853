package bench

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

var (
	dgstA = digest.FromString("a")
	dgstB = digest.FromString("b")
)

// writeTree writes an empty file at each storage path below root.
func writeTree(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		f := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRecordPaths: each kind of report record comes to the path storage.Store.Delete removes.
func TestRecordPaths(t *testing.T) {
	notNested := func(string) bool { return false }
	for _, c := range []struct {
		r    prune.ReportRecord
		want string
	}{
		{prune.ReportRecord{Kind: "repository", Repository: "ns/app"}, "/docker/registry/v2/repositories/ns/app"},
		{prune.ReportRecord{Kind: "tag", Repository: "ns/app", Tag: "v1", Digest: dgstA.String()},
			"/docker/registry/v2/repositories/ns/app/_manifests/tags/v1"},
		{prune.ReportRecord{Kind: "tag index entry", Repository: "ns/app", Tag: "v1", Digest: dgstA.String()},
			"/docker/registry/v2/repositories/ns/app/_manifests/tags/v1/index/sha256/" + dgstA.Encoded()},
		{prune.ReportRecord{Kind: "manifest link", Repository: "ns/app", Digest: dgstA.String()},
			"/docker/registry/v2/repositories/ns/app/_manifests/revisions/sha256/" + dgstA.Encoded()},
		{prune.ReportRecord{Kind: "layer link", Repository: "ns/app", Digest: dgstA.String()},
			"/docker/registry/v2/repositories/ns/app/_layers/sha256/" + dgstA.Encoded()},
		{prune.ReportRecord{Kind: "upload", Repository: "ns/app", Upload: "u1"},
			"/docker/registry/v2/repositories/ns/app/_uploads/u1"},
		{prune.ReportRecord{Kind: "blob", Digest: dgstA.String()},
			"/docker/registry/v2/blobs/sha256/" + dgstA.Encoded()[:2] + "/" + dgstA.Encoded()},
	} {
		got, err := recordPaths(c.r, notNested)
		if err != nil || !slices.Equal(got, []string{c.want}) {
			t.Errorf("recordPaths(%+v) = %v, %v; want %s", c.r, got, err, c.want)
		}
	}
	nested, err := recordPaths(prune.ReportRecord{Kind: "repository", Repository: "ns/app"},
		func(string) bool { return true })
	want := []string{
		"/docker/registry/v2/repositories/ns/app/_manifests",
		"/docker/registry/v2/repositories/ns/app/_layers",
		"/docker/registry/v2/repositories/ns/app/_uploads",
	}
	if err != nil || !slices.Equal(nested, want) {
		t.Errorf("a repository with others nested below: %v, %v; want its data directories %v", nested, err, want)
	}
	for _, r := range []prune.ReportRecord{
		{Kind: "image"}, // a kind the bench does not know
		{Kind: "blob"},  // no digest
		{Kind: "layer link", Digest: dgstA.String()}, // no repository
		{Kind: "blob", Digest: "sha256:nothex"},
	} {
		if got, err := recordPaths(r, notNested); err == nil {
			t.Errorf("recordPaths(%+v) = %v, want an error", r, got)
		}
	}
}

// TestDeletePaths: the rm list is the records' paths, then the directories that removing
// repositories empties, deepest first, as the prune removes them; a directory that keeps
// anything stays.
func TestDeletePaths(t *testing.T) {
	root := t.TempDir()
	layer := func(repo string) string { return storage.LayerLinkPath(repo, dgstA) }
	writeTree(t, root,
		layer("gone/a"), layer("gone/b"), // gone/ empties: both its repositories go
		layer("kept/a"), layer("kept/b"), // kept/ keeps kept/b
		layer("deep/x/a"),                            // deep/x/ and deep/ empty
		layer("outer/app"), layer("outer/app/inner"), // outer/app has inner nested in it
		storage.BlobDataPath(dgstB),
	)
	records := []prune.ReportRecord{
		{Kind: "repository", Repository: "gone/a"},
		{Kind: "repository", Repository: "gone/b"},
		{Kind: "repository", Repository: "kept/a"},
		{Kind: "repository", Repository: "deep/x/a"},
		{Kind: "repository", Repository: "outer/app"},
		{Kind: "blob", Digest: dgstB.String()},
	}
	got, err := deletePaths(records, root)
	if err != nil {
		t.Fatal(err)
	}
	repos := storage.RepositoriesPath
	want := []string{
		repos + "/gone/a", repos + "/gone/b", repos + "/kept/a", repos + "/deep/x/a",
		repos + "/outer/app/_manifests", repos + "/outer/app/_layers", repos + "/outer/app/_uploads",
		storage.BlobDirPath(dgstB),
		repos + "/deep/x", // deepest first
		repos + "/deep",
		repos + "/gone",
	}
	if !slices.Equal(got, want) {
		t.Errorf("deletePaths =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := deletePaths([]prune.ReportRecord{{Kind: "image"}}, root); err == nil {
		t.Error("deletePaths of a record of unknown kind: no error")
	}
}

// TestDeletePathsRm: rm -rf of the list, on a hard-link copy, leaves the copy as the prune
// would and the original whole; the prune's lock is left out of the listing.
func TestDeletePathsRm(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, storage.LayerLinkPath("ns/gone", dgstA), storage.LayerLinkPath("ns/kept", dgstA),
		storage.ManifestRevisionLinkPath("ns/kept", dgstB), storage.BlobDataPath(dgstB))
	records := []prune.ReportRecord{
		{Kind: "repository", Repository: "ns/gone"},
		{Kind: "manifest link", Repository: "ns/kept", Digest: dgstB.String()},
		{Kind: "blob", Digest: dgstB.String()},
	}
	paths, err := deletePaths(records, root)
	if err != nil {
		t.Fatal(err)
	}
	rmRoot := filepath.Join(t.TempDir(), "copy")
	if err := hardLinkCopy(root, rmRoot); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(t.TempDir(), "list")
	if err := writeNULList(list, rmRoot, paths); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("xargs", "-0", "-a", list, "rm", "-rf").CombinedOutput(); err != nil {
		t.Fatalf("xargs rm: %v: %s", err, out)
	}
	writeTree(t, rmRoot, storage.PruneLockPath()) // as a delete run leaves it: not compared
	got, err := listTree(rmRoot, false)
	if err != nil {
		t.Fatal(err)
	}
	repos := strings.TrimPrefix(storage.RepositoriesPath, "/")
	want := []string{
		"docker/", "docker/registry/", "docker/registry/v2/",
		"docker/registry/v2/blobs/", "docker/registry/v2/blobs/sha256/",
		"docker/registry/v2/blobs/sha256/" + dgstB.Encoded()[:2] + "/",
		"docker/registry/v2/repositories/",
		repos + "/ns/", repos + "/ns/kept/", repos + "/ns/kept/_layers/", repos + "/ns/kept/_layers/sha256/",
		repos + "/ns/kept/_layers/sha256/" + dgstA.Encoded() + "/",
		repos + "/ns/kept/_layers/sha256/" + dgstA.Encoded() + "/link",
		repos + "/ns/kept/_manifests/", repos + "/ns/kept/_manifests/revisions/",
		repos + "/ns/kept/_manifests/revisions/sha256/",
	}
	slices.Sort(want)
	if err := compareTrees("rm", got, "the expectation", want); err != nil {
		t.Error(err)
	}
	// The original is whole: the copy's files were hard links.
	orig, err := listTree(root, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(orig) != 4 {
		t.Errorf("the original tree has %d files after rm on its copy, want 4: %v", len(orig), orig)
	}
}

func TestCompareTrees(t *testing.T) {
	if err := compareTrees("a", []string{"x", "y/"}, "b", []string{"x", "y/"}); err != nil {
		t.Errorf("the same listings: %v", err)
	}
	err := compareTrees("ours", []string{"p", "q", "r"}, "rm", []string{"p", "s"})
	if err == nil || !strings.Contains(err.Error(), "2 only after ours: q, r") ||
		!strings.Contains(err.Error(), "1 only after rm: s") {
		t.Errorf("different listings: %v, want each side's extra entries named", err)
	}
}

func TestWithoutDeleted(t *testing.T) {
	files := []string{"d/r/a/x", "d/r/ab/x", "d/r/b/x", "d/blobs/c/data"}
	got := withoutDeleted(files, []string{"/d/r/a", "/d/blobs/c"})
	if want := []string{"d/r/ab/x", "d/r/b/x"}; !slices.Equal(got, want) {
		t.Errorf("withoutDeleted = %v, want %v (a prefix that is not a directory keeps its neighbours)", got, want)
	}
}

func TestListTreeLeavesOutTheLock(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, storage.PruneLockPath(), storage.BlobDataPath(dgstA), "x/.sgwtmp/part")
	got, err := listTree(root, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{strings.TrimPrefix(storage.BlobDataPath(dgstA), "/")}; !slices.Equal(got, want) {
		t.Errorf("listTree = %v, want the blob alone", got)
	}
}

// TestVerifyFails: a run whose verification fails fails the series, loudly.
func TestVerifyFails(t *testing.T) {
	dir := t.TempDir()
	s := &series{runs: 1, timed: timed{
		what: "delete", file: "delete",
		newCmd: func() *exec.Cmd { return exec.Command("true") },
		verify: func() error {
			return errors.Join(errTreesDiffer, compareTrees("ours", []string{"a"}, "rm", nil))
		},
	}}
	err := alternate(t.Context(), testRunner(t, dir), s)
	if !errors.Is(err, errTreesDiffer) || !strings.Contains(err.Error(), "1 only after ours: a") {
		t.Errorf("alternate = %v, want the verification's error", err)
	}
}

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardprune/image-registry/e2e/harness"
)

// TestOddStorageLayouts runs the binary over storage a registry alone does not leave: a
// repository with an invalid name, nested below another that goes too, and a configuration
// whose rootdirectory misses the repositories.
func TestOddStorageLayouts(t *testing.T) {
	e := newEnv(t)
	e.startRegistry()
	app := image(t, "app", "base", "app-only")
	e.mustPush("ns/app:latest", app)
	e.mustPush("ns/tmp:latest", image(t, "tmp", "base", "tmp-only"))
	e.startRegistry(harness.ReadOnlyEnv)

	repos := filepath.Join(e.storageDir, "docker/registry/v2/repositories")
	// What another registry (or a hand) left: copies of ns/tmp's data under names
	// distribution refuses, one nested below the other, in a namespace of their own.
	copyTree(t, filepath.Join(repos, "ns/tmp"), filepath.Join(repos, "Odd"))
	if err := os.MkdirAll(filepath.Join(repos, "Odd/Stuff"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyTree(t, filepath.Join(repos, "ns/tmp/_layers"), filepath.Join(repos, "Odd/Stuff/_layers"))
	stray := filepath.Join(repos, "ns/README")
	if err := os.WriteFile(stray, []byte("not a repository"), 0o644); err != nil {
		t.Fatal(err)
	}

	res := e.prune(nil, "-prune=check", noGrace)
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "Would delete 2 repositories\n") {
		t.Fatalf("check: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	for _, name := range []string{"Odd", "Odd/Stuff"} {
		n := 0
		for _, l := range strings.Split(res.Stderr, "\n") {
			if strings.Contains(l, "repository with an invalid name") && strings.HasSuffix(l, " repository="+name) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d warnings about %s, want 1:\n%s", n, name, res.Stderr)
		}
	}
	if !strings.Contains(res.Stderr, "ns/README") {
		t.Errorf("the stray file is not warned about:\n%s", res.Stderr)
	}

	res = e.prune(nil, "-prune=delete", noGrace, anyShare)
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "Deleted 2 repositories\n") {
		t.Fatalf("delete: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	// Odd/Stuff went whole, then Odd's own data, leaving Odd empty: it goes too.
	if _, err := os.Stat(filepath.Join(repos, "Odd")); !os.IsNotExist(err) {
		t.Errorf("Odd is still there (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(repos, "ns/tmp/_manifests")); err != nil {
		t.Errorf("ns/tmp, which has an image stream: %v", err)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Errorf("the stray file: %v", err)
	}
	if err := e.pullsIdentical("ns/app:latest", app); err != nil {
		t.Error(err)
	}

	// A rootdirectory that holds blobs but no repositories: said in one line.
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.MkdirAll(filepath.Join(wrong, "docker/registry/v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyTree(
		t,
		filepath.Join(e.storageDir, "docker/registry/v2/blobs"),
		filepath.Join(wrong, "docker/registry/v2/blobs"),
	)
	res = e.prune([]string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=" + wrong}, "-prune=check", noGrace)
	want := "storage has no repositories/ directory below " + wrong + "/docker/registry/v2: is rootdirectory right?"
	if n := strings.Count(res.Stderr, want); n != 1 {
		t.Errorf("%d lines %q, want 1:\n%s", n, want, res.Stderr)
	}
}

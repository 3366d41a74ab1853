package harness_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestImageAPIServerSharesVersions: the image API server (its own module, built by `make demo`
// beside the registry) requires every module it shares with the registry's module at the
// registry's version. The Go build cache is keyed by what a package is compiled from, its
// dependencies' versions included, so with the same versions the k8s.io and other shared
// packages compiled for the registry serve the image API server too: a cold `make demo` then
// compiles them once (from empty caches, the image API server's build after the registry's:
// 304 s wall and 564 s CPU with the versions apart, 98 s and 178 s aligned).
// When this fails after an upgrade of the registry's dependencies, align the other module:
//
//	cd e2e/imageapiserver && GOWORK=off go mod edit -require=<module>@<registry's version> ... && GOWORK=off go mod tidy
func TestImageAPIServerSharesVersions(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	registry := buildList(t, root)
	server := buildList(t, filepath.Join(root, "e2e", "imageapiserver"))
	// Modules whose packages neither binary compiles (documentation and test helpers of
	// dependencies), or that only the image API server's own dependencies compile.
	ignored := map[string]bool{
		"github.com/cpuguy83/go-md2man/v2": true,
		"github.com/stretchr/objx":         true,
		"github.com/moby/term":             true,
	}
	for mod, v := range server {
		if rv, ok := registry[mod]; ok && rv != v && !ignored[mod] {
			t.Errorf("%s: the image API server has %s, the registry %s", mod, v, rv)
		}
	}
}

// buildList is `go list -m all` of the module in dir: module path to version.
func buildList(t *testing.T, dir string) map[string]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-mod=readonly", "-m", "all")
	cmd.Dir = dir
	cmd.Env = append(cmd.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m all in %s: %v", dir, err)
	}
	mods := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			mods[f[0]] = f[1]
		}
	}
	return mods
}

package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

const modulePath = "github.com/hardprune/image-registry"

// ErrBinaryMissing is wrapped by the errors of the lookups below when a
// binary has not been built or installed; the testing wrappers skip on it.
var ErrBinaryMissing = errors.New("binary missing (run: bash e2e/tools/build.sh)")

// RepoRoot returns the root of the main module: the first directory, from
// the working directory upwards, whose go.mod declares
// github.com/hardprune/image-registry; failing that, the one this source file
// sits in (two levels up).
func RepoRoot() (string, error) {
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if isRepoRoot(dir) {
				return dir, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		if dir := filepath.Join(filepath.Dir(file), "..", ".."); isRepoRoot(dir) {
			return filepath.Clean(dir), nil
		}
	}
	return "", fmt.Errorf(
		"cannot find the repository root (a go.mod of module %s) above the working directory",
		modulePath,
	)
}

func isRepoRoot(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if string(bytes.TrimSpace(line)) == "module "+modulePath {
			return true
		}
	}
	return false
}

// BinDir returns E2E_BIN_DIR, or <repo root>/_output/bin.
func BinDir() (string, error) {
	if dir := os.Getenv("E2E_BIN_DIR"); dir != "" {
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "_output", "bin"), nil
}

// ImageAPIServerBinary returns the path of the built imageapiserver.
func ImageAPIServerBinary() (string, error) {
	dir, err := BinDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "imageapiserver")
	if !isExecutable(path) {
		return "", fmt.Errorf("%s: %w", path, ErrBinaryMissing)
	}
	return path, nil
}

// EtcdBinary returns E2E_ETCD, <bin dir>/etcd, or etcd from PATH (Debian's
// etcd-server package installs /usr/bin/etcd).
func EtcdBinary() (string, error) {
	if path := os.Getenv("E2E_ETCD"); path != "" {
		if !isExecutable(path) {
			return "", fmt.Errorf("E2E_ETCD=%s: %w", path, ErrBinaryMissing)
		}
		return path, nil
	}
	if dir, err := BinDir(); err == nil {
		if path := filepath.Join(dir, "etcd"); isExecutable(path) {
			return path, nil
		}
	}
	path, err := exec.LookPath("etcd")
	if err != nil {
		return "", fmt.Errorf("etcd not on PATH: %w", ErrBinaryMissing)
	}
	return path, nil
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0
}

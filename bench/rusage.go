package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hardprune/image-registry/e2e/harness"
)

// rusageHelperPackage is the helper every measured command runs through (bench/cmd/rusage).
//
// Why a binary of its own: on Linux a process inherits, at exec, the high-water mark of the
// memory map it was forked from. Commands the benchmark (or a rusage mode of it) started itself
// reported at least the benchmark's size, 74 MB and more, whatever they used. The helper is
// tiny, and its own couple of MB is the floor it leaves.
const rusageHelperPackage = "github.com/hardprune/image-registry/bench/cmd/rusage"

// BuildRusageHelper builds the rusage helper into dir and returns its path. It is built on
// every run, from this checkout, rather than looked up: a stale helper would measure with
// other rules, and go build's cache makes a rebuild take a fraction of a second.
func BuildRusageHelper(dir string) (string, error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return "", err
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building the rusage helper: %w", err)
	}
	path := filepath.Join(dir, "rusage")
	cmd := exec.Command(goTool, "build", "-o", path, rusageHelperPackage)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the rusage helper: %w: %s", err, out)
	}
	return path, nil
}

// viaRusage rewrites cmd to run through the rusage helper, which writes the command's usage
// to the file out.
func viaRusage(cmd *exec.Cmd, helper, out string) {
	cmd.Args = append([]string{helper, out, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = helper
}

// usage is what the rusage helper reports of one command.
type usage struct {
	maxRSS    int64 // bytes
	user, sys time.Duration
}

// cpu is the command's CPU time, user and system.
func (u usage) cpu() time.Duration { return u.user + u.sys }

// readUsage reads the helper's file: "maxrss=<bytes>", "utime=<ns>", "stime=<ns>".
func readUsage(path string) (usage, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return usage{}, err
	}
	var u usage
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		key, value, _ := strings.Cut(line, "=")
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return usage{}, fmt.Errorf("%s: %q: %w", path, line, err)
		}
		switch key {
		case "maxrss":
			u.maxRSS = n
		case "utime":
			u.user = time.Duration(n)
		case "stime":
			u.sys = time.Duration(n)
		default:
			return usage{}, fmt.Errorf("%s: unknown line %q", path, line)
		}
		seen++
	}
	if seen != 3 {
		return usage{}, errors.New(path + ": want maxrss, utime and stime")
	}
	return u, nil
}

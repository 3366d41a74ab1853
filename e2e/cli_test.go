package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/internal/testutil"
	"github.com/hardprune/image-registry/online"
)

// silentKubeconfig names an API server that accepts connections and never answers.
func silentKubeconfig(t *testing.T) string {
	kubeconfig, _ := testutil.SilentKubeconfig(t)
	return kubeconfig
}

// errorLines are the lines of stderr that start with "error:".
func errorLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "error:") {
			out = append(out, l)
		}
	}
	return out
}

// TestSilentImageAPI: an image API that accepts connections and never answers fails every
// mode that reads it within -prune-api-timeout and its retries, with one error line, nothing
// deleted or recovered, and the wait said at the default log level.
func TestSilentImageAPI(t *testing.T) {
	e := populated(t)
	kc := silentKubeconfig(t)
	before := e.snapshot()
	for _, tt := range []struct{ mode, prefix string }{
		{"-prune=check", "error: reading the image API (nothing was deleted): "},
		{"-prune=delete", "error: reading the image API (nothing was deleted): "},
		{"-restore=recover", "error: reading the image API: "},
		{"-prune-explain=sha256:" + strings.Repeat("ab", 32), "error: reading the image API: "},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			start := time.Now()
			res := e.prune([]string{"REGISTRY_OPENSHIFT_KUBECONFIG=" + kc}, tt.mode, noGrace, "-prune-api-timeout=2s")
			elapsed := time.Since(start)
			errs := errorLines(res.Stderr)
			if res.ExitCode != 1 || len(errs) != 1 || res.Stdout != "" {
				t.Errorf("exit %d after %s\nstdout:\n%s\nstderr:\n%s", res.ExitCode, elapsed, res.Stdout, res.Stderr)
			}
			if len(errs) == 1 &&
				(!strings.HasPrefix(errs[0], tt.prefix) || !strings.Contains(errs[0], "no answer from the image API at http://127.0.0.1:")) {
				t.Errorf("error line %q", errs[0])
			}
			// 3 attempts of 2s each, and the start-up: far less than the bound.
			if elapsed > 30*time.Second {
				t.Errorf("took %s", elapsed)
			}
			if !strings.Contains(res.Stderr, "level=warning") ||
				!strings.Contains(res.Stderr, "did not answer within 2s (listing image") {
				t.Errorf("the wait was not reported at the default log level:\n%s", res.Stderr)
			}
			if e.snapshot() != before {
				t.Fatal("storage changed")
			}
		})
	}
}

// TestSilentImageAPIWaitIsReported: with the default timeout (1m), a run waiting on a silent
// image API says so at the default log level after about 10s, naming the host and the page;
// SIGINT then ends it at once, with one error line.
func TestSilentImageAPIWaitIsReported(t *testing.T) {
	e := populated(t)
	kc := silentKubeconfig(t)
	before := e.snapshot()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := append(append([]string(nil), e.regEnv...), "REGISTRY_OPENSHIFT_KUBECONFIG="+kc)
	cmd, err := harness.PruneCommand(ctx, env, "-prune=delete", noGrace, e.reg.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	cmd.Stdout = &stdout
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var stderr []string
	waiting := false
	for !waiting {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the run ended before it reported the wait:\n%s", strings.Join(stderr, "\n"))
			}
			stderr = append(stderr, l)
			waiting = strings.Contains(l, "level=warning") &&
				strings.Contains(l, "still waiting for the image API at http://127.0.0.1:") &&
				strings.Contains(l, "(listing image")
		case <-time.After(40 * time.Second):
			t.Fatalf("no report of the wait after %s:\n%s", time.Since(start), strings.Join(stderr, "\n"))
		}
	}
	if elapsed := time.Since(start); elapsed < 9*time.Second {
		t.Errorf("the wait was reported after %s, want about 10s", elapsed)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		stderr = append(stderr, l)
	}
	err = cmd.Wait()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	}
	errs := errorLines(strings.Join(stderr, "\n"))
	if code != 1 || len(errs) != 1 ||
		!strings.HasPrefix(errs[0], "error: reading the image API (nothing was deleted): ") ||
		stdout.Len() != 0 {
		t.Errorf(
			"after SIGINT: exit %d (%v)\nstdout:\n%s\nstderr:\n%s",
			code,
			err,
			stdout.String(),
			strings.Join(stderr, "\n"),
		)
	}
	if e.snapshot() != before {
		t.Fatal("storage changed")
	}
}

// TestPruneReportAndOverrides (populated: the stream of ns/app0 is gone, its Image stays, so a
// delete removes the repository and no blob): a run refused before it starts leaves no report file behind; a
// delete whose report cannot be written says on its error line what it deleted; the read-only
// override is warned about at the default log level.
func TestPruneReportAndOverrides(t *testing.T) {
	e := populated(t)
	// A registry that takes no part in the online prune: a writable prune must refuse.
	e.startRegistry(`REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled":true}`, online.ProtocolEnv+"=1")
	before := e.snapshot()
	writable := `REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled":false}`
	report := filepath.Join(t.TempDir(), "report.jsonl")
	for _, tt := range []struct {
		name   string
		env    []string
		errHas string
	}{
		{"not read-only", []string{writable}, "refusing -prune=delete: the registry is not read-only"},
		{"no credentials", []string{"KUBECONFIG=" + filepath.Join(t.TempDir(), "missing")}, "loading KUBECONFIG="},
	} {
		res := e.prune(tt.env, "-prune=delete", noGrace, "-prune-report="+report)
		if errs := errorLines(res.Stderr); res.ExitCode != 1 || len(errs) != 1 ||
			!strings.Contains(errs[0], tt.errHas) {
			t.Errorf("%s: exit %d\n%s", tt.name, res.ExitCode, res.Stderr)
		}
		if _, err := os.Stat(report); !os.IsNotExist(err) {
			t.Errorf("%s: the refused run left the report file behind (%v)", tt.name, err)
		}
	}
	if e.snapshot() != before {
		t.Fatal("storage changed")
	}

	res := e.prune([]string{writable}, "-prune=delete", noGrace, "-prune-ignore-read-only", "-prune-report=/dev/full")
	if !strings.Contains(res.Stderr, "level=warning") || !strings.Contains(res.Stderr, "may lose pushes") {
		t.Errorf("-prune-ignore-read-only: no warning at the default level:\n%s", res.Stderr)
	}
	errs := errorLines(res.Stderr)
	if res.ExitCode != 1 || len(errs) != 1 || !strings.HasPrefix(res.Stdout, "Deleted 0 blobs\n") ||
		!strings.Contains(res.Stdout, "\nDeleted 1 repositories\n") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if !strings.HasPrefix(errs[0], "error: the prune deleted 0 blobs (0 B), 1 repositories, ") ||
		!strings.Contains(
			errs[0],
			"; writing the report /dev/full failed: ",
		) || !strings.Contains(errs[0], "no space left on device") {
		t.Errorf("error line %q, want what was deleted, then the write error", errs[0])
	}
	if e.snapshot() == before {
		t.Error("nothing was deleted")
	}
}

// TestMalformedGOMEMLIMIT: the Go runtime parses GOMEMLIMIT when the process starts, before
// any of the program's code runs, and stops it on a value it cannot parse. The run reads and
// deletes nothing, exits non-zero, and the message names the variable. (The runtime also
// prints its stack: no code of the program can run earlier to prevent that; see the README.)
func TestMalformedGOMEMLIMIT(t *testing.T) {
	requireRegistryBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := harness.RunPrune(ctx, []string{"GOMEMLIMIT=garbage"}, "-prune=delete", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode == 0 || res.Stdout != "" ||
		!strings.HasPrefix(res.Stderr, "GOMEMLIMIT=garbage\nfatal error: malformed GOMEMLIMIT") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	// A value the runtime accepts is the administrator's limit; the run goes on (here to the
	// missing credentials).
	res, err = harness.RunPrune(
		ctx,
		[]string{"GOMEMLIMIT=200MiB", "KUBECONFIG=" + filepath.Join(dir, "missing")},
		"-prune=check",
		cfg,
	)
	if err != nil {
		t.Fatal(err)
	}
	if errs := errorLines(res.Stderr); res.ExitCode != 1 || len(errs) != 1 || !strings.Contains(errs[0], "KUBECONFIG") {
		t.Errorf("GOMEMLIMIT=200MiB: exit %d\n%s", res.ExitCode, res.Stderr)
	}
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/storage"
)

// lockPath is where the filesystem driver keeps the prune lock.
func (e *env) lockPath() string {
	return filepath.Join(e.storageDir, storage.PruneLockPath())
}

func (e *env) writeLock(t *testing.T, rec storage.LockRecord) {
	t.Helper()
	content, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if e.driver != nil {
		if err := e.driver.PutContent(context.Background(), storage.PruneLockPath(), content); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.MkdirAll(filepath.Dir(e.lockPath()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.lockPath(), content, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (e *env) lockExists() bool {
	if e.driver != nil {
		_, err := e.driver.Stat(context.Background(), storage.PruneLockPath())
		return err == nil
	}
	_, err := os.Stat(e.lockPath())
	return err == nil
}

func (e *env) readLock(t *testing.T) []byte {
	t.Helper()
	if e.driver != nil {
		content, err := e.driver.GetContent(context.Background(), storage.PruneLockPath())
		if err != nil {
			t.Fatal(err)
		}
		return content
	}
	content, err := os.ReadFile(e.lockPath())
	if err != nil {
		t.Fatal(err)
	}
	return content
}

type started struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	code           int
}

// TestPruneLock: two delete runs started at once on the same storage: exactly one deletes, the
// other exits 1 with one error line naming the holder, having deleted nothing. A stale lock
// (an old expiry) does not block; a fresh one does, until -prune-force-unlock clears it; a
// check run warns about it but runs.
func TestPruneLock(t *testing.T) {
	f := newCrashFixture(t)
	e := f.e
	wantDeleted := fmt.Sprintf("Deleted %d blobs\n", len(f.gone))

	t.Run("two at once", func(t *testing.T) {
		f.restore(t)
		twoDeleteRunsAtOnce(t, e, wantDeleted)
		if n := f.goneStillStored(); n != 0 {
			t.Errorf("%d orphaned blobs remain", n)
		}
		f.checkConsistent(t)
	})

	t.Run("stale lock", func(t *testing.T) {
		f.restore(t)
		now := time.Now()
		e.writeLock(
			t,
			storage.LockRecord{
				Owner:   "dead-run",
				Host:    "old-host",
				PID:     4242,
				Started: now.Add(-time.Hour),
				Expires: now.Add(-58 * time.Minute),
			},
		)
		res := e.prune(nil, "-prune=delete", noGrace, anyShare)
		if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, wantDeleted) {
			t.Fatalf("exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
		}
		if !strings.Contains(res.Stderr, "stale prune lock") ||
			!strings.Contains(res.Stderr, "host old-host, pid 4242") {
			t.Errorf("no warning naming the stale holder:\n%s", res.Stderr)
		}
		if e.lockExists() {
			t.Error("the lock is still there after the run")
		}
	})

	t.Run("live lock", func(t *testing.T) {
		f.restore(t)
		now := time.Now()
		live := storage.LockRecord{
			Owner:   "live-run",
			Host:    "busy-host",
			PID:     os.Getpid(),
			Started: now.Add(-5 * time.Second),
			Expires: now.Add(2 * time.Minute),
		}
		e.writeLock(t, live)
		before := e.readLock(t)
		res := e.prune(nil, "-prune=delete", noGrace, anyShare)
		lines := errorLines(res.Stderr)
		holder := fmt.Sprintf("host busy-host, pid %d, started 5s ago", os.Getpid())
		if res.ExitCode != 1 || res.Stdout != "" || len(lines) != 1 || !strings.Contains(lines[0], holder) {
			t.Fatalf(
				"exit %d, stdout %q, errors %q; want exit 1 and one line naming %q\n%s",
				res.ExitCode,
				res.Stdout,
				lines,
				holder,
				res.Stderr,
			)
		}
		if n := f.goneStillStored(); n != len(f.gone) {
			t.Errorf("a refused run deleted %d blobs", len(f.gone)-n)
		}
		if after := e.readLock(t); !bytes.Equal(after, before) {
			t.Errorf("a refused run changed the lock:\n%s", after)
		}

		// A check run reads, deletes nothing: it runs, and says a delete run holds the lock.
		res = e.prune(nil, "-prune=check", noGrace)
		if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, fmt.Sprintf("Would delete %d blobs\n", len(f.gone))) ||
			!strings.Contains(res.Stderr, "holds the prune lock") || !strings.Contains(res.Stderr, "host busy-host") {
			t.Errorf("check under a live lock: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
		}
		res = e.prune(nil, "-prune=check", "-prune-force-unlock")
		if res.ExitCode != 2 || len(errorLines(res.Stderr)) != 1 {
			t.Errorf("-prune=check -prune-force-unlock: exit %d\n%s", res.ExitCode, res.Stderr)
		}

		res = e.prune(nil, "-prune=delete", noGrace, anyShare, "-prune-force-unlock")
		if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, wantDeleted) {
			t.Fatalf("forced: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
		}
		if !strings.Contains(res.Stderr, "-prune-force-unlock: removing the prune lock") ||
			!strings.Contains(res.Stderr, "host busy-host, pid "+strconv.Itoa(os.Getpid())) {
			t.Errorf("no warning naming the removed holder:\n%s", res.Stderr)
		}
		if e.lockExists() {
			t.Error("the lock is still there after the forced run")
		}
		f.checkConsistent(t)
	})
}

// twoDeleteRunsAtOnce starts two delete runs at the same moment on e's storage: exactly one
// deletes (printing wantDeleted first), the other exits 1 with one error line naming the
// first as the holder and prints no counts; no lock is left.
func twoDeleteRunsAtOnce(t *testing.T, e *env, wantDeleted string) {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runs := make([]*started, 2)
	for i := range runs {
		cmd, err := harness.PruneCommand(ctx, e.regEnv, "-prune=delete", noGrace, anyShare, e.reg.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		runs[i] = &started{cmd: cmd}
		cmd.Stdout, cmd.Stderr = &runs[i].stdout, &runs[i].stderr
	}
	for _, r := range runs {
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range runs {
		err := r.cmd.Wait()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			r.code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
	}
	var winner, loser *started
	for _, r := range runs {
		switch r.code {
		case 0:
			winner = r
		case 1:
			loser = r
		}
	}
	if winner == nil || loser == nil {
		for i, r := range runs {
			t.Logf("run %d: exit %d\nstdout:\n%s\nstderr:\n%s", i, r.code, r.stdout.String(), r.stderr.String())
		}
		t.Fatal("want one run to exit 0 and the other 1")
	}
	if !strings.HasPrefix(winner.stdout.String(), wantDeleted) {
		t.Errorf("the winner printed:\n%s\nwant %q first", winner.stdout.String(), wantDeleted)
	}
	if loser.stdout.Len() != 0 {
		t.Errorf("the refused run printed counts:\n%s", loser.stdout.String())
	}
	lines := errorLines(loser.stderr.String())
	holder := fmt.Sprintf("host %s, pid %d, started ", host, winner.cmd.Process.Pid)
	if len(lines) != 1 || !strings.Contains(lines[0], "another prune holds the storage lock") ||
		!strings.Contains(lines[0], holder) ||
		!strings.Contains(lines[0], "nothing was deleted") {
		t.Errorf(
			"the refused run's errors: %q, want one line naming %q\nstderr:\n%s",
			lines,
			holder,
			loser.stderr.String(),
		)
	}
	if e.lockExists() {
		t.Error("the lock is still there after the runs")
	}
}

// TestPruneLockS3: the lock works on S3 (versitygw through distribution's s3 driver) as on a
// filesystem: of two delete runs at once one deletes, and a live lock blocks until forced.
func TestPruneLockS3(t *testing.T) {
	e := newS3Env(t)
	e.startRegistry()
	ctx := context.Background()
	// One image stays, or the run would delete every blob (and refuse without an override).
	e.mustPush("ns/keep:latest", image(t, "keep", "shared-base", "keep-own"))
	var gone int
	for _, repo := range []string{"a", "b"} {
		img := image(t, repo, "shared-base", repo+"-own")
		d := e.mustPush("ns/"+repo+":latest", img)
		mustDeleteImage(t, e, d)
		if err := e.images.ImageStreams("ns").Delete(ctx, repo, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		gone += 3 // manifest, config, own layer
	}
	e.startRegistry(harness.ReadOnlyEnv)
	twoDeleteRunsAtOnce(t, e, fmt.Sprintf("Deleted %d blobs\n", gone))

	now := time.Now()
	e.writeLock(
		t,
		storage.LockRecord{
			Owner:   "live-run",
			Host:    "busy-host",
			PID:     99,
			Started: now,
			Expires: now.Add(2 * time.Minute),
		},
	)
	res := e.prune(nil, "-prune=delete", noGrace, anyShare)
	if lines := errorLines(res.Stderr); res.ExitCode != 1 || len(lines) != 1 ||
		!strings.Contains(lines[0], "host busy-host, pid 99") {
		t.Errorf("under a live lock: exit %d\n%s", res.ExitCode, res.Stderr)
	}
	res = e.prune(nil, "-prune=delete", noGrace, anyShare, "-prune-force-unlock")
	if res.ExitCode != 0 || !strings.Contains(res.Stderr, "host busy-host, pid 99") || e.lockExists() {
		t.Errorf("forced: exit %d, lock left %v\n%s", res.ExitCode, e.lockExists(), res.Stderr)
	}
}

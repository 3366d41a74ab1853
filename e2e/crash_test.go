package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/e2e/harness"
)

// crashFixture pushes six repositories of three images each and orphans most of them, so that
// a delete run makes several dozen deletions of every kind.
type crashFixture struct {
	e      *env
	kept   map[string]v1.Image // pullable after any prune
	gone   []v1.Hash           // blobs a complete prune removes
	backup string              // a copy of storage before any prune
}

func newCrashFixture(t *testing.T) *crashFixture {
	e := newEnv(t)
	ctx := context.Background()
	e.startRegistry()
	f := &crashFixture{e: e, kept: map[string]v1.Image{}}
	for r := range 6 {
		repo := fmt.Sprintf("r%d", r)
		for i := range 3 {
			img := image(
				t,
				fmt.Sprintf("%s-%d", repo, i),
				"base",
				fmt.Sprintf("%s-%d-a", repo, i),
				fmt.Sprintf("%s-%d-b", repo, i),
			)
			ref := fmt.Sprintf("ns/%s:t%d", repo, i)
			d := e.mustPush(ref, img)
			switch {
			case r < 4: // the stream and its images are deleted: everything but base goes
				mustDeleteImage(t, e, d)
				bl := blobsOf(t, img)
				f.gone = append(f.gone, bl[0], bl[1], bl[3], bl[4])
			case r == 4 && i == 0: // one image deleted by hand under a stream that stays
				mustDeleteImage(t, e, d)
				bl := blobsOf(t, img)
				f.gone = append(f.gone, bl[0], bl[1], bl[3], bl[4])
			default:
				f.kept[ref] = img
			}
		}
		if r < 4 {
			if err := e.images.ImageStreams("ns").Delete(ctx, repo, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.startRegistry(harness.ReadOnlyEnv)
	f.backup = filepath.Join(t.TempDir(), "backup")
	copyTree(t, e.storageDir, f.backup)
	return f
}

// restore puts storage back as it was before any prune.
func (f *crashFixture) restore(t *testing.T) {
	t.Helper()
	// The registry keeps serving (and rewriting its advert under hardprune/): only the
	// registry data goes, and the backup is copied over what is left.
	v2 := filepath.Join(f.e.storageDir, "docker", "registry", "v2")
	for _, dir := range []string{"blobs", "repositories"} {
		if err := os.RemoveAll(filepath.Join(v2, dir)); err != nil {
			t.Fatal(err)
		}
	}
	copyTree(t, f.backup+"/.", f.e.storageDir)
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v: %s", from, to, err, out)
	}
}

// interrupt runs -prune=delete one deletion at a time and sends sig once n deletions have
// started. It returns the exit code and what the run printed.
func (f *crashFixture) interrupt(t *testing.T, n int, sig syscall.Signal) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env := append(append([]string(nil), f.e.regEnv...), "REGISTRY_LOG_LEVEL=info")
	cmd, err := harness.PruneCommand(
		ctx,
		env,
		"-prune=delete",
		noGrace,
		anyShare,
		"-prune-workers=1",
		f.e.reg.ConfigPath,
	)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	// The log lines come through a pipe of one page, so that the run cannot finish far ahead
	// of the line the signal answers.
	pipe, w, err := harness.SmallPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pipe.Close()
	cmd.Stderr = w
	err = cmd.Start()
	w.Close() // the child holds its own copy
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(pipe)
	seen, sent := 0, false
	for sc.Scan() {
		stderr.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), `msg="Deleting `) {
			seen++
			if seen == n && !sent {
				sent = true
				_ = cmd.Process.Signal(sig)
			}
		}
	}
	err = cmd.Wait()
	if !sent {
		t.Fatalf("the run made only %d deletions, fewer than %d", seen, n)
	}
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
		if status, ok := exit.Sys().(syscall.WaitStatus); ok && status.Signaled() {
			code = -int(status.Signal())
		}
	}
	return code, stdout.String(), stderr.String()
}

// checkConsistent asserts what an interrupted run must leave: every link points at a stored
// blob, and every referenced image pulls byte-identical.
func (f *crashFixture) checkConsistent(t *testing.T) {
	t.Helper()
	root := filepath.Join(f.e.storageDir, "docker/registry/v2")
	err := filepath.Walk(filepath.Join(root, "repositories"), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || info.Name() != "link" {
			return err
		}
		content, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		d, err := v1.NewHash(strings.TrimSpace(string(content)))
		if err != nil {
			return fmt.Errorf("%s: %v", p, err)
		}
		if strings.Contains(p, "/_manifests/tags/") && strings.Contains(p, "/index/") {
			return nil // a tag's history index is not read to serve anything
		}
		if !f.e.blobExists(d) {
			t.Errorf("%s points at %s, which is gone", strings.TrimPrefix(p, root), d)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for ref, img := range f.kept {
		if err := f.e.pullsIdentical(ref, img); err != nil {
			t.Error(err)
		}
	}
}

func (f *crashFixture) goneStillStored() int {
	n := 0
	for _, h := range f.gone {
		if f.e.blobExists(h) {
			n++
		}
	}
	return n
}

var deletedBlobs = regexp.MustCompile(`(?m)^Deleted (\d+) blobs$`)

// TestCrashSafety kills the pruner with SIGKILL at many points of a delete run: whatever it
// leaves is consistent, and a second run finishes the job, reporting only what was left.
func TestCrashSafety(t *testing.T) {
	f := newCrashFixture(t)
	total := len(f.gone)
	// 4 repositories, then 1 tag, 1 manifest link, 3 layer links, then the blobs.
	for _, n := range []int{1, 4, 5, 7, 10, 20, 40, total} {
		t.Run(fmt.Sprintf("killed after %d deletions", n), func(t *testing.T) {
			f.restore(t)
			code, _, _ := f.interrupt(t, n, syscall.SIGKILL)
			if code != -int(syscall.SIGKILL) && code != 0 {
				t.Fatalf("exit %d", code)
			}
			f.checkConsistent(t)
			left := f.goneStillStored()

			// A killed run leaves its lock until it expires: the administrator, who knows the
			// run is dead, clears it.
			if code == -int(syscall.SIGKILL) {
				if !f.e.lockExists() {
					t.Error("the killed run left no lock")
				}
				if res := f.e.prune(nil, "-prune=delete", noGrace, anyShare); res.ExitCode != 1 ||
					!strings.Contains(res.Stderr, "another prune holds the storage lock") {
					t.Errorf("a run right after a killed one: exit %d, want 1 (locked)\n%s", res.ExitCode, res.Stderr)
				}
			}
			res := f.e.prune(nil, "-prune=delete", noGrace, anyShare, "-prune-force-unlock")
			if res.ExitCode != 0 {
				t.Fatalf("second run: exit %d\n%s", res.ExitCode, res.Stderr)
			}
			m := deletedBlobs.FindStringSubmatch(res.Stdout)
			if m == nil || m[1] != strconv.Itoa(left) {
				t.Errorf("second run reported %v, want %d blobs (what the first left)", m, left)
			}
			if n := f.goneStillStored(); n != 0 {
				t.Errorf("%d orphaned blobs remain after the second run", n)
			}
			f.checkConsistent(t)
		})
	}
}

// TestGracefulStop: SIGTERM and SIGINT stop the sweep after the deletion under way, and the
// summary says exactly what was deleted.
func TestGracefulStop(t *testing.T) {
	f := newCrashFixture(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			f.restore(t)
			code, stdout, stderr := f.interrupt(t, 20, sig)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(stderr, "stopped before the sweep finished") {
				t.Errorf("stderr lacks the reason:\n%s", stderr)
			}
			m := deletedBlobs.FindStringSubmatch(stdout)
			if m == nil {
				t.Fatalf("no summary:\n%s", stdout)
			}
			reported, _ := strconv.Atoi(m[1])
			if reported+f.goneStillStored() != len(f.gone) {
				t.Errorf(
					"reported %d blobs deleted, but %d of %d are gone",
					reported,
					len(f.gone)-f.goneStillStored(),
					len(f.gone),
				)
			}
			if f.e.lockExists() {
				t.Errorf("the run stopped by %s left its lock", sig)
			}
			f.checkConsistent(t)
		})
	}
}

package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if helperDir != "" {
		_ = os.RemoveAll(helperDir)
	}
	os.Exit(code)
}

var (
	helperOnce sync.Once
	helperDir  string
	helperPath string
	helperErr  error
)

// testRunner is a runner writing to dir, with the rusage helper built once for the package's
// tests.
func testRunner(t *testing.T, dir string) runner {
	t.Helper()
	helperOnce.Do(func() {
		if helperDir, helperErr = os.MkdirTemp("", "bench-rusage"); helperErr == nil {
			helperPath, helperErr = BuildRusageHelper(helperDir)
		}
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	return newRunner(dir, helperPath, t.Logf)
}

// measureThrough runs cmd through the rusage helper and returns what it reports.
func measureThrough(t *testing.T, cmd *exec.Cmd) usage {
	t.Helper()
	rn := testRunner(t, t.TempDir())
	out := filepath.Join(t.TempDir(), "usage")
	viaRusage(cmd, rn.rusage, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v: %s", cmd.Args, err, b)
	}
	u, err := readUsage(out)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestRusageFloor: a command measured through the helper reports its own peak, not that of
// the process that started the helper. The test process first grows to 96 MiB, more than the
// benchmark holds at small sizes; /bin/true must still come out well under 10 MB, and a
// command that touches 64 MiB at 64 MiB and a little more.
func TestRusageFloor(t *testing.T) {
	ballast := make([]byte, 96<<20)
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1
	}
	direct := exec.Command("/bin/true")
	if err := direct.Run(); err != nil {
		t.Fatal(err)
	}
	if ru, ok := direct.ProcessState.SysUsage().(*syscall.Rusage); ok {
		// What the bench measured before the helper: the starting process's high-water mark.
		t.Logf("/bin/true started by the test process itself: peak RSS %s", mib(ru.Maxrss*1024))
	}
	u := measureThrough(t, exec.Command("/bin/true"))
	t.Logf("/bin/true through the helper: peak RSS %s", mib(u.maxRSS))
	if u.maxRSS <= 0 || u.maxRSS >= 10<<20 {
		t.Errorf("/bin/true: peak RSS %s, want more than 0 and well under 10 MB", mib(u.maxRSS))
	}
	// dd reads a block of 64 MiB into one buffer: every page of it resident.
	u = measureThrough(t, exec.Command("dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"))
	t.Logf("a command touching 64 MiB, through the helper: peak RSS %s, CPU %s", mib(u.maxRSS), u.cpu())
	if u.maxRSS < 64<<20 || u.maxRSS >= 96<<20 {
		t.Errorf("a command touching 64 MiB: peak RSS %s, want 64 MiB and a little more", mib(u.maxRSS))
	}
	if u.cpu() <= 0 {
		t.Errorf("a command touching 64 MiB: CPU %s, want some", u.cpu())
	}
	runtime.KeepAlive(ballast)
}

// TestRusageExit: the helper exits as the command did, and still reports the command's usage.
func TestRusageExit(t *testing.T) {
	rn := testRunner(t, t.TempDir())
	for _, c := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"kill -9 $$", 128 + 9},
	} {
		out := filepath.Join(t.TempDir(), "usage")
		cmd := exec.Command("sh", "-c", c.script)
		viaRusage(cmd, rn.rusage, out)
		_ = cmd.Run()
		if got := cmd.ProcessState.ExitCode(); got != c.want {
			t.Errorf("%q through the helper: exit %d, want %d", c.script, got, c.want)
		}
		if _, err := readUsage(out); err != nil {
			t.Errorf("%q through the helper: %v", c.script, err)
		}
	}
}

func TestReadUsage(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		content string
		want    usage
		ok      bool
	}{
		{"maxrss=2048000\nutime=1500\nstime=500\n", usage{maxRSS: 2048000, user: 1500, sys: 500}, true},
		{"maxrss=2048000\nutime=1500\n", usage{}, false},
		{"maxrss=2048000\nutime=1500\nstime=x\n", usage{}, false},
		{"maxrss=1\nutime=1\nstime=1\nidrss=1\n", usage{}, false},
	} {
		p := filepath.Join(dir, "u")
		if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readUsage(p)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("readUsage(%q) = %+v, %v; want %+v, ok %t", c.content, got, err, c.want, c.ok)
		}
	}
}

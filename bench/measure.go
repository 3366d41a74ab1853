package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

// timed is a command the bench times.
type timed struct {
	what string // in logs and errors
	// file names its output files in the work dir's output/ (<file>.stdout, <file>.stderr).
	file    string
	proxies []*CountingProxy // counts reset before each run and read after it
	newCmd  func() *exec.Cmd
	// check reads each run's standard output. Without it the output is discarded: find and
	// garbage-collect print tens of MB that nothing reads, and writing them to a file would add
	// page-cache writeback to what is timed.
	check func(stdout io.Reader) error
	// prepare runs before each run and verify after it (after check), both untimed: a delete
	// needs a fresh copy of the storage to delete from, and what it left must be compared.
	prepare, verify func() error
}

// series is a timed command, the number of runs it takes and the runs taken.
type series struct {
	timed
	runs    int
	results []runResult
	found   int // the prune's: blobs the last run would delete
}

type runResult struct {
	wall   time.Duration
	rss    int64
	cpu    time.Duration // user and system
	counts []Counts      // per proxy (nil for a nil proxy)
}

// runner is what running a timed command takes besides the command.
type runner struct {
	outDir string // the commands' output files
	rusage string // the rusage helper (BuildRusageHelper), which every command runs through
	logf   func(string, ...any)
}

func newRunner(workDir, rusage string, logf func(string, ...any)) runner {
	return runner{outDir: mkdir(workDir, "output"), rusage: rusage, logf: logf}
}

// alternate runs the series in rounds: each round runs, in order, every series that has runs
// left. The page cache does not stay warm on a shared machine (the same find took 14 to 38 s
// in one sitting), so series run one after the other would each meet other conditions; within
// a round they meet about the same, and the per-round ratios compare like with like. Nil
// series are skipped.
func alternate(ctx context.Context, rn runner, all ...*series) error {
	all = slices.DeleteFunc(all, func(s *series) bool { return s == nil })
	rounds := 0
	for _, s := range all {
		rounds = max(rounds, s.runs)
	}
	for round := range rounds {
		for _, s := range all {
			if round >= s.runs {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			for _, p := range s.proxies {
				if p != nil {
					p.Reset()
				}
			}
			r, err := runOnce(s.timed, rn)
			if err != nil {
				return err
			}
			for _, p := range s.proxies {
				var c Counts
				if p != nil {
					c = p.Counts()
				}
				r.counts = append(r.counts, c)
			}
			rn.logf(
				"round %d/%d: %s: %s, CPU %s, peak RSS %s",
				round+1,
				rounds,
				s.what,
				r.wall.Round(time.Millisecond),
				r.cpu.Round(time.Millisecond),
				mib(r.rss),
			)
			s.results = append(s.results, r)
		}
	}
	return nil
}

// measure is the series' medians, and each run's wall time in run (round) order.
func (s *series) measure() *Measure {
	walls := make([]time.Duration, len(s.results))
	cpus := make([]time.Duration, len(s.results))
	rss := make([]int64, len(s.results))
	for i, r := range s.results {
		walls[i], cpus[i], rss[i] = r.wall, r.cpu, r.rss
	}
	return &Measure{
		Runs:    len(s.results),
		Wall:    median(walls),
		Walls:   walls,
		CPU:     median(cpus),
		CPUs:    cpus,
		PeakRSS: median(rss),
	}
}

// medianCounts are the proxies' counts of the run with the median wall time (the slower of
// the two middle ones for an even number of runs).
func (s *series) medianCounts() []Counts {
	byWall := slices.Clone(s.results)
	slices.SortFunc(byWall, func(a, b runResult) int { return int(a.wall - b.wall) })
	return byWall[len(byWall)/2].counts
}

// median is the middle value, or the mean of the two middle ones; zero for none.
func median[T ~int64 | ~float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// runOnce runs c once, through the rusage helper, its output going straight from the command
// into files in the runner's output dir (or /dev/null): a copy through the bench's memory cost
// it most of a core while garbage-collect printed 21.5 MB, on the cores the command was timed
// on. It then checks the standard output and verifies the run.
func runOnce(c timed, rn runner) (runResult, error) {
	if c.prepare != nil {
		if err := c.prepare(); err != nil {
			return runResult{}, fmt.Errorf("%s: preparing: %w", c.what, err)
		}
	}
	cmd := c.newCmd()
	usageFile := filepath.Join(rn.outDir, c.file+".rusage")
	_ = os.Remove(usageFile)
	viaRusage(cmd, rn.rusage, usageFile)
	stdoutPath, stderrPath := os.DevNull, filepath.Join(rn.outDir, c.file+".stderr")
	if c.check != nil {
		stdoutPath = filepath.Join(rn.outDir, c.file+".stdout")
	}
	stdout, err := os.Create(stdoutPath)
	if err != nil {
		return runResult{}, err
	}
	defer stdout.Close()
	stderr, err := os.Create(stderrPath)
	if err != nil {
		return runResult{}, err
	}
	defer stderr.Close()
	// *os.File streams are handed to the child as they are: no copying goroutine in the bench.
	cmd.Stdout, cmd.Stderr = stdout, stderr
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return runResult{}, fmt.Errorf("%s: %w\nstderr (%s):\n%s", c.what, err, stderrPath, fileTail(stderrPath, 64<<10))
	}
	if c.check != nil {
		if _, err := stdout.Seek(0, io.SeekStart); err != nil {
			return runResult{}, err
		}
		if err := c.check(stdout); err != nil {
			return runResult{}, fmt.Errorf("%s: %w (output in %s)", c.what, err, stdoutPath)
		}
	}
	if c.verify != nil {
		if err := c.verify(); err != nil {
			return runResult{}, fmt.Errorf("%s: %w", c.what, err)
		}
	}
	u, err := readUsage(usageFile)
	if err != nil {
		return runResult{}, fmt.Errorf("%s: no usage from the rusage helper: %w", c.what, err)
	}
	return runResult{wall: wall, rss: u.maxRSS, cpu: u.cpu()}, nil
}

// fileTail is the last limit bytes of the file at path (for error messages).
func fileTail(path string, limit int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Size() > limit {
		_, _ = f.Seek(-limit, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

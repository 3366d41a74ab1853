package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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
	counts []Counts // per proxy (nil for a nil proxy)
}

// alternate runs the series in rounds: each round runs, in order, every series that has runs
// left. The page cache does not stay warm on a shared machine (the same find took 14 to 38 s
// in one sitting), so series run one after the other would each meet other conditions; within
// a round they meet about the same, and the per-round ratios compare like with like. Nil
// series are skipped.
func alternate(ctx context.Context, workDir string, logf func(string, ...any), all ...*series) error {
	all = slices.DeleteFunc(all, func(s *series) bool { return s == nil })
	outDir := mkdir(workDir, "output")
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
			r, err := runOnce(s.timed, outDir)
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
			logf(
				"round %d/%d: %s: %s, peak RSS %s",
				round+1,
				rounds,
				s.what,
				r.wall.Round(time.Millisecond),
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
	rss := make([]int64, len(s.results))
	for i, r := range s.results {
		walls[i], rss[i] = r.wall, r.rss
	}
	return &Measure{Runs: len(s.results), Wall: median(walls), PeakRSS: median(rss), Walls: walls}
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

// runOnce runs c once, its output going straight from the command into files in outDir (or
// /dev/null): a copy through the bench's memory cost it most of a core while garbage-collect
// printed 21.5 MB, on the cores the command was timed on. It then checks the standard output.
func runOnce(c timed, outDir string) (runResult, error) {
	cmd := c.newCmd()
	rssFile := filepath.Join(outDir, c.file+".rss")
	if err := viaRusageChild(cmd, rssFile); err != nil {
		return runResult{}, err
	}
	stdoutPath, stderrPath := os.DevNull, filepath.Join(outDir, c.file+".stderr")
	if c.check != nil {
		stdoutPath = filepath.Join(outDir, c.file+".stdout")
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
	r := runResult{wall: wall}
	if b, err := os.ReadFile(rssFile); err == nil {
		r.rss, _ = strconv.ParseInt(string(b), 10, 64)
		_ = os.Remove(rssFile)
	}
	return r, nil
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

// Command bench generates a synthetic registry (storage and image API objects) and measures
// `dockerregistry -prune=check` on it against `find` and distribution's garbage collector,
// and `-prune=delete` against `xargs rm -rf`; with -ordinary the ordinary prune, with -online
// the push cost of the online prune protocol; writing Markdown tables. `make bench` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hardprune/image-registry/bench"
)

func main() {
	size := flag.String("size", "full", "data set size: full (200k blobs, 20k repositories, 30% orphans), huge (1M blobs, 100k repositories), small, tiny")
	blobs := flag.Int("blobs", 0, "override the number of blobs of -size")
	repos := flag.Int("repositories", 0, "override the number of repositories of -size")
	runs := flag.Int("runs", 3, "rounds, each running ours, find and garbage-collect in turn (medians are reported)")
	gcRuns := flag.Int("gc-runs", 3, "runs of distribution's garbage-collect (0 skips it)")
	s3GCRuns := flag.Int(
		"s3-gc-runs",
		1,
		"runs of garbage-collect on S3 (0 skips it; slow: a request per manifest and link)",
	)
	backends := flag.String("backends", "filesystem,s3", "storage backends, comma separated")
	work := flag.String("work", "_output/bench/work", "working directory (emptied first)")
	out := flag.String("out", "_output/bench/results.md", "Markdown results file")
	strace := flag.Bool("strace", false, "count the filesystem system calls of one extra run with strace -f -c")
	profile := flag.Bool(
		"profile",
		false,
		"run -prune=check once more on each backend with CPU and allocation profiles (in the work dir's profile/)",
	)
	deletes := flag.Bool("delete", true, "run the delete benchmarks (targets 3 and 4) on copies of the storage")
	hard := flag.Bool("hard", true, "run the hard prune's benchmark (-prune=check, -prune=delete)")
	ordinary := flag.Bool(
		"ordinary",
		false,
		"run the ordinary prune's benchmark (dockerregistry -prune-images on a cluster of -ordinary-size)",
	)
	ordinarySize := flag.String(
		"ordinary-size",
		"",
		"the ordinary prune's cluster: full (100k Images, 10k streams, 50k pods), medium, small, tiny; default: -size",
	)
	ordinaryWorkers := flag.Int("ordinary-workers", 32, "creates under way at once while loading the ordinary prune's cluster")
	ordinaryHold := flag.Bool(
		"ordinary-hold",
		false,
		"load the ordinary prune's cluster, then hold it up until interrupted, without runs (to profile by hand)",
	)
	onlineBench := flag.Bool(
		"online",
		false,
		"run the online prune protocol's push-cost bench (pushes without the protocol, with it idle, during a run)",
	)
	onlinePushes := flag.Int("online-pushes", 60, "images each mode of the push-cost bench pushes in a round")
	onlinePushers := flag.Int("online-pushers", 4, "pushes under way at once in the push-cost bench")
	onlineRounds := flag.Int("online-rounds", 5, "rounds of the push-cost bench, each pushing in every mode in turn")
	s3Latency := flag.Duration(
		"s3-latency",
		20*time.Millisecond,
		"on S3, one more check per round through a proxy adding this to each request (target 5; 0 skips it)",
	)
	flag.Parse()

	sz, ok := bench.Sizes[*size]
	if !ok {
		fmt.Fprintf(os.Stderr, "bench: unknown -size %q (full, huge, small, tiny)\n", *size)
		os.Exit(2)
	}
	if *blobs > 0 {
		sz.Blobs = *blobs
		sz.Name += fmt.Sprintf(" (%d blobs)", *blobs)
	}
	if *repos > 0 {
		sz.Repositories = *repos
		sz.Name += fmt.Sprintf(" (%d repositories)", *repos)
	}
	if *ordinarySize == "" {
		// The hard prune's size where the ordinary prune has one of that name (a size of the
		// hard prune's alone, larger than full, means the ordinary prune's full).
		*ordinarySize = *size
		if _, ok := bench.OrdinarySizes[*size]; !ok {
			*ordinarySize = "full"
		}
	}
	osz, ok := bench.OrdinarySizes[*ordinarySize]
	if !ok {
		fmt.Fprintf(os.Stderr, "bench: unknown -ordinary-size %q (full, medium, small, tiny)\n", *ordinarySize)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	workDir, err := filepath.Abs(*work)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	var b strings.Builder
	if *hard {
		res, err := bench.Run(ctx, bench.Config{
			Size: sz, Runs: *runs, GCRuns: *gcRuns, S3GCRuns: *s3GCRuns, Backends: strings.Split(*backends, ","),
			WorkDir: workDir, Strace: *strace, Profile: *profile, NoDelete: !*deletes, S3Latency: *s3Latency,
			Log: os.Stderr,
		})
		appendSection(&b, "hard prune", res, err)
	}
	if *ordinary {
		// Beside the hard prune's work dir, which its run empties.
		res, err := bench.RunOrdinary(ctx, bench.OrdinaryConfig{
			Size: osz, WorkDir: workDir + "-ordinary", Workers: *ordinaryWorkers, Profile: *profile, Hold: *ordinaryHold,
			Log: os.Stderr,
		})
		appendSection(&b, "ordinary prune", res, err)
	}
	if *onlineBench {
		res, err := bench.RunOnline(ctx, bench.OnlineConfig{
			WorkDir: workDir + "-online", Pushes: *onlinePushes, Pushers: *onlinePushers, Rounds: *onlineRounds,
			Log: os.Stderr,
		})
		appendSection(&b, "online prune push cost", res, err)
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Print(b.String())
}

// appendSection adds a part's report to b, after a blank line when b holds another's, or exits
// on the part's error.
func appendSection(b *strings.Builder, part string, res interface{ WriteMarkdown(io.Writer) }, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: error: %s: %v\n", part, err)
		os.Exit(1)
	}
	if b.Len() > 0 {
		fmt.Fprintln(b)
	}
	res.WriteMarkdown(b)
}

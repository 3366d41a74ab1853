package bench

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hardprune/image-registry/storage"
)

// APIPageSize is the prune's default -prune-page-size.
const APIPageSize = 500

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// writeTimes says how long writing the storage of each backend took.
func (r *Result) writeTimes() string {
	var parts []string
	if r.GenTime > 0 {
		parts = append(parts, fmt.Sprintf("%s (filesystem)", r.GenTime.Round(time.Millisecond)))
	}
	if r.S3GenTime > 0 {
		parts = append(parts, fmt.Sprintf("%s (S3)", r.S3GenTime.Round(time.Millisecond)))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// WriteMarkdown writes the results as Markdown tables, with the targets beside what
// was measured.
func (r *Result) WriteMarkdown(w io.Writer) {
	ds := r.Dataset
	fmt.Fprintf(w, "## Hard-prune benchmark: size %q\n\n", r.Config.Size.Name)
	fmt.Fprintf(
		w,
		"%d blobs (%d orphaned, %d referenced digests), %d repositories (%d with an image stream), %d Images, "+
			"%d storage objects (blobs and links); %d CPUs; medians of %d runs (garbage-collect: %d, on S3: %d), "+
			"each run's figure in brackets. The commands alternate, a round running ours, then find, then "+
			"garbage-collect, then -prune=delete and xargs rm -rf of the same paths (each on a fresh hard-link copy "+
			"of the storage; on S3 one delete, in the first round), and a ratio is the median of the rounds' "+
			"ratios (each round's in brackets). CPU and peak RSS are the commands' own, measured through a "+
			"small helper process. "+
			"Generation: storage written in %s, API objects created in %s.\n\n",
		ds.StoredBlobs,
		ds.OrphanBlobs,
		ds.ReferencedBlobs,
		len(ds.repos),
		ds.Streams,
		ds.Images,
		ds.Objects,
		r.CPUs,
		r.Config.Runs,
		r.Config.GCRuns,
		r.Config.S3GCRuns,
		r.writeTimes(),
		r.APITime.Round(time.Millisecond),
	)

	fmt.Fprintf(w, "### Targets (issue 14)\n\n")
	writeTargets(w, r.Targets())
	fmt.Fprintln(w)
	r.writeProfiles(w)

	wantAPI := ceilDiv(ds.Images, APIPageSize) + ceilDiv(ds.Streams, APIPageSize)
	for _, b := range r.Backends {
		fmt.Fprintf(w, "### %s\n\n", b.Backend)
		fmt.Fprintln(w, "| measure | measured | target | met |")
		fmt.Fprintln(w, "| --- | --- | --- | --- |")
		p := b.Prune
		row := func(measure, measured, target string, met *bool) {
			m := ""
			if met != nil {
				m = "met"
				if !*met {
					m = "**no**"
				}
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", measure, measured, target, m)
		}
		boolp := func(b bool) *bool { return &b }
		row("`-prune=check` wall time", fmt.Sprintf("%s (runs: %s)", secs(p.Wall), walls(p.Walls)), "", nil)
		row("`-prune=check` objects/s", fmt.Sprintf("%.0f", float64(ds.Objects)/p.Wall.Seconds()), "", nil)
		if b.Find != nil {
			ratios := roundRatios(p.Walls, b.Find.Walls)
			row(
				"`find <root> -type f` wall time",
				fmt.Sprintf("%s (runs: %s)", secs(b.Find.Wall), walls(b.Find.Walls)),
				"",
				nil,
			)
			row("ours / find", formatRatios(ratios, 2), "target 1", nil)
		}
		if b.GC != nil {
			ratios := roundRatios(b.GC.Walls, p.Walls)
			ratio := median(ratios)
			row(
				"`registry garbage-collect --dry-run` wall time",
				fmt.Sprintf("%s (runs: %s), peak RSS %s", secs(b.GC.Wall), walls(b.GC.Walls), mib(b.GC.PeakRSS)),
				"",
				nil,
			)
			row(
				"garbage-collect / ours",
				formatRatios(ratios, 1),
				"≫ 1 (wide margin; ≥ 5x here)",
				boolp(ratio >= 5),
			)
		}
		row("`-prune=check` peak RSS", mib(p.PeakRSS), "target 2", nil)
		apiTotal := p.API.Total()
		row(
			"image API requests",
			fmt.Sprintf("%d (%s)", apiTotal, p.API),
			fmt.Sprintf("%d = ⌈%d/500⌉ + ⌈%d/500⌉ lists, nothing per repository", wantAPI, ds.Images, ds.Streams),
			boolp(apiTotal <= wantAPI),
		)
		if b.Backend == "s3" {
			row("S3 requests", fmt.Sprintf("%d (%s)", p.Storage.Total(), p.Storage), "target 4", nil)
			if lat := b.Latency; lat != nil {
				row(
					fmt.Sprintf("`-prune=check` wall time, %s added to each S3 request", b.LatencyDelay),
					fmt.Sprintf("%s (runs: %s), CPU %s", secs(lat.Wall), walls(lat.Walls), secs(lat.CPU)),
					"",
					nil,
				)
				row("with latency / without", formatRatios(roundRatios(lat.Walls, p.Walls), 2), "target 5", nil)
				row("S3 requests, with latency", fmt.Sprintf("%d (%s)", lat.Storage.Total(), lat.Storage), "target 5", nil)
			}
			if b.GC != nil {
				row(
					"S3 requests of garbage-collect",
					fmt.Sprintf("%d (%s)", b.GC.Storage.Total(), b.GC.Storage),
					"",
					nil,
				)
			}
		}
		if b.Backend == "filesystem" {
			if len(b.Syscalls) > 0 {
				row("system calls of one run (strace -f -c, not timed)", syscallSummary(b.Syscalls), "", nil)
			} else {
				row("storage requests", "not counted on the filesystem (run with -strace for system call counts)", "", nil)
			}
		}
		row(
			"blobs found to delete",
			fmt.Sprint(p.Found),
			fmt.Sprintf("%d (the generated orphans)", ds.OrphanBlobs),
			boolp(p.Found == ds.OrphanBlobs),
		)
		if d := b.Delete; d != nil {
			writeDeleteRows(row, d, p)
		}
		fmt.Fprintln(w)
	}
}

// writeDeleteRows are a backend's rows of the delete runs, whose check is the check's Measure.
func writeDeleteRows(row func(measure, measured, target string, met *bool), d *DeleteResult, check Measure) {
	row(
		"`-prune=delete` wall time (read-only registry, on a fresh copy each run)",
		fmt.Sprintf("%s (runs: %s), CPU %s (runs: %s), peak RSS %s",
			secs(d.Prune.Wall), walls(d.Prune.Walls), secs(d.Prune.CPU), walls(d.Prune.CPUs), mib(d.Prune.PeakRSS)),
		"",
		nil,
	)
	var objects []string
	for _, k := range sortedKinds(d.Objects) {
		objects = append(objects, fmt.Sprintf("%s=%d", k, d.Objects[k]))
	}
	row(
		"objects deleted",
		fmt.Sprintf("%d (%s)", d.TotalObjects(), strings.Join(objects, ", ")),
		"",
		nil,
	)
	target3 := ""
	if d.Rm != nil {
		target3 = "target 3"
	}
	row("`-prune=delete` CPU per deleted object", perObjectCPU(d.Prune.CPU, d.TotalObjects()), target3, nil)
	if d.Rm != nil {
		row(
			"`xargs -0 rm -rf` of the same paths",
			fmt.Sprintf("%s (runs: %s), CPU %s; %d paths (files and directories)",
				secs(d.Rm.Wall), walls(d.Rm.Walls), secs(d.Rm.CPU), d.Paths),
			"",
			nil,
		)
		row("ours / rm", formatRatios(roundRatios(d.Prune.Walls, d.Rm.Walls), 2), "target 3", nil)
		// CPU time is steadier than wall time on a machine whose cores other work shares.
		row("ours / rm, CPU time", formatRatios(roundRatios(d.Prune.CPUs, d.Rm.CPUs), 2), "", nil)
		// The delete run is a check, the lock's settle wait, and then the deletion: the check
		// of the same round, taken away, leaves roughly the lock and the deletion.
		row(
			fmt.Sprintf("(delete − check of the round) / rm; the delete waits %s for its lock to settle",
				storage.DefaultLockSettle),
			formatRatios(roundRatios(roundDiffs(d.Prune.Walls, check.Walls), d.Rm.Walls), 2),
			"",
			nil,
		)
		row(
			"(delete − check of the round) / rm, CPU time",
			formatRatios(roundRatios(roundDiffs(d.Prune.CPUs, check.CPUs), d.Rm.CPUs), 2),
			"",
			nil,
		)
		row("what each run left", "the same files and directories after ours and after rm, every round", "", nil)
	}
	if d.Keys > 0 {
		row(
			"S3 requests of `-prune=delete`",
			fmt.Sprintf("%d (%s)", d.Prune.Storage.Total(), d.Prune.Storage),
			"target 4",
			nil,
		)
		row(
			"keys deleted",
			fmt.Sprintf("%d of %d; what the bucket kept is its keys without the plan's objects", d.Deleted, d.Keys),
			"",
			nil,
		)
	}
}

// roundDiffs are a[i] − b[i] for the rounds both ran in.
func roundDiffs(a, b []time.Duration) []time.Duration {
	out := make([]time.Duration, 0, min(len(a), len(b)))
	for i := range min(len(a), len(b)) {
		out = append(out, a[i]-b[i])
	}
	return out
}

// writeProfiles lists the profiles of the run, if it took any.
func (r *Result) writeProfiles(w io.Writer) {
	var lines []string
	for _, b := range r.Backends {
		if len(b.Profiles) > 0 {
			lines = append(lines, fmt.Sprintf("- %s: %s", b.Backend, strings.Join(b.Profiles, ", ")))
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "Profiles of one more `-prune=check` run (untimed; `go tool pprof -top <file>`, or `make profile`):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, strings.Join(lines, "\n"))
	fmt.Fprintln(w)
}

// roundRatios are num[i] / den[i] for the rounds both ran in (runs alternate: the i-th run of
// each command is in round i).
func roundRatios(num, den []time.Duration) []float64 {
	n := min(len(num), len(den))
	out := make([]float64, 0, n)
	for i := range n {
		if den[i] > 0 {
			out = append(out, num[i].Seconds()/den[i].Seconds())
		}
	}
	return out
}

// formatRatios is the median ratio and, for more than one round, each round's:
// "1.90x (rounds: 1.85, 1.90, 2.10)".
func formatRatios(rs []float64, decimals int) string {
	return formatRuns(rs, decimals, "x", "rounds")
}

// formatRuns is the median of xs with unit and, for more than one, each of them after label:
// formatRuns(xs, 0, " ms", "runs") is "85 ms (runs: 80, 85, 90)".
func formatRuns(xs []float64, decimals int, unit, label string) string {
	if len(xs) == 0 {
		return "-"
	}
	s := fmt.Sprintf("%.*f%s", decimals, median(xs), unit)
	if len(xs) == 1 {
		return s
	}
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.*f", decimals, x)
	}
	return s + " (" + label + ": " + strings.Join(parts, ", ") + ")"
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func walls(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%.2f", d.Seconds()))
	}
	return strings.Join(parts, ", ")
}

func syscallSummary(c map[string]int) string {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range c {
		if k != "total" {
			all = append(all, kv{k, v})
		}
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Compare(b.v, a.v) })
	var parts []string
	if t, ok := c["total"]; ok {
		parts = append(parts, fmt.Sprintf("total=%d", t))
	}
	for i, e := range all {
		if i == 6 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s=%d", e.k, e.v))
	}
	return strings.Join(parts, ", ")
}

package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// onlineNoTarget is what the ratio rows say in the target column: issue 13 asks for the cost,
// not for a bound.
const onlineNoTarget = "no target (issue 13 asks for the cost)"

// onlineRow is one row of the push-cost table.
type onlineRow struct {
	mode, measure, measured, target string
}

// percentile is the nearest-rank q-quantile (0 < q ≤ 1) of sorted: the smallest value with at
// least q of the values at or below it; zero for none.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// passFigures is one figure of each pass.
func passFigures[T any](passes []OnlinePass, f func(OnlinePass) T) []T {
	out := make([]T, len(passes))
	for i, p := range passes {
		out[i] = f(p)
	}
	return out
}

func millis(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

// quantiles is the q-quantile of each pass's sorted durations of kind.
func quantiles(passes []OnlinePass, kind func(OnlinePass) []time.Duration, q float64) []time.Duration {
	return passFigures(passes, func(p OnlinePass) time.Duration { return percentile(kind(p), q) })
}

func latencies(p OnlinePass) []time.Duration { return p.Latencies }

// requests are a pass's latencies of the requests of class.
func requests(class string) func(OnlinePass) []time.Duration {
	return func(p OnlinePass) []time.Duration { return p.RequestLatencies[class] }
}

// perPush is each pass's registry CPU time a push.
func perPush(passes []OnlinePass) []time.Duration {
	return passFigures(passes, func(p OnlinePass) time.Duration {
		return p.RegistryCPU / time.Duration(max(p.Pushes, 1))
	})
}

// rows are the table's rows: each mode's figures (medians over the rounds, each round's
// beside them), then each mode's against protocol-1, as medians of the rounds' ratios.
func (r *OnlineResult) rows() []onlineRow {
	var out []onlineRow
	for _, mode := range OnlineModes {
		passes := r.Passes[mode]
		if len(passes) == 0 {
			continue
		}
		row := func(measure, measured string) {
			out = append(out, onlineRow{mode: mode, measure: measure, measured: measured})
		}
		row("pushes/s", formatRuns(passFigures(passes, OnlinePass.Throughput), 1, "", "runs"))
		for _, q := range []struct {
			name string
			q    float64
		}{{"p50", 0.5}, {"p95", 0.95}, {"max", 1}} {
			row("push latency "+q.name, formatRuns(millis(quantiles(passes, latencies, q.q)), 0, " ms", "runs"))
		}
		for _, class := range timedRequests {
			for _, q := range []struct {
				name string
				q    float64
			}{{"p50", 0.5}, {"p95", 0.95}} {
				row(class+" latency "+q.name, formatRuns(millis(quantiles(passes, requests(class), q.q)), 1, " ms", "runs"))
			}
		}
		row("registry CPU a push (user + system)", formatRuns(millis(perPush(passes)), 2, " ms", "runs"))
		first := passes[0]
		row("registry requests a push (round 1)", fmt.Sprintf("%.2f (%d: %s)",
			float64(first.Requests.Total())/float64(max(first.Pushes, 1)), first.Requests.Total(), first.Requests))
		if mode == OnlineInRun {
			records := passFigures(passes, func(p OnlinePass) float64 { return float64(p.Records) / float64(max(p.Pushes, 1)) })
			sync := float64(first.Requests["PUT manifest"]+first.Requests["POST upload"]) / float64(max(first.Pushes, 1))
			row("use records a push (objects under hardprune/uses)", fmt.Sprintf(
				"%s; round 1: %d records, %d uses; manifest PUTs and upload starts (one record each) %.2f a push, "+
					"hint flushes (every 200 ms) the rest",
				formatRuns(records, 2, "", "runs"), first.Records, first.Uses, sync))
			row("entering the run (lock taken to advert acknowledging it), untimed",
				formatRuns(passFigures(passes, func(p OnlinePass) float64 { return p.Enter.Seconds() }), 2, " s", "runs"))
			row("leaving the run (lock released to advert naming no run), untimed",
				formatRuns(passFigures(passes, func(p OnlinePass) float64 { return p.Leave.Seconds() }), 2, " s", "runs"))
		}
	}
	base := r.Passes[OnlineProtocol1]
	for _, mode := range OnlineModes[1:] {
		passes := r.Passes[mode]
		if len(passes) == 0 || len(base) == 0 {
			continue
		}
		row := func(measure string, ratios []float64) {
			out = append(out, onlineRow{mode: mode + " / " + OnlineProtocol1, measure: measure,
				measured: formatRatios(ratios, 2), target: onlineNoTarget})
		}
		wall := func(p OnlinePass) time.Duration { return p.Wall }
		// The passes push as many images each: throughput's ratio is the walls' inverted.
		row("throughput", roundRatios(passFigures(base, wall), passFigures(passes, wall)))
		row("push latency p50", roundRatios(quantiles(passes, latencies, 0.5), quantiles(base, latencies, 0.5)))
		row("push latency p95", roundRatios(quantiles(passes, latencies, 0.95), quantiles(base, latencies, 0.95)))
		for _, class := range timedRequests {
			row(class+" latency p50", roundRatios(quantiles(passes, requests(class), 0.5), quantiles(base, requests(class), 0.5)))
		}
		row("registry CPU a push", roundRatios(perPush(passes), perPush(base)))
	}
	return out
}

// loads are the 1-minute load averages at the passes' ends, lowest and highest.
func (r *OnlineResult) loads() (lo, hi float64) {
	lo = math.Inf(1)
	for _, passes := range r.Passes {
		for _, p := range passes {
			lo, hi = min(lo, p.Load1), max(hi, p.Load1)
		}
	}
	if math.IsInf(lo, 1) {
		lo = 0
	}
	return lo, hi
}

// WriteMarkdown writes the push-cost section: what was pushed, how, under what load, and the
// table.
func (r *OnlineResult) WriteMarkdown(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "## Push cost of the online prune protocol (issue 13)\n\n")
	lo, hi := r.loads()
	fmt.Fprintf(w,
		"%d round(s); in each, %d images pushed with `remote.Write` (go-containerregistry), %d at once, in each "+
			"mode in turn, in the order %s, rotated by one each round. Each image has %d layers of %d to %d KiB "+
			"of random content, the first from a pool of %d base layers and the second from it one time in two "+
			"(half the layers shared), and a config of its own; %d images a repository (new repositories each "+
			"pass), so that the client's HEAD finds a base layer pushed before. A registry (`dockerregistry`) for "+
			"each mode, so that each meets the same pushes, on filesystem storage of its own, blob descriptor "+
			"cache in memory, not read-only: `%s`'s with `HARDPRUNE_ONLINE_PROTOCOL=1` (it advertises protocol 1 "+
			"and takes no part), `%s`'s and `%s`'s of protocol 2; in-run, the bench holds the prune lock (as a prune takes and renews it, "+
			"deleting nothing) and pushes once the registry's advert acknowledges the run. Latency is each push's "+
			"whole `remote.Write`; a request's the client's, request to response; registry CPU the "+
			"registry process's (/proc); storage requests are not counted (filesystem). Medians of the rounds, "+
			"each round's figure in brackets; a ratio is the median of the rounds' ratios. %d CPUs; machine load "+
			"(1-minute average) %.1f before the start, %.1f to %.1f at the passes' ends: shared with other work, "+
			"so wall-time figures carry its noise (CPU a push less). Servers started in %s.\n\n",
		c.Rounds, c.Pushes, c.Pushers, strings.Join(OnlineModes, ", "), onlineLayers, onlineLayerMin>>10,
		onlineLayerMax>>10, onlinePoolLayers, onlineImagesPerRepo, OnlineProtocol1, OnlineIdle, OnlineInRun,
		r.CPUs, r.LoadStart, lo, hi, secs(r.Start))
	fmt.Fprintln(w, "| mode | measure | measured | target | met |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- |")
	for _, row := range r.rows() {
		fmt.Fprintf(w, "| %s | %s | %s | %s |  |\n", row.mode, row.measure, row.measured, row.target)
	}
	fmt.Fprintln(w)
}

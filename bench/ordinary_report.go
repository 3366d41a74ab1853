package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// OrdinaryPeakRSSGoal is the ordinary prune's memory goal at full size: 100k Images, 10k
// streams and 50k pods in at most 256 MiB peak RSS (oc's own pruner needs about 4 GiB).
const OrdinaryPeakRSSGoal = 256 << 20

// ordinaryReferrerResources are the resources the prune lists besides Images and streams, as
// ClassifyKube names their lists.
var ordinaryReferrerResources = []string{
	"pods", "replicationcontrollers", "replicasets", "deployments", "daemonsets", "statefulsets", "jobs",
	"cronjobs", "deploymentconfigs", "builds", "buildconfigs",
}

// expectedRequests are the requests a run needs, by class: each list in pages of
// APIPageSize (one request for an empty one) and, when confirmed, a fresh read of each stream
// before its update (UpdateStream; a dry run decides on the listing), an update of each
// stream that loses items and a delete of each Image that goes.
func (r *OrdinaryResult) expectedRequests(run OrdinaryRun) Counts {
	ds := r.Dataset
	pages := func(n int) int { return max(1, ceilDiv(n, APIPageSize)) }
	want := Counts{
		"list images":       pages(len(ds.images)),
		"list imagestreams": pages(len(ds.streams)),
		"list pods":         pages(len(ds.pods)),
	}
	for _, res := range ordinaryReferrerResources[1:] {
		want["list "+res] = pages(ds.Size.Others)
	}
	if run.confirmed() {
		want["get imagestreams"] = len(ds.streams)
		want["update imagestreams/status"] = ds.Expect.UpdatedStreams
		want["delete images"] = ds.Expect.DeletedImages
	}
	return want
}

func (run OrdinaryRun) confirmed() bool {
	for _, a := range run.Args {
		if a == "--confirm" {
			return true
		}
	}
	return false
}

// WriteMarkdown writes the ordinary prune's section: the data set, the load, and for each run
// its wall time, CPU, peak RSS against the goal, requests by class against what it needs, and
// its summary against what the data set says it must be.
func (r *OrdinaryResult) WriteMarkdown(w io.Writer) {
	ds := r.Dataset
	fmt.Fprintf(w, "## Ordinary prune benchmark (`dockerregistry -prune-images`): size %q\n\n", r.Config.Size.Name)
	var phases []string
	for _, p := range []corev1.PodPhase{corev1.PodRunning, corev1.PodPending, corev1.PodSucceeded, corev1.PodFailed} {
		phases = append(phases, fmt.Sprintf("%d %s", ds.PodPhases[p], p))
	}
	fmt.Fprintf(w,
		"%d Images (%d in no stream), %d image streams in %d namespaces with %d history items (1 to %d tags a stream, "+
			"revisions a day apart, %d kept per tag), %d pods (%s) whose containers name %d stream tags "+
			"(`host/ns/name:tag`), %d images by digest and %d external images, and %d objects of each of %d other "+
			"kinds (replication controllers, replica sets, deployments, daemon sets, stateful sets, jobs, cron jobs, "+
			"deployment configs, builds, build configs). The prune runs as a service account bound to "+
			"system:image-pruner, through a counting proxy in front of the kube-apiserver (the image API is aggregated "+
			"behind it), with `%s`, no registry configuration (nothing in storage), %d CPUs%s. CPU and peak RSS are "+
			"the prune's own, measured through the rusage helper. Cluster started in %s; %d objects loaded in %s "+
			"(%.0f/s, %d at once).\n\n",
		len(ds.images), ds.Orphans, len(ds.streams), len(ds.namespaces), ds.Items, ds.Size.TagsPerStreamMax,
		ordinaryKeepTagRevisions, len(ds.pods), strings.Join(phases, ", "), ds.ByTag, ds.ByDigest, ds.External,
		ds.Size.Others, ds.OtherKinds, strings.Join(ordinaryFlags, " "), r.CPUs, memLimitNote(r.GoMemLimit),
		secs(r.ClusterStart), r.Loaded, secs(r.Load), float64(r.Loaded)/max(r.Load.Seconds(), 1e-9), r.Config.Workers)
	if len(r.Profiles) > 0 {
		fmt.Fprintf(w, "Profiles of one more dry run (untimed; `go tool pprof -top <file>`): %s\n\n",
			strings.Join(r.Profiles, ", "))
	}
	full := ds.Size.Images >= OrdinarySizes["full"].Images && ds.Size.Streams >= OrdinarySizes["full"].Streams &&
		ds.Size.Pods >= OrdinarySizes["full"].Pods
	goal := fmt.Sprintf("≤ %s at full size", mib(OrdinaryPeakRSSGoal))
	if !full {
		goal += fmt.Sprintf(" (size %s: not judged)", ds.Size.Name)
	}
	fmt.Fprintln(w, "| run | measure | measured | target | met |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- |")
	for _, run := range r.Runs {
		row := func(measure, measured, target string, met *bool) {
			m := ""
			if met != nil {
				m = "met"
				if !*met {
					m = "**no**"
				}
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", run.What, measure, measured, target, m)
		}
		boolp := func(b bool) *bool { return &b }
		row("wall time", secs(run.Wall), "", nil)
		row("CPU (user + system)", secs(run.CPU), "", nil)
		var rssMet *bool
		if full {
			rssMet = boolp(run.PeakRSS <= OrdinaryPeakRSSGoal)
		}
		row("peak RSS", mib(run.PeakRSS), goal, rssMet)
		want := r.expectedRequests(run)
		row("API requests", fmt.Sprintf("%d (%s)", run.API.Total(), run.API),
			fmt.Sprintf("%d (%s)", want.Total(), want), boolp(run.API.Total() <= want.Total()))
		row("list pages", listPages(run.API), "⌈objects/500⌉ a resource", boolp(pagesWithin(run.API, want)))
		row("summary", "`Summary: "+run.Summary+"`", "", nil)
		exp := ds.Expect
		row("Images, tag items, streams changed", fmt.Sprintf("%d, %d, %d", run.Got.DeletedImages,
			run.Got.DeletedItems, run.Got.UpdatedStreams),
			fmt.Sprintf("%d, %d, %d (from the data set; %d old revisions kept by digest)",
				exp.DeletedImages, exp.DeletedItems, exp.UpdatedStreams, exp.KeptByDigest),
			boolp(run.Got == OrdinaryExpect{
				DeletedImages: exp.DeletedImages, DeletedItems: exp.DeletedItems, UpdatedStreams: exp.UpdatedStreams,
			}))
	}
	fmt.Fprintln(w)
}

// listPages are the list requests of a run by resource, "pods=100, images=200, ...".
func listPages(c Counts) string {
	var parts []string
	for k, v := range c {
		if res, ok := strings.CutPrefix(k, "list "); ok {
			parts = append(parts, fmt.Sprintf("%s=%d", res, v))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// pagesWithin tells whether every list of got took at most the pages want allows.
func pagesWithin(got, want Counts) bool {
	for k, v := range got {
		if strings.HasPrefix(k, "list ") && v > want[k] {
			return false
		}
	}
	return true
}

func memLimitNote(limit string) string {
	if limit == "" {
		return ", no GOMEMLIMIT"
	}
	return ", GOMEMLIMIT=" + limit
}

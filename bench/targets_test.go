package bench

import (
	"strings"
	"testing"
	"time"
)

// result is a run at the given size measured on the given backends, with the full-size
// figures: check 27.4 s against find 14.4 s over three rounds, peak RSS 194 MiB, 564 S3
// requests for 628k objects; and delete runs: 33 s against rm's 10 s, 8.1 s of CPU for 81,000
// objects, and on S3 4,564 requests, 4,000 of them for 2,000 repositories deleted by prefix.
func result(size Size, backends ...string) *Result {
	s := time.Second
	ds := &Dataset{
		Size:            size,
		StoredBlobs:     size.Blobs,
		ReferencedBlobs: size.Blobs * 7 / 10,
		Objects:         size.Blobs * 314 / 100,
	}
	r := &Result{Config: Config{Size: size, Runs: 3}, Dataset: ds}
	for _, b := range backends {
		br := BackendResult{Backend: b, Prune: Measure{
			Wall:    27400 * time.Millisecond,
			Walls:   []time.Duration{26900 * time.Millisecond, 27400 * time.Millisecond, 31 * s},
			PeakRSS: 194 << 20,
		}}
		objects := map[string]int{"repository": 2000, "layer link": 19000, "blob": 60000}
		switch b {
		case "filesystem":
			br.Find = &Measure{Walls: []time.Duration{14 * s, 14400 * time.Millisecond, 15 * s}}
			br.Delete = &DeleteResult{
				Prune: Measure{
					Wall:  33 * s,
					Walls: []time.Duration{32 * s, 33 * s, 40 * s},
					CPU:   8100 * time.Millisecond,
				},
				Rm:      &Measure{Wall: 10 * s, Walls: []time.Duration{10 * s, 10 * s, 12 * s}},
				Objects: objects,
			}
		case "s3":
			br.Prune.Storage = Counts{"LIST": 563, "GET": 1}
			br.Delete = &DeleteResult{
				Prune: Measure{Storage: Counts{
					"LIST walk": 563, "GET lock": 1, "DELETE-BATCH keys": 79,
					"LIST repository": 2000, "DELETE-BATCH repository": 2000,
				}},
				Objects: objects,
				Keys:    ds.Objects,
				Deleted: 110_000,
			}
		}
		r.Backends = append(r.Backends, br)
	}
	return r
}

func byNumber(targets []Target, n int) []Target {
	var out []Target
	for _, t := range targets {
		if t.N == n {
			out = append(out, t)
		}
	}
	return out
}

func TestTargetsFullSize(t *testing.T) {
	targets := result(Sizes["full"], "filesystem", "s3").Targets()
	for n := 1; n <= 7; n++ {
		if len(byNumber(targets, n)) == 0 {
			t.Errorf("target %d is missing from the report", n)
		}
	}
	for i := 1; i < len(targets); i++ {
		if targets[i].N < targets[i-1].N {
			t.Errorf("target %d comes after target %d", targets[i].N, targets[i-1].N)
		}
	}
	check := byNumber(targets, 1)[0]
	if check.Status != Missed || check.Measured != "1.92x (rounds: 1.92, 1.90, 2.07)" {
		t.Errorf("target 1: %s, %q; want no, with the median and each round's ratio", check.Status, check.Measured)
	}
	rss := byNumber(targets, 2)[0]
	if rss.Status != Missed || !strings.Contains(rss.Measured, "194.0 MiB (filesystem)") {
		t.Errorf("target 2, peak RSS: %s, %q; want no at 194 MiB", rss.Status, rss.Measured)
	}
	perDigest := byNumber(targets, 2)[1]
	if perDigest.Status != NotMeasured || !strings.HasPrefix(perDigest.Measured, "1453 B per digest") {
		t.Errorf("target 2, per digest: %s, %q; want 194 MiB / 140000 digests, the slope unmeasured",
			perDigest.Status, perDigest.Measured)
	}
	// 628,000 objects: ⌈628⌉ × 1.2 = 753.6 requests at most for a check.
	s3 := byNumber(targets, 4)[0]
	if s3.Status != Met || !strings.Contains(s3.Measured, "564 (GET=1, LIST=563)") ||
		!strings.Contains(s3.Measured, "bound 753.6") {
		t.Errorf("target 4: %s, %q; want met, 564 requests against 753.6", s3.Status, s3.Measured)
	}
	del := byNumber(targets, 3)[0]
	if del.Status != Missed ||
		!strings.HasPrefix(del.Measured, "3.30x (rounds: 3.20, 3.30, 3.33): ours 33.00 s, rm 10.00 s") ||
		!strings.Contains(del.Measured, "CPU 8.10 s, 100 µs per deleted object (81000 objects)") {
		t.Errorf("target 3: %s, %q; want no at 3.3x, with the CPU per object", del.Status, del.Measured)
	}
	// 628,000 keys, 110,000 deleted: 1.2 × (628 + 110) = 885.6.
	s3del := byNumber(targets, 4)[1]
	if s3del.Status != Missed || !strings.Contains(s3del.Measured, "4643 (DELETE-BATCH=2079, GET=1, LIST=2563)") ||
		!strings.Contains(s3del.Measured, "= 885.6") ||
		!strings.Contains(s3del.Measured, "2000 repositories deleted by prefix cost 4000") ||
		!strings.Contains(s3del.Measured, "the other requests: 643 (keys=79, lock=1, walk=563), within the bound") {
		t.Errorf("target 4, delete: %s, %q; want no, the repositories named", s3del.Status, s3del.Measured)
	}
	for _, n := range []int{5, 6, 7} {
		for _, tg := range byNumber(targets, n) {
			if tg.Status != NotMeasured || tg.How == "" {
				t.Errorf("target %d (%s): %s, how %q; want not measured, saying how to", n, tg.What, tg.Status, tg.How)
			}
		}
	}
	if how := byNumber(targets, 6)[0].How; how != "-size=huge" {
		t.Errorf("target 6 measured by %q, want the flags of a million-blob run", how)
	}
}

func TestTargetsBelowFullSize(t *testing.T) {
	r := result(Sizes["small"], "filesystem")
	r.Backends[0].Prune.PeakRSS = 90 << 20
	r.Backends[0].Find.Walls = []time.Duration{30 * time.Second, 30 * time.Second, 30 * time.Second}
	targets := r.Targets()
	// Met at this size, said to be not the full size the target is set at.
	for _, tg := range []Target{byNumber(targets, 1)[0], byNumber(targets, 2)[0]} {
		if tg.Status != Met || !strings.HasSuffix(tg.Measured, "at size small, not full") {
			t.Errorf("target %d (%s): %s, %q; want met at size small, not full", tg.N, tg.What, tg.Status, tg.Measured)
		}
	}
	for _, s3 := range byNumber(targets, 4) {
		if s3.Status != NotMeasured || s3.How != "-backends=s3" {
			t.Errorf("target 4 without S3 (%s): %s, how %q; want not measured, -backends=s3",
				s3.What, s3.Status, s3.How)
		}
	}
	del := byNumber(targets, 3)[0]
	if del.Status != Missed || !strings.Contains(del.Measured, "at size small, not full") {
		t.Errorf("target 3 at size small: %s, %q; want the size said", del.Status, del.Measured)
	}
}

// TestTargetsDeletesSkipped: a run without the deletes (-delete=false) says how to get them.
func TestTargetsDeletesSkipped(t *testing.T) {
	r := result(Sizes["full"], "filesystem", "s3")
	for i := range r.Backends {
		r.Backends[i].Delete = nil
	}
	targets := r.Targets()
	for _, tg := range []Target{byNumber(targets, 3)[0], byNumber(targets, 4)[1]} {
		if tg.Status != NotMeasured || !strings.HasPrefix(tg.How, "-delete ") {
			t.Errorf("target %d (%s) without the deletes: %s, how %q; want not measured, -delete", tg.N, tg.What,
				tg.Status, tg.How)
		}
	}
	if s3 := byNumber(targets, 4)[0]; s3.Status != Met {
		t.Errorf("target 4, the check, without the deletes: %s, want it measured still", s3.Status)
	}
}

func TestTargetsGOMEMLIMIT(t *testing.T) {
	r := result(Sizes["full"], "filesystem")
	r.GoMemLimit = "100MiB"
	rss := byNumber(r.Targets(), 2)[0]
	if rss.Status != NotMeasured || !strings.Contains(rss.How, "GOMEMLIMIT=100MiB") {
		t.Errorf("target 2 under GOMEMLIMIT: %s, how %q; want not measured, naming the limit", rss.Status, rss.How)
	}
}

func TestTargetsMillionBlobs(t *testing.T) {
	size := Size{Name: "full (1000000 blobs)", Blobs: 1_000_000, Repositories: 100_000, Orphans: 0.3}
	tg := byNumber(result(size, "filesystem", "s3").Targets(), 6)[0]
	if tg.Status != Reported || !strings.Contains(tg.Measured, "filesystem: check 27.40 s, peak RSS 194.0 MiB") ||
		!strings.Contains(tg.Measured, "s3: check 27.40 s, peak RSS 194.0 MiB, 564 requests") {
		t.Errorf("target 6 at a million blobs: %s, %q; want the figures of both backends", tg.Status, tg.Measured)
	}
}

func TestWriteTargets(t *testing.T) {
	var b strings.Builder
	writeTargets(&b, []Target{
		{N: 1, What: "check", Goal: "≤ 1.20x", Status: Missed, Measured: "1.90x"},
		{N: 7, What: "make demo", Goal: "≤ 6 minutes", How: "time make demo"},
	})
	want := "| # | target | goal | measured | met |\n| --- | --- | --- | --- | --- |\n" +
		"| 1 | check | ≤ 1.20x | 1.90x | **no** |\n" +
		"| 7 | make demo | ≤ 6 minutes | - | not measured in this run: time make demo |\n"
	if b.String() != want {
		t.Errorf("writeTargets wrote\n%s\nwant\n%s", b.String(), want)
	}
}

// Target 5: the check through the latency proxy against the check without, in the same
// rounds, and its requests against target 4's bound.
func TestTargetsLatency(t *testing.T) {
	s := time.Second
	r := result(Sizes["full"], "s3")
	r.Backends[0].LatencyDelay = 20 * time.Millisecond
	r.Backends[0].Latency = &Measure{
		Wall:    30 * s,
		Walls:   []time.Duration{29 * s, 30 * s, 70 * s},
		Storage: Counts{"LIST": 600, "GET": 1},
	}
	tg := byNumber(r.Targets(), 5)[0]
	// Rounds: 29/26.9, 30/27.4, 70/31; 628,000 objects: bound 753.6.
	if tg.Status != Met || !strings.HasPrefix(tg.Measured, "1.09x (rounds: 1.08, 1.09, 2.26): 30.00 s with, 27.40 s without") ||
		!strings.Contains(tg.Measured, "601 requests (GET=1, LIST=600), bound 753.6") {
		t.Errorf("target 5: %s, %q; want met at 1.09x, 601 requests", tg.Status, tg.Measured)
	}
	r.Backends[0].Latency.Storage["LIST"] = 800
	if tg := byNumber(r.Targets(), 5)[0]; tg.Status != Missed {
		t.Errorf("target 5 with 801 requests against 753.6: %s, want no", tg.Status)
	}
	r.Backends[0].Latency.Storage["LIST"] = 600
	r.Backends[0].Latency.Walls = []time.Duration{60 * s, 60 * s, 60 * s}
	if tg := byNumber(r.Targets(), 5)[0]; tg.Status != Missed {
		t.Errorf("target 5 at 2.2x: %s, want no", tg.Status)
	}
	r.Backends[0].Latency = nil
	if tg := byNumber(r.Targets(), 5)[0]; tg.Status != NotMeasured || tg.How != "-s3-latency=20ms" {
		t.Errorf("target 5 without the latency run: %s, how %q", tg.Status, tg.How)
	}
}

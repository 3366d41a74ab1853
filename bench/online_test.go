package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hardprune/image-registry/e2e/harness"
)

func TestPercentile(t *testing.T) {
	ms := time.Millisecond
	sorted := []time.Duration{10 * ms, 20 * ms, 30 * ms, 40 * ms, 50 * ms, 60 * ms, 70 * ms, 80 * ms, 90 * ms, 100 * ms}
	for _, c := range []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{sorted[:1], 0.95, 10 * ms},
		{sorted, 0.5, 50 * ms}, // nearest rank: the 5th of 10
		{sorted, 0.95, 100 * ms},
		{sorted, 0.9, 90 * ms},
		{sorted, 1, 100 * ms},
		{sorted, 0, 10 * ms},
		{sorted[:3], 0.5, 20 * ms},
	} {
		if got := percentile(c.in, c.q); got != c.want {
			t.Errorf("percentile(%v, %v) = %s, want %s", c.in, c.q, got, c.want)
		}
	}
}

func TestRoundModes(t *testing.T) {
	for round, want := range map[int]string{
		1: "protocol-1 idle in-run", 2: "idle in-run protocol-1", 3: "in-run protocol-1 idle", 4: "protocol-1 idle in-run",
	} {
		if got := strings.Join(roundModes(round), " "); got != want {
			t.Errorf("round %d: %s, want %s", round, got, want)
		}
	}
	if strings.Join(OnlineModes, " ") != "protocol-1 idle in-run" {
		t.Errorf("roundModes changed OnlineModes: %v", OnlineModes)
	}
}

func TestFormatRuns(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want string
	}{
		{nil, "-"},
		{[]float64{85.2}, "85 ms"},
		{[]float64{80, 90.4, 85}, "85 ms (runs: 80, 90, 85)"},
	} {
		if got := formatRuns(c.in, 0, " ms", "runs"); got != c.want {
			t.Errorf("formatRuns(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestClassifyRegistry(t *testing.T) {
	for _, c := range []struct{ method, path, want string }{
		{http.MethodGet, "/v2/", "GET /v2/"},
		{http.MethodHead, "/v2/bench/a/blobs/sha256:abc", "HEAD blob"},
		{http.MethodPost, "/v2/bench/a/blobs/uploads/", "POST upload"},
		{http.MethodPatch, "/v2/bench/a/blobs/uploads/0c2f", "PATCH upload"},
		{http.MethodPut, "/v2/bench/a/blobs/uploads/0c2f", "PUT upload"},
		{http.MethodPut, "/v2/bench/a/manifests/v1", "PUT manifest"},
		{http.MethodGet, "/openshift/v1/x", "GET other"},
	} {
		r, _ := http.NewRequest(c.method, "http://127.0.0.1:5000"+c.path, nil)
		if got := classifyRegistry(r); got != c.want {
			t.Errorf("classifyRegistry(%s %s) = %q, want %q", c.method, c.path, got, c.want)
		}
	}
}

func TestRegistryClientCountsAndTimes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c := newRegistryClient(1)
	for _, r := range []struct{ method, path string }{
		{http.MethodHead, "/v2/a/blobs/sha256:1"}, {http.MethodHead, "/v2/a/blobs/sha256:2"},
		{http.MethodPut, "/v2/a/manifests/v1"}, {http.MethodGet, "/v2/"},
	} {
		req, _ := http.NewRequest(r.method, srv.URL+r.path, nil)
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	counts, lat := c.counts()
	if counts.String() != "GET /v2/=1, HEAD blob=2, PUT manifest=1" || len(lat["HEAD blob"]) != 2 ||
		len(lat["PUT manifest"]) != 1 || len(lat["POST upload"]) != 0 || len(lat) != len(timedRequests) {
		t.Errorf("counts %s, latencies %v", counts, lat)
	}
	c.reset()
	if counts, lat := c.counts(); counts.Total() != 0 || len(lat["HEAD blob"]) != 0 {
		t.Errorf("after reset: %s, %v", counts, lat)
	}
}

// onlineResult is two rounds of 100 pushes in each mode: in-run at 0.8 of protocol-1's pace,
// its latencies 1.25 times as long; idle as protocol-1.
func onlineResult() *OnlineResult {
	ms := time.Millisecond
	pass := func(wall time.Duration, scale float64, records int) OnlinePass {
		p := OnlinePass{Pushes: 100, Wall: wall, RegistryCPU: time.Duration(float64(3*time.Second) * scale),
			Requests: Counts{"PUT manifest": 100, "POST upload": 250, "HEAD blob": 300}, Records: records, Uses: 3 * records,
			Enter: 1500 * ms, Leave: 1200 * ms, RequestLatencies: map[string][]time.Duration{}}
		for i := range 100 {
			d := time.Duration(float64(time.Duration(i+1)*10*ms) * scale)
			p.Latencies = append(p.Latencies, d)
			for _, class := range timedRequests {
				p.RequestLatencies[class] = append(p.RequestLatencies[class], d/4)
			}
		}
		return p
	}
	return &OnlineResult{
		Config: OnlineConfig{Pushes: 100, Pushers: 4, Rounds: 2}, CPUs: 2, LoadStart: 3.5,
		Passes: map[string][]OnlinePass{
			OnlineProtocol1: {pass(8*time.Second, 1, 0), pass(10*time.Second, 1, 0)},
			OnlineIdle:      {pass(8*time.Second, 1, 0), pass(10*time.Second, 1, 0)},
			OnlineInRun:     {pass(10*time.Second, 1.25, 380), pass(12500*ms, 1.25, 400)},
		},
	}
}

func TestOnlineRows(t *testing.T) {
	rows := onlineResult().rows()
	find := func(mode, measure string) onlineRow {
		t.Helper()
		for _, r := range rows {
			if r.mode == mode && r.measure == measure {
				return r
			}
		}
		t.Fatalf("no row %q of %q in %+v", measure, mode, rows)
		return onlineRow{}
	}
	for _, c := range []struct{ mode, measure, want, target string }{
		{OnlineProtocol1, "pushes/s", "11.2 (runs: 12.5, 10.0)", ""},
		{OnlineProtocol1, "push latency p50", "500 ms (runs: 500, 500)", ""},
		{OnlineProtocol1, "push latency p95", "950 ms (runs: 950, 950)", ""},
		{OnlineInRun, "push latency max", "1250 ms (runs: 1250, 1250)", ""},
		{OnlineInRun, "PUT manifest latency p50", "156.2 ms (runs: 156.2, 156.2)", ""},
		{OnlineInRun, "POST upload latency p95", "296.9 ms (runs: 296.9, 296.9)", ""},
		{OnlineIdle, "registry CPU a push (user + system)", "30.00 ms (runs: 30.00, 30.00)", ""},
		{OnlineIdle, "registry requests a push (round 1)", "6.50 (650: HEAD blob=300, POST upload=250, PUT manifest=100)", ""},
		{OnlineInRun + " / " + OnlineProtocol1, "throughput", "0.80x (rounds: 0.80, 0.80)", onlineNoTarget},
		{OnlineInRun + " / " + OnlineProtocol1, "push latency p50", "1.25x (rounds: 1.25, 1.25)", onlineNoTarget},
		{OnlineInRun + " / " + OnlineProtocol1, "push latency p95", "1.25x (rounds: 1.25, 1.25)", onlineNoTarget},
		{OnlineInRun + " / " + OnlineProtocol1, "registry CPU a push", "1.25x (rounds: 1.25, 1.25)", onlineNoTarget},
		{OnlineIdle + " / " + OnlineProtocol1, "throughput", "1.00x (rounds: 1.00, 1.00)", onlineNoTarget},
		{OnlineIdle + " / " + OnlineProtocol1, "PUT manifest latency p50", "1.00x (rounds: 1.00, 1.00)", onlineNoTarget},
		{OnlineInRun + " / " + OnlineProtocol1, "HEAD blob latency p50", "1.25x (rounds: 1.25, 1.25)", onlineNoTarget},
	} {
		if r := find(c.mode, c.measure); r.measured != c.want || r.target != c.target {
			t.Errorf("%s, %s: %q (target %q), want %q (target %q)", c.mode, c.measure, r.measured, r.target, c.want, c.target)
		}
	}
	records := find(OnlineInRun, "use records a push (objects under hardprune/uses)").measured
	if !strings.HasPrefix(records, "3.90 (runs: 3.80, 4.00); round 1: 380 records, 1140 uses;") ||
		!strings.Contains(records, "upload starts (one record each) 3.50 a push") {
		t.Errorf("use records: %q", records)
	}
	if r := find(OnlineInRun, "entering the run (lock taken to advert acknowledging it), untimed"); r.measured !=
		"1.50 s (runs: 1.50, 1.50)" {
		t.Errorf("entering the run: %q", r.measured)
	}
	for _, r := range rows {
		if r.mode == OnlineProtocol1 && strings.HasPrefix(r.measure, "use records") {
			t.Error("protocol-1 has a use records row")
		}
	}
}

func TestOnlineRowsWithoutProtocol1(t *testing.T) {
	res := onlineResult()
	delete(res.Passes, OnlineProtocol1)
	for _, r := range res.rows() {
		if strings.Contains(r.mode, "/") {
			t.Errorf("a ratio without protocol-1's passes: %+v", r)
		}
	}
}

func TestOnlineMarkdown(t *testing.T) {
	res := onlineResult()
	res.Passes[OnlineIdle][1].Load1 = 6.5
	res.Passes[OnlineInRun][0].Load1 = 2.25
	var b strings.Builder
	res.WriteMarkdown(&b)
	out := b.String()
	for _, want := range []string{
		"## Push cost of the online prune protocol (issue 13)",
		"2 round(s); in each, 100 images pushed",
		"machine load (1-minute average) 3.5 before the start, 0.0 to 6.5 at the passes' ends",
		"| mode | measure | measured | target | met |",
		"| in-run / protocol-1 | throughput | 0.80x (rounds: 0.80, 0.80) | " + onlineNoTarget + " |  |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestProcessCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	before, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); time.Since(start) < 60*time.Millisecond; {
	}
	after, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("CPU time went from %s to %s over 60 ms of spinning", before, after)
	}
	if _, err := processCPU(-1); err == nil {
		t.Error("processCPU(-1) did not fail")
	}
}

func TestOnlinePushesShareBaseLayers(t *testing.T) {
	pool := onlinePool()
	pushes, err := onlinePushes("127.0.0.1:5000", OnlineIdle, 1, 40, pool)
	if err != nil {
		t.Fatal(err)
	}
	poolDigests := map[string]bool{}
	for _, l := range pool {
		d, _ := l.Digest()
		poolDigests[d.String()] = true
	}
	shared, total, repos := 0, 0, map[string]bool{}
	for _, p := range pushes {
		repos[p.ref.Context().RepositoryStr()] = true
		layers, err := p.img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			d, _ := l.Digest()
			sz, _ := l.Size()
			if poolDigests[d.String()] {
				shared++
			} else if sz < onlineLayerMin || sz > onlineLayerMax {
				t.Errorf("layer of %d bytes", sz)
			}
			total++
		}
	}
	if total != 40*onlineLayers || shared < total/3 || shared > total*2/3 || len(repos) != 4 {
		t.Errorf("%d of %d layers from the pool, %d repositories", shared, total, len(repos))
	}
	again, _ := onlinePushes("127.0.0.1:5000", OnlineIdle, 1, 40, pool)
	other, _ := onlinePushes("127.0.0.1:5000", OnlineInRun, 1, 40, pool)
	d1, _ := pushes[7].img.Digest()
	d2, _ := again[7].img.Digest()
	d3, _ := other[7].img.Digest()
	if d1 != d2 || d1 == d3 {
		t.Errorf("image 7: %s, again %s, in another mode %s: want the same pass's alike, another's not", d1, d2, d3)
	}
}

// TestOnlineSmoke runs the push-cost bench with a few pushes: every mode pushes, and in-run
// the pushes write at least a use record per manifest put. Skipped when the binaries are
// missing, failing instead with E2E_REQUIRED=1.
func TestOnlineSmoke(t *testing.T) {
	requireBinaries(t, "the push-cost benchmark", harness.DockerRegistryBinary, harness.ImageAPIServerBinary,
		harness.EtcdBinary)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := RunOnline(ctx, OnlineConfig{WorkDir: t.TempDir(), Pushes: 6, Pushers: 2, Rounds: 1, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.WriteMarkdown(&b)
	t.Log("\n" + b.String())
	for _, mode := range OnlineModes {
		passes := res.Passes[mode]
		if len(passes) != 1 || len(passes[0].Latencies) != 6 || passes[0].Requests["PUT manifest"] < 6 {
			t.Fatalf("%s: %+v", mode, passes)
		}
		if records := passes[0].Records; (mode == OnlineInRun) != (records >= passes[0].Requests["PUT manifest"]) {
			t.Errorf("%s: %d use records for %d manifest puts", mode, records, passes[0].Requests["PUT manifest"])
		}
	}
}

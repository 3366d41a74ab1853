package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/online"
	"github.com/hardprune/image-registry/storage"
)

// The push-cost bench's modes (issue 13): a registry that takes no part in the online prune
// protocol, one that speaks it with no prune run under way, and the same while a run is.
const (
	OnlineProtocol1 = "protocol-1"
	OnlineIdle      = "idle"
	OnlineInRun     = "in-run"
)

// OnlineModes are the modes in the order the first round pushes in.
var OnlineModes = []string{OnlineProtocol1, OnlineIdle, OnlineInRun}

// roundModes are the modes in the order round (from 1) pushes in: OnlineModes, rotated by
// one more each round, so that no mode always comes first (after the pause between rounds)
// or right after another.
func roundModes(round int) []string {
	k := (round - 1) % len(OnlineModes)
	return append(slices.Clone(OnlineModes[k:]), OnlineModes[:k]...)
}

// Shape of the pushed images: onlineLayers layers of onlineLayerMin to onlineLayerMax bytes
// of random content, the first from a pool of onlinePoolLayers base layers and the second
// from the pool one time in two (half the layers shared, as base images are), and a config of
// its own; onlineImagesPerRepo images a repository, so that a pool layer pushed before into
// the repository is found by the client's HEAD. onlineWarmup images go to each registry
// before the first round, untimed.
const (
	onlineLayers        = 3
	onlineLayerMin      = 16 << 10
	onlineLayerMax      = 64 << 10
	onlinePoolLayers    = 4
	onlineImagesPerRepo = 10
	onlineWarmup        = 8
)

// OnlineConfig is one run of the push-cost bench.
type OnlineConfig struct {
	// WorkDir holds the servers' data and logs; it is emptied first.
	WorkDir string
	// Pushes is how many images each mode pushes in a round, Pushers how many at once, Rounds
	// how many rounds push in every mode in turn.
	Pushes, Pushers, Rounds int
	// Log receives progress lines.
	Log io.Writer
}

// OnlinePass is one mode's pushes in one round.
type OnlinePass struct {
	Pushes int
	Wall   time.Duration
	// Latencies are each push's (remote.Write's) wall time, sorted.
	Latencies []time.Duration
	// RequestLatencies are, for each class of timedRequests, each request's, from the client's
	// request to the response's headers, sorted.
	RequestLatencies map[string][]time.Duration
	// RegistryCPU is the registry process's CPU time over the pass (user and system; 0 where
	// /proc cannot tell).
	RegistryCPU time.Duration
	// Requests are the client's requests to the registry, by class (classifyRegistry).
	Requests Counts
	// Load1 is the machine's 1-minute load average at the pass's end.
	Load1 float64
	// In-run only: the use records the run's pushes wrote (objects under hardprune/uses/<run>)
	// and the uses they hold; Enter is from taking the lock to the registry's acknowledgement,
	// Leave from releasing it to the advert's naming no run.
	Records, Uses int
	Enter, Leave  time.Duration
}

// Throughput is the pass's pushes a second.
func (p OnlinePass) Throughput() float64 {
	if p.Wall <= 0 {
		return 0
	}
	return float64(p.Pushes) / p.Wall.Seconds()
}

// OnlineResult is the push-cost bench.
type OnlineResult struct {
	Config OnlineConfig
	CPUs   int
	// Start is the servers' start-up; LoadStart the 1-minute load average before it.
	Start     time.Duration
	LoadStart float64
	// Passes are each mode's, in round order.
	Passes map[string][]OnlinePass
}

// onlineRegistry is a registry under test and its storage.
type onlineRegistry struct {
	reg *harness.Registry
	drv *filesystem.Driver
}

// RunOnline starts etcd, the image API server and a registry for each mode, on filesystem
// storage of its own (blob descriptor cache in memory, not read-only), so that each meets the
// same pushes and holds as much: protocol-1's advertises protocol 1 (no part in the
// protocol), idle's and in-run's protocol 2. In each round it pushes cfg.Pushes images with
// cfg.Pushers at once to each, in the order of roundModes; idle's registry never sees a prune
// run (only its lock polls), in-run's pushes while one is under way: the bench takes the
// prune lock as a prune does, waits as the prune does (online.Coordinator.Start) until the
// registry's advert acknowledges the run, pushes, counts the use records, releases the lock
// and waits until the advert names no run. Nothing is deleted.
func RunOnline(ctx context.Context, cfg OnlineConfig) (*OnlineResult, error) {
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "bench: online: "+format+"\n", args...)
		}
	}
	cfg.Pushes, cfg.Pushers, cfg.Rounds = max(cfg.Pushes, 1), max(cfg.Pushers, 1), max(cfg.Rounds, 1)
	if err := os.RemoveAll(cfg.WorkDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	res := &OnlineResult{Config: cfg, CPUs: runtime.NumCPU(), LoadStart: loadAverage(), Passes: map[string][]OnlinePass{}}

	start := time.Now()
	etcd, err := harness.StartEtcd(ctx, mkdir(cfg.WorkDir, "etcd"), nil)
	if err != nil {
		return nil, err
	}
	defer etcd.Stop()
	api, err := harness.StartImageAPIServer(ctx, mkdir(cfg.WorkDir, "imageapiserver"), nil,
		harness.ImageAPIServerOptions{EtcdEndpoint: etcd.Endpoint})
	if err != nil {
		return nil, err
	}
	defer api.Stop()
	registries := map[string]*onlineRegistry{}
	for _, mode := range OnlineModes {
		dir := mkdir(cfg.WorkDir, "storage-"+mode)
		var env []string
		if mode == OnlineProtocol1 {
			env = []string{online.ProtocolEnv + "=1"}
		}
		reg, err := harness.StartRegistry(ctx, mkdir(cfg.WorkDir, "registry-"+mode), nil, harness.RegistryOptions{
			Kubeconfig: api.Kubeconfig,
			Storage:    harness.FilesystemStorageYAML(dir) + "cache:\n  blobdescriptor: inmemory\n",
			Env:        env,
		})
		if err != nil {
			return nil, err
		}
		defer reg.Stop()
		registries[mode] = &onlineRegistry{
			reg: reg,
			drv: filesystem.New(filesystem.DriverParameters{RootDirectory: dir, MaxThreads: 100}),
		}
	}
	res.Start = time.Since(start)
	logf("etcd, the image API server and %d registries started in %s", len(registries), res.Start.Round(time.Millisecond))

	pool := onlinePool()
	client := newRegistryClient(cfg.Pushers)
	for _, mode := range OnlineModes {
		pushes, err := onlinePushes(registries[mode].reg.Host, "warmup-"+mode, 0, min(onlineWarmup, cfg.Pushes), pool)
		if err != nil {
			return nil, err
		}
		if _, _, err := pushAll(ctx, client, pushes, cfg.Pushers); err != nil {
			return nil, fmt.Errorf("warming up %s's registry: %w", mode, err)
		}
	}

	for round := 1; round <= cfg.Rounds; round++ {
		for _, mode := range roundModes(round) {
			pass, err := onlinePass(ctx, cfg, registries[mode], client, pool, mode, round, logf)
			if err != nil {
				return res, fmt.Errorf("%s, round %d: %w", mode, round, err)
			}
			res.Passes[mode] = append(res.Passes[mode], *pass)
		}
	}
	logf("done in %s", time.Since(start).Round(time.Second))
	return res, nil
}

// onlinePass pushes one mode's images of one round; in-run, inside a prune run it holds.
func onlinePass(
	ctx context.Context,
	cfg OnlineConfig,
	r *onlineRegistry,
	client *registryClient,
	pool []v1.Layer,
	mode string,
	round int,
	logf func(string, ...any),
) (*OnlinePass, error) {
	pushes, err := onlinePushes(r.reg.Host, mode, round, cfg.Pushes, pool)
	if err != nil {
		return nil, err
	}
	pass := &OnlinePass{Pushes: len(pushes)}
	var run *onlineRun
	if mode == OnlineInRun {
		start := time.Now()
		if run, err = startOnlineRun(ctx, r.drv); err != nil {
			return nil, err
		}
		defer run.release()
		pass.Enter = time.Since(start)
	}
	client.reset()
	cpu0, cpuErr := processCPU(r.reg.Pid())
	pass.Latencies, pass.Wall, err = pushAll(ctx, client, pushes, cfg.Pushers)
	if err != nil {
		return nil, err
	}
	if cpu1, err := processCPU(r.reg.Pid()); err == nil && cpuErr == nil {
		pass.RegistryCPU = cpu1 - cpu0
	}
	pass.Requests, pass.RequestLatencies = client.counts()
	if run != nil {
		start := time.Now()
		if err := run.end(ctx); err != nil {
			return nil, err
		}
		pass.Leave = time.Since(start)
		// Every hint is written by now: the replica flushes every 200 ms, and the advert
		// drops the run only at a lock poll (every 2 s) after the last push.
		if pass.Records, pass.Uses, err = run.countUses(ctx); err != nil {
			return nil, err
		}
		run.finish(ctx)
	}
	pass.Load1 = loadAverage()
	logf("round %d/%d: %s: %d pushes in %s (%.1f/s), latency p50 %s, p95 %s, max %s; registry CPU %s; "+
		"%d requests (%s)%s; load %.1f", round, cfg.Rounds, mode, pass.Pushes, pass.Wall.Round(time.Millisecond),
		pass.Throughput(), percentile(pass.Latencies, 0.5).Round(time.Millisecond),
		percentile(pass.Latencies, 0.95).Round(time.Millisecond), percentile(pass.Latencies, 1).Round(time.Millisecond),
		pass.RegistryCPU.Round(time.Millisecond), pass.Requests.Total(), pass.Requests, pass.runNote(), pass.Load1)
	return pass, nil
}

func (p *OnlinePass) runNote() string {
	if p.Records == 0 && p.Enter == 0 {
		return ""
	}
	return fmt.Sprintf("; %d use records (%d uses); run entered in %s, left in %s", p.Records, p.Uses,
		p.Enter.Round(time.Millisecond), p.Leave.Round(time.Millisecond))
}

// onlineRun is a prune run the bench holds: the prune lock, renewed while held, and the
// coordinator that waited for the registry's acknowledgement.
type onlineRun struct {
	drv   *filesystem.Driver
	lock  *storage.Lock
	coord *online.Coordinator
}

// startOnlineRun takes the prune lock of the storage, marks it online and waits, as a prune
// does, until every live registry's advert names the run.
func startOnlineRun(ctx context.Context, drv *filesystem.Driver) (*onlineRun, error) {
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	lock, err := storage.AcquireLock(ctx, drv, storage.LockOptions{Log: quiet})
	if err != nil {
		return nil, err
	}
	// Registries follow only the runs whose lock says they are online, as -prune=delete's do.
	if err := lock.MarkOnline(ctx); err != nil {
		_ = lock.Release()
		return nil, err
	}
	coord := &online.Coordinator{Driver: drv, Run: lock.Record().Owner, Log: quiet, Alive: lock.Err}
	if err := coord.Start(lock.Context()); err != nil {
		_ = lock.Release()
		return nil, fmt.Errorf("waiting for the registry to acknowledge the run: %w", err)
	}
	return &onlineRun{drv: drv, lock: lock, coord: coord}, nil
}

// release gives the lock back (again: a no-op).
func (r *onlineRun) release() { _ = r.lock.Release() }

// end releases the lock and waits until no advert names the run any more.
func (r *onlineRun) end(ctx context.Context) error {
	if err := r.lock.Release(); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		adverts, err := online.ReadAdverts(ctx, r.drv)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(adverts, func(a online.AdvertState) bool { return a.Run == r.coord.Run }) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the registry's advert still names run %s 30 s after its lock was released", r.coord.Run)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// countUses counts the run's use records and the uses in them.
func (r *onlineRun) countUses(ctx context.Context) (records, uses int, err error) {
	paths, err := r.drv.List(ctx, storage.OnlineUsesPath(r.coord.Run))
	if err != nil {
		return 0, 0, fmt.Errorf("listing the run's use records: %w", err)
	}
	for _, p := range paths {
		content, err := r.drv.GetContent(ctx, p)
		if err != nil {
			return 0, 0, err
		}
		u, err := online.ParseUses(content)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", p, err)
		}
		uses += len(u)
	}
	return len(paths), uses, nil
}

// finish removes the run's uses, as the prune does at its end.
func (r *onlineRun) finish(ctx context.Context) { r.coord.Finish(ctx) }

// onlinePush is one image to push and where.
type onlinePush struct {
	ref name.Reference
	img v1.Image
}

// onlinePool is the base layers the images share, the same in every run.
func onlinePool() []v1.Layer {
	rng := rand.New(rand.NewPCG(13, 0))
	pool := make([]v1.Layer, onlinePoolLayers)
	for i := range pool {
		pool[i] = static.NewLayer(randomBytes(rng, onlineLayerMin+rng.IntN(onlineLayerMax-onlineLayerMin+1)), types.DockerLayer)
	}
	return pool
}

// onlinePushes are n images for one pass (mode, round) to host: image i is tag v<i> of the
// repository bench/<mode>-r<round>-<i mod repositories>, with layers as the constants above
// say, unique content of its own seeded by the pass. Their digests are computed here, so that
// the pushes' timing holds the pushing alone.
func onlinePushes(host, mode string, round, n int, pool []v1.Layer) ([]onlinePush, error) {
	seed := uint64(0)
	for _, c := range mode {
		seed = seed*31 + uint64(c)
	}
	rng := rand.New(rand.NewPCG(seed, uint64(round)))
	repos := ceilDiv(n, onlineImagesPerRepo)
	out := make([]onlinePush, n)
	for i := range out {
		layers := make([]v1.Layer, onlineLayers)
		for j := range layers {
			if j == 0 || (j == 1 && rng.IntN(2) == 0) {
				layers[j] = pool[rng.IntN(len(pool))]
				continue
			}
			size := onlineLayerMin + rng.IntN(onlineLayerMax-onlineLayerMin+1)
			layers[j] = static.NewLayer(randomBytes(rng, size), types.DockerLayer)
		}
		img, err := mutate.AppendLayers(empty.Image, layers...)
		if err != nil {
			return nil, err
		}
		img, err = mutate.Config(img, v1.Config{Labels: map[string]string{"bench": fmt.Sprintf("%s %d %d", mode, round, i)}})
		if err != nil {
			return nil, err
		}
		if _, err := img.Digest(); err != nil {
			return nil, err
		}
		ref, err := name.ParseReference(fmt.Sprintf("%s/bench/%s-r%d-%02d:v%d", host, mode, round, i%repos, i), name.Insecure)
		if err != nil {
			return nil, err
		}
		out[i] = onlinePush{ref: ref, img: img}
	}
	return out, nil
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, (n+7)/8*8)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b[:n]
}

// pushAll pushes every image, pushers at once, and returns each push's latency (sorted) and
// the wall time of all.
func pushAll(ctx context.Context, client *registryClient, pushes []onlinePush, pushers int) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, len(pushes))
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for range pushers {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(pushes) {
					return nil
				}
				p := pushes[i]
				t := time.Now()
				err := remote.Write(p.ref, p.img, remote.WithAuth(authn.Anonymous), remote.WithTransport(client),
					remote.WithContext(gctx))
				if err != nil {
					return fmt.Errorf("pushing %s: %w", p.ref, err)
				}
				lat[i] = time.Since(t)
			}
		})
	}
	err := g.Wait()
	wall := time.Since(start)
	slices.Sort(lat)
	return lat, wall, err
}

// timedRequests are the classes of requests (classifyRegistry) whose latencies the bench
// keeps: those the protocol changes during a run. A blob's HEAD is answered without the blob
// descriptor cache; an upload's start (POST) and a manifest PUT write a use record and list
// the run's claims.
var timedRequests = []string{"HEAD blob", "POST upload", "PUT manifest"}

// registryClient is the pushers' transport: it counts their requests by class and times those
// of timedRequests.
type registryClient struct {
	base http.RoundTripper

	mu        sync.Mutex
	requests  Counts
	latencies map[string][]time.Duration
}

func newRegistryClient(pushers int) *registryClient {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Each push uploads up to 4 layers at once (remote.Write's default jobs).
	t.MaxIdleConnsPerHost = 8 * pushers
	c := &registryClient{base: t}
	c.reset()
	return c
}

func (c *registryClient) RoundTrip(req *http.Request) (*http.Response, error) {
	class := classifyRegistry(req)
	start := time.Now()
	resp, err := c.base.RoundTrip(req)
	d := time.Since(start)
	c.mu.Lock()
	c.requests[class]++
	if _, timed := c.latencies[class]; timed && err == nil {
		c.latencies[class] = append(c.latencies[class], d)
	}
	c.mu.Unlock()
	return resp, err
}

func (c *registryClient) reset() {
	c.mu.Lock()
	c.requests, c.latencies = Counts{}, map[string][]time.Duration{}
	for _, class := range timedRequests {
		c.latencies[class] = nil
	}
	c.mu.Unlock()
}

// counts are the requests since the last reset, and the latencies of timedRequests, sorted.
func (c *registryClient) counts() (Counts, map[string][]time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]time.Duration, len(c.latencies))
	for class, ds := range c.latencies {
		out[class] = slices.Sorted(slices.Values(ds))
	}
	return c.requests, out
}

// classifyRegistry sorts requests to the distribution API: "GET /v2/" (the client's ping),
// "<METHOD> upload" (blob uploads: POST starts one, PATCH sends data, PUT commits it),
// "<METHOD> blob", "<METHOD> manifest", and the rest by method.
func classifyRegistry(r *http.Request) string {
	p := r.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		return r.Method + " /v2/"
	case strings.Contains(p, "/blobs/uploads/"):
		return r.Method + " upload"
	case strings.Contains(p, "/blobs/"):
		return r.Method + " blob"
	case strings.Contains(p, "/manifests/"):
		return r.Method + " manifest"
	}
	return r.Method + " other"
}

// processCPU is a process's CPU time so far, user and system, from /proc/<pid>/stat (in
// clock ticks of 10 ms, Linux's USER_HZ on every architecture Go supports).
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: the fields count from after it.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime, stime (fields 14 and 15 of the whole line)
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// loadAverage is the machine's 1-minute load average (0 where /proc cannot tell).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

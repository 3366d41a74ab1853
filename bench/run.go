package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/imageapi"
)

// Config is one benchmark run.
type Config struct {
	Size Size
	// Runs is how many rounds run ours and find (and garbage-collect, see GCRuns) in turn;
	// medians are reported, with each run's figure.
	Runs int
	// GCRuns is how many times distribution's garbage-collect runs (it is the slow one).
	GCRuns int
	// S3GCRuns is GCRuns on S3, where garbage-collect makes a request per manifest and link.
	S3GCRuns int
	// Backends to measure: "filesystem", "s3".
	Backends []string
	// WorkDir holds the generated storage, the servers' data and logs; it is emptied first.
	WorkDir string
	// Strace counts the filesystem system calls of one extra prune run (strace -f -c).
	Strace bool
	// Profile runs the prune once more on each backend, untimed, with CPU and allocation
	// profiles written to the work dir's profile/.
	Profile bool
	// NoDelete skips the delete benchmarks (targets 3 and 4), which make profile does not need.
	NoDelete bool
	// S3Latency, if positive, adds a check on S3 through a proxy that holds each request back
	// this long (target 5), in every round.
	S3Latency time.Duration
	// Log receives progress lines.
	Log io.Writer
}

// Measure is one command's medians over its runs.
type Measure struct {
	Runs    int
	Wall    time.Duration   // median
	Walls   []time.Duration // each run's, in round order
	CPU     time.Duration   // median of the runs' CPU time, user and system
	CPUs    []time.Duration // each run's, in round order
	PeakRSS int64           // median of the runs' peak resident set size, bytes
	// Requests are the median run's request counts (API and storage).
	API, Storage Counts
	// Output is what the command reported (for checks), e.g. the blobs it would delete.
	Found int
}

// BackendResult is what one storage backend measured.
type BackendResult struct {
	Backend string
	Prune   Measure
	Find    *Measure // filesystem only
	GC      *Measure
	// Delete is -prune=delete's (with xargs rm's on the filesystem); nil when not run.
	Delete *DeleteResult
	// Latency is the check through a proxy adding LatencyDelay to each S3 request; nil when
	// not run. Its Storage counts are the requests that proxy passed on.
	Latency      *Measure
	LatencyDelay time.Duration
	// Syscalls are strace -c's counts of one prune run (filesystem, when asked).
	Syscalls map[string]int
	// Profiles are the files of the profiled prune run (Config.Profile): CPU, allocations.
	Profiles []string
}

// Result is the whole benchmark.
type Result struct {
	Config    Config
	Dataset   *Dataset
	GenTime   time.Duration // storage written (filesystem)
	S3GenTime time.Duration // storage written (S3)
	APITime   time.Duration // API objects created
	Backends  []BackendResult
	CPUs      int
	// GoMemLimit is the GOMEMLIMIT the prune runs inherited ("" for none).
	GoMemLimit string
}

// Run generates the dataset and measures every backend.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "bench: "+format+"\n", args...)
		}
	}
	if cfg.Runs < 1 {
		cfg.Runs = 1
	}
	if err := os.RemoveAll(cfg.WorkDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	binary, err := harness.DockerRegistryBinary()
	if err != nil {
		return nil, err
	}
	res := &Result{Config: cfg, CPUs: runtime.NumCPU(), GoMemLimit: os.Getenv("GOMEMLIMIT")}
	helper, err := BuildRusageHelper(mkdir(cfg.WorkDir, "bin"))
	if err != nil {
		return nil, err
	}
	rn := newRunner(cfg.WorkDir, helper, logf)

	// The image API, behind a counting proxy.
	etcd, err := harness.StartEtcd(ctx, mkdir(cfg.WorkDir, "etcd"), nil)
	if err != nil {
		return nil, err
	}
	defer etcd.Stop()
	api, err := harness.StartImageAPIServer(
		ctx,
		mkdir(cfg.WorkDir, "imageapiserver"),
		nil,
		harness.ImageAPIServerOptions{EtcdEndpoint: etcd.Endpoint},
	)
	if err != nil {
		return nil, err
	}
	defer api.Stop()
	apiProxy, kubeconfig, err := apiCountingProxy(api, cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	defer apiProxy.Close()
	restCfg, err := clientcmd.BuildConfigFromFlags("", api.Kubeconfig)
	if err != nil {
		return nil, err
	}
	restCfg.QPS, restCfg.Burst = 5000, 5000
	client, err := imageapi.NewClient(restCfg)
	if err != nil {
		return nil, err
	}

	start := time.Now()
	ds := Generate(cfg.Size)
	res.Dataset = ds
	logf(
		"generated %s: %d blobs (%d orphaned, %d referenced), %d repositories, %d images, %d streams, %d objects in %s",
		cfg.Size.Name,
		ds.StoredBlobs,
		ds.OrphanBlobs,
		ds.ReferencedBlobs,
		len(ds.repos),
		ds.Images,
		ds.Streams,
		ds.Objects,
		time.Since(start).Round(time.Millisecond),
	)
	start = time.Now()
	if err := ds.CreateAPIObjects(ctx, client, 32); err != nil {
		return nil, err
	}
	res.APITime = time.Since(start)
	logf("created %d Images and %d ImageStreams in %s", ds.Images, ds.Streams, res.APITime.Round(time.Millisecond))

	for _, backend := range cfg.Backends {
		var br *BackendResult
		var err error
		switch backend {
		case "filesystem":
			br, err = runFilesystem(ctx, cfg, res, rn, binary, kubeconfig, apiProxy)
		case "s3":
			br, err = runS3(ctx, cfg, res, rn, binary, kubeconfig, apiProxy)
		default:
			err = fmt.Errorf("unknown backend %q (filesystem, s3)", backend)
		}
		if err != nil {
			return res, fmt.Errorf("%s: %w", backend, err)
		}
		res.Backends = append(res.Backends, *br)
	}
	return res, nil
}

func mkdir(parts ...string) string {
	dir := filepath.Join(parts...)
	_ = os.MkdirAll(dir, 0o755)
	return dir
}

// apiCountingProxy puts a counting proxy in front of the image API server and writes a
// kubeconfig reaching the server through it.
func apiCountingProxy(api *harness.ImageAPIServer, dir string) (*CountingProxy, string, error) {
	ca, err := os.ReadFile(api.CAFile)
	if err != nil {
		return nil, "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	upstream, err := url.Parse(api.URL)
	if err != nil {
		return nil, "", err
	}
	p, err := StartCountingProxy(
		upstream,
		&http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64},
		ClassifyAPI,
	)
	if err != nil {
		return nil, "", err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig-counting")
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: counting, cluster: {server: %q}}]
users: [{name: u, user: {token: %q}}]
contexts: [{name: c, context: {cluster: counting, user: u}}]
current-context: c
`, p.URL, api.Token)
	if err := os.WriteFile(kubeconfig, []byte(content), 0o600); err != nil {
		return nil, "", err
	}
	return p, kubeconfig, nil
}

func runFilesystem(
	ctx context.Context,
	cfg Config,
	res *Result,
	rn runner,
	binary, kubeconfig string,
	apiProxy *CountingProxy,
) (*BackendResult, error) {
	logf := rn.logf
	root := mkdir(cfg.WorkDir, "filesystem")
	start := time.Now()
	if err := res.Dataset.WriteStorage(ctx, root, 8); err != nil {
		return nil, err
	}
	res.GenTime = time.Since(start)
	logf("filesystem: wrote %d files in %s", res.Dataset.Objects, res.GenTime.Round(time.Millisecond))
	storageYAML := harness.FilesystemStorageYAML(root)
	prune, err := pruneSeries(ctx, cfg, res.Dataset, "filesystem", binary, storageYAML, kubeconfig, apiProxy, nil)
	if err != nil {
		return nil, err
	}
	find := &series{runs: cfg.Runs, timed: timed{
		what: "find", file: "find-filesystem",
		newCmd: func() *exec.Cmd { return exec.CommandContext(ctx, "find", root, "-type", "f") },
	}}
	gc, err := gcSeries(ctx, cfg, cfg.GCRuns, "filesystem", storageYAML, nil)
	if err != nil {
		return nil, err
	}
	var del, rm *series
	var delRes *DeleteResult
	if !cfg.NoDelete {
		records, err := planRecords(prune, rn, "filesystem")
		if err != nil {
			return nil, err
		}
		delRes = &DeleteResult{Objects: countKinds(records)}
		del, rm, delRes.Paths, err = fsDeleteSeries(ctx, cfg, res.Dataset, binary, root, kubeconfig, records)
		if err != nil {
			return nil, err
		}
		logf("filesystem: the plan deletes %d objects, %d paths for xargs rm", len(records), delRes.Paths)
	}
	if err := alternate(ctx, rn, prune, find, gc, del, rm); err != nil {
		return nil, err
	}
	if delRes != nil {
		delRes.Prune, delRes.Rm = *del.measure(), rm.measure()
	}
	br := &BackendResult{
		Backend: "filesystem",
		Prune:   prune.pruneMeasure(apiProxy, nil),
		Find:    find.measure(),
		GC:      gc.gcMeasure(nil),
		Delete:  delRes,
	}
	if cfg.Profile {
		if br.Profiles, err = profilePrune(prune, rn, "filesystem"); err != nil {
			return nil, err
		}
	}
	if cfg.Strace {
		if br.Syscalls, err = straceCounts(ctx, cfg, binary, storageYAML, kubeconfig); err != nil {
			logf("strace: %v (skipped)", err)
		}
	}
	return br, nil
}

func runS3(
	ctx context.Context,
	cfg Config,
	res *Result,
	rn runner,
	binary, kubeconfig string,
	apiProxy *CountingProxy,
) (*BackendResult, error) {
	logf := rn.logf
	s3, err := harness.StartS3(ctx, mkdir(cfg.WorkDir, "versitygw"), nil)
	if err != nil {
		return nil, err
	}
	defer s3.Stop()
	// Straight into the posix backend's bucket directory: its files are the bucket's objects.
	start := time.Now()
	if err := res.Dataset.WriteStorage(ctx, s3.BucketDir(), 8); err != nil {
		return nil, err
	}
	res.S3GenTime = time.Since(start)
	logf("s3: wrote %d objects in %s", res.Dataset.Objects, res.S3GenTime.Round(time.Millisecond))
	upstream, _ := url.Parse(s3.Endpoint)
	s3Proxy, err := StartCountingProxy(upstream, &http.Transport{MaxIdleConnsPerHost: 256}, ClassifyS3)
	if err != nil {
		return nil, err
	}
	defer s3Proxy.Close()
	storageYAML := s3.StorageYAML(s3Proxy.URL)
	prune, err := pruneSeries(ctx, cfg, res.Dataset, "s3", binary, storageYAML, kubeconfig, apiProxy, s3Proxy)
	if err != nil {
		return nil, err
	}
	gc, err := gcSeries(ctx, cfg, cfg.S3GCRuns, "s3", storageYAML, s3Proxy)
	if err != nil {
		return nil, err
	}
	var del *series
	var delRes *DeleteResult
	var delProxy *CountingProxy
	if !cfg.NoDelete {
		records, err := planRecords(prune, rn, "s3")
		if err != nil {
			return nil, err
		}
		// The delete's own proxy, whose classes say what each request serves.
		attribution, err := newS3Attribution(records)
		if err != nil {
			return nil, err
		}
		delProxy, err = StartCountingProxy(upstream, &http.Transport{MaxIdleConnsPerHost: 256}, attribution.classify)
		if err != nil {
			return nil, err
		}
		defer delProxy.Close()
		delRes = &DeleteResult{Objects: countKinds(records)}
		del, err = s3DeleteSeries(ctx, cfg, res.Dataset, s3, delProxy, binary, kubeconfig, records, delRes)
		if err != nil {
			return nil, err
		}
	}
	var latency *series
	var latencyProxy *CountingProxy
	if cfg.S3Latency > 0 {
		latencyProxy, err = StartLatencyProxy(upstream, &http.Transport{MaxIdleConnsPerHost: 256}, ClassifyS3, cfg.S3Latency)
		if err != nil {
			return nil, err
		}
		defer latencyProxy.Close()
		latency, err = pruneSeries(ctx, cfg, res.Dataset, "s3-latency", binary, s3.StorageYAML(latencyProxy.URL),
			kubeconfig, apiProxy, latencyProxy)
		if err != nil {
			return nil, err
		}
		latency.what += fmt.Sprintf(" (S3 %s a request further away)", cfg.S3Latency)
	}
	// The check with latency right after the one without: in the same round they meet about
	// the same machine.
	if err := alternate(ctx, rn, prune, latency, gc, del); err != nil {
		return nil, err
	}
	if delRes != nil {
		delRes.Prune = del.pruneMeasure(nil, delProxy)
	}
	br := &BackendResult{
		Backend: "s3",
		Prune:   prune.pruneMeasure(apiProxy, s3Proxy),
		GC:      gc.gcMeasure(s3Proxy),
		Delete:  delRes,
	}
	if latency != nil {
		m := latency.pruneMeasure(nil, latencyProxy)
		br.Latency, br.LatencyDelay = &m, cfg.S3Latency
	}
	if cfg.Profile {
		if br.Profiles, err = profilePrune(prune, rn, "s3"); err != nil {
			return nil, err
		}
	}
	return br, nil
}

var wouldDelete = regexp.MustCompile(`^Would delete (\d+) blobs$`)

// parseSummaryCount reads the count of the prune's summary line that line matches ("Would
// delete N blobs", "Deleted N blobs") from its output.
func parseSummaryCount(stdout io.Reader, line *regexp.Regexp) (int, error) {
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := line.FindSubmatch(sc.Bytes()); m != nil {
			return strconv.Atoi(string(m[1]))
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no line matching %q", line)
}

// pruneSeries is cfg.Runs of `dockerregistry -prune=check` on the storage, each of which must
// find exactly the dataset's orphans.
func pruneSeries(
	ctx context.Context,
	cfg Config,
	ds *Dataset,
	backend, binary, storageYAML, kubeconfig string,
	apiProxy, storageProxy *CountingProxy,
) (*series, error) {
	configPath := filepath.Join(cfg.WorkDir, "prune-config-"+backend+".yml")
	if err := harness.WriteRegistryConfigStorage(configPath, "127.0.0.1:0", storageYAML, kubeconfig); err != nil {
		return nil, err
	}
	s := &series{runs: cfg.Runs}
	s.timed = timed{
		what:    "dockerregistry -prune=check",
		file:    "prune-check-" + backend,
		proxies: []*CountingProxy{apiProxy, storageProxy},
		newCmd: func() *exec.Cmd {
			cmd := exec.CommandContext(ctx, binary, "-prune=check", "-prune-keep-younger-than=0s", configPath)
			cmd.Env = append(os.Environ(), "KUBECONFIG=", "REGISTRY_LOG_LEVEL=warning")
			return cmd
		},
		check: func(stdout io.Reader) error {
			found, err := parseSummaryCount(stdout, wouldDelete)
			if err != nil {
				return err
			}
			s.found = found
			if found != ds.OrphanBlobs {
				return fmt.Errorf("-prune=check would delete %d blobs, the dataset has %d orphans", found, ds.OrphanBlobs)
			}
			return nil
		},
	}
	return s, nil
}

// pruneMeasure is the prune series' Measure, with the request counts of its median run.
func (s *series) pruneMeasure(apiProxy, storageProxy *CountingProxy) Measure {
	m := *s.measure()
	counts := s.medianCounts()
	if apiProxy != nil {
		m.API = counts[0]
	}
	if storageProxy != nil {
		m.Storage = counts[1]
	}
	m.Found = s.found
	return m
}

// The dockerregistry binary's profile variables (cmd/dockerregistry/profile.go).
const (
	cpuProfileEnv = "DOCKERREGISTRY_CPUPROFILE"
	memProfileEnv = "DOCKERREGISTRY_MEMPROFILE"
)

// profilePrune runs the prune once more, untimed (profiling slows it), with a CPU profile of
// the whole run and an allocation profile at its end written to the work dir's profile/, and
// returns their paths.
func profilePrune(prune *series, rn runner, backend string) ([]string, error) {
	dir := mkdir(filepath.Dir(rn.outDir), "profile")
	cpu, allocs := filepath.Join(dir, backend+"-cpu.pprof"), filepath.Join(dir, backend+"-allocs.pprof")
	c := prune.timed
	c.file += "-profiled"
	c.proxies = nil
	c.newCmd = func() *exec.Cmd {
		cmd := prune.newCmd()
		cmd.Env = append(cmd.Env, cpuProfileEnv+"="+cpu, memProfileEnv+"="+allocs)
		return cmd
	}
	r, err := runOnce(c, rn)
	if err != nil {
		return nil, fmt.Errorf("profiling: %w", err)
	}
	for _, p := range []string{cpu, allocs} {
		if info, err := os.Stat(p); err != nil || info.Size() == 0 {
			return nil, fmt.Errorf("profiling: %s: no profile written (a dockerregistry older than %s?)", p, cpuProfileEnv)
		}
	}
	rn.logf("%s: profiled %s in %s: %s, %s", backend, c.what, r.wall.Round(time.Millisecond), cpu, allocs)
	return []string{cpu, allocs}, nil
}

// gcSeries is runs of distribution's garbage-collect --dry-run on the same storage; nil for
// no runs.
func gcSeries(
	ctx context.Context,
	cfg Config,
	runs int,
	backend, storageYAML string,
	storageProxy *CountingProxy,
) (*series, error) {
	if runs < 1 {
		return nil, nil
	}
	gcBinary, err := distributionRegistryBinary()
	if err != nil {
		return nil, err
	}
	configPath := filepath.Join(cfg.WorkDir, "distribution-config-"+backend+".yml")
	content := "version: 0.1\nlog:\n  level: error\nstorage:\n" + indentLines(
		storageYAML,
		"  ",
	) + "  delete:\n    enabled: true\n"
	if err := os.WriteFile(configPath, []byte(content), 0o600); err != nil {
		return nil, err
	}
	s := &series{runs: runs, timed: timed{
		what:    "registry garbage-collect --dry-run",
		file:    "garbage-collect-" + backend,
		proxies: []*CountingProxy{storageProxy},
		newCmd: func() *exec.Cmd {
			return exec.CommandContext(ctx, gcBinary, "garbage-collect", "--dry-run", configPath)
		},
	}}
	return s, nil
}

// gcMeasure is the garbage-collect series' Measure, with the storage request counts of its
// median run; nil for no series.
func (s *series) gcMeasure(storageProxy *CountingProxy) *Measure {
	if s == nil {
		return nil
	}
	m := s.measure()
	if storageProxy != nil {
		m.Storage = s.medianCounts()[0]
	}
	return m
}

func indentLines(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

// straceCounts runs one prune under strace -f -c and returns its system call counts.
func straceCounts(ctx context.Context, cfg Config, binary, storageYAML, kubeconfig string) (map[string]int, error) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		return nil, errors.New("strace is not installed")
	}
	configPath := filepath.Join(cfg.WorkDir, "prune-config.yml")
	if err := harness.WriteRegistryConfigStorage(configPath, "127.0.0.1:0", storageYAML, kubeconfig); err != nil {
		return nil, err
	}
	out := filepath.Join(cfg.WorkDir, "strace.txt")
	cmd := exec.CommandContext(
		ctx,
		strace,
		"-f",
		"-c",
		"-o",
		out,
		binary,
		"-prune=check",
		"-prune-keep-younger-than=0s",
		configPath,
	)
	cmd.Env = append(os.Environ(), "KUBECONFIG=", "REGISTRY_LOG_LEVEL=warning")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%w: %s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		// % time, seconds, usecs/call, calls, [errors], syscall
		if len(f) < 5 || strings.HasPrefix(line, "%") || strings.HasPrefix(line, "-") {
			continue
		}
		calls, err := strconv.Atoi(f[3])
		if err != nil {
			continue
		}
		counts[f[len(f)-1]] = calls
	}
	return counts, nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// distributionRegistryBinary is distribution's own registry binary, built by make tools.
func distributionRegistryBinary() (string, error) {
	dir, err := harness.BinDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "distribution-registry")
	if info, err := os.Stat(path); err != nil || info.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%s (run make tools): %w", path, harness.ErrBinaryMissing)
	}
	return path, nil
}

package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
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
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/imageapi"
)

// OrdinaryConfig is one run of the ordinary prune's benchmark.
type OrdinaryConfig struct {
	Size OrdinarySize
	// WorkDir holds the cluster's data and logs and the runs' output; it is emptied first.
	WorkDir string
	// Workers is how many creates the load has under way at once.
	Workers int
	// Profile runs the dry run once more, untimed, with CPU and allocation profiles.
	Profile bool
	// Hold stops after the load, with the cluster up and a pruner's kubeconfig written, until
	// the context ends: to run and profile the prune by hand on a loaded cluster.
	Hold bool
	// KubeExtraArgs are added to the kube-apiserver's command line.
	KubeExtraArgs []string
	// Log receives progress lines.
	Log io.Writer
}

// OrdinaryRun is one measured run of `dockerregistry -prune-images`.
type OrdinaryRun struct {
	// What names the run in the report; Args are the prune's flags.
	What string
	Args []string
	Wall time.Duration
	CPU  time.Duration
	// PeakRSS is the prune's peak resident set size, bytes.
	PeakRSS int64
	// API are the run's requests to the kube-apiserver, by class (ClassifyKube).
	API Counts
	// Summary is the prune's summary line, without "Summary: "; Got its counts.
	Summary string
	Got     OrdinaryExpect
}

// OrdinaryResult is the ordinary prune's benchmark.
type OrdinaryResult struct {
	Config  OrdinaryConfig
	Dataset *OrdinaryDataset
	// ClusterStart is the cluster's start-up; Load the objects' creation, Loaded their number.
	ClusterStart, Load time.Duration
	Loaded             int
	Runs               []OrdinaryRun
	Profiles           []string
	CPUs               int
	GoMemLimit         string
}

// Flags of the prune's runs: oc's defaults but for the age (see ordinaryKeepYoungerThan).
var ordinaryFlags = []string{
	"-prune-images", "--keep-younger-than=" + ordinaryKeepYoungerThan,
	"--keep-tag-revisions=" + strconv.Itoa(ordinaryKeepTagRevisions),
}

// RunOrdinary starts a cluster (etcd, kube-apiserver, the aggregated image API server, the
// OpenShift workload APIs), loads the generated objects, and measures `dockerregistry
// -prune-images` on them as a service account bound to system:image-pruner, through a
// counting proxy in front of the kube-apiserver: a dry run, then a confirmed run that changes
// the API objects only (-prune-registry=false: there is no storage here).
func RunOrdinary(ctx context.Context, cfg OrdinaryConfig) (*OrdinaryResult, error) {
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "bench: ordinary: "+format+"\n", args...)
		}
	}
	if cfg.Workers < 1 {
		cfg.Workers = 32
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
	helper, err := BuildRusageHelper(mkdir(cfg.WorkDir, "bin"))
	if err != nil {
		return nil, err
	}
	rn := newRunner(cfg.WorkDir, helper, logf)
	res := &OrdinaryResult{Config: cfg, CPUs: runtime.NumCPU(), GoMemLimit: os.Getenv("GOMEMLIMIT")}

	start := time.Now()
	ds := GenerateOrdinary(cfg.Size)
	res.Dataset = ds
	logf("generated %s: %d Images (%d in no stream), %d streams (%d history items), %d pods, %d other referrers, "+
		"%d namespaces in %s", cfg.Size.Name, len(ds.images), ds.Orphans, len(ds.streams), ds.Items, len(ds.pods),
		len(ds.others), len(ds.namespaces), time.Since(start).Round(time.Millisecond))

	start = time.Now()
	cluster, err := harness.StartCluster(ctx, mkdir(cfg.WorkDir, "cluster"), nil,
		harness.ClusterOptions{KubeExtraArgs: cfg.KubeExtraArgs})
	if err != nil {
		return nil, err
	}
	defer cluster.Stop()
	res.ClusterStart = time.Since(start)
	logf("cluster started in %s", res.ClusterStart.Round(time.Millisecond))

	start = time.Now()
	if res.Loaded, err = ds.Load(ctx, cluster, cfg.Workers, logf); err != nil {
		return nil, err
	}
	res.Load = time.Since(start)
	logf("loaded %d objects in %s (%.0f/s)", res.Loaded, res.Load.Round(time.Millisecond),
		float64(res.Loaded)/res.Load.Seconds())

	pruner := harness.KubeServiceAccount("openshift-image-registry", "pruner")
	if err := cluster.BindImagePruner(ctx, pruner); err != nil {
		return nil, err
	}
	proxy, proxyCA, err := kubeCountingProxy(cluster.KubeAPIServer)
	if err != nil {
		return nil, err
	}
	defer proxy.Close()

	if cfg.Hold {
		kubeconfig, err := prunerKubeconfig(ctx, cluster, pruner, proxy, proxyCA, filepath.Join(cfg.WorkDir, "pruner.kubeconfig"))
		if err != nil {
			return nil, err
		}
		logf("holding until interrupted: KUBECONFIG=%s REGISTRY_CONFIGURATION_PATH= %s %s (the token lasts an hour; "+
			"admin: %s)", kubeconfig, binary, strings.Join(ordinaryFlags, " "), cluster.Kubeconfig)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	runs := []struct {
		what string
		args []string
	}{
		{"dry run", nil},
		{"--confirm --prune-registry=false", []string{"--confirm", "--prune-registry=false"}},
	}
	for i, r := range runs {
		kubeconfig, err := prunerKubeconfig(ctx, cluster, pruner, proxy, proxyCA, filepath.Join(cfg.WorkDir, "pruner.kubeconfig"))
		if err != nil {
			return nil, err
		}
		args := append(append([]string(nil), ordinaryFlags...), r.args...)
		run := OrdinaryRun{What: r.what, Args: args}
		t := ordinaryTimed(ctx, binary, kubeconfig, args, &run)
		t.file = fmt.Sprintf("ordinary-%d", i+1)
		t.proxies = []*CountingProxy{proxy}
		if cfg.Profile && i == 0 {
			// Profiled first, untimed, so that the measured dry run reads what the profiled
			// one read (the confirmed run changes the objects).
			if res.Profiles, err = profileOrdinary(t, rn); err != nil {
				return nil, err
			}
		}
		proxy.Reset()
		out, err := runOnce(t, rn)
		if err != nil {
			return nil, err
		}
		run.Wall, run.CPU, run.PeakRSS, run.API = out.wall, out.cpu, out.rss, proxy.Counts()
		logf("%s: %s, CPU %s, peak RSS %s, %d API requests (%s); %s", r.what, out.wall.Round(time.Millisecond),
			out.cpu.Round(time.Millisecond), mib(out.rss), run.API.Total(), run.API, run.Summary)
		res.Runs = append(res.Runs, run)
	}
	return res, nil
}

// ordinaryTimed is the prune with args as the pruner of kubeconfig, with no registry
// configuration (nothing in storage: the dry run prints what it would delete there), its
// summary read into run.
func ordinaryTimed(ctx context.Context, binary, kubeconfig string, args []string, run *OrdinaryRun) timed {
	return timed{
		what: "dockerregistry " + strings.Join(args, " "),
		newCmd: func() *exec.Cmd {
			cmd := exec.CommandContext(ctx, binary, args...)
			cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "REGISTRY_CONFIGURATION_PATH=")
			return cmd
		},
		check: func(stdout io.Reader) error {
			summary, err := parseOrdinarySummary(stdout)
			if err != nil {
				return err
			}
			run.Summary = summary
			run.Got = summaryCounts(summary)
			return nil
		},
	}
}

// profileOrdinary runs t once more with a CPU profile of the whole run and an allocation
// profile at its end, in the work dir's profile/, and returns their paths.
func profileOrdinary(t timed, rn runner) ([]string, error) {
	dir := mkdir(filepath.Dir(rn.outDir), "profile")
	cpu, allocs := filepath.Join(dir, "ordinary-cpu.pprof"), filepath.Join(dir, "ordinary-allocs.pprof")
	t.file += "-profiled"
	t.proxies = nil
	newCmd := t.newCmd
	t.newCmd = func() *exec.Cmd {
		cmd := newCmd()
		cmd.Env = append(cmd.Env, cpuProfileEnv+"="+cpu, memProfileEnv+"="+allocs)
		return cmd
	}
	r, err := runOnce(t, rn)
	if err != nil {
		return nil, fmt.Errorf("profiling: %w", err)
	}
	rn.logf("profiled %s in %s (peak RSS %s): %s, %s", t.what, r.wall.Round(time.Millisecond), mib(r.rss), cpu, allocs)
	return []string{cpu, allocs}, nil
}

var ordinarySummaryLine = regexp.MustCompile(`^Summary: (.*)$`)

// parseOrdinarySummary is the last "Summary: ..." line of the prune's output, without the
// prefix.
func parseOrdinarySummary(stdout io.Reader) (string, error) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	summary, found := "", false
	for sc.Scan() {
		if m := ordinarySummaryLine.FindSubmatch(sc.Bytes()); m != nil {
			summary, found = string(m[1]), true
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("no line matching %q", ordinarySummaryLine)
	}
	return summary, nil
}

var (
	summaryImages  = regexp.MustCompile(`deleted (\d+) image object\(s\)`)
	summaryItems   = regexp.MustCompile(`deleted (\d+) image stream tag item\(s\)`)
	summaryStreams = regexp.MustCompile(`updated (\d+) image stream\(s\)`)
)

// summaryCounts reads the counts of the prune's summary (oc's wording; a count not said is 0).
func summaryCounts(summary string) OrdinaryExpect {
	n := func(re *regexp.Regexp) int {
		if m := re.FindStringSubmatch(summary); m != nil {
			v, _ := strconv.Atoi(m[1])
			return v
		}
		return 0
	}
	return OrdinaryExpect{DeletedImages: n(summaryImages), DeletedItems: n(summaryItems), UpdatedStreams: n(summaryStreams)}
}

// kubeCountingProxy puts a counting proxy (ClassifyKube) in front of the kube-apiserver, over
// TLS (see StartCountingProxyTLS), and returns its certificate.
func kubeCountingProxy(kube *harness.KubeAPIServer) (*CountingProxy, []byte, error) {
	ca, err := os.ReadFile(kube.CAFile)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	upstream, err := url.Parse(kube.URL)
	if err != nil {
		return nil, nil, err
	}
	return StartCountingProxyTLS(
		upstream,
		&http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64},
		ClassifyKube,
	)
}

// prunerKubeconfig writes a kubeconfig that reaches the cluster through the proxy as the
// service account pruner, with a fresh token (they last an hour; a full run can take longer).
func prunerKubeconfig(
	ctx context.Context,
	cluster *harness.Cluster,
	pruner rbacv1.Subject,
	proxy *CountingProxy,
	proxyCA []byte,
	path string,
) (string, error) {
	token, err := cluster.CreateServiceAccountToken(ctx, pruner.Namespace, pruner.Name)
	if err != nil {
		return "", err
	}
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: counting, cluster: {server: %q, certificate-authority-data: %q}}]
users: [{name: pruner, user: {token: %q}}]
contexts: [{name: c, context: {cluster: counting, user: pruner}}]
current-context: c
`, proxy.URL, base64.StdEncoding.EncodeToString(proxyCA), token)
	return path, os.WriteFile(path, []byte(content), 0o600)
}

// Load creates the dataset's objects in cluster, workers at once: the namespaces (each with
// the service account "default" that pods need without a controller manager) first, then
// the Images and streams (straight to the image API server, as the hard prune's bench does),
// the pods (each not Pending given its phase through the status subresource, as a kubelet
// would) and the other referrers (through the kube-apiserver). It returns the objects created.
func (ds *OrdinaryDataset) Load(
	ctx context.Context,
	cluster *harness.Cluster,
	workers int,
	logf func(string, ...any),
) (int, error) {
	kubeCfg, err := cluster.RESTConfig()
	if err != nil {
		return 0, err
	}
	kubeCfg.QPS, kubeCfg.Burst = -1, 0 // no client-side throttling: the workers bound the load
	kubeCfg.WarningHandler = rest.NoWarnings{}
	// Protobuf, as controllers write pods.
	kubeCfg.ContentType = "application/vnd.kubernetes.protobuf"
	kube, err := kubernetes.NewForConfig(kubeCfg)
	if err != nil {
		return 0, err
	}
	imageCfg, err := clientcmd.BuildConfigFromFlags("", cluster.ImageAPI.Kubeconfig)
	if err != nil {
		return 0, err
	}
	imageCfg.QPS, imageCfg.Burst = -1, 0
	images, err := imageapi.NewClient(imageCfg)
	if err != nil {
		return 0, err
	}
	var created atomic.Int64
	total := ds.Objects()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		start := time.Now()
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				n := created.Load()
				logf("loading: %d of %d objects (%.0f/s)", n, total, float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	opts := metav1.CreateOptions{}
	ignoreExists := func(err error) error {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, ns := range ds.namespaces {
		g.Go(func() error {
			_, err := kube.CoreV1().Namespaces().Create(gctx,
				&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, opts)
			if err := ignoreExists(err); err != nil {
				return fmt.Errorf("creating namespace %s: %w", ns, err)
			}
			_, err = kube.CoreV1().ServiceAccounts(ns).Create(gctx,
				&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, opts)
			if err := ignoreExists(err); err != nil {
				return fmt.Errorf("creating service account %s/default: %w", ns, err)
			}
			created.Add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return int(created.Load()), err
	}

	now := time.Now()
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for j := range ds.images {
		g.Go(func() error {
			if _, err := images.Images().Create(gctx, ds.images[j].apiImage(j), opts); err != nil {
				return fmt.Errorf("creating Image %s: %w", ds.images[j].manifest, err)
			}
			created.Add(1)
			return nil
		})
	}
	for _, st := range ds.streams {
		g.Go(func() error {
			if _, err := images.ImageStreams(st.ns).Create(gctx, ds.apiStream(st, now), opts); err != nil {
				return fmt.Errorf("creating ImageStream %s/%s: %w", st.ns, st.name, err)
			}
			created.Add(1)
			return nil
		})
	}
	for i := range ds.pods {
		g.Go(func() error {
			p := &ds.pods[i]
			pod, err := kube.CoreV1().Pods(p.ns).Create(gctx, p.apiPod(i), opts)
			if err != nil {
				return fmt.Errorf("creating pod %s/%s: %w", p.ns, p.name, err)
			}
			if p.phase != corev1.PodPending {
				pod.Status = p.podStatus(pod, now)
				if _, err := kube.CoreV1().Pods(p.ns).UpdateStatus(gctx, pod, metav1.UpdateOptions{}); err != nil {
					return fmt.Errorf("setting the status of pod %s/%s: %w", p.ns, p.name, err)
				}
			}
			created.Add(1)
			return nil
		})
	}
	// The other kinds are few: the harness's helper makes them as the e2e tests have them.
	for _, o := range ds.others {
		g.Go(func() error {
			if err := cluster.CreateReferrer(gctx, o.ns, o.kind, o.name, o.spec); err != nil {
				return err
			}
			created.Add(1)
			return nil
		})
	}
	err = g.Wait()
	return int(created.Load()), err
}

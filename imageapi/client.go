package imageapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	appsclient "github.com/openshift/client-go/apps/clientset/versioned/typed/apps/v1"
	buildclient "github.com/openshift/client-go/build/clientset/versioned/typed/build/v1"
	"github.com/sirupsen/logrus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// DefaultRequestTimeout bounds each attempt of a request to the image API.
const DefaultRequestTimeout = time.Minute

// requestAttempts bounds the tries of a read that got no answer in time: as many as the
// restarts of a listing whose continue token expired.
const requestAttempts = maxListAttempts

// WaitReportInterval is how often a request still waiting for its answer is logged.
var WaitReportInterval = 10 * time.Second

// ConnectOptions configures Connect.
type ConnectOptions struct {
	// Timeout bounds each attempt of each request, from sending it to reading the whole
	// answer; a read (GET) that times out is tried again, up to 3 attempts in all. Zero means
	// DefaultRequestTimeout.
	Timeout time.Duration
	// PageSize is how many objects a list request asks for; zero means DefaultPageSize.
	PageSize int64
	// Log receives, at warning level, the requests that time out and, every
	// WaitReportInterval, those still waiting; and the Lister's warnings.
	Log logrus.FieldLogger
}

// The client-side rate limit of the API clients Connect makes. client-go's default, 5 requests
// a second (burst 10), set the ordinary prune's pace whatever -num-workers said: at 10k image
// streams (a read each) and 40k Images to delete, hours of waiting with the CPU idle (the
// bench: 184 requests of a tiny run took 32.7 s for 0.5 s of CPU). The workers and the
// concurrent listings bound how many requests are under way; this bounds their rate, as for
// the registry's access reviews (registry/access), and the API server's priority and
// fairness does the rest.
const (
	clientQPS   = 100
	clientBurst = 200
)

// WithRateLimit is a copy of restCfg with the rate limit of the API clients (clientQPS,
// clientBurst) unless it sets one of its own. The serving registry's client needs it too: at
// client-go's default a push's three requests (its Image, its stream's read and update)
// queued behind the limiter after the burst, and pushes went at under 2 a second whatever
// the machine (the online prune's push-cost bench).
func WithRateLimit(restCfg *rest.Config) *rest.Config {
	restCfg = rest.CopyConfig(restCfg)
	if restCfg.QPS == 0 && restCfg.RateLimiter == nil {
		restCfg.QPS, restCfg.Burst = clientQPS, clientBurst
	}
	return restCfg
}

// Connection reads the image API, and says where it came from. For the ordinary prune it also
// reaches the objects that use images (pods and their controllers, DeploymentConfigs, Builds
// and BuildConfigs, LimitRanges) with the same credentials and the same bounded requests.
type Connection struct {
	*Lister
	// Host is the API server's address, as the kubeconfig or service account names it.
	Host string
	// Source says where the credentials came from (see RESTConfig).
	Source string
	// Kube reads pods, their controllers and LimitRanges.
	Kube kubernetes.Interface
	// Apps reads DeploymentConfigs (apps.openshift.io/v1).
	Apps appsclient.AppsV1Interface
	// Builds reads Builds and BuildConfigs (build.openshift.io/v1).
	Builds buildclient.BuildV1Interface
}

// Connect finds the credentials (see RESTConfig, configKubeconfig being the configuration's
// openshift.kubeconfig) and builds an image API client whose every request is bounded by
// opts.Timeout: an API server that accepts connections and never answers fails the request
// instead of holding the caller for ever. It is the one way the maintenance modes reach the
// image API, and the ordinary prune the rest of the cluster.
func Connect(configKubeconfig string, opts ConnectOptions) (*Connection, error) {
	restCfg, source, err := RESTConfig(configKubeconfig)
	if err != nil {
		return nil, err
	}
	restCfg = WithRateLimit(restCfg)
	restCfg.Wrap(BoundedTransport(restCfg.Host, opts))
	client, err := NewClient(restCfg)
	if err != nil {
		return nil, fmt.Errorf("creating the image API client: %w", err)
	}
	kube, err := kubernetes.NewForConfig(protobufConfig(restCfg))
	if err != nil {
		return nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	apps, err := appsclient.NewForConfig(jsonConfig(restCfg))
	if err != nil {
		return nil, fmt.Errorf("creating the apps.openshift.io client: %w", err)
	}
	builds, err := buildclient.NewForConfig(jsonConfig(restCfg))
	if err != nil {
		return nil, fmt.Errorf("creating the build.openshift.io client: %w", err)
	}
	return &Connection{
		Lister: &Lister{Client: client, PageSize: opts.PageSize, Log: opts.Log},
		Host:   restCfg.Host,
		Source: source,
		Kube:   kube,
		Apps:   apps,
		Builds: builds,
	}, nil
}

// BoundedTransport returns a wrapper of an image API client's transport (for
// rest.Config.Wrap) that applies opts to every request to host; see Connect. It reads each
// answer whole within the timeout (client-go reads it whole anyway), so it is not for watches.
func BoundedTransport(host string, opts ConnectOptions) func(http.RoundTripper) http.RoundTripper {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	log := opts.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	return func(next http.RoundTripper) http.RoundTripper {
		return &boundedTransport{next: next, host: host, timeout: timeout, log: log, pages: map[string]int{}}
	}
}

// ErrNoAnswer is wrapped by the error of a request that got no complete answer within the
// timeout, after every attempt.
var ErrNoAnswer = errors.New("no answer from the image API")

type boundedTransport struct {
	next    http.RoundTripper
	host    string
	timeout time.Duration
	log     logrus.FieldLogger

	mu    sync.Mutex
	pages map[string]int // the page each listing is on, by path
}

// listedResources names, in the words of the log, the collections the pruners list, by the last
// segment of their path.
var listedResources = map[string]string{
	"images":                 "images",
	"imagestreams":           "image streams",
	"pods":                   "pods",
	"replicationcontrollers": "replication controllers",
	"replicasets":            "replica sets",
	"deployments":            "deployments",
	"daemonsets":             "daemon sets",
	"statefulsets":           "stateful sets",
	"jobs":                   "jobs",
	"cronjobs":               "cron jobs",
	"deploymentconfigs":      "deployment configs",
	"builds":                 "builds",
	"buildconfigs":           "build configs",
	"limitranges":            "limit ranges",
}

// describe says what a request is for, in the words of the log: "listing images, page 3".
func (t *boundedTransport) describe(req *http.Request) string {
	if req.Method == http.MethodGet {
		path := req.URL.Path
		if what, ok := listedResources[path[strings.LastIndex(path, "/")+1:]]; ok {
			t.mu.Lock()
			defer t.mu.Unlock()
			page := 1
			if req.URL.Query().Get("continue") != "" {
				page = t.pages[path] + 1
			}
			// By path: listings of different resources, or namespaces, run at the same time.
			t.pages[path] = page
			return fmt.Sprintf("listing %s, page %d", what, page)
		}
	}
	return req.Method + " " + req.URL.Path
}

func (t *boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	what := t.describe(req)
	attempts := 1
	if req.Method == http.MethodGet || req.Method == http.MethodHead {
		// Reads are safe to repeat; a write that timed out may have been done.
		attempts = requestAttempts
	}
	for attempt := 1; ; attempt++ {
		resp, err := t.attempt(req, what, attempt, attempts)
		if err == nil || !errors.Is(err, ErrNoAnswer) || req.Context().Err() != nil {
			return resp, err
		}
		if attempt == attempts {
			tries := fmt.Sprintf("%d attempts", attempts)
			if attempts == 1 {
				tries = "not tried again: a write may have been done"
			}
			return nil, fmt.Errorf(
				"%w at %s within %s (%s), %s (-prune-api-timeout)",
				ErrNoAnswer,
				t.host,
				t.timeout,
				what,
				tries,
			)
		}
		t.log.Warnf(
			"the image API at %s did not answer within %s (%s); trying again (attempt %d of %d)",
			t.host,
			t.timeout,
			what,
			attempt+1,
			attempts,
		)
	}
}

// attempt sends req once and reads the whole answer, both within the timeout.
func (t *boundedTransport) attempt(req *http.Request, what string, attempt, attempts int) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	defer cancel()
	stop := t.watch(what, attempt, attempts)
	defer stop()
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err == nil {
		var body []byte
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			resp.Body = io.NopCloser(bytes.NewReader(body))
			return resp, nil
		}
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && req.Context().Err() == nil {
		return nil, ErrNoAnswer
	}
	return nil, err
}

// watch logs, every WaitReportInterval until stopped, that the request is still waiting.
func (t *boundedTransport) watch(what string, attempt, attempts int) (stop func()) {
	start := time.Now()
	done := make(chan struct{})
	interval := WaitReportInterval // read here: the goroutine may start after stop
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				t.log.Warnf(
					"still waiting for the image API at %s (%s): %s so far, attempt %d of %d, each given %s (-prune-api-timeout)",
					t.host,
					what,
					time.Since(start).Round(time.Second),
					attempt,
					attempts,
					t.timeout,
				)
			}
		}
	}()
	return func() { close(done) }
}

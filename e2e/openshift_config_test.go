package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardprune/image-registry/internal/testutil"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/config"
	"github.com/hardprune/image-registry/e2e/harness"
)

// stockConfig is the configuration file OpenShift's registry image ships.
const stockConfig = testutil.OpenShiftStockConfig

// serverAddr is what the registry operator sets REGISTRY_OPENSHIFT_SERVER_ADDR to.
const serverAddr = "image-registry.openshift-image-registry.svc:5000"

// operatorEnv is the environment the registry operator gives the registry's container for
// filesystem storage at dir (REGISTRY_HTTP_ADDR aside, which the harness picks; TLS aside),
// plus the image API's kubeconfig, which in a pod is the service account.
func operatorEnv(dir, kubeconfig string) []string {
	return []string{
		"REGISTRY_STORAGE=filesystem",
		"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=" + dir,
		"REGISTRY_HTTP_NET=tcp",
		"REGISTRY_HTTP_SECRET=3f1c0a8e5b7d9f2a4c6e8b0d1f3a5c7e",
		"REGISTRY_LOG_LEVEL=info",
		"REGISTRY_OPENSHIFT_QUOTA_ENABLED=true",
		"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=inmemory",
		"REGISTRY_STORAGE_DELETE_ENABLED=true",
		"REGISTRY_HEALTH_STORAGEDRIVER_ENABLED=true",
		"REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL=10s",
		"REGISTRY_HEALTH_STORAGEDRIVER_THRESHOLD=1",
		"REGISTRY_OPENSHIFT_METRICS_ENABLED=true",
		"REGISTRY_OPENSHIFT_SERVER_ADDR=" + serverAddr,
		"KUBECONFIG=" + kubeconfig,
	}
}

// The registry starts from OpenShift's stock configuration and the operator's environment,
// with no change by hand, as a service account with the README's role; it authenticates (auth:
// openshift), serves a push made with a token, and records it as OpenShift's registry does.
func TestOpenShiftStockConfiguration(t *testing.T) {
	w := newAuthWorld(t)
	e := w.env
	ctx := context.Background()
	// The hard prune, run in the registry's pod, acts as the same account: step 4 of the
	// procedure grants it system:image-pruner.
	registry := harness.KubeServiceAccount("openshift-image-registry", "registry")
	if err := w.cluster.BindImagePruner(ctx, registry); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(stockConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	env := operatorEnv(e.storageDir, e.kubeconfig)
	reg, err := harness.StartRegistryFromFile(context.Background(), dir, nil, configPath, env)
	if err != nil {
		t.Fatal(err)
	}
	e.reg, e.regEnv = reg, env
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("registry log (%s):\n%s", reg.LogPath, harness.LogTail(reg.LogPath, 60))
		}
		_ = reg.Stop()
	})

	// auth: openshift {} is in effect, with the file's realm.
	status, header, _ := w.call(http.MethodPost, "/v2/ns/app/blobs/uploads/", "")
	if challenge := `Bearer realm="http://` + reg.Host + `/openshift/token"`; status != http.StatusUnauthorized ||
		header.Get("WWW-Authenticate") != challenge {
		t.Errorf("a push without credentials: %d, WWW-Authenticate %q", status, header.Get("WWW-Authenticate"))
	}
	status, header, _ = w.call(http.MethodGet, "/v2/", "Bearer forged")
	if want := `Basic realm="openshift",error="access denied"`; status != http.StatusUnauthorized ||
		header.Get("WWW-Authenticate") != want {
		t.Errorf("a forged token: %d, WWW-Authenticate %q", status, header.Get("WWW-Authenticate"))
	}
	if status, _, _ := w.call(http.MethodGet, "/healthz", ""); status != http.StatusOK {
		t.Errorf("/healthz: %d", status)
	}

	e.auth = w.basic(pusher)
	img := image(t, "stock", "layer one", "layer two", "layer one")
	dgst := e.mustPush("ns/app:v1", img)
	if err := e.pullsIdentical("ns/app:v1", img); err != nil {
		t.Fatal(err)
	}

	got, err := e.images.Images().Get(ctx, dgst.String(), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the pushed Image: %v", err)
	}
	ref := serverAddr + "/ns/app@" + dgst.String()
	if got.DockerImageReference != ref {
		t.Errorf("dockerImageReference %q, want %q", got.DockerImageReference, ref)
	}
	if got.Annotations["openshift.io/image.managed"] != "true" {
		t.Errorf("annotations %v: not managed", got.Annotations)
	}
	var meta struct {
		ID   string `json:"Id"`
		Size int64  `json:"Size"`
	}
	if err := json.Unmarshal(got.DockerImageMetadata.Raw, &meta); err != nil {
		t.Fatalf("dockerImageMetadata %s: %v", got.DockerImageMetadata.Raw, err)
	}
	cfgName, _ := img.ConfigName()
	if meta.ID != cfgName.String() || meta.Size != openShiftSize(t, img) {
		t.Errorf("dockerImageMetadata Id %s, Size %d; want %s, %d", meta.ID, meta.Size, cfgName, openShiftSize(t, img))
	}

	is, err := e.images.ImageStreams("ns").Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := serverAddr + "/ns/app"; is.Status.DockerImageRepository != want {
		t.Errorf("status.dockerImageRepository %q, want %q", is.Status.DockerImageRepository, want)
	}
	if h := tagHistory(is, "v1"); len(h) != 1 || h[0] != dgst.String() ||
		is.Status.Tags[0].Items[0].DockerImageReference != ref {
		t.Errorf("tag v1: %+v", is.Status.Tags)
	}

	log, err := os.ReadFile(reg.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	want := config.NotInEffectWarning + "openshift.metrics.enabled=true, openshift.quota.enabled=true, " +
		"openshift.quota.cachettl=1m0s, openshift.cache.blobrepositoryttl=10m0s, " +
		"openshift.pullthrough.enabled=true, openshift.pullthrough.mirror=true"
	if strings.Count(string(log), want) != 1 {
		t.Errorf("the registry's log does not have this warning once: %q", want)
	}
	for _, unwanted := range []string{"Ignoring unrecognized environment variable", "panic"} {
		if strings.Contains(string(log), unwanted) {
			t.Errorf("the registry's log has %q", unwanted)
		}
	}

	// The hard prune, run in the registry's pod, reads the same file and environment.
	res := e.prune(nil, "-prune=check")
	if res.ExitCode != 0 || !strings.Contains(res.Stdout, "Would delete 0 blobs") {
		t.Errorf("-prune=check: exit %d\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
}

// openShiftSize is an image's size as OpenShift computes it: the config blob plus each distinct
// layer once.
func openShiftSize(t *testing.T, img v1.Image) int64 {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	size := m.Config.Size
	seen := map[v1.Hash]bool{m.Config.Digest: true}
	for _, l := range m.Layers {
		if !seen[l.Digest] {
			seen[l.Digest] = true
			size += l.Size
		}
	}
	return size
}

// Configuration the registry cannot honour stops it at once, with one line and exit code 1.
func TestOpenShiftConfigurationRefused(t *testing.T) {
	requireRegistryBinary(t)
	for _, tt := range []struct {
		name, config string
		env          []string
		want         string
	}{
		{
			name:   "version 2.0",
			config: strings.Replace(stockConfig, "version: 1.0", "version: 2.0", 1),
			want:   `openshift.version "2.0" is not supported: this registry reads version 1.0`,
		},
		{
			name:   "a variable that is not a boolean",
			config: stockConfig,
			env:    []string{"REGISTRY_OPENSHIFT_QUOTA_ENABLED=sometimes"},
			want:   "REGISTRY_OPENSHIFT_QUOTA_ENABLED",
		},
		{
			name:   "an address with a scheme",
			config: stockConfig,
			env:    []string{"REGISTRY_OPENSHIFT_SERVER_ADDR=https://registry.example.com"},
			want:   "openshift.server.addr",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			configPath := filepath.Join(t.TempDir(), "config.yml")
			if err := os.WriteFile(configPath, []byte(tt.config), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := harness.RunPrune(ctx, tt.env, configPath)
			if err != nil {
				t.Fatal(err)
			}
			stderr := strings.TrimRight(res.Stderr, "\n")
			if res.ExitCode != 1 || strings.Contains(stderr, "\n") || !strings.HasPrefix(stderr, "error: ") ||
				!strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and one line with %q", res.ExitCode, res.Stderr, tt.want)
			}
		})
	}
}

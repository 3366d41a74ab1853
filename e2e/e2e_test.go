// Package e2e runs the maintenance window end to end against real processes: etcd, the image
// API server, the registry binary serving, a real client pushing and pulling, and the same
// binary pruning.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	imageclient "github.com/openshift/client-go/image/clientset/versioned/typed/image/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/imageapi"
	"github.com/hardprune/image-registry/storage"
)

// env is one test's running world.
type env struct {
	t *testing.T
	// api is the image API server itself; kubeconfig reaches the image API as the registry,
	// the prunes and the test's images client do: the image API server's own kubeconfig
	// (newEnv), or the kube-apiserver's in front of it (newClusterEnv).
	api        *harness.ImageAPIServer
	kubeconfig string
	images     imageclient.ImageV1Interface
	storageDir string
	// storage and driver are set for storage other than the filesystem at storageDir (see
	// newS3Env): the registry's storage section, and distribution's driver for the checks.
	storage string
	driver  storagedriver.StorageDriver
	reg     *harness.Registry
	// regEnv is the registry's environment; a prune run inside its pod inherits it.
	regEnv []string
	// regConfig is extra top-level registry configuration (harness.RegistryOptions.Config),
	// e.g. authConfig.
	regConfig string
	// auth is who push and pullsIdentical act as; anonymous when nil.
	auth authn.Authenticator
	// transport, when set, is how push and pullsIdentical reach the registry (one trusting the
	// CA of a registry served over TLS).
	transport http.RoundTripper
	// callToken is the token call sends as oc adm prune does (the Basic password); a
	// placeholder when empty, for a registry without auth.
	callToken string
}

// authConfig turns on the openshift access controller.
const authConfig = "auth:\n  openshift: {}\n"

// newEnv starts etcd and an image API server that lets everyone in.
func newEnv(t *testing.T) *env {
	t.Helper()
	requireRegistryBinary(t)
	return newEnvWith(t, harness.StartImageAPIT(t))
}

func requireRegistryBinary(t *testing.T) {
	t.Helper()
	if _, err := harness.DockerRegistryBinary(); err != nil {
		if os.Getenv("E2E_REQUIRED") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// newEnvWith uses a running image API server; the registry acts with its kubeconfig.
func newEnvWith(t *testing.T, api *harness.ImageAPIServer) *env {
	t.Helper()
	return newEnvAt(t, api, api.Kubeconfig)
}

// newClusterEnv uses a running cluster: the registry, the prunes and the test reach the image
// API through the kube-apiserver with its admin kubeconfig, as in OpenShift.
func newClusterEnv(t *testing.T, c *harness.Cluster) *env {
	t.Helper()
	requireRegistryBinary(t)
	return newEnvAt(t, c.ImageAPI, c.Kubeconfig)
}

func newEnvAt(t *testing.T, api *harness.ImageAPIServer, kubeconfig string) *env {
	t.Helper()
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := imageapi.NewClient(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, api: api, kubeconfig: kubeconfig, images: client, storageDir: t.TempDir()}
}

// startRegistry (re)starts the registry over the shared storage, with extra environment
// (which prune runs then inherit, as they would inside the registry's pod).
func (e *env) startRegistry(extraEnv ...string) {
	e.t.Helper()
	e.stopRegistry()
	reg, err := harness.StartRegistry(context.Background(), e.t.TempDir(), nil, harness.RegistryOptions{
		Kubeconfig: e.kubeconfig, StorageDir: e.storageDir, Storage: e.storage, Env: extraEnv, Config: e.regConfig,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.reg = reg
	e.regEnv = extraEnv
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("registry log (%s):\n%s", reg.LogPath, harness.LogTail(reg.LogPath, 60))
		}
		_ = reg.Stop()
	})
}

func (e *env) stopRegistry() {
	if e.reg != nil {
		if err := e.reg.Stop(); err != nil {
			e.t.Logf("stopping the registry: %v", err)
		}
		e.reg = nil
	}
}

func (e *env) ref(repoAndTag string) name.Reference {
	e.t.Helper()
	ref, err := name.ParseReference(e.reg.Host+"/"+repoAndTag, name.Insecure)
	if err != nil {
		e.t.Fatal(err)
	}
	return ref
}

func (e *env) push(repoAndTag string, img v1.Image) error {
	return remote.Write(e.ref(repoAndTag), img, e.remoteOptions()...)
}

// remoteAuth is the client option that acts as e.auth.
func (e *env) remoteAuth() remote.Option {
	if e.auth == nil {
		return remote.WithAuth(authn.Anonymous)
	}
	return remote.WithAuth(e.auth)
}

// remoteOptions act as e.auth, through e.transport when set.
func (e *env) remoteOptions() []remote.Option {
	opts := []remote.Option{e.remoteAuth()}
	if e.transport != nil {
		opts = append(opts, remote.WithTransport(e.transport))
	}
	return opts
}

func (e *env) mustPush(repoAndTag string, img v1.Image) v1.Hash {
	e.t.Helper()
	if err := e.push(repoAndTag, img); err != nil {
		e.t.Fatalf("pushing %s: %v", repoAndTag, err)
	}
	d, err := img.Digest()
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) prune(extraEnv []string, args ...string) harness.PruneResult {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := append(append([]string(nil), e.regEnv...), extraEnv...)
	res, err := harness.RunPrune(ctx, env, append(args, e.reg.ConfigPath)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// blobPath is where the filesystem driver keeps a blob.
func (e *env) blobPath(d v1.Hash) string {
	return filepath.Join(e.storageDir, "docker/registry/v2/blobs", d.Algorithm, d.Hex[:2], d.Hex, "data")
}

func (e *env) blobExists(d v1.Hash) bool {
	if e.driver != nil {
		_, ok := e.driverBlobSize(d)
		return ok
	}
	_, err := os.Stat(e.blobPath(d))
	return err == nil
}

// blobSize is the stored size of a blob, which must exist.
func (e *env) blobSize(d v1.Hash) int64 {
	e.t.Helper()
	if e.driver != nil {
		size, ok := e.driverBlobSize(d)
		if !ok {
			e.t.Fatalf("blob %s is not stored", d)
		}
		return size
	}
	return fileSize(e.t, e.blobPath(d))
}

// snapshot lists every file in storage with its size, to prove that a dry run changes nothing.
func (e *env) snapshot() string {
	e.t.Helper()
	if e.driver != nil {
		return e.driverSnapshot()
	}
	var lines []string
	err := filepath.Walk(e.storageDir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if rel := strings.TrimPrefix(p, e.storageDir); !info.IsDir() && !coordination(rel) {
			lines = append(lines, fmt.Sprintf("%s %d", rel, info.Size()))
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// coordination tells whether a storage path (from the storage root) is one of the objects
// prunes and serving registries coordinate through (the lock, the marker, the online
// protocol's adverts, uses and claims), not registry data: a snapshot leaves them out, since
// a registry rewrites its advert while it serves.
func coordination(p string) bool {
	return strings.HasPrefix(path.Clean("/"+p), path.Dir(storage.PruneLockPath())+"/")
}

// image builds a schema 2 image from layer contents; the label makes its config unique.
func image(t *testing.T, label string, layers ...string) v1.Image {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		var err error
		img, err = mutate.AppendLayers(img, static.NewLayer([]byte(l), types.DockerLayer))
		if err != nil {
			t.Fatal(err)
		}
	}
	img, err := mutate.Config(img, v1.Config{Labels: map[string]string{"e2e": label}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// blobsOf returns the digests an image stores: manifest, config, layers.
func blobsOf(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	out := []v1.Hash{d, cfg}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		ld, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ld)
	}
	return out
}

// pullsIdentical pulls an image and checks that the manifest and every blob are byte for byte
// what was pushed.
func (e *env) pullsIdentical(repoAndRef string, want v1.Image) error {
	got, err := remote.Image(e.ref(repoAndRef), e.remoteOptions()...)
	if err != nil {
		return fmt.Errorf("pulling %s: %w", repoAndRef, err)
	}
	wantRaw, _ := want.RawManifest()
	gotRaw, err := got.RawManifest()
	if err != nil || !bytes.Equal(gotRaw, wantRaw) {
		return fmt.Errorf("%s: manifest differs (%v)", repoAndRef, err)
	}
	wantCfg, _ := want.RawConfigFile()
	gotCfg, err := got.RawConfigFile()
	if err != nil || !bytes.Equal(gotCfg, wantCfg) {
		return fmt.Errorf("%s: config differs (%v)", repoAndRef, err)
	}
	layers, err := got.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, _ := l.Digest()
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("%s: layer %s: %w", repoAndRef, d, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("%s: reading layer %s: %w", repoAndRef, d, err)
		}
		if hex.EncodeToString(h.Sum(nil)) != d.Hex {
			return fmt.Errorf("%s: layer %s: content differs", repoAndRef, d)
		}
	}
	return nil
}

func hashesToStrings(hs []v1.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	sort.Strings(out)
	return out
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

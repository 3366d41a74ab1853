package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/redis/go-redis/v9"

	"github.com/hardprune/image-registry/e2e/harness"
)

// cacheSetup is how the registries of a cache test are configured.
type cacheSetup struct {
	storage string   // the storage section's driver part plus its cache: part
	config  string   // extra top-level configuration (the redis: section)
	env     []string // environment of every registry and prune
}

func inMemoryCacheSetup(e *env) cacheSetup {
	return cacheSetup{
		storage: e.storageYAML() + "cache:\n  blobdescriptor: inmemory\n",
		// Replicas look at the prune marker every second (the default is 5s).
		env: []string{"REGISTRY_OPENSHIFT_CACHE_POLLINTERVAL=1s"},
	}
}

func redisCacheSetup(e *env, r *harness.Redis) cacheSetup {
	return cacheSetup{
		storage: e.storageYAML() + "cache:\n  blobdescriptor: redis\n",
		config:  r.ConfigYAML(),
	}
}

// storageYAML is the storage section's driver part of e's storage: e.storage (S3, see
// newS3Env), else the filesystem at e.storageDir.
func (e *env) storageYAML() string {
	if e.storage != "" {
		return e.storage
	}
	return harness.FilesystemStorageYAML(e.storageDir)
}

// startRegistryWith is env.startRegistry with a cache setup: it replaces e.reg, whose
// configuration and environment later prune runs use.
func (e *env) startRegistryWith(s cacheSetup, extraEnv ...string) {
	e.t.Helper()
	e.stopRegistry()
	e.reg = e.startReplica(s, extraEnv...)
	e.regEnv = append(append([]string(nil), s.env...), extraEnv...)
}

// startReplica starts one more registry process over the same storage, stopped at the end.
func (e *env) startReplica(s cacheSetup, extraEnv ...string) *harness.Registry {
	e.t.Helper()
	reg, err := harness.StartRegistry(context.Background(), e.t.TempDir(), nil, harness.RegistryOptions{
		Kubeconfig: e.kubeconfig, Storage: s.storage, Config: s.config,
		Env: append(append([]string(nil), s.env...), extraEnv...),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("registry log (%s):\n%s", reg.LogPath, harness.LogTail(reg.LogPath, 60))
		}
		_ = reg.Stop()
	})
	return reg
}

// headBlob is the status of HEAD /v2/<repo>/blobs/<digest>: what a client asks before it
// decides to upload a layer.
func headBlob(t *testing.T, host, repo string, d v1.Hash) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodHead, fmt.Sprintf("http://%s/v2/%s/blobs/%s", host, repo, d), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// headsAnswered lists the status codes the registry logged for HEAD requests on a blob.
func headsAnswered(t *testing.T, reg *harness.Registry, repo string, d v1.Hash) []string {
	t.Helper()
	data, err := os.ReadFile(reg.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	status := regexp.MustCompile(`http\.response\.status=(\d+)`)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "http.request.method=HEAD") &&
			strings.Contains(line, "/v2/"+repo+"/blobs/"+d.String()) {
			if m := status.FindStringSubmatch(line); m != nil {
				out = append(out, m[1])
			}
		}
	}
	return out
}

// softDelete is the ordinary prune's part: the Image object goes and the tag history no longer
// names it, while storage keeps every blob.
func softDelete(t *testing.T, e *env, namespace, stream, tag string, d v1.Hash) {
	t.Helper()
	softDeleteHistory(t, e, namespace, stream, tag, d)
	mustDeleteImage(t, e, d)
}

var cacheLine = regexp.MustCompile(`(?m)^(Would invalidate|Invalidated) (\d+) cache entries\n\z`)

// TestPruneInvalidatesRedisCache: the Redis cache outlives every registry process, so without
// the prune's invalidation the registry, even restarted, would tell a client that pushes the
// same image again that the pruned layers are there, the client would skip them, and the
// image would not pull.
func TestPruneInvalidatesRedisCache(t *testing.T) {
	e := newEnv(t)
	rs := harness.StartRedisT(t)
	setup := redisCacheSetup(e, rs)
	e.startRegistryWith(setup)
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rc.Close()

	img := image(t, "redis-cached", "redis-layer-one", "redis-layer-two")
	d := e.mustPush("ns/cached:v1", img)
	e.mustPush("ns/keep:v1", image(t, "redis-keep", "redis-kept-layer")) // a prune never empties storage
	if err := e.pullsIdentical("ns/cached:v1", img); err != nil {
		t.Fatal(err)
	}
	blobs := blobsOf(t, img)
	layer := blobs[2]
	// The registry cached what it served, in Redis under distribution's keys.
	if n, err := rc.Exists(ctx, "blobs::"+layer.String(), "repository::ns/cached::blobs::"+layer.String()).Result(); err != nil ||
		n != 2 {
		t.Fatalf("the layer is not in the Redis cache (%d keys, %v)", n, err)
	}

	softDelete(t, e, "ns", "cached", "v1", d)

	e.startRegistryWith(setup, harness.ReadOnlyEnv)
	res := e.prune(nil, "-prune=check", noGrace)
	m := cacheLine.FindStringSubmatch(res.Stdout)
	if res.ExitCode != 0 || m == nil || m[1] != "Would invalidate" || m[2] == "0" ||
		!strings.Contains(res.Stdout, "Would delete 0 uploads (0 B)\nWould invalidate") ||
		!strings.HasPrefix(res.Stdout, fmt.Sprintf("Would delete %d blobs\n", len(blobs))) {
		t.Fatalf("check: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	wouldInvalidate := m[2]

	res = e.prune(nil, "-prune=delete", noGrace, anyShare)
	m = cacheLine.FindStringSubmatch(res.Stdout)
	if res.ExitCode != 0 || m == nil || m[1] != "Invalidated" || m[2] != wouldInvalidate ||
		!strings.Contains(res.Stdout, "Deleted 0 uploads (0 B)\nInvalidated") ||
		!strings.HasPrefix(res.Stdout, fmt.Sprintf("Deleted %d blobs\n", len(blobs))) {
		t.Errorf(
			"delete (check said %s entries): exit %d\n%s\n%s",
			wouldInvalidate,
			res.ExitCode,
			res.Stdout,
			res.Stderr,
		)
	}
	t.Logf("delete run:\n%s", res.Stdout)
	for _, h := range blobs {
		if e.blobExists(h) {
			t.Fatalf("blob %s survived the prune", h)
		}
	}

	// Back to read-write, the same Redis: nothing claims the pruned blobs.
	e.startRegistryWith(setup)
	for _, h := range blobs {
		if code := headBlob(t, e.reg.Host, "ns/cached", h); code != http.StatusNotFound {
			t.Errorf("HEAD of pruned blob %s after the prune: %d, want 404", h, code)
		}
	}
	if keys, err := rc.Keys(ctx, "*"+layer.Hex+"*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("Redis keys of the pruned layer left: %v (%v)", keys, err)
	}

	// The same image again: the client must upload the layers, and the image pulls.
	e.mustPush("ns/cached:v1", img)
	for _, l := range blobs[2:] {
		heads := headsAnswered(t, e.reg, "ns/cached", l)
		if len(heads) == 0 || heads[len(heads)-1] != "404" {
			t.Errorf("the push's HEAD on layer %s was answered %v, want 404", l, heads)
		}
	}
	if err := e.pullsIdentical("ns/cached:v1", img); err != nil {
		t.Fatalf("after pushing again: %v", err)
	}
}

// TestPruneResetsInMemoryCache: a replica with the in-memory cache keeps running across the
// prune (the one that serves reads while the registry is read-only); within seconds of the
// prune it stops claiming the pruned blobs. Then the image is pushed again and pulls.
func TestPruneResetsInMemoryCache(t *testing.T) {
	e := newEnv(t)
	setup := inMemoryCacheSetup(e)
	e.startRegistryWith(setup)

	img := image(t, "mem-cached", "mem-layer-one", "mem-layer-two")
	d := e.mustPush("ns/mem:v1", img)
	e.mustPush("ns/keep:v1", image(t, "mem-keep", "mem-kept-layer")) // a prune never empties storage
	blobs := blobsOf(t, img)

	// The replica serves the image before the prune, so its cache holds every blob.
	replica := e.startReplica(setup, harness.ReadOnlyEnv)
	onReplica := *e
	onReplica.reg = replica
	if err := onReplica.pullsIdentical("ns/mem:v1", img); err != nil {
		t.Fatal(err)
	}
	for _, h := range blobs {
		if code := headBlob(t, replica.Host, "ns/mem", h); code != http.StatusOK {
			t.Fatalf("HEAD of %s on the replica before the prune: %d", h, code)
		}
	}

	softDelete(t, e, "ns", "mem", "v1", d)
	e.startRegistryWith(setup, harness.ReadOnlyEnv)
	res := e.prune(nil, "-prune=delete", noGrace, anyShare)
	if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, fmt.Sprintf("Deleted %d blobs\n", len(blobs))) {
		t.Fatalf("delete: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if cacheLine.MatchString(res.Stdout) {
		t.Errorf("a cache line without Redis:\n%s", res.Stdout)
	}
	pruned := time.Now()
	for _, h := range blobs {
		if e.blobExists(h) {
			t.Fatalf("blob %s survived the prune", h)
		}
	}

	// The replica, never restarted, drops its cache within seconds.
	deadline := pruned.Add(10 * time.Second)
	for {
		var claimed []string
		for _, h := range blobs {
			if code := headBlob(t, replica.Host, "ns/mem", h); code != http.StatusNotFound {
				claimed = append(claimed, fmt.Sprintf("%s: %d", h, code))
			}
		}
		if len(claimed) == 0 {
			t.Logf(
				"the replica stopped claiming the pruned blobs %s after the prune",
				time.Since(pruned).Round(100*time.Millisecond),
			)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after the prune the replica still claims pruned blobs:\n%s", strings.Join(claimed, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := onReplica.pullsIdentical("ns/mem@"+d.String(), img); err == nil {
		t.Error("the pruned image still pulls from the replica")
	}

	// Back to read-write; the same image again uploads its layers, and pulls from both.
	e.startRegistryWith(setup)
	for _, h := range blobs {
		if code := headBlob(t, e.reg.Host, "ns/mem", h); code != http.StatusNotFound {
			t.Errorf("HEAD of pruned blob %s before pushing again: %d, want 404", h, code)
		}
	}
	e.mustPush("ns/mem:v1", img)
	for _, l := range blobs[2:] {
		heads := headsAnswered(t, e.reg, "ns/mem", l)
		if len(heads) == 0 || heads[len(heads)-1] != "404" {
			t.Errorf("the push's HEAD on layer %s was answered %v, want 404", l, heads)
		}
	}
	if err := e.pullsIdentical("ns/mem:v1", img); err != nil {
		t.Fatalf("after pushing again: %v", err)
	}
	if err := onReplica.pullsIdentical("ns/mem:v1", img); err != nil {
		t.Fatalf("after pushing again, from the replica: %v", err)
	}
}

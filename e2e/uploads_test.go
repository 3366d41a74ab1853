package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/e2e/harness"
)

// startUpload begins a blob upload and sends part of it, as a client that died mid-push does.
func (e *env) startUpload(t *testing.T, repo string) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://%s/v2/%s/blobs/uploads/", e.reg.Host, repo), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("starting an upload: %s", resp.Status)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = "http://" + e.reg.Host + loc
	}
	req, _ := http.NewRequest(http.MethodPatch, loc, bytes.NewReader(bytes.Repeat([]byte("x"), 4096)))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("sending upload data: %s", resp.Status)
	}
}

// age sets the modification time of everything below dir back by d.
func age(t *testing.T, dir string, d time.Duration) {
	t.Helper()
	when := time.Now().Add(-d)
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, when, when)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStaleUploadsAndLayerOnlyRepositories: unfinished uploads past the purge age go and are
// counted; a repository that never received a manifest is seen and pruned, not skipped.
func TestStaleUploadsAndLayerOnlyRepositories(t *testing.T) {
	e := newEnv(t)
	e.startRegistry()
	e.mustPush("ns/app:latest", image(t, "app", "base", "app-only"))
	e.startUpload(t, "ns/app")   // stale
	e.startUpload(t, "ns/app")   // recent
	e.startUpload(t, "ns/never") // a repository with only an upload
	uploads := filepath.Join(e.storageDir, "docker/registry/v2/repositories/ns/app/_uploads")
	entries, err := os.ReadDir(uploads)
	if err != nil || len(entries) != 2 {
		t.Fatalf("uploads: %v %v", entries, err)
	}
	age(t, filepath.Join(uploads, entries[0].Name()), 200*time.Hour)
	age(t, filepath.Join(uploads, entries[1].Name()), 2*time.Hour)
	age(t, filepath.Join(e.storageDir, "docker/registry/v2/repositories/ns/never"), 2*time.Hour)

	e.startRegistry(harness.ReadOnlyEnv)
	// The default grace period (1h) applies: the recent upload is 2h old but younger than
	// the purge age; the repository without a stream goes whole.
	res := e.prune(nil, "-prune=delete")
	if res.ExitCode != 0 {
		t.Fatalf("exit %d:\n%s", res.ExitCode, res.Stderr)
	}
	for _, want := range []string{"Deleted 1 repositories\n", "Deleted 1 uploads (4.2"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, res.Stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(uploads, entries[0].Name())); !os.IsNotExist(err) {
		t.Errorf("the stale upload is still there (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(uploads, entries[1].Name())); err != nil {
		t.Errorf("the recent upload is gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.storageDir, "docker/registry/v2/repositories/ns/never")); !os.IsNotExist(err) {
		t.Errorf("the repository that never had a manifest is still there (%v)", err)
	}
}

// TestRefusesToDeleteEverything: an image API that references nothing (the wrong cluster, an
// empty namespace filter) while storage holds blobs makes a delete run refuse.
func TestRefusesToDeleteEverything(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.startRegistry()
	d := e.mustPush("ns/app:latest", image(t, "app", "base", "app-only"))
	mustDeleteImage(t, e, d)
	if err := e.images.ImageStreams("ns").Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.startRegistry(harness.ReadOnlyEnv)
	before := e.snapshot()
	res := e.prune(nil, "-prune=delete", noGrace)
	if res.ExitCode != 1 || !strings.Contains(res.Stderr, "refusing to delete every blob") ||
		!strings.Contains(res.Stderr, "-prune-allow-delete-all") {
		t.Fatalf("exit %d:\n%s", res.ExitCode, res.Stderr)
	}
	if e.snapshot() != before {
		t.Fatal("storage changed")
	}
	res = e.prune(nil, "-prune=delete", noGrace, "-prune-allow-delete-all")
	if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "Deleted 4 blobs\n") {
		t.Fatalf("with the override: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
}

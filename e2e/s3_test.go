package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/storage"
)

// TestSeedProcedureS3 is TestSeedProcedure with the registry's storage on a real S3 server
// (versitygw), through distribution's s3 driver: the same pushes, orphans, dry run, delete
// and pulls, with every storage check made through the S3 API.
func TestSeedProcedureS3(t *testing.T) {
	seedProcedure(t, newS3Env(t))
}

// newS3Env is newEnv with the storage on a fresh versitygw bucket.
func newS3Env(t *testing.T) *env {
	t.Helper()
	if _, err := harness.VersityGWBinary(); err != nil {
		if os.Getenv("E2E_REQUIRED") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	e := newEnv(t)
	s3, err := harness.StartS3(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("versitygw log (%s):\n%s", s3.LogPath, harness.LogTail(s3.LogPath, 60))
		}
		if err := s3.Stop(); err != nil {
			t.Logf("stopping versitygw: %v", err)
		}
	})
	drv, err := storage.OpenDriver(context.Background(), configuration.Storage{"s3aws": s3.DriverParameters("")}, "")
	if err != nil {
		t.Fatalf("distribution's s3 driver for %s: %v", s3.Endpoint, err)
	}
	e.storage = s3.StorageYAML("")
	e.driver = drv
	e.storageDir = "" // nothing is stored on the local filesystem by the registry
	return e
}

// driverBlobSize stats a blob's data through the storage driver.
func (e *env) driverBlobSize(d v1.Hash) (int64, bool) {
	e.t.Helper()
	dgst := digest.NewDigestFromEncoded(digest.Algorithm(d.Algorithm), d.Hex)
	fi, err := e.driver.Stat(context.Background(), storage.BlobDataPath(dgst))
	var notFound storagedriver.PathNotFoundError
	if errors.As(err, &notFound) {
		return 0, false
	}
	if err != nil {
		e.t.Fatalf("stat of blob %s: %v", d, err)
	}
	return fi.Size(), true
}

// driverSnapshot lists every stored object with its size, through the driver's Walk.
func (e *env) driverSnapshot() string {
	e.t.Helper()
	var lines []string
	err := e.driver.Walk(context.Background(), "/", func(fi storagedriver.FileInfo) error {
		if !fi.IsDir() && !coordination(fi.Path()) {
			lines = append(lines, fmt.Sprintf("%s %d", fi.Path(), fi.Size()))
		}
		return nil
	})
	var notFound storagedriver.PathNotFoundError
	if err != nil && !errors.As(err, &notFound) {
		e.t.Fatalf("walking storage: %v", err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

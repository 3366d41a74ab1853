package registry

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/online"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// usesFailingDriver fails every write of a use record.
type usesFailingDriver struct{ driver.StorageDriver }

func (d usesFailingDriver) PutContent(ctx context.Context, p string, content []byte) error {
	if strings.HasPrefix(p, storage.OnlineUsesRootPath()+"/") {
		return errors.New("storage unreachable")
	}
	return d.StorageDriver.PutContent(ctx, p, content)
}

// inRun makes onlineReplica a replica over d that has entered a prune run, and returns the
// run's ID.
func inRun(t *testing.T, d driver.StorageDriver, timing online.Timing) string {
	t.Helper()
	quiet := logrus.New()
	quiet.SetOutput(nopWriter{})
	lock, err := storage.AcquireLock(context.Background(), d, storage.LockOptions{Settle: time.Millisecond, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lock.Release() })
	if err := lock.MarkOnline(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := &online.Replica{Driver: d, Timing: timing, Log: quiet}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !r.Active() {
		t.Fatal("the replica did not enter the run")
	}
	onlineReplica = r
	t.Cleanup(func() { onlineReplica = nil })
	return lock.Record().Owner
}

// detail is the detail of a registry error, or its message.
func detail(err error) string {
	var e errcode.Error
	if errors.As(err, &e) {
		return fmt.Sprint(e.Detail)
	}
	return err.Error()
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }

// TestManifestPutFailsWithoutItsUseRecord: a put that cannot record its uses during a run
// must not go on (the prune would not see them), and one whose blob a claim holds past the
// wait must not either.
func TestManifestPutFailsWithoutItsUseRecord(t *testing.T) {
	layer := blob("layer", 100, schema2.MediaTypeLayer)
	m := schema2Manifest(t, blob("config", 10, schema2.MediaTypeImageConfig), layer)

	inRun(t, usesFailingDriver{inmemory.New()}, online.DefaultTiming)
	ticket, err := beginManifestPut(context.Background(), "ns/app", m, "v1", nil)
	if err == nil || !strings.Contains(detail(err), "storage unreachable") {
		if ticket != nil {
			ticket.Done()
		}
		t.Errorf("a put whose use record failed: %v, want the failure", err)
	}

	d := inmemory.New()
	timing := online.DefaultTiming
	timing.ClaimWait = 50 * time.Millisecond
	run := inRun(t, d, timing)
	claim := online.EncodeClaim([]prune.Object{{Kind: prune.KindBlob, Digest: layer.Digest}})
	if err := d.PutContent(context.Background(), path.Join(storage.OnlineClaimsPath(run), "1"), claim); err != nil {
		t.Fatal(err)
	}
	ticket, err = beginManifestPut(context.Background(), "ns/app", m, "v1", nil)
	if err == nil || !strings.Contains(detail(err), online.ErrClaimed.Error()) {
		if ticket != nil {
			ticket.Done()
		}
		t.Errorf("a put whose blob a claim held past the wait: %v, want %v", err, online.ErrClaimed)
	}
}

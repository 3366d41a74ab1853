package online

// Regression tests of an adversarial review of the protocol: each comment says what used to
// go wrong.

import (
	"context"
	"errors"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"

	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// TestReplicaWaitingForAPutKeepsItsAdvert: a replica entering a run waits, inside its Run loop,
// for the puts already recording their Image. Meanwhile it neither polls nor rewrites its
// advert: after Fence it refuses every put, and after AdvertTTL the prune takes it for gone
// and starts (reads the image API) while that put has still to record its Image.
func TestReplicaWaitingForAPutKeepsItsAdvert(t *testing.T) {
	d := inmemory.New()
	r1 := startReplica(t, d, ProtocolVersion)
	startReplica(t, d, ProtocolVersion) // a second, healthy replica: the run does not need r1
	put, err := r1.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := put.Valid(); err != nil { // past (d): about to record its Image (a slow image API)
		t.Fatal(err)
	}
	c, _ := lockRun(t, d)
	started := make(chan error, 1)
	go func() { started <- c.Start(context.Background()) }()

	// Availability: the replica is fenced while it waits, though nothing is wrong with storage.
	time.Sleep(fastTiming.Drain + fastTiming.Fence + 4*fastTiming.Poll)
	if _, err := r1.Begin(); errors.Is(err, ErrFenced) {
		t.Errorf("availability: a replica waiting for a put recording its Image refuses every put: %v", err)
	}

	// Correctness: the prune must not start while that put has still to record its Image.
	select {
	case err := <-started:
		if err == nil {
			t.Errorf("correctness: the run started (and would read the image API) while a put of a replica " +
				"was still recording its Image: its advert aged out while the replica waited for the put")
		}
	case <-time.After(fastTiming.AckTimeout + fastTiming.AdvertTTL):
	}
	put.Done()
}

// TestStoppedReplicaCommitsNoPut: once its Run ends (Serve cancels it with Serve's
// own context, at SIGTERM, before reg.Shutdown drains the requests under way), the replica's
// advert is gone, so a prune waits for nothing of it; yet the puts it still serves pass Valid
// and record their Image, for up to Fence.
func TestStoppedReplicaCommitsNoPut(t *testing.T) {
	d := inmemory.New()
	r := &Replica{Driver: d, Timing: fastTiming, Log: quietLog()}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	put, err := r.Begin() // a manifest put under way at SIGTERM
	if err != nil {
		t.Fatal(err)
	}
	defer put.Done()
	cancel()
	<-done
	if adverts, _ := ReadAdverts(context.Background(), d); len(adverts) != 0 {
		t.Fatalf("adverts %v", adverts)
	}
	// A prune starts now: it sees no advert and waits for no one (with another live replica
	// it would go on; alone, it refuses for want of replicas, which is why a second one is
	// needed in the field).
	c, _ := lockRun(t, d)
	_ = c
	if err := put.Valid(); err == nil {
		t.Errorf("correctness: a put of a replica that left the protocol (advert removed, lock no longer followed) " +
			"may still record its Image while a prune runs that did not wait for it")
	}
}

// vanishingDriver lists, in the uses directory, a file being written that is gone by the
// time it is read: what the filesystem driver shows of PutContent's temporary file
// (<path>.<uuid>.tmp, renamed onto <path> when written).
type vanishingDriver struct {
	driver.StorageDriver
	usesDir string
}

func (v *vanishingDriver) List(ctx context.Context, p string) ([]string, error) {
	names, err := v.StorageDriver.List(ctx, p)
	if p == v.usesDir {
		names = append(names, path.Join(p, "r-7.0b4c.tmp"))
	}
	return names, err
}

// TestUseRecordBeingWrittenIsSkipped: a use record written at the moment the prune lists the uses
// stops the whole run (Claim fails on the vanished temporary file).
func TestUseRecordBeingWrittenIsSkipped(t *testing.T) {
	base := inmemory.New()
	startReplica(t, base, ProtocolVersion)
	c, _ := lockRun(t, base)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Driver = &vanishingDriver{StorageDriver: base, usesDir: storage.OnlineUsesPath(c.Run)}
	if err := base.PutContent(context.Background(), path.Join(storage.OnlineUsesPath(c.Run), "r-1"), EncodeUses([]Use{{Repository: "ns/app"}})); err != nil {
		t.Fatal(err)
	}
	_, release, err := c.Claim(context.Background(), []prune.Object{{Kind: prune.KindBlob, Digest: dA}})
	if err != nil {
		t.Errorf("availability: a use record renamed between the listing and its reading stops the prune: %v", err)
		return
	}
	release()
}

// TestFilesystemUsesWrittenDuringClaims: the same with the real filesystem driver: replicas write use
// records while the prune claims batch after batch.
func TestFilesystemUsesWrittenDuringClaims(t *testing.T) {
	d := filesystem.New(filesystem.DriverParameters{RootDirectory: t.TempDir(), MaxThreads: 16})
	r := startReplica(t, d, ProtocolVersion)
	c, _ := lockRun(t, d)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = r.writeUses(context.Background(), c.Run, []Use{{Repository: "ns/app", Digest: dB}})
			}
		}()
	}
	var failures atomic.Int32
	var first error
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		_, release, err := c.Claim(context.Background(), []prune.Object{{Kind: prune.KindBlob, Digest: dA}})
		if err != nil {
			if failures.Add(1) == 1 {
				first = err
			}
			continue
		}
		release()
	}
	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Errorf("availability: %d claims failed on use records being written (a prune stops at the first): %v", n, first)
	}
}

// failDeleteOnce fails the first Delete of a claim.
type failDeleteOnce struct {
	driver.StorageDriver
	failed atomic.Bool
}

func (f *failDeleteOnce) Delete(ctx context.Context, p string) error {
	if strings.Contains(p, "/claims/") && f.failed.CompareAndSwap(false, true) {
		return errors.New("503 SlowDown")
	}
	return f.StorageDriver.Delete(ctx, p)
}

// TestClaimReleaseIsRetried: a claim whose removal failed once (logged only) stays for
// the rest of the run: every put using anything of its batch waits ClaimWait, then fails.
func TestClaimReleaseIsRetried(t *testing.T) {
	base := inmemory.New()
	d := &failDeleteOnce{StorageDriver: base}
	r := startReplica(t, base, ProtocolVersion)
	c, _ := lockRun(t, base)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Driver = d
	_, release, err := c.Claim(context.Background(), []prune.Object{{Kind: prune.KindBlob, Digest: dA}})
	if err != nil {
		t.Fatal(err)
	}
	release() // the batch is over
	uses := []Use{{Repository: "ns/app", Digest: dA}}
	put := recordedPut(t, r, uses)
	if err := put.WaitUnclaimed(context.Background(), uses); err != nil {
		t.Errorf("availability: a put waits out a batch that is long over, then fails: %v", err)
	}
}

// TestFilesystemAdvertRewrittenDuringReads: on the filesystem driver, a prune reading the adverts while a
// replica rewrites its own may find the advert's temporary file (<id>.<uuid>.tmp) created but
// still empty: an unreadable live advert, and the run refuses to start.
func TestFilesystemAdvertRewrittenDuringReads(t *testing.T) {
	d := filesystem.New(filesystem.DriverParameters{RootDirectory: t.TempDir(), MaxThreads: 16})
	r := startReplica(t, d, ProtocolVersion)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r.writeAdvert(context.Background())
		}
	}()
	var refused int
	var first error
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		adverts, err := ReadAdverts(context.Background(), d)
		if err != nil {
			continue
		}
		if _, err := Replicas(adverts, time.Now(), time.Minute); err != nil {
			if refused++; refused == 1 {
				first = err
			}
		}
	}
	close(stop)
	wg.Wait()
	if refused > 0 {
		t.Errorf("availability: %d advert readings would refuse the run: %v", refused, first)
	}
}

// TestReplicaThatMissedARunDoomsItsPuts: a replica cut off from storage for longer than AdvertTTL
// is left out of a run (rightly: it is fenced meanwhile). When it comes back after the run, it
// neither drops its in-memory blob descriptor cache (OnRunEnd is called only on leaving a run
// it entered; the marker watcher may come seconds later, or never with pollinterval 0), nor
// fails a put begun before the gap: Valid asks whether the replica is fenced now, not whether
// it stayed in touch since the put began.
func TestReplicaThatMissedARunDoomsItsPuts(t *testing.T) {
	base := inmemory.New()
	fd := &failingDriver{StorageDriver: base}
	r1 := startReplica(t, fd, ProtocolVersion)
	var resets atomic.Int32
	r1.OnRunEnd = func() { resets.Add(1) }
	startReplica(t, base, ProtocolVersion)
	put, err := r1.Begin() // between distribution's put (c) and Valid (d), across the gap
	if err != nil {
		t.Fatal(err)
	}
	defer put.Done()

	fd.mu.Lock()
	fd.broken = true
	fd.mu.Unlock()
	time.Sleep(fastTiming.AdvertTTL + 2*fastTiming.Renew)

	c, lock := lockRun(t, base)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err) // the run goes on without r1
	}
	// ... it reads the image API, deletes what no Image names, and ends.
	c.Finish(context.Background())
	if err := lock.Release(); err != nil {
		t.Fatal(err)
	}
	fd.mu.Lock()
	fd.broken = false
	fd.mu.Unlock()
	waitFor(t, "r1 to be unfenced", func() bool {
		p, err := r1.Begin()
		if err == nil {
			p.Done()
		}
		return err == nil
	})
	if resets.Load() == 0 {
		t.Error("correctness: r1 serves again without dropping its in-memory cache, which may describe blobs the run it missed deleted")
	}
	if err := put.Valid(); err == nil {
		t.Error("correctness: a put begun before r1 lost touch records its Image after a run that did not wait for it")
	}
}

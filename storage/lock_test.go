package storage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

func lockOpts(host string, pid int, log *bytes.Buffer) storage.LockOptions {
	logger := logrus.New()
	logger.SetOutput(log)
	return storage.LockOptions{Host: host, PID: pid, Settle: 20 * time.Millisecond, Log: logger}
}

func writeLockRecord(t *testing.T, d driver.StorageDriver, rec storage.LockRecord) {
	t.Helper()
	content, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(context.Background(), storage.PruneLockPath(), content); err != nil {
		t.Fatal(err)
	}
}

func lockExists(t *testing.T, d driver.StorageDriver) bool {
	t.Helper()
	st, err := storage.ReadLock(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	return st.Exists
}

// TestLockOneRunAtATime: a second run is refused with the holder named; after the first
// releases, the lock is gone and the next run takes it.
func TestLockOneRunAtATime(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var log bytes.Buffer
			first, err := storage.AcquireLock(ctx, d, lockOpts("host-a", 111, &log))
			if err != nil {
				t.Fatal(err)
			}
			st, err := storage.ReadLock(ctx, d)
			if err != nil || st.Record == nil || st.Record.Host != "host-a" || st.Record.PID != 111 ||
				st.Record.Owner == "" ||
				!st.Record.Expires.After(st.Record.Started) {
				t.Fatalf("lock record: %+v, %v", st.Record, err)
			}
			_, err = storage.AcquireLock(ctx, d, lockOpts("host-b", 222, &log))
			if !errors.Is(err, storage.ErrLocked) || !strings.Contains(err.Error(), "host host-a, pid 111, started ") {
				t.Fatalf("second acquire: %v, want ErrLocked naming host-a and pid 111", err)
			}
			if err := first.Release(); err != nil {
				t.Fatal(err)
			}
			if lockExists(t, d) {
				t.Fatal("the lock is still there after Release")
			}
			second, err := storage.AcquireLock(ctx, d, lockOpts("host-b", 222, &log))
			if err != nil {
				t.Fatalf("acquire after release: %v", err)
			}
			if err := second.Release(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLockConcurrentAcquire: of runs that find the lock free at the same moment, exactly one
// gets it.
func TestLockConcurrentAcquire(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			for round := range 3 {
				var (
					wg    sync.WaitGroup
					mu    sync.Mutex
					won   []*storage.Lock
					other []error
					log   bytes.Buffer
				)
				start := make(chan struct{})
				for i := range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						opts := lockOpts("host", 1000+i, &bytes.Buffer{})
						opts.Settle = 500 * time.Millisecond
						l, err := storage.AcquireLock(context.Background(), d, opts)
						mu.Lock()
						defer mu.Unlock()
						if err != nil {
							other = append(other, err)
						} else {
							won = append(won, l)
						}
					}()
				}
				close(start)
				wg.Wait()
				if len(won) != 1 {
					t.Fatalf(
						"round %d: %d runs got the lock, want 1 (others: %v)\n%s",
						round,
						len(won),
						other,
						log.String(),
					)
				}
				for _, err := range other {
					if !errors.Is(err, storage.ErrLocked) {
						t.Errorf("round %d: a loser failed with %v, want ErrLocked", round, err)
					}
				}
				if err := won[0].Release(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestLockStaleAndForced: an expired record does not block; a live one does unless forced,
// and both takeovers name the holder they replace.
func TestLockStaleAndForced(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Now()
			writeLockRecord(
				t,
				d,
				storage.LockRecord{
					Owner:   "dead",
					Host:    "gone-host",
					PID:     42,
					Started: now.Add(-time.Hour),
					Expires: now.Add(-50 * time.Minute),
				},
			)
			var log bytes.Buffer
			l, err := storage.AcquireLock(ctx, d, lockOpts("me", 1, &log))
			if err != nil {
				t.Fatalf("a stale lock blocked: %v", err)
			}
			if !strings.Contains(log.String(), "stale prune lock") ||
				!strings.Contains(log.String(), "host gone-host, pid 42") {
				t.Errorf("no warning naming the stale holder:\n%s", log.String())
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}

			writeLockRecord(
				t,
				d,
				storage.LockRecord{
					Owner:   "alive",
					Host:    "busy-host",
					PID:     43,
					Started: now,
					Expires: now.Add(time.Minute),
				},
			)
			_, err = storage.AcquireLock(ctx, d, lockOpts("me", 1, &log))
			if !errors.Is(err, storage.ErrLocked) || !strings.Contains(err.Error(), "host busy-host, pid 43") {
				t.Fatalf("a live lock: %v, want ErrLocked naming busy-host", err)
			}
			log.Reset()
			opts := lockOpts("me", 1, &log)
			opts.Force = true
			l, err = storage.AcquireLock(ctx, d, opts)
			if err != nil {
				t.Fatalf("forced: %v", err)
			}
			if !strings.Contains(log.String(), "-prune-force-unlock") ||
				!strings.Contains(log.String(), "host busy-host, pid 43") {
				t.Errorf("no warning naming the forced holder:\n%s", log.String())
			}
			if st, _ := storage.ReadLock(ctx, d); st.Record == nil || st.Record.Host != "me" {
				t.Errorf("after the forced takeover the lock is %+v", st.Record)
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}

			// Content that is no lock record: fresh, it blocks; old, it does not.
			if err := d.PutContent(ctx, storage.PruneLockPath(), []byte("garbage")); err != nil {
				t.Fatal(err)
			}
			if _, err := storage.AcquireLock(ctx, d, lockOpts("me", 1, &log)); !errors.Is(err, storage.ErrLocked) ||
				!strings.Contains(err.Error(), "unreadable") {
				t.Fatalf("a fresh unreadable lock: %v, want ErrLocked", err)
			}
			opts = lockOpts("me", 1, &log)
			opts.Now = func() time.Time { return time.Now().Add(time.Hour) }
			l, err = storage.AcquireLock(ctx, d, opts)
			if err != nil {
				t.Fatalf("an old unreadable lock blocked: %v", err)
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLockRenewedAndLost: the record is renewed while the run lives; when another owner takes
// it, the run's context is cancelled with ErrLockLost, and Release leaves the other's record.
func TestLockRenewedAndLost(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var log bytes.Buffer
			opts := lockOpts("me", 1, &log)
			opts.RenewEvery = 20 * time.Millisecond
			l, err := storage.AcquireLock(ctx, d, opts)
			if err != nil {
				t.Fatal(err)
			}
			first := l.Record().Expires
			deadline := time.Now().Add(5 * time.Second)
			for !l.Record().Expires.After(first) {
				if time.Now().After(deadline) {
					t.Fatal("the lock was not renewed")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if st, _ := storage.ReadLock(ctx, d); st.Record == nil || !st.Record.Expires.After(first) {
				t.Errorf("stored record not renewed: %+v", st.Record)
			}
			// The intruder writes until the run notices: a renewal that read the lock just
			// before a write overwrites it (no compare-and-swap), and the intruder, reading
			// back, would then give up; that race is the point of the read-back.
			now := time.Now()
			intruder := storage.LockRecord{
				Owner:   "intruder",
				Host:    "other-host",
				PID:     7,
				Started: now,
				Expires: now.Add(time.Minute),
			}
			deadline = time.Now().Add(5 * time.Second)
			for l.Context().Err() == nil {
				if time.Now().After(deadline) {
					t.Fatal("the run's context was not cancelled when another owner took the lock")
				}
				writeLockRecord(t, d, intruder)
				time.Sleep(5 * time.Millisecond)
			}
			if err := l.Err(); !errors.Is(err, storage.ErrLockLost) ||
				!strings.Contains(err.Error(), "host other-host, pid 7") {
				t.Errorf("Err() = %v, want ErrLockLost naming other-host", err)
			}
			if cause := context.Cause(l.Context()); !errors.Is(cause, storage.ErrLockLost) {
				t.Errorf("context cause %v", cause)
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
			if st, _ := storage.ReadLock(ctx, d); st.Record == nil || st.Record.Owner != "intruder" {
				t.Errorf("Release removed another owner's lock: %+v", st.Record)
			}
		})
	}
}

// countingRemover counts deletions.
type countingRemover struct {
	prune.Remover
	n int
}

func (c *countingRemover) Delete(context.Context, prune.Object) error {
	c.n++
	return nil
}

// TestLockConfirmedBeforeFirstDeletion: a run whose lock was taken after its read-back
// deletes nothing.
func TestLockConfirmedBeforeFirstDeletion(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var log bytes.Buffer
			l, err := storage.AcquireLock(ctx, d, lockOpts("me", 1, &log))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release()
			now := time.Now()
			writeLockRecord(
				t,
				d,
				storage.LockRecord{
					Owner:   "late",
					Host:    "late-host",
					PID:     8,
					Started: now,
					Expires: now.Add(time.Minute),
				},
			)
			inner := &countingRemover{}
			orphan := &prune.Inventory{Blobs: []prune.Blob{{Digest: digest.FromString("orphan"), Size: 1}}}
			_, _, err = prune.Run(l.Context(), prune.Config{
				References: staticRefs{}, Inventory: fixedInventory{orphan}, Remover: inner, BeforeSweep: l.Confirm,
				AllowDeleteAll: true, Workers: 1, Log: quietLogger(), Options: prune.Options{Now: now},
			})
			if !errors.Is(err, storage.ErrLockLost) {
				t.Errorf("run: %v, want ErrLockLost", err)
			}
			if inner.n != 0 {
				t.Errorf("%d deletions went through", inner.n)
			}
			if l.Context().Err() == nil {
				t.Error("the run's context is not cancelled")
			}
		})
	}
}

// fixedInventory is an inventory source that returns one inventory.
type fixedInventory struct{ inv *prune.Inventory }

func (f fixedInventory) Inventory(context.Context) (*prune.Inventory, error) { return f.inv, nil }

// TestLockLeavesInventoryAlone: the lock object is no registry data.
func TestLockLeavesInventoryAlone(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			var log bytes.Buffer
			l, err := storage.AcquireLock(context.Background(), d, lockOpts("me", 1, &log))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release()
			logger := logrus.New()
			logger.SetOutput(&log)
			inv, err := (&storage.Store{Driver: d, Log: logger}).Inventory(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(inv.Blobs) != 0 || len(inv.Repositories) != 0 || strings.Contains(log.String(), "skipping") {
				t.Errorf("inventory %+v, log:\n%s", inv, log.String())
			}
		})
	}
}

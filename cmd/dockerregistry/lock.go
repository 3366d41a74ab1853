package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/storage"
)

// errForceUnlockWithoutDelete is the usage error of -prune-force-unlock without -prune=delete.
var errForceUnlockWithoutDelete = errors.New("-prune-force-unlock goes with -prune=delete only")

// lockStorage takes the storage's prune lock for a delete run, before anything is read. A check
// run deletes nothing, so it neither takes nor waits for the lock; it warns when a delete run
// holds it, since what it counts may be going away under it. It returns nil for a check run.
func lockStorage(
	ctx context.Context,
	drv storagedriver.StorageDriver,
	dryRun, force bool,
	log logrus.FieldLogger,
) (*storage.Lock, error) {
	if dryRun {
		st, err := storage.ReadLock(ctx, drv)
		if err != nil {
			log.WithError(err).Warn("cannot tell whether a -prune=delete run holds the storage lock")
			return nil, nil
		}
		if now := time.Now(); st.Held(now, storage.DefaultLockTTL) {
			log.Warnf(
				"a -prune=delete run holds the prune lock %s (%s): this check may count what that run is deleting",
				storage.PruneLockPath(),
				st.Describe(now),
			)
		}
		return nil, nil
	}
	lock, err := storage.AcquireLock(ctx, drv, storage.LockOptions{Force: force, Log: log})
	if err != nil {
		return nil, fmt.Errorf("refusing -prune=delete: %w (nothing was deleted)", err)
	}
	return lock, nil
}

// releaseLock gives the lock back at the end of a delete run, however it ended.
func releaseLock(lock *storage.Lock, log logrus.FieldLogger) {
	if lock == nil {
		return
	}
	if err := lock.Release(); err != nil {
		log.WithError(err).
			Warnf("the next -prune=delete waits until the lock expires (%s), or pass -prune-force-unlock", storage.DefaultLockTTL)
	}
}

// lockLost puts the reason first when a run failed because it lost its lock (its context was
// cancelled by the renewal).
func lockLost(lock *storage.Lock, err error) error {
	if lock == nil || err == nil || lock.Err() == nil || errors.Is(err, storage.ErrLockLost) {
		return err
	}
	return fmt.Errorf("%w; %v", lock.Err(), err)
}

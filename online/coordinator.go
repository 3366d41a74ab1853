package online

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// ErrNotOnline says the replicas serving the storage do not all speak the protocol, so a
// prune may not run while they serve.
var ErrNotOnline = errors.New("the online prune protocol is not spoken by every serving registry")

// Replicas says whether a prune may run while the replicas of adverts serve: it returns the
// live ones, or an error wrapping ErrNotOnline that says why not. ref is a time on storage's
// clock (see AdvertState.Live).
func Replicas(adverts []AdvertState, ref time.Time, ttl time.Duration) ([]AdvertState, error) {
	var live []AdvertState
	var why []string
	for _, a := range adverts {
		if !a.Live(ref, ttl) {
			continue
		}
		live = append(live, a)
		switch {
		case a.Unreadable:
			why = append(why, fmt.Sprintf("replica %s has an unreadable advert", a.ID))
		case a.Protocol < ProtocolVersion:
			why = append(why, fmt.Sprintf("%s speaks protocol %d", a.Describe(), a.Protocol))
		}
	}
	switch {
	case len(why) > 0:
		return live, fmt.Errorf("%w (%s; every replica must speak protocol %d)", ErrNotOnline, strings.Join(why, ", "), ProtocolVersion)
	case len(live) == 0:
		return nil, fmt.Errorf("%w (no serving registry advertises itself in %s)", ErrNotOnline, storage.OnlineReplicasPath())
	}
	return live, nil
}

// Coordinator is a prune's side of the protocol: it waits until every live replica has
// entered its run, then claims each batch before deleting it and says which of its objects
// the replicas used meanwhile (prune.Guard).
type Coordinator struct {
	Driver driver.StorageDriver
	// Run is the run's ID: the owner of its lock.
	Run    string
	Timing Timing
	Log    logrus.FieldLogger
	// Alive fails once the run may no longer delete: its lock is lost or not renewed in time.
	Alive func() error

	// storageNow is now on storage's clock: the lock's modification time plus the time since.
	lockMod  time.Time
	lockRead time.Time

	seq  atomic.Uint64
	mu   sync.Mutex
	uses UseSet
	read map[string]bool
	kept int
	// stuck is a claim that could not be removed: the puts it names would wait for it until
	// the run ends, so the run stops at its next claim.
	stuck error
}

var _ prune.Guard = (*Coordinator)(nil)

// Start checks the replicas and waits until every live one acknowledges the run (each
// acknowledges once the manifest puts it began before the run have ended). It fails, wrapping
// ErrNotOnline, when a replica does not speak the protocol, and when one does not acknowledge
// within AckTimeout. It also removes what earlier runs left (their uses and claims, adverts
// gone for long).
func (c *Coordinator) Start(ctx context.Context) error {
	if c.Timing == (Timing{}) {
		c.Timing = DefaultTiming
	}
	c.read = map[string]bool{}
	fi, err := c.Driver.Stat(ctx, storage.PruneLockPath())
	if err != nil {
		return fmt.Errorf("reading the time of the prune lock: %w", err)
	}
	c.lockMod, c.lockRead = fi.ModTime(), time.Now()
	deadline := time.Now().Add(c.Timing.AckTimeout)
	for {
		adverts, err := ReadAdverts(ctx, c.Driver)
		if err != nil {
			return err
		}
		live, err := Replicas(adverts, c.storageNow(), c.Timing.AdvertTTL)
		if err != nil {
			return err
		}
		var waiting []string
		for _, a := range live {
			if a.Run != c.Run {
				waiting = append(waiting, a.Describe())
			}
		}
		if len(waiting) == 0 {
			// At the default level: whether a delete ran online or read-only matters to
			// whoever reads the job's log.
			c.log().Warnf("the registry is not read-only: pruning online, every serving registry taking part (%d, online prune protocol %d)",
				len(live), ProtocolVersion)
			c.cleanup(ctx, adverts)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s did not acknowledge the run within %s", ErrNotOnline, strings.Join(waiting, ", "), c.Timing.AckTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (c *Coordinator) storageNow() time.Time { return c.lockMod.Add(time.Since(c.lockRead)) }

// cleanup removes the uses and claims of other runs (no other run is under way: this one holds
// the lock) and the adverts of replicas gone for long. Failures are only logged.
func (c *Coordinator) cleanup(ctx context.Context, adverts []AdvertState) {
	for _, root := range []string{storage.OnlineUsesRootPath(), storage.OnlineClaimsRootPath()} {
		dirs, err := list(ctx, c.Driver, root)
		if err != nil {
			c.log().WithError(err).Warn("cannot list what earlier prune runs left")
			continue
		}
		for _, d := range dirs {
			if path.Base(d) != c.Run {
				c.remove(ctx, d)
			}
		}
	}
	for _, a := range adverts {
		if !a.Live(c.storageNow(), 10*c.Timing.AdvertTTL) {
			c.remove(ctx, storage.OnlineReplicaPath(a.ID))
		}
	}
}

func (c *Coordinator) remove(ctx context.Context, p string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
	defer cancel()
	err := c.Driver.Delete(ctx, p)
	var notFound driver.PathNotFoundError
	if err != nil && !errors.As(err, &notFound) {
		c.log().WithError(err).Warnf("cannot remove %s", p)
	}
}

// Claim writes a claim for objs, then reads the uses the replicas recorded, and says which of
// objs they cover: those must stay. Release removes the claim; call it once the deletions of
// the batch are over (whatever became of them).
func (c *Coordinator) Claim(ctx context.Context, objs []prune.Object) ([]bool, func(), error) {
	if c.Alive != nil {
		if err := c.Alive(); err != nil {
			return nil, nil, err
		}
	}
	c.mu.Lock()
	stuck := c.stuck
	c.mu.Unlock()
	if stuck != nil {
		return nil, nil, stuck
	}
	p := path.Join(storage.OnlineClaimsPath(c.Run), fmt.Sprint(c.seq.Add(1)))
	wctx, cancel := context.WithTimeout(ctx, ioTimeout)
	err := c.Driver.PutContent(wctx, p, EncodeClaim(objs))
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("writing the claim %s: %w", p, err)
	}
	release := func() { c.release(ctx, p) }
	if err := c.readUses(ctx); err != nil {
		release()
		return nil, nil, err
	}
	inUse := make([]bool, len(objs))
	c.mu.Lock()
	for i, o := range objs {
		if inUse[i] = c.uses.Covers(o); inUse[i] {
			c.kept++
		}
	}
	c.mu.Unlock()
	return inUse, release, nil
}

// release removes a claim, trying a few times: a claim left behind holds the puts it names.
func (c *Coordinator) release(ctx context.Context, p string) {
	var err error
	for attempt, wait := 0, 200*time.Millisecond; attempt < 4; attempt, wait = attempt+1, wait*4 {
		if attempt > 0 {
			time.Sleep(wait)
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
		err = c.Driver.Delete(rctx, p)
		cancel()
		var notFound driver.PathNotFoundError
		if err == nil || errors.As(err, &notFound) {
			return
		}
	}
	c.mu.Lock()
	if c.stuck == nil {
		c.stuck = fmt.Errorf("cannot remove the claim %s (pushes using what it names wait for it): %w", p, err)
	}
	c.mu.Unlock()
}

// readUses reads the use records written since the last call.
func (c *Coordinator) readUses(ctx context.Context) error {
	paths, err := list(ctx, c.Driver, storage.OnlineUsesPath(c.Run))
	if err != nil {
		return fmt.Errorf("reading the uses the registries recorded: %w", err)
	}
	for _, p := range paths {
		c.mu.Lock()
		done := c.read[p]
		c.mu.Unlock()
		if done {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, ioTimeout)
		content, err := c.Driver.GetContent(rctx, p)
		cancel()
		var notFound driver.PathNotFoundError
		switch {
		case errors.As(err, &notFound):
			continue // listed while being written under another name: read it next time
		case err != nil:
			return fmt.Errorf("reading the use record %s: %w", p, err)
		}
		uses, err := ParseUses(content)
		if err != nil {
			return fmt.Errorf("reading the use record %s: %w", p, err)
		}
		c.mu.Lock()
		if !c.read[p] {
			c.read[p] = true
			for _, u := range uses {
				c.uses.Add(u)
			}
		}
		c.mu.Unlock()
	}
	return nil
}

// Kept is how many objects the run kept because a registry used them meanwhile.
func (c *Coordinator) Kept() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kept
}

// Finish removes the run's uses and claims.
func (c *Coordinator) Finish(ctx context.Context) {
	c.remove(ctx, storage.OnlineClaimsPath(c.Run))
	c.remove(ctx, storage.OnlineUsesPath(c.Run))
}

func (c *Coordinator) log() logrus.FieldLogger {
	if c.Log == nil {
		return logrus.StandardLogger()
	}
	return c.Log
}

package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/sirupsen/logrus"
)

// The prune lock: one -prune=delete at a time per storage.
//
// The lock is an object in the storage itself (PruneLockPath), written through the storage
// driver, so that it works wherever the storage is shared (a filesystem volume, a bucket).
// Storage drivers have no compare-and-swap, so taking it is: read it; if nobody holds it (or
// its holder let it expire), write our record, wait a moment, and read it back: of several
// runs that wrote at once, only the one whose record is still there proceeds. A run renews
// its record while it lives; a run that is killed lets it expire, so it blocks the next one
// for the TTL at most (or until -prune-force-unlock). Before its first deletion the run reads
// the lock again, and a renewal that finds another owner's record cancels the run.

// Defaults of LockOptions.
const (
	DefaultLockTTL        = 2 * time.Minute
	DefaultLockRenewEvery = 30 * time.Second
	DefaultLockSettle     = time.Second
)

// lockIOTimeout bounds each storage request of the lock, so that no wait is unbounded.
const lockIOTimeout = 30 * time.Second

var (
	// ErrLocked says another prune holds the lock.
	ErrLocked = errors.New("another prune holds the storage lock")
	// ErrLockLost says a run's lock was taken over or removed while it ran.
	ErrLockLost = errors.New("lost the storage lock")
)

// LockRecord is the content of the lock object, as JSON.
type LockRecord struct {
	// Owner is random, one per run: the only field that tells two runs apart for sure.
	Owner   string    `json:"owner"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// Expires is when the lock stops counting unless renewed (by the holder's clock).
	Expires time.Time `json:"expires"`
	// Online says the run is a delete that serving registries take part in (package online):
	// they follow only such runs.
	Online bool `json:"online,omitempty"`
}

// Holder describes who holds the lock, for messages: host, pid, age and expiry.
func (r *LockRecord) Holder(now time.Time) string {
	s := fmt.Sprintf("host %s, pid %d, started %s ago", r.Host, r.PID, roundAge(now.Sub(r.Started)))
	if r.Expires.After(now) {
		return s + ", expires in " + roundAge(r.Expires.Sub(now))
	}
	return s + ", expired " + roundAge(now.Sub(r.Expires)) + " ago"
}

func roundAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return d.Round(time.Second).String()
}

// LockState is what ReadLock found.
type LockState struct {
	// Record is nil when the object is missing or unreadable.
	Record *LockRecord
	// Exists says the object exists; with a nil Record, its content is not a lock record.
	Exists bool
	// ModTime is the object's modification time (when it exists).
	ModTime time.Time
}

// Held tells whether the lock counts at now: a readable record that has not expired, or an
// unreadable object written within ttl.
func (st LockState) Held(now time.Time, ttl time.Duration) bool {
	switch {
	case st.Record != nil:
		return st.Record.Expires.After(now)
	case st.Exists:
		return now.Sub(st.ModTime) < ttl
	}
	return false
}

// Describe says who holds the lock, or what is known of an unreadable one.
func (st LockState) Describe(now time.Time) string {
	if st.Record != nil {
		return st.Record.Holder(now)
	}
	return fmt.Sprintf("unreadable content, written %s ago", roundAge(now.Sub(st.ModTime)))
}

// ReadLock reads the lock object.
func ReadLock(ctx context.Context, d driver.StorageDriver) (LockState, error) {
	ctx, cancel := context.WithTimeout(ctx, lockIOTimeout)
	defer cancel()
	p := PruneLockPath()
	content, err := d.GetContent(ctx, p)
	var notFound driver.PathNotFoundError
	switch {
	case errors.As(err, &notFound):
		return LockState{}, nil
	case err != nil:
		return LockState{}, fmt.Errorf("reading the prune lock %s: %w", p, err)
	}
	st := LockState{Exists: true}
	var rec LockRecord
	if err := json.Unmarshal(content, &rec); err == nil && rec.Owner != "" {
		st.Record = &rec
	}
	if fi, err := d.Stat(ctx, p); err == nil {
		st.ModTime = fi.ModTime()
	} else if st.Record == nil {
		// No time to judge an unreadable lock by: count it as fresh.
		st.ModTime = time.Now()
	}
	return st, nil
}

// LockOptions tunes AcquireLock; the zero value takes the defaults.
type LockOptions struct {
	// TTL is how long a record counts without renewal; RenewEvery how often it is renewed;
	// Settle how long a writer waits before reading its record back.
	TTL, RenewEvery, Settle time.Duration
	// Force removes a lock another run holds (-prune-force-unlock), with a warning naming it.
	Force bool
	// Host and PID identify this run in the record; os.Hostname and os.Getpid when empty.
	Host string
	PID  int
	Now  func() time.Time
	Log  logrus.FieldLogger
}

func (o *LockOptions) defaults() {
	if o.TTL <= 0 {
		o.TTL = DefaultLockTTL
	}
	if o.RenewEvery <= 0 {
		o.RenewEvery = DefaultLockRenewEvery
	}
	if o.Settle <= 0 {
		o.Settle = DefaultLockSettle
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.PID == 0 {
		o.PID = os.Getpid()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = logrus.StandardLogger()
	}
}

// Lock is a held prune lock.
type Lock struct {
	drv  driver.StorageDriver
	opts LockOptions
	rec  LockRecord // guarded by mu after the renewal starts

	ctx    context.Context
	cancel context.CancelCauseFunc

	mu   sync.Mutex
	lost error
	// writing serializes the record's rewrites (renewals, MarkOnline), so that none writes an
	// older record over a newer one.
	writing sync.Mutex

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// AcquireLock takes the prune lock of the storage d, or fails with an error wrapping ErrLocked
// that names the holder. The lock's Context, derived from ctx, is cancelled if the lock is
// lost; Release gives the lock back.
func AcquireLock(ctx context.Context, d driver.StorageDriver, opts LockOptions) (*Lock, error) {
	opts.defaults()
	log := opts.Log
	p := PruneLockPath()
	st, err := ReadLock(ctx, d)
	if err != nil {
		return nil, err
	}
	now := opts.Now()
	switch {
	case !st.Exists:
	case opts.Force:
		log.Warnf("-prune-force-unlock: removing the prune lock %s (%s)", p, st.Describe(now))
	case !st.Held(now, opts.TTL):
		log.Warnf(
			"taking over a stale prune lock %s (%s): that run was stopped without releasing it",
			p,
			st.Describe(now),
		)
	case st.Record == nil:
		return nil, fmt.Errorf("%w %s (%s); if no prune runs, pass -prune-force-unlock", ErrLocked, p, st.Describe(now))
	default:
		return nil, lockedError(st.Record, now)
	}

	owner := make([]byte, 16)
	if _, err := rand.Read(owner); err != nil {
		return nil, fmt.Errorf("making a lock owner id: %w", err)
	}
	l := &Lock{drv: d, opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
	l.rec = LockRecord{
		Owner:   hex.EncodeToString(owner),
		Host:    opts.Host,
		PID:     opts.PID,
		Started: now,
		Expires: now.Add(opts.TTL),
	}
	if err := l.write(ctx, l.rec); err != nil {
		return nil, err
	}
	// Runs that read "free" at the same time all wrote; the last write wins everywhere. Wait
	// for the writes under way to land, then see whose record is there.
	select {
	case <-time.After(opts.Settle):
	case <-ctx.Done():
		l.releaseIfOurs()
		return nil, ctx.Err()
	}
	if err := l.Verify(ctx); err != nil {
		if !errors.Is(err, ErrLockLost) {
			l.releaseIfOurs()
			return nil, err
		}
		st, rerr := ReadLock(ctx, d)
		if rerr == nil && st.Record != nil {
			return nil, lockedError(st.Record, opts.Now())
		}
		return nil, fmt.Errorf("%w %s: another run wrote it at the same time", ErrLocked, p)
	}
	l.ctx, l.cancel = context.WithCancelCause(ctx)
	go l.renew()
	return l, nil
}

func lockedError(rec *LockRecord, now time.Time) error {
	return fmt.Errorf("%w %s: %s; if that run is gone, wait for the lock to expire or pass -prune-force-unlock",
		ErrLocked, PruneLockPath(), rec.Holder(now))
}

// Record is this run's lock record.
func (l *Lock) Record() LockRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec
}

// Context is cancelled when the lock is lost (see Err) or the context AcquireLock got ends.
func (l *Lock) Context() context.Context { return l.ctx }

// Err says why the lock was lost, or nil while it is held.
func (l *Lock) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

func (l *Lock) lose(err error) {
	l.mu.Lock()
	if l.lost == nil {
		l.lost = err
	}
	l.mu.Unlock()
	l.opts.Log.WithError(err).Error("stopping the prune: it no longer holds the storage lock")
	l.cancel(err)
}

func (l *Lock) write(ctx context.Context, rec LockRecord) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockIOTimeout)
	defer cancel()
	content, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := l.drv.PutContent(ctx, PruneLockPath(), append(content, '\n')); err != nil {
		return fmt.Errorf("writing the prune lock %s: %w", PruneLockPath(), err)
	}
	return nil
}

// Verify reads the lock and checks that this run still holds it; an error wrapping
// ErrLockLost says another run (or a hand) took it.
func (l *Lock) Verify(ctx context.Context) error {
	st, err := ReadLock(ctx, l.drv)
	if err != nil {
		return err
	}
	rec := l.Record()
	switch {
	case st.Record == nil && !st.Exists:
		return fmt.Errorf("%w: %s was removed", ErrLockLost, PruneLockPath())
	case st.Record == nil:
		return fmt.Errorf("%w: %s was overwritten with unreadable content", ErrLockLost, PruneLockPath())
	case st.Record.Owner != rec.Owner:
		return fmt.Errorf("%w: %s is now held by %s", ErrLockLost, PruneLockPath(), st.Record.Holder(l.opts.Now()))
	}
	return nil
}

// renew extends the record every RenewEvery until Release. A record found taken over stops
// the run at once; one that cannot be renewed (storage errors) stops it when it expires, since
// another run may take it then.
func (l *Lock) renew() {
	defer close(l.done)
	t := time.NewTicker(l.opts.RenewEvery)
	defer t.Stop()
	bg := context.WithoutCancel(l.ctx)
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		err := l.Verify(bg)
		if errors.Is(err, ErrLockLost) {
			l.lose(err)
			return
		}
		if err == nil {
			l.writing.Lock()
			rec := l.Record()
			rec.Expires = l.opts.Now().Add(l.opts.TTL)
			if err = l.write(bg, rec); err == nil {
				l.mu.Lock()
				l.rec = rec
				l.mu.Unlock()
			}
			l.writing.Unlock()
			if err == nil {
				continue
			}
		}
		if now := l.opts.Now(); !now.Before(l.Record().Expires) {
			l.lose(fmt.Errorf("%w: could not renew %s before it expired: %w", ErrLockLost, PruneLockPath(), err))
			return
		}
		l.opts.Log.WithError(err).Warn("could not renew the prune lock; trying again")
	}
}

// Release stops the renewals and removes the lock if this run still holds it. It works after
// the run's context was cancelled (SIGTERM, SIGINT).
func (l *Lock) Release() error {
	l.stopOnce.Do(func() {
		close(l.stop)
		<-l.done
		l.cancel(nil)
	})
	return l.releaseIfOurs()
}

func (l *Lock) releaseIfOurs() error {
	ctx, cancel := context.WithTimeout(context.Background(), lockIOTimeout)
	defer cancel()
	if err := l.Verify(ctx); err != nil {
		if errors.Is(err, ErrLockLost) {
			return nil // not ours to remove
		}
		return fmt.Errorf("releasing the prune lock: %w", err)
	}
	err := l.drv.Delete(ctx, PruneLockPath())
	var notFound driver.PathNotFoundError
	if err != nil && !errors.As(err, &notFound) {
		return fmt.Errorf("removing the prune lock %s: %w", PruneLockPath(), err)
	}
	return nil
}

// MarkOnline rewrites the record as an online run's (see LockRecord.Online); the renewals
// keep it so.
func (l *Lock) MarkOnline(ctx context.Context) error {
	l.writing.Lock()
	rec := l.Record()
	rec.Online = true
	err := l.write(ctx, rec)
	if err == nil {
		l.mu.Lock()
		l.rec = rec
		l.mu.Unlock()
	}
	l.writing.Unlock()
	if err != nil {
		return err
	}
	return l.Verify(ctx)
}

// Confirm reads the lock back right before the first deletion: a run that lost it while it
// read (to a run that wrote after its read-back) stops, its context cancelled, and deletes
// nothing.
func (l *Lock) Confirm(ctx context.Context) error {
	if err := l.Verify(ctx); err != nil {
		if errors.Is(err, ErrLockLost) {
			l.lose(err)
		}
		return err
	}
	return l.Err()
}

package online

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// lockSkew is how long after its expiry (by this replica's clock) a prune lock still counts
// as a run under way: the prune stops claiming well before its lock expires by its own clock
// (see Coordinator.alive), so clocks may disagree by about this much.
const lockSkew = time.Minute

var (
	// ErrFenced says the replica cannot tell whether a prune runs: it has not read the lock or
	// written its advert lately.
	ErrFenced = errors.New("the registry has not reached its storage's prune state lately")
	// ErrRunChanged says a prune run started while a manifest put was under way, and the put
	// did not end within the time the replica gives such puts.
	ErrRunChanged = errors.New("a hard prune started while this push was under way")
	// ErrClaimed says a prune went on deleting what a manifest put uses for longer than the
	// put waits.
	ErrClaimed = errors.New("a hard prune is deleting what this push uses")
)

// Replica is a serving registry's side of the protocol: it advertises itself, follows the
// prune lock, and, while a run is under way, records the uses of stored content and makes
// manifest puts wait for (and then see) the deletions that concern them.
type Replica struct {
	Driver   driver.StorageDriver
	Timing   Timing
	Protocol int // ProtocolVersion when zero
	Log      logrus.FieldLogger
	// OnRunEnd is called when a run ends: caches kept from before it may describe what it
	// deleted.
	OnRunEnd func()

	advert Advert
	seq    atomic.Uint64
	active atomic.Bool // run != "", for the hot paths
	bypass atomic.Bool // see Bypass

	mu           sync.Mutex
	run          string         // the run under way, "" when none
	epoch        uint64         // counts the changes of run
	doomedBefore uint64         // tickets of an older epoch are no longer valid
	acked        string         // the run the advert acknowledges
	inflight     map[uint64]int // manifest puts under way, by the epoch they began in
	committed    map[uint64]int // of those, the ones Valid let record their result
	lastPoll     time.Time      // the last successful read of the lock
	lastAdvert   time.Time      // the last successful write of the advert
	hints        map[string]map[Use]bool
	stopped      bool // Run ended: the replica takes part in nothing any more
	lastErr      string
	claims       map[string][]prune.Object // parsed claims of the current run, by path
}

// Start advertises the replica, then reads the lock once, so that a registry that starts
// during a run serves as a part of it from its first request; Run goes on from there. The
// advert is written before the lock is read: a prune writes its lock before it reads the
// adverts, so either the prune sees this replica or this replica sees the prune.
func (r *Replica) Start(ctx context.Context) error {
	if r.Protocol == 0 {
		r.Protocol = ProtocolVersion
	}
	if r.Timing == (Timing{}) {
		r.Timing = DefaultTiming
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	host, _ := os.Hostname()
	r.advert = Advert{ID: hex.EncodeToString(id), Host: host, PID: os.Getpid(), Protocol: r.Protocol, Started: time.Now().UTC()}
	r.inflight = map[uint64]int{}
	r.committed = map[uint64]int{}
	r.hints = map[string]map[Use]bool{}
	r.writeAdvert(ctx)
	if r.Protocol >= ProtocolVersion {
		r.poll(ctx)
	}
	return nil
}

// ID is the replica's advert ID.
func (r *Replica) ID() string { return r.advert.ID }

// Run follows the lock and keeps the advert fresh until ctx ends; then it fences the replica
// (no manifest put may begin or record its result) and removes the advert. Stop it only once
// the server has finished the requests under way.
//
// The loop never waits for puts: entering a run (see enter) happens beside it, so that the
// replica keeps reading the lock and rewriting its advert however long a put takes.
func (r *Replica) Run(ctx context.Context) {
	poll := time.NewTicker(r.Timing.Poll)
	defer poll.Stop()
	flush := time.NewTicker(r.Timing.Flush)
	defer flush.Stop()
	renewed := time.Now()
	for {
		select {
		case <-ctx.Done():
			r.flush(context.WithoutCancel(ctx))
			r.mu.Lock()
			r.stopped = true
			r.mu.Unlock()
			r.removeAdvert()
			return
		case <-flush.C:
			r.flush(ctx)
		case <-poll.C:
			if r.Protocol >= ProtocolVersion {
				r.poll(ctx)
			}
			if time.Since(renewed) >= r.Timing.Renew || r.ackPending() {
				r.writeAdvert(ctx)
				renewed = time.Now()
			}
		}
	}
}

// Active tells whether a prune run is under way: uses count, and caches must not answer.
func (r *Replica) Active() bool {
	return r != nil && r.active.Load()
}

// Bypass tells whether the blob descriptor caches must neither answer nor keep anything: while
// a run is under way and for Settle after it (an answer read from storage during the run may
// be put in a cache a moment later; the cache is dropped once Settle is over).
func (r *Replica) Bypass() bool {
	return r != nil && r.bypass.Load()
}

// poll reads the lock and enters the run it names (or leaves the one that ended). A replica
// that could not read the lock for longer than Fence may have missed a whole run: the puts it
// began before are doomed, and its caches dropped.
func (r *Replica) poll(ctx context.Context) {
	asked := time.Now() // storage may apply what it answers any time after this
	st, err := storage.ReadLock(ctx, r.Driver)
	if err != nil {
		r.warnOnce("cannot read the prune lock; manifest puts are refused once this lasts", err)
		return
	}
	run := ""
	if rec := st.Record; rec != nil && rec.Online && asked.Before(rec.Expires.Add(lockSkew)) {
		run = rec.Owner
	}
	r.mu.Lock()
	gap := !r.lastPoll.IsZero() && asked.Sub(r.lastPoll) > r.Timing.Fence
	r.lastPoll = asked
	changed := run != r.run
	r.mu.Unlock()
	if gap {
		r.log().Warn("the prune lock was out of reach for longer than the fence: a run may have gone by; " +
			"the manifest puts begun before fail, and the blob descriptor cache is dropped")
		r.mu.Lock()
		r.epoch++
		r.doomedBefore = r.epoch
		r.mu.Unlock()
		if r.OnRunEnd != nil {
			r.OnRunEnd()
		}
	}
	if changed {
		r.enter(ctx, run)
	}
}

// enter makes run the one under way ("" none). Entering a run, the replica waits for the
// manifest puts begun before (under no run, or an earlier one) to end, up to Drain, and fails
// those still under way after it, but for those already recording their result, which it
// waits for however long the image API takes; only then does its advert acknowledge the run,
// so that the prune, which reads the image API after every acknowledgement, sees every Image
// those puts recorded. The waiting happens beside Run's loop.
func (r *Replica) enter(ctx context.Context, run string) {
	r.mu.Lock()
	r.epoch++
	epoch, prev := r.epoch, r.run
	r.run = run
	r.claims = nil
	if run != "" {
		r.active.Store(true)
		r.bypass.Store(true)
	} else {
		r.active.Store(false)
	}
	r.mu.Unlock()
	log := r.log().WithField("run", run)
	if run == "" {
		log.WithField("ended", prev).Info("hard prune run ended")
		r.setAcked("", epoch)
		r.writeAdvert(ctx)
		go r.settle(ctx, epoch)
		return
	}
	log.Info("hard prune run under way: the blob descriptor cache is bypassed and uses of stored content are recorded")
	go r.acknowledge(ctx, run, epoch)
}

// settle ends the caches' bypass Settle after a run ended, unless another run began since.
func (r *Replica) settle(ctx context.Context, epoch uint64) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(r.Timing.Settle):
	}
	r.mu.Lock()
	current := r.epoch == epoch
	r.mu.Unlock()
	if !current {
		return
	}
	if r.OnRunEnd != nil {
		r.OnRunEnd()
	}
	r.mu.Lock()
	if r.epoch == epoch {
		r.bypass.Store(false)
	}
	r.mu.Unlock()
}

// acknowledge waits for the puts begun before epoch (see enter), then writes the advert
// naming run, unless the replica has moved on meanwhile.
func (r *Replica) acknowledge(ctx context.Context, run string, epoch uint64) {
	log := r.log().WithField("run", run)
	deadline := time.Now().Add(r.Timing.Drain)
	for r.older(r.inflight, epoch) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	r.mu.Lock()
	r.doomedBefore = max(r.doomedBefore, epoch)
	left := olderThan(r.inflight, epoch) - olderThan(r.committed, epoch)
	r.mu.Unlock()
	if left > 0 {
		log.Warnf("%d manifest puts begun before the prune run did not end within %s; they fail", left, r.Timing.Drain)
	}
	for r.older(r.committed, epoch) > 0 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if r.setAcked(run, epoch) {
		r.writeAdvert(ctx)
	}
}

// older counts the puts of counts begun in an epoch before epoch.
func (r *Replica) older(counts map[uint64]int, epoch uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return olderThan(counts, epoch)
}

func olderThan(counts map[uint64]int, epoch uint64) int {
	n := 0
	for e, c := range counts {
		if e < epoch {
			n += c
		}
	}
	return n
}

// setAcked makes the advert acknowledge run, if the replica is still in the epoch that
// entered it.
func (r *Replica) setAcked(run string, epoch uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.epoch != epoch {
		return false
	}
	r.acked = run
	return true
}

// ackPending tells whether the advert written last may not carry the acknowledgement (its
// write failed).
func (r *Replica) ackPending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastAdvert.IsZero()
}

func (r *Replica) writeAdvert(ctx context.Context) {
	r.mu.Lock()
	a := r.advert
	a.Run = r.acked
	r.mu.Unlock()
	// Storage may stamp the advert any time after this: the fence counts from here.
	asked := time.Now()
	if err := writeAdvert(ctx, r.Driver, a); err != nil {
		r.mu.Lock()
		r.lastAdvert = time.Time{}
		r.mu.Unlock()
		r.warnOnce("cannot write this registry's advert; manifest puts are refused once this lasts", err)
		return
	}
	r.mu.Lock()
	r.lastAdvert = asked
	r.mu.Unlock()
}

func (r *Replica) removeAdvert() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.Driver.Delete(ctx, storage.OnlineReplicaPath(r.advert.ID))
}

// Ticket is one manifest put's part in the protocol: Begin before anything is written, Valid
// right before the put's result is recorded in the image API, Done at the end.
type Ticket struct {
	r         *Replica
	epoch     uint64
	run       string
	committed bool // Valid let it record its result
}

// Begin starts a manifest put; it fails when the replica is fenced (ErrFenced).
func (r *Replica) Begin() (*Ticket, error) {
	if r == nil || r.Protocol < ProtocolVersion {
		return &Ticket{}, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fencedLocked(); err != nil {
		return nil, err
	}
	r.inflight[r.epoch]++
	return &Ticket{r: r, epoch: r.epoch, run: r.run}, nil
}

// Run is the prune run the put began under, "" when none.
func (t *Ticket) Run() string { return t.run }

// Valid tells whether the put may record its result: no run it was not part of has started
// since it began (without it ending in the time allowed), and the replica is not fenced. Once
// it said yes, a run that starts waits for the put to end before it is acknowledged.
func (t *Ticket) Valid() error {
	if t.r == nil {
		return nil
	}
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.epoch < r.doomedBefore {
		return ErrRunChanged
	}
	if err := r.fencedLocked(); err != nil {
		return err
	}
	if !t.committed {
		t.committed = true
		r.committed[t.epoch]++
	}
	return nil
}

// Done ends the put.
func (t *Ticket) Done() {
	if t.r == nil {
		return
	}
	r := t.r
	r.mu.Lock()
	if r.inflight[t.epoch]--; r.inflight[t.epoch] <= 0 {
		delete(r.inflight, t.epoch)
	}
	if t.committed {
		if r.committed[t.epoch]--; r.committed[t.epoch] <= 0 {
			delete(r.committed, t.epoch)
		}
	}
	r.mu.Unlock()
}

func (r *Replica) fencedLocked() error {
	if r.stopped {
		return fmt.Errorf("%w (the registry is stopping)", ErrFenced)
	}
	now := time.Now()
	if age := now.Sub(r.lastPoll); r.lastPoll.IsZero() || age > r.Timing.Fence {
		return fmt.Errorf("%w (the prune lock was last read %s)", ErrFenced, since(r.lastPoll, now))
	}
	if age := now.Sub(r.lastAdvert); r.lastAdvert.IsZero() || age > r.Timing.Fence {
		return fmt.Errorf("%w (its advert was last written %s)", ErrFenced, since(r.lastAdvert, now))
	}
	return nil
}

func since(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

// Record writes uses into the put's run at once: the prune reads them before each batch it
// deletes, and keeps what they cover. Nothing is written under no run.
func (t *Ticket) Record(ctx context.Context, uses []Use) error {
	if t.run == "" || len(uses) == 0 {
		return nil
	}
	return t.r.writeUses(ctx, t.run, uses)
}

func (r *Replica) writeUses(ctx context.Context, run string, uses []Use) error {
	p := path.Join(storage.OnlineUsesPath(run), fmt.Sprintf("%s-%d", r.advert.ID, r.seq.Add(1)))
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	if err := r.Driver.PutContent(ctx, p, EncodeUses(uses)); err != nil {
		return fmt.Errorf("recording the uses of this push for the prune run under way (%s): %w", p, err)
	}
	return nil
}

// WaitUnclaimed waits until no batch the put's run is deleting names what uses covers. Called
// after Record: a batch claimed after the record sees it and keeps what it covers; one claimed
// before is waited out, and what it deleted is then missing for the put to find.
func (t *Ticket) WaitUnclaimed(ctx context.Context, uses []Use) error {
	if t.run == "" || len(uses) == 0 {
		return nil
	}
	r := t.r
	var set UseSet
	for _, u := range uses {
		set.Add(u)
	}
	deadline := time.Now().Add(r.Timing.ClaimWait)
	for {
		claimed, err := r.claimed(ctx, t.run, &set)
		if err != nil {
			return err
		}
		if !claimed {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (waited %s)", ErrClaimed, r.Timing.ClaimWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// claimed tells whether a claim of run names an object set covers. Claims are read once each
// (their content never changes) and forgotten once gone.
func (r *Replica) claimed(ctx context.Context, run string, set *UseSet) (bool, error) {
	paths, err := list(ctx, r.Driver, storage.OnlineClaimsPath(run))
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	known := r.claims
	r.mu.Unlock()
	current := make(map[string][]prune.Object, len(paths))
	found := false
	for _, p := range paths {
		objs, ok := known[p]
		if !ok {
			rctx, cancel := context.WithTimeout(ctx, ioTimeout)
			content, err := r.Driver.GetContent(rctx, p)
			cancel()
			var notFound driver.PathNotFoundError
			switch {
			case errors.As(err, &notFound):
				continue // released since the listing
			case err != nil:
				return false, fmt.Errorf("reading the prune's claim %s: %w", p, err)
			}
			if objs, err = ParseClaim(content); err != nil {
				return false, fmt.Errorf("reading the prune's claim %s: %w", p, err)
			}
		}
		current[p] = objs
		for _, o := range objs {
			if set.Covers(o) {
				found = true
			}
		}
	}
	r.mu.Lock()
	if r.run == run {
		r.claims = current
	}
	r.mu.Unlock()
	return found, nil
}

// Used records a use as a hint: written within Flush, it lets a prune keep what a push is
// about to use (a blob it asked for, a link it wrote) rather than delete it and fail the push
// at its manifest put. Only under a run.
func (r *Replica) Used(u Use) {
	if !r.Active() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.run == "" {
		return
	}
	if r.hints[r.run] == nil {
		r.hints[r.run] = map[Use]bool{}
	}
	r.hints[r.run][u] = true
}

func (r *Replica) flush(ctx context.Context) {
	r.mu.Lock()
	if len(r.hints) == 0 {
		r.mu.Unlock()
		return
	}
	hints := r.hints
	r.hints = map[string]map[Use]bool{}
	r.mu.Unlock()
	for run, set := range hints {
		uses := make([]Use, 0, len(set))
		for u := range set {
			uses = append(uses, u)
		}
		if err := r.writeUses(ctx, run, uses); err != nil {
			r.warnOnce("cannot record uses for the prune run under way (pushes may fail at their manifest)", err)
		}
	}
}

func (r *Replica) warnOnce(what string, err error) {
	r.mu.Lock()
	msg := err.Error()
	repeat := msg == r.lastErr
	r.lastErr = msg
	r.mu.Unlock()
	if !repeat {
		r.log().WithError(err).Warn(what)
	}
}

func (r *Replica) log() logrus.FieldLogger {
	if r.Log == nil {
		return logrus.StandardLogger()
	}
	return r.Log
}

package online

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// fastTiming keeps the tests short; the relations between the times are the defaults'.
var fastTiming = Timing{
	Poll:       20 * time.Millisecond,
	Renew:      100 * time.Millisecond,
	AdvertTTL:  time.Second,
	Fence:      400 * time.Millisecond,
	AckTimeout: 2 * time.Second,
	Drain:      300 * time.Millisecond,
	ClaimWait:  2 * time.Second,
	Flush:      20 * time.Millisecond,
	Settle:     50 * time.Millisecond,
}

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetLevel(logrus.ErrorLevel)
	return l
}

// startReplica starts a replica over d, run until the test ends.
func startReplica(t *testing.T, d driver.StorageDriver, protocol int) *Replica {
	t.Helper()
	r := &Replica{Driver: d, Timing: fastTiming, Protocol: protocol, Log: quietLog()}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// lockRun takes the prune lock and returns a coordinator for its run (not started).
func lockRun(t *testing.T, d driver.StorageDriver) (*Coordinator, *storage.Lock) {
	t.Helper()
	lock, err := storage.AcquireLock(context.Background(), d, storage.LockOptions{Settle: time.Millisecond, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lock.Release() })
	if err := lock.MarkOnline(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &Coordinator{Driver: d, Run: lock.Record().Owner, Timing: fastTiming, Log: quietLog()}, lock
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReplicasDecidesOnline(t *testing.T) {
	ref := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	v := func(id string, protocol int, age time.Duration) AdvertState {
		return AdvertState{Advert: Advert{ID: id, Host: "h", PID: 1, Protocol: protocol}, ModTime: ref.Add(-age)}
	}
	cases := []struct {
		name    string
		adverts []AdvertState
		live    int
		refuse  string // "" when online
	}{
		{"none", nil, 0, "no serving registry advertises itself"},
		{"only gone ones", []AdvertState{v("a", 2, time.Minute)}, 0, "no serving registry"},
		{"all speak it", []AdvertState{v("a", 2, 0), v("b", 2, 10*time.Second)}, 2, ""},
		{"one old", []AdvertState{v("a", 2, 0), v("b", 1, time.Second)}, 2, "speaks protocol 1"},
		{"an old one gone", []AdvertState{v("a", 2, 0), v("b", 1, time.Minute)}, 1, ""},
		{"unreadable", []AdvertState{v("a", 2, 0), {Advert: Advert{ID: "x"}, ModTime: ref, Unreadable: true}}, 2, "unreadable"},
	}
	for _, c := range cases {
		live, err := Replicas(c.adverts, ref, 45*time.Second)
		switch {
		case c.refuse == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.refuse != "" && (!errors.Is(err, ErrNotOnline) || !strings.Contains(err.Error(), c.refuse)):
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.refuse)
		case len(live) != c.live:
			t.Errorf("%s: %d live, want %d", c.name, len(live), c.live)
		}
	}
}

// TestRunStartsWhenEveryReplicaAcknowledges: replicas that serve enter the run; the prune
// starts once they all say so; they leave it when the lock goes.
func TestRunStartsWhenEveryReplicaAcknowledges(t *testing.T) {
	d := inmemory.New()
	r1, r2 := startReplica(t, d, ProtocolVersion), startReplica(t, d, ProtocolVersion)
	ended := make(chan struct{}, 1)
	r1.OnRunEnd = func() { ended <- struct{}{} }
	c, lock := lockRun(t, d)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !r1.Active() || !r2.Active() {
		t.Fatal("the run started before both replicas entered it")
	}
	if err := lock.Release(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replicas to leave the run", func() bool { return !r1.Active() && !r2.Active() })
	select {
	case <-ended:
	case <-time.After(time.Second):
		t.Error("OnRunEnd was not called")
	}
}

// TestRunRefusesAnOldReplica: a live replica of protocol 1 stops an online run.
func TestRunRefusesAnOldReplica(t *testing.T) {
	d := inmemory.New()
	startReplica(t, d, ProtocolVersion)
	old := startReplica(t, d, 1)
	c, _ := lockRun(t, d)
	err := c.Start(context.Background())
	if !errors.Is(err, ErrNotOnline) || !strings.Contains(err.Error(), "protocol 1") || !strings.Contains(err.Error(), old.ID()) {
		t.Fatalf("Start: %v, want a refusal naming %s and protocol 1", err, old.ID())
	}
	if old.Active() {
		t.Error("a protocol 1 replica took part in the run")
	}
}

// TestRunWaitsForPutsBegunBefore: a put under way when the run starts holds the replica's
// acknowledgement, so the prune reads the image API only after it ended; one that outlasts
// the drain can no longer record its result.
func TestRunWaitsForPutsBegunBefore(t *testing.T) {
	d := inmemory.New()
	r := startReplica(t, d, ProtocolVersion)
	quick, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	slow, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	c, _ := lockRun(t, d)
	started := make(chan error, 1)
	begun := time.Now()
	go func() { started <- c.Start(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	if err := quick.Valid(); err != nil {
		t.Errorf("a put still within the drain: %v", err)
	}
	quick.Done()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(begun); waited < fastTiming.Drain {
		t.Errorf("the run started after %s, before the drain (%s) let the slow put go", waited, fastTiming.Drain)
	}
	if err := slow.Valid(); !errors.Is(err, ErrRunChanged) {
		t.Errorf("a put that outlasted the drain: %v, want ErrRunChanged", err)
	}
	slow.Done()
	next, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer next.Done()
	if next.Run() != c.Run || next.Valid() != nil {
		t.Errorf("a put begun in the run: run %q valid %v", next.Run(), next.Valid())
	}
}

// TestClaimSeesUsesRecordedBefore: a use recorded before a claim keeps what it covers.
func TestClaimSeesUsesRecordedBefore(t *testing.T) {
	d := inmemory.New()
	r := startReplica(t, d, ProtocolVersion)
	c, _ := lockRun(t, d)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	uses := []Use{{Repository: "ns/app", Digest: dA, Tag: "v1"}, {Repository: "ns/app", Digest: dB}}
	put := recordedPut(t, r, uses)
	if err := put.WaitUnclaimed(context.Background(), uses); err != nil {
		t.Fatal(err)
	}
	objs := []prune.Object{
		{Kind: prune.KindBlob, Digest: dB},
		{Kind: prune.KindBlob, Digest: digestOf("orphan")},
		{Kind: prune.KindRepository, Repository: "ns/app"},
		{Kind: prune.KindRepository, Repository: "ns/gone"},
		{Kind: prune.KindTag, Repository: "ns/app", Name: "v1"},
	}
	inUse, release, err := c.Claim(context.Background(), objs)
	if err != nil {
		t.Fatal(err)
	}
	release()
	want := []bool{true, false, true, false, true}
	for i := range objs {
		if inUse[i] != want[i] {
			t.Errorf("%s in use: %v, want %v", objs[i], inUse[i], want[i])
		}
	}
	// Hints (a blob asked for) arrive within Flush.
	r.Used(Use{Repository: "ns/other", Digest: digestOf("orphan")})
	time.Sleep(3 * fastTiming.Flush)
	inUse, release, err = c.Claim(context.Background(), objs[1:2])
	if err != nil {
		t.Fatal(err)
	}
	release()
	if !inUse[0] {
		t.Error("a blob a replica asked for was not kept")
	}
	if c.Kept() != 4 {
		t.Errorf("Kept %d, want 4", c.Kept())
	}
	c.Finish(context.Background())
	if names, _ := list(context.Background(), d, storage.OnlineUsesPath(c.Run)); len(names) != 0 {
		t.Errorf("Finish left %v", names)
	}
}

// TestPutWaitsOutAClaimBeforeIt: a claim written before a put's record is waited out, so the
// put looks at storage only after the batch's deletions.
func TestPutWaitsOutAClaimBeforeIt(t *testing.T) {
	d := inmemory.New()
	r := startReplica(t, d, ProtocolVersion)
	c, _ := lockRun(t, d)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, release, err := c.Claim(context.Background(), []prune.Object{{Kind: prune.KindBlob, Digest: dA}})
	if err != nil {
		t.Fatal(err)
	}
	uses := []Use{{Repository: "ns/app", Digest: dA}}
	put := recordedPut(t, r, uses)
	var (
		mu       sync.Mutex
		released bool
	)
	go func() {
		time.Sleep(150 * time.Millisecond)
		mu.Lock()
		released = true
		mu.Unlock()
		release()
	}()
	if err := put.WaitUnclaimed(context.Background(), uses); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !released {
		t.Error("the put went on while the claim naming its blob was out")
	}
	// A claim of something else does not hold it.
	_, release2, err := c.Claim(context.Background(), []prune.Object{{Kind: prune.KindBlob, Digest: dB}})
	if err != nil {
		t.Fatal(err)
	}
	defer release2()
	begun := time.Now()
	if err := put.WaitUnclaimed(context.Background(), uses); err != nil || time.Since(begun) > time.Second {
		t.Errorf("an unrelated claim: %v after %s", err, time.Since(begun))
	}
}

// failingDriver fails every request once broken.
type failingDriver struct {
	driver.StorageDriver
	mu     sync.Mutex
	broken bool
}

func (f *failingDriver) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.broken {
		return errors.New("storage unreachable")
	}
	return nil
}

func (f *failingDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.StorageDriver.GetContent(ctx, p)
}

func (f *failingDriver) PutContent(ctx context.Context, p string, c []byte) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.StorageDriver.PutContent(ctx, p, c)
}

// TestFencedReplicaRefusesPuts: a replica that cannot follow the lock refuses manifest puts,
// and fails those under way, before a prune could take it for gone.
func TestFencedReplicaRefusesPuts(t *testing.T) {
	if fastTiming.Fence >= fastTiming.AdvertTTL {
		t.Fatal("the fence must come before the advert expires")
	}
	d := &failingDriver{StorageDriver: inmemory.New()}
	r := startReplica(t, d, ProtocolVersion)
	put, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer put.Done()
	d.mu.Lock()
	d.broken = true
	d.mu.Unlock()
	time.Sleep(fastTiming.Fence + 2*fastTiming.Poll)
	if _, err := r.Begin(); !errors.Is(err, ErrFenced) {
		t.Errorf("Begin while fenced: %v", err)
	}
	if err := put.Valid(); !errors.Is(err, ErrFenced) {
		t.Errorf("Valid while fenced: %v", err)
	}
	d.mu.Lock()
	d.broken = false
	d.mu.Unlock()
	waitFor(t, "the fence to lift", func() bool { _, err := r.Begin(); return err == nil })
}

// TestOldProtocolTakesNoPart: a replica of protocol 1 advertises itself and nothing else.
func TestOldProtocolTakesNoPart(t *testing.T) {
	d := inmemory.New()
	r := startReplica(t, d, 1)
	adverts, err := ReadAdverts(context.Background(), d)
	if err != nil || len(adverts) != 1 || adverts[0].Protocol != 1 {
		t.Fatalf("adverts %+v, %v", adverts, err)
	}
	put, err := r.Begin()
	if err != nil || put.Run() != "" || put.Valid() != nil {
		t.Errorf("a protocol 1 put: %v %q", err, put.Run())
	}
}

func TestAdvertisedProtocol(t *testing.T) {
	for v, want := range map[string]int{"": ProtocolVersion, "1": 1, "2": 2, "3": 0, "x": 0, "0": 0} {
		t.Setenv(ProtocolEnv, v)
		got, err := AdvertisedProtocol()
		if got != want || (want == 0) != (err != nil) {
			t.Errorf("%s=%q: %d, %v", ProtocolEnv, v, got, err)
		}
	}
}

// TestRunWaitsForPutsRecording: a put that was already recording its result when the run
// started holds the acknowledgement past the drain, until it ends.
func TestRunWaitsForPutsRecording(t *testing.T) {
	d := inmemory.New()
	r := startReplica(t, d, ProtocolVersion)
	put, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := put.Valid(); err != nil {
		t.Fatal(err)
	}
	c, _ := lockRun(t, d)
	started := make(chan error, 1)
	go func() { started <- c.Start(context.Background()) }()
	select {
	case err := <-started:
		t.Fatalf("the run started while a put was recording its Image: %v", err)
	case <-time.After(2 * fastTiming.Drain):
	}
	put.Done()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
}

// TestReplicasFollowOnlyOnlineRuns: a lock taken by a run that is not online (the ordinary
// prune's, a delete on a read-only registry) changes nothing in the replicas.
func TestReplicasFollowOnlyOnlineRuns(t *testing.T) {
	d := inmemory.New()
	r := startReplica(t, d, ProtocolVersion)
	lock, err := storage.AcquireLock(context.Background(), d, storage.LockOptions{Settle: time.Millisecond, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Release() }()
	time.Sleep(5 * fastTiming.Poll)
	if r.Active() || r.Bypass() {
		t.Fatal("a replica entered a run that is not online")
	}
	if err := lock.MarkOnline(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replica to enter the online run", r.Active)
}

// recordedPut begins a manifest put on r and records uses for it, as the registry does before
// it looks at storage; the put ends with the test.
func recordedPut(t *testing.T, r *Replica, uses []Use) *Ticket {
	t.Helper()
	put, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(put.Done)
	if err := put.Record(context.Background(), uses); err != nil {
		t.Fatal(err)
	}
	return put
}

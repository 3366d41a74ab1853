package schedule

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"
)

const (
	leaseName      = "image-registry-pruner"
	leaseNamespace = "openshift-image-registry"
	// The shortest lease the Lease can record: candidates retry every 166 ms.
	testLease = time.Second
)

// start is half an hour before the first run of the hourly schedule.
var start = time.Date(2025, 1, 1, 0, 30, 0, 0, time.UTC)

var hourly = func() cron.Schedule {
	s, err := cron.ParseStandard("0 * * * *")
	if err != nil {
		panic(err)
	}
	return s
}()

// at is the hourly schedule's time of the day's hour h.
func at(h int) time.Time { return time.Date(2025, 1, 1, h, 0, 0, 0, time.UTC) }

// newClientset is a fake API server whose Leases have resource versions and refuse stale
// updates, as a real one does: leader election and the result's record rely on it.
func newClientset() *fake.Clientset {
	cs := fake.NewClientset()
	gvr := coordinationv1.SchemeGroupVersion.WithResource("leases")
	version := 0 // reactors run one at a time, under the fake's lock
	cs.PrependReactor("create", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		lease := a.(k8stesting.CreateAction).GetObject().(*coordinationv1.Lease).DeepCopy()
		version++
		lease.ResourceVersion = strconv.Itoa(version)
		if err := cs.Tracker().Create(gvr, lease, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, lease, nil
	})
	cs.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		lease := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease).DeepCopy()
		stored, err := cs.Tracker().Get(gvr, a.GetNamespace(), lease.Name)
		if err != nil {
			return true, nil, err
		}
		if rv := stored.(*coordinationv1.Lease).ResourceVersion; rv != lease.ResourceVersion {
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), lease.Name,
				fmt.Errorf("resource version %s, stored %s", lease.ResourceVersion, rv))
		}
		version++
		lease.ResourceVersion = strconv.Itoa(version)
		if err := cs.Tracker().Update(gvr, lease, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, lease, nil
	})
	return cs
}

// testRunner is one replica under test.
type testRunner struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned err
	err    error
	log    *logtest.Hook
	runs   atomic.Int32
}

// startRunner runs Run with identity id; job, if nil, returns "pruned <n>".
func startRunner(t *testing.T, cs *fake.Clientset, clk *testingclock.FakeClock, id string, job Job) *testRunner {
	t.Helper()
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	r := &testRunner{id: id, done: make(chan struct{}), log: hook}
	if job == nil {
		job = func(context.Context) (string, error) { return "pruned " + strconv.Itoa(int(r.runs.Load())), nil }
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		r.err = Run(ctx, Options{
			Client: cs, LeaseName: leaseName, LeaseNamespace: leaseNamespace, LeaseDuration: testLease,
			Identity: id, Schedule: hourly, Clock: clk, Log: logger,
			Job: func(ctx context.Context) (string, error) {
				r.runs.Add(1)
				return job(ctx)
			},
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Errorf("runner %s did not stop", id)
		}
	})
	return r
}

// stop ends the runner's context and waits for Run to return.
func (r *testRunner) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Run: %v", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// logged tells whether a line at level starts with prefix.
func (r *testRunner) logged(level logrus.Level, prefix string) bool {
	for _, e := range r.log.AllEntries() {
		if e.Level == level && strings.HasPrefix(e.Message, prefix) {
			return true
		}
	}
	return false
}

func (r *testRunner) lines() string {
	var out []string
	for _, e := range r.log.AllEntries() {
		out = append(out, e.Level.String()+": "+e.Message)
	}
	return strings.Join(out, "\n")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func getLease(t *testing.T, cs *fake.Clientset) *coordinationv1.Lease {
	t.Helper()
	lease, err := cs.CoordinationV1().Leases(leaseNamespace).Get(context.Background(), leaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return lease
}

func holder(t *testing.T, cs *fake.Clientset) string {
	t.Helper()
	lease, err := cs.CoordinationV1().Leases(leaseNamespace).Get(context.Background(), leaseName, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// armed: a leader waits for its next time (only leaders use the clock's timers).
func armed(clk *testingclock.FakeClock) func() bool {
	return func() bool { return clk.Waiters() == 1 }
}

func TestTheLeaderRunsTheJobAtTheScheduledTime(t *testing.T) {
	cs := newClientset()
	clk := testingclock.NewFakeClock(start)
	ran := make(chan struct{}, 1)
	r := startRunner(t, cs, clk, "a", func(context.Context) (string, error) {
		clk.Step(2 * time.Second) // the run takes two seconds
		ran <- struct{}{}
		return "deleted 3 images\nand 7 blobs", nil
	})
	waitFor(t, "the lease", func() bool { return holder(t, cs) == "a" })
	waitFor(t, "the first time armed", armed(clk))
	if r.runs.Load() != 0 {
		t.Fatal("the job ran before its time")
	}
	clk.SetTime(at(1))
	<-ran
	waitFor(t, "the status line", func() bool { return r.logged(logrus.InfoLevel, "scheduled image prune finished") })
	want := "scheduled image prune finished: deleted 3 images; and 7 blobs (took 2s, next 2025-01-01T02:00:00Z)"
	if !r.logged(logrus.InfoLevel, want) {
		t.Errorf("log:\n%s\nwant the line %q", r.lines(), want)
	}

	// The status line comes first, then the record.
	waitFor(t, "the record", func() bool { return getLease(t, cs).Annotations[AnnotationLastTime] != "" })
	lease := getLease(t, cs)
	wantAnnotations := map[string]string{
		AnnotationLastTime:      "2025-01-01T01:00:00Z",
		AnnotationLastResult:    "deleted 3 images\nand 7 blobs",
		AnnotationLastDuration:  "2s",
		AnnotationLastSucceeded: "true",
	}
	for k, v := range wantAnnotations {
		if lease.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, lease.Annotations[k], v)
		}
	}
	// Leader election's fields are as it left them.
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "a" || lease.Spec.LeaseDurationSeconds == nil ||
		*lease.Spec.LeaseDurationSeconds != 1 || lease.Spec.RenewTime == nil {
		t.Errorf("lease spec %+v", lease.Spec)
	}
	// It keeps leading through renewals, which do not lose the annotations.
	time.Sleep(2 * RetryPeriod(testLease))
	if got := getLease(t, cs).Annotations[AnnotationLastResult]; got != wantAnnotations[AnnotationLastResult] || holder(t, cs) != "a" {
		t.Errorf("after renewals: holder %q, result %q", holder(t, cs), got)
	}

	// Stopped, it releases the lease.
	r.stop(t)
	if h := holder(t, cs); h != "" {
		t.Errorf("holder %q after the runner stopped, want the lease released", h)
	}
	if n := r.runs.Load(); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

func TestOnlyTheLeaderRunsAndAnotherTakesOver(t *testing.T) {
	cs := newClientset()
	clk := testingclock.NewFakeClock(start)
	runners := map[string]*testRunner{
		"a": startRunner(t, cs, clk, "a", nil),
		"b": startRunner(t, cs, clk, "b", nil),
	}
	waitFor(t, "a leader", func() bool { return holder(t, cs) != "" })
	waitFor(t, "the first time armed", armed(clk))
	leaderID := holder(t, cs)
	leader, other := runners[leaderID], runners["a"]
	if leaderID == "a" {
		other = runners["b"]
	}

	clk.SetTime(at(1))
	waitFor(t, "the leader's run", func() bool { return leader.logged(logrus.InfoLevel, "scheduled image prune finished") })
	waitFor(t, "the next time armed", armed(clk))
	time.Sleep(2 * RetryPeriod(testLease))
	if leader.runs.Load() != 1 || other.runs.Load() != 0 {
		t.Fatalf("runs: leader %d, other %d; want 1 and 0", leader.runs.Load(), other.runs.Load())
	}

	// The leader stops: it releases the lease, and the other one takes over at once (no
	// waiting for the lease to expire) and runs the next time.
	leader.stop(t)
	waitFor(t, "the other one to lead", func() bool { return holder(t, cs) == other.id })
	waitFor(t, "the other one armed", armed(clk))
	clk.SetTime(at(2))
	waitFor(t, "the new leader's run", func() bool { return other.logged(logrus.InfoLevel, "scheduled image prune finished") })
	if leader.runs.Load() != 1 || other.runs.Load() != 1 {
		t.Errorf("runs: first leader %d, second %d; want 1 and 1", leader.runs.Load(), other.runs.Load())
	}
	waitFor(t, "the second run recorded", func() bool {
		return getLease(t, cs).Annotations[AnnotationLastTime] == "2025-01-01T02:00:00Z"
	})
}

func TestSuspendRunsNothing(t *testing.T) {
	cs := newClientset()
	logger, hook := logtest.NewNullLogger()
	ran := false
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), Options{
			Client: cs, LeaseName: leaseName, LeaseNamespace: leaseNamespace, LeaseDuration: testLease,
			Identity: "a", Schedule: hourly, Suspend: true, Log: logger,
			Clock: testingclock.NewFakeClock(start),
			Job:   func(context.Context) (string, error) { ran = true; return "", nil },
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a suspended schedule did not return")
	}
	if ran || len(cs.Actions()) != 0 {
		t.Errorf("ran %v, API calls %v; want nothing", ran, cs.Actions())
	}
	if len(hook.AllEntries()) != 1 || !strings.HasPrefix(hook.LastEntry().Message, "scheduled image prune suspended") {
		t.Errorf("log %v, want one line saying it is suspended", hook.AllEntries())
	}
}

// A failing run, and a panicking one, are a warning each and recorded as failures.
func TestFailedRunsAreReportedAndRecorded(t *testing.T) {
	cs := newClientset()
	clk := testingclock.NewFakeClock(start)
	var calls atomic.Int32
	r := startRunner(t, cs, clk, "a", func(context.Context) (string, error) {
		if calls.Add(1) == 1 {
			return "", errors.New("listing images: forbidden")
		}
		panic("boom")
	})
	for i, want := range []struct{ line, result string }{
		{"scheduled image prune failed: listing images: forbidden (took 0s, next 2025-01-01T02:00:00Z)", "listing images: forbidden"},
		{"scheduled image prune failed: panic: boom (took 0s, next 2025-01-01T03:00:00Z)", "panic: boom"},
	} {
		waitFor(t, "the time armed", armed(clk))
		clk.SetTime(at(i + 1))
		waitFor(t, "the status line", func() bool { return r.logged(logrus.WarnLevel, want.line) })
		waitFor(t, "the record", func() bool {
			a := getLease(t, cs).Annotations
			return a[AnnotationLastResult] == want.result && a[AnnotationLastSucceeded] == "false"
		})
	}
}

// A run still going at the next time: that time is skipped, and logged.
func TestAnOverlappingTimeIsSkipped(t *testing.T) {
	cs := newClientset()
	clk := testingclock.NewFakeClock(start)
	started, release := make(chan struct{}, 2), make(chan struct{})
	r := startRunner(t, cs, clk, "a", func(context.Context) (string, error) {
		started <- struct{}{}
		<-release
		return "done", nil
	})
	waitFor(t, "the first time armed", armed(clk))
	clk.SetTime(at(1))
	<-started
	waitFor(t, "the second time armed", armed(clk))
	clk.SetTime(at(2))
	skipped := "scheduled image prune at 2025-01-01T02:00:00Z skipped: the run started 2025-01-01T01:00:00Z is still going"
	waitFor(t, "the skip", func() bool { return r.logged(logrus.WarnLevel, skipped) })
	if n := r.runs.Load(); n != 1 {
		t.Fatalf("%d runs while the first went on, want 1", n)
	}
	close(release)
	waitFor(t, "the first run's status line", func() bool {
		return r.logged(logrus.InfoLevel, "scheduled image prune finished: done (took 1h0m0s, next 2025-01-01T03:00:00Z)")
	})
	waitFor(t, "the third time armed", armed(clk))
	clk.SetTime(at(3))
	<-started
	if n := r.runs.Load(); n != 2 {
		t.Errorf("%d runs, want 2", n)
	}
}

// Another replica takes the lease (this one could not renew in time): the running job's
// context ends, its failure is reported, and the replica stands again.
func TestLosingTheLeaseCancelsTheRunningJob(t *testing.T) {
	cs := newClientset()
	clk := testingclock.NewFakeClock(start)
	started, cancelled := make(chan struct{}), make(chan struct{})
	r := startRunner(t, cs, clk, "a", func(ctx context.Context) (string, error) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return "", ctx.Err()
	})
	waitFor(t, "the first time armed", armed(clk))
	clk.SetTime(at(1))
	<-started

	err := retryConflict(func() error {
		lease := getLease(t, cs)
		thief, long := "thief", int32(3600)
		lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds = &thief, &long
		lease.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		_, err := cs.CoordinationV1().Leases(leaseNamespace).Update(context.Background(), lease, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the job's context did not end when the lease was lost")
	}
	waitFor(t, "the failure", func() bool {
		return r.logged(logrus.WarnLevel, "scheduled image prune failed: context canceled")
	})
	waitFor(t, "standing again", func() bool {
		return r.logged(logrus.WarnLevel, "scheduled image prune: lost the Lease openshift-image-registry/image-registry-pruner")
	})
	r.stop(t)
	if h := holder(t, cs); h != "thief" {
		t.Errorf("holder %q, want the thief's lease untouched", h)
	}
	// Recorded before Run returned.
	if got := getLease(t, cs).Annotations[AnnotationLastSucceeded]; got != "false" {
		t.Errorf("last prune succeeded %q, want the cancelled run recorded", got)
	}
}

func retryConflict(f func() error) error {
	for {
		err := f()
		if !apierrors.IsConflict(err) {
			return err
		}
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"nothing", func(o *Options) { *o = Options{} },
			"schedule: Options without Client, LeaseName, LeaseNamespace, Identity, Schedule, Job"},
		{"short lease", func(o *Options) { o.LeaseDuration = 500 * time.Millisecond },
			"schedule: lease duration 500ms: must be at least 1s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{
				Client: newClientset(), LeaseName: leaseName, LeaseNamespace: leaseNamespace, LeaseDuration: testLease,
				Identity: "a", Schedule: hourly, Job: func(context.Context) (string, error) { return "", nil },
			}
			tt.change(&o)
			err := Run(context.Background(), o)
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNewIdentity(t *testing.T) {
	t.Setenv("HOSTNAME", "image-registry-5d8f9-abcde")
	a, b := NewIdentity(), NewIdentity()
	if !strings.HasPrefix(a, "image-registry-5d8f9-abcde_") || a == b {
		t.Errorf("identities %q and %q: want the pod's name and a suffix of their own", a, b)
	}
}

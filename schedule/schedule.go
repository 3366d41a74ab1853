// Package schedule runs a job on a cron schedule in one replica at a time: the holder of a
// coordination.k8s.io Lease, elected with client-go's leader election. It is how the serving
// registry runs the ordinary image prune itself, in place of the ImagePruner's CronJob.
//
// Only the leader waits for the schedule; losing the lease cancels its running job. A run that
// is still going at the next scheduled time makes that time skipped (a CronJob's
// concurrencyPolicy: Forbid). Each run ends with one log line and its result recorded on the
// Lease as annotations (see the Annotation constants).
package schedule

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"
)

// Job is the work run at each scheduled time. Its summary (or error) is logged and recorded
// on the Lease. It should return soon after ctx ends: that is how losing the lease stops it.
type Job func(ctx context.Context) (summary string, err error)

// Options configure Run.
type Options struct {
	// Client reaches the API server holding the Lease.
	Client kubernetes.Interface
	// LeaseName and LeaseNamespace name the Lease the replicas share.
	LeaseName, LeaseNamespace string
	// LeaseDuration is how long a leader's lease lasts unrenewed, at least a second (the Lease
	// records whole seconds). The leader renews it within RenewDeadline(LeaseDuration) and
	// every candidate tries every RetryPeriod(LeaseDuration).
	LeaseDuration time.Duration
	// Identity names this replica in the Lease; unique among the replicas (see NewIdentity).
	Identity string
	// Schedule says when Job runs.
	Schedule cron.Schedule
	// Suspend: Run logs that the schedule is suspended and returns, running nothing.
	Suspend bool
	Job     Job
	// Clock times the schedule and the runs; nil: the real one. (Leader election keeps
	// client-go's real clock.)
	Clock clock.Clock
	// Log gets the status lines; nil: logrus' standard logger.
	Log logrus.FieldLogger
}

// The annotations Run records on the Lease after each run.
const (
	// AnnotationLastTime is when the last run started, RFC 3339.
	AnnotationLastTime = "image-registry.hardprune.io/last-prune-time"
	// AnnotationLastResult is its summary, or its error's text.
	AnnotationLastResult = "image-registry.hardprune.io/last-prune-result"
	// AnnotationLastDuration is how long it took (a Go duration).
	AnnotationLastDuration = "image-registry.hardprune.io/last-prune-duration"
	// AnnotationLastSucceeded is "true", or "false" when the result is an error: the text
	// alone does not say.
	AnnotationLastSucceeded = "image-registry.hardprune.io/last-prune-succeeded"
)

// RenewDeadline is how long a leader keeps trying to renew its lease before it gives up:
// two thirds of the lease, so that it stops (and cancels its job) before another replica may
// take over.
func RenewDeadline(leaseDuration time.Duration) time.Duration { return leaseDuration * 2 / 3 }

// RetryPeriod is how often candidates try to acquire the lease and the leader renews it: a
// sixth of the lease, a few tries within the renew deadline.
func RetryPeriod(leaseDuration time.Duration) time.Duration { return leaseDuration / 6 }

// NewIdentity names this replica: the pod's name (HOSTNAME, else the host name) and a random
// suffix, so that a restarted pod is not taken for its predecessor still holding the lease.
func NewIdentity() string {
	name := os.Getenv("HOSTNAME")
	if name == "" {
		name, _ = os.Hostname()
	}
	if name == "" {
		name = "image-registry"
	}
	return name + "_" + string(uuid.NewUUID())
}

func (o *Options) check() error {
	var missing []string
	for _, m := range []struct {
		name  string
		unset bool
	}{
		{"Client", o.Client == nil}, {"LeaseName", o.LeaseName == ""}, {"LeaseNamespace", o.LeaseNamespace == ""},
		{"Identity", o.Identity == ""}, {"Schedule", o.Schedule == nil}, {"Job", o.Job == nil},
	} {
		if m.unset {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("schedule: Options without %s", strings.Join(missing, ", "))
	}
	if o.LeaseDuration < time.Second {
		return fmt.Errorf("schedule: lease duration %s: must be at least 1s", o.LeaseDuration)
	}
	return nil
}

// Run takes part in the election of the Lease until ctx ends, running the job on the
// schedule while it leads. It returns nil when ctx ends, after any running job has returned
// and the lease is released, and an error only for Options it cannot use.
func Run(ctx context.Context, o Options) error {
	if err := o.check(); err != nil {
		return err
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Log == nil {
		o.Log = logrus.StandardLogger()
	}
	lease := o.LeaseNamespace + "/" + o.LeaseName
	if o.Suspend {
		o.Log.Infof("scheduled image prune suspended: nothing runs (Lease %s not taken)", lease)
		return nil
	}
	r := &runner{Options: o, lease: lease}
	for {
		if err := r.elect(ctx); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		// Lost: another replica took over, or the API server could not be reached in time.
		// Stand again; whoever leads runs the next time.
		o.Log.Warnf("scheduled image prune: lost the Lease %s, standing for it again", lease)
	}
}

type runner struct {
	Options
	lease string
}

// elect is one round of the election: it returns when ctx ends (the lease released), or
// when this replica led and lost the lease; either way, after its job has returned.
func (r *runner) elect(ctx context.Context) error {
	// The election outlives ctx until the job has returned: released earlier, the lease could
	// let another replica start a run beside this one's.
	electionCtx, stopElection := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElection()
	term := &term{stopElection: stopElection}
	stopWatching := context.AfterFunc(ctx, term.close)
	defer stopWatching()

	started, finished := make(chan struct{}), make(chan struct{})
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metaFor(r.LeaseName, r.LeaseNamespace),
			Client:     r.Client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: r.Identity},
		},
		LeaseDuration:   r.LeaseDuration,
		RenewDeadline:   RenewDeadline(r.LeaseDuration),
		RetryPeriod:     RetryPeriod(r.LeaseDuration),
		ReleaseOnCancel: true,
		Name:            r.lease,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leadCtx context.Context) {
				close(started)
				defer close(finished)
				r.lead(ctx, leadCtx, term)
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(identity string) {
				// "" is a released lease: nobody leads until a candidate takes it.
				if identity != r.Identity && identity != "" {
					r.Log.Infof("scheduled image prune: %s leads (Lease %s)", identity, r.lease)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("schedule: leader election on Lease %s: %w", r.lease, err)
	}
	elector.Run(electionCtx)
	// The leading goroutine may be running still (client-go does not wait for it), or not
	// have started: it then finds its context done and returns at once.
	select {
	case <-started:
		<-finished
	default:
	}
	return nil
}

// term is what the leader and the end of Run's context share: the election stops once ctx
// has ended and no job is running.
type term struct {
	mu           sync.Mutex
	closing      bool
	running      bool
	stopElection func()
}

// close: Run's context ended; the election stops now, or when the running job returns.
func (t *term) close() {
	t.mu.Lock()
	t.closing = true
	running := t.running
	t.mu.Unlock()
	if !running {
		t.stopElection()
	}
}

// start marks a job running, unless Run's context has ended.
func (t *term) start() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	t.running = true
	return true
}

// done marks the job returned, and stops the election if Run's context has ended.
func (t *term) done() {
	t.mu.Lock()
	t.running = false
	closing := t.closing
	t.mu.Unlock()
	if closing {
		t.stopElection()
	}
}

// result is one run's outcome.
type result struct {
	started time.Time
	took    time.Duration
	summary string
	err     error
}

// lead waits for the scheduled times and runs the job while leadCtx lasts (it ends when the
// lease is lost or released); ctx is Run's, which also cancels a running job.
func (r *runner) lead(ctx, leadCtx context.Context, t *term) {
	if leadCtx.Err() != nil {
		return
	}
	next, timer := r.arm()
	defer func() { timer.Stop() }()
	r.Log.Infof("scheduled image prune: leading (Lease %s as %s), next run %s", r.lease, r.Identity, when(next))

	var (
		done    chan result // the running job's, nil when none runs
		started time.Time
	)
	for {
		select {
		case <-leadCtx.Done():
			if done != nil {
				r.report(<-done, next)
				t.done()
			}
			return
		case res := <-done:
			done = nil
			r.report(res, next)
			t.done()
		case <-timer.C():
			switch {
			case done != nil:
				r.Log.Warnf("scheduled image prune at %s skipped: the run started %s is still going",
					when(next), when(started))
			case t.start():
				started = r.Clock.Now()
				done = r.startJob(ctx, leadCtx, started)
			}
			next, timer = r.arm()
		}
	}
}

// arm returns the next scheduled time and a timer firing then (one that never fires when
// the schedule has no next time).
func (r *runner) arm() (time.Time, clock.Timer) {
	now := r.Clock.Now()
	next := r.Schedule.Next(now)
	if next.IsZero() {
		r.Log.Errorf("scheduled image prune: the schedule has no time after %s, nothing more runs", when(now))
		return next, never{}
	}
	return next, r.Clock.NewTimer(next.Sub(now))
}

// startJob runs the job in a goroutine with a context that ends with ctx or leadCtx; the
// channel gets its result.
func (r *runner) startJob(ctx, leadCtx context.Context, started time.Time) chan result {
	done := make(chan result, 1)
	go func() {
		jobCtx, cancel := context.WithCancel(leadCtx)
		defer cancel()
		stop := context.AfterFunc(ctx, cancel)
		defer stop()
		summary, err := r.runJob(jobCtx)
		done <- result{started: started, took: r.Clock.Since(started), summary: summary, err: err}
	}()
	return done
}

// runJob runs the job, its panic an error: a prune's bug must not take the serving registry
// down with it.
func (r *runner) runJob(ctx context.Context) (summary string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return r.Job(ctx)
}

// report logs the status line of a run and records it on the Lease.
func (r *runner) report(res result, next time.Time) {
	took := res.took.Round(time.Millisecond)
	if res.err != nil {
		r.Log.Warnf("scheduled image prune failed: %s (took %s, next %s)", oneLine(res.err.Error()), took, when(next))
	} else {
		r.Log.Infof("scheduled image prune finished: %s (took %s, next %s)", oneLine(res.summary), took, when(next))
	}
	// The result is recorded even when the lease was just lost or Run's context ended: it
	// touches only annotations, and it is this run's.
	ctx, cancel := context.WithTimeout(context.Background(), r.LeaseDuration)
	defer cancel()
	if err := recordResult(ctx, r.Client, r.LeaseNamespace, r.LeaseName, res); err != nil {
		r.Log.Warnf("scheduled image prune: recording the result on the Lease %s: %v", r.lease, err)
	}
}

// when formats a time for the log.
func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format(time.RFC3339)
}

// oneLine keeps a status line one line, whatever the summary holds.
func oneLine(s string) string {
	lines := strings.FieldsFunc(strings.TrimSpace(s), func(r rune) bool { return r == '\n' || r == '\r' })
	return strings.Join(lines, "; ")
}

// never is a timer that does not fire.
type never struct{}

func (never) C() <-chan time.Time      { return nil }
func (never) Stop() bool               { return false }
func (never) Reset(time.Duration) bool { return false }

var _ clock.Timer = never{}

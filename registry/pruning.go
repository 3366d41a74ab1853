package registry

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"
	"k8s.io/client-go/kubernetes"

	"github.com/hardprune/image-registry/config"
	"github.com/hardprune/image-registry/schedule"
)

// ScheduledPrune is the ordinary image prune that openshift.pruning runs on its schedule, in
// the replica holding the Lease: cmd/dockerregistry sets it, since the prune is built outside
// this package. Nil: the scheduled prune is not in this build, and Serve says so when the
// configuration enables it.
var ScheduledPrune func(ctx context.Context, cfg *config.Config, settings config.Pruning) (summary string, err error)

// startScheduledPrune starts the scheduled prune when the configuration enables it (and
// ScheduledPrune is set); newClient gives the client of the Lease. The returned stop ends the
// schedule and waits for it: a running prune's context ends, the lease is released.
func startScheduledPrune(
	ctx context.Context,
	cfg *config.Config,
	newClient func() (kubernetes.Interface, error),
	log logrus.FieldLogger,
) (stop func(), err error) {
	settings := cfg.OpenShift.Pruning
	if !settings.Enabled {
		return func() {}, nil
	}
	prune := ScheduledPrune
	if prune == nil {
		log.Error("openshift.pruning.enabled is true, but the scheduled image prune is not available in this build: " +
			"nothing is pruned on a schedule")
		return func() {}, nil
	}
	when, err := settings.CronSchedule()
	if err != nil { // validated with the configuration
		return nil, fmt.Errorf("openshift.pruning.schedule %q: %w", settings.Schedule, err)
	}
	client, err := newClient()
	if err != nil {
		return nil, fmt.Errorf("creating the client of the scheduled prune's Lease: %w", err)
	}
	opts := schedule.Options{
		Client:         client,
		LeaseName:      settings.LeaseName,
		LeaseNamespace: settings.LeaseNamespace,
		LeaseDuration:  settings.LeaseDuration,
		Identity:       schedule.NewIdentity(),
		Schedule:       when,
		Suspend:        settings.Suspend,
		Job: func(ctx context.Context) (string, error) {
			return prune(ctx, cfg, settings)
		},
		Log: log,
	}
	log.WithFields(logrus.Fields{
		"keeptagrevisions": settings.KeepTagRevisions, "keepyoungerthan": settings.KeepYoungerThan,
		"ignoreinvalidrefs": settings.IgnoreInvalidRefs, "all": settings.All, "pruneregistry": settings.PruneRegistry,
		"blobgraceperiod": settings.BlobGracePeriod, "suspend": settings.Suspend, "identity": opts.Identity,
	}).Infof("starting the scheduled image prune: schedule %q, Lease %s/%s (duration %s)",
		settings.Schedule, settings.LeaseNamespace, settings.LeaseName, settings.LeaseDuration)

	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := schedule.Run(ctx, opts); err != nil {
			log.Errorf("the scheduled image prune stopped: %v", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}, nil
}

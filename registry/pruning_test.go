package registry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/hardprune/image-registry/config"
	"github.com/hardprune/image-registry/schedule"
)

func pruningConfig(p config.Pruning) *config.Config {
	return &config.Config{OpenShift: config.OpenShift{Pruning: p}}
}

func withScheduledPrune(t *testing.T, f func(context.Context, *config.Config, config.Pruning) (string, error)) {
	t.Helper()
	saved := ScheduledPrune
	ScheduledPrune = f
	t.Cleanup(func() { ScheduledPrune = saved })
}

// Not enabled, or not in this build: nothing starts, no client is made.
func TestScheduledPruneNotStarted(t *testing.T) {
	noClient := func() (kubernetes.Interface, error) {
		t.Error("a client was made")
		return nil, errors.New("no client")
	}
	withScheduledPrune(t, func(context.Context, *config.Config, config.Pruning) (string, error) {
		t.Error("the prune ran")
		return "", nil
	})
	log, hook := logtest.NewNullLogger()
	stop, err := startScheduledPrune(context.Background(), pruningConfig(config.Pruning{}), noClient, log)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if len(hook.AllEntries()) != 0 {
		t.Errorf("disabled, yet logged %v", hook.AllEntries())
	}

	withScheduledPrune(t, nil)
	stop, err = startScheduledPrune(context.Background(), pruningConfig(config.Pruning{Enabled: true}), noClient, log)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if e := hook.LastEntry(); len(hook.AllEntries()) != 1 || e.Level.String() != "error" ||
		!strings.Contains(e.Message, "not available in this build") {
		t.Errorf("log %v, want one error saying the build has no scheduled prune", hook.AllEntries())
	}
}

// Enabled: the hook runs on the schedule with the configuration and its settings, the start
// is logged, and stop ends it with the lease released.
func TestScheduledPruneRunsTheHook(t *testing.T) {
	settings := config.Pruning{
		Enabled: true, Schedule: "@every 1s", KeepTagRevisions: 3, KeepYoungerThan: time.Hour,
		LeaseName: "image-registry-pruner", LeaseNamespace: "openshift-image-registry", LeaseDuration: time.Second,
	}
	cfg := pruningConfig(settings)
	type call struct {
		cfg      *config.Config
		settings config.Pruning
	}
	calls := make(chan call, 10)
	withScheduledPrune(t, func(_ context.Context, c *config.Config, s config.Pruning) (string, error) {
		calls <- call{c, s}
		return "nothing to prune", nil
	})
	client := fake.NewClientset()
	log, hook := logtest.NewNullLogger()
	stop, err := startScheduledPrune(context.Background(), cfg, func() (kubernetes.Interface, error) {
		return client, nil
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	first := hook.AllEntries()[0].Message
	if want := `starting the scheduled image prune: schedule "@every 1s", Lease openshift-image-registry/image-registry-pruner (duration 1s)`; first != want {
		t.Errorf("first line %q, want %q", first, want)
	}
	select {
	case c := <-calls:
		if c.cfg != cfg || c.settings != settings {
			t.Errorf("the prune got %p %+v, want the registry's configuration and its settings", c.cfg, c.settings)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the prune did not run")
	}
	stop()
	lease, err := client.CoordinationV1().Leases("openshift-image-registry").Get(
		context.Background(), "image-registry-pruner", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := lease.Spec.HolderIdentity; h == nil || *h != "" {
		t.Errorf("holder %v after stop, want the lease released", h)
	}
	if r := lease.Annotations[schedule.AnnotationLastResult]; r != "nothing to prune" {
		t.Errorf("last result %q", r)
	}
}

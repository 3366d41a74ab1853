package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Pruning is openshift.pruning: the ordinary image prune (oc adm prune images' rules) run by
// the registry itself on a schedule, by one replica at a time (the holder of a Lease). Its
// defaults are those of the cluster's ImagePruner (imageregistry.operator.openshift.io), whose
// CronJob it replaces. This registry's own section.
type Pruning struct {
	// Enabled starts the schedule in the serving registry; default false.
	Enabled bool `yaml:"enabled"`
	// Schedule is when the prune runs: cron's five fields or a descriptor such as @daily, as
	// robfig/cron's standard parser reads them; default "0 0 * * *".
	Schedule string `yaml:"schedule"`
	// Suspend keeps the schedule from running anything, as the ImagePruner's suspend.
	Suspend bool `yaml:"suspend"`

	// The prune's own settings, as oc adm prune images' flags of the same names.
	KeepTagRevisions  int           `yaml:"keeptagrevisions"`  // default 3
	KeepYoungerThan   time.Duration `yaml:"keepyoungerthan"`   // default 60m
	IgnoreInvalidRefs bool          `yaml:"ignoreinvalidrefs"` // default true
	All               bool          `yaml:"all"`               // default true
	PruneRegistry     bool          `yaml:"pruneregistry"`     // default true
	// BlobGracePeriod keeps the blobs of pruned images written more recently than this, as
	// -prune-keep-younger-than does for the command: a push may be reusing them. Default 1h.
	BlobGracePeriod time.Duration `yaml:"blobgraceperiod"`

	// The coordination.k8s.io Lease the replicas elect the one that prunes with. LeaseNamespace
	// defaults to the pod's namespace (see defaultLeaseNamespace); LeaseDuration (default 60s)
	// also sets how often the holder renews (see package schedule).
	LeaseName      string        `yaml:"leasename"`
	LeaseNamespace string        `yaml:"leasenamespace"`
	LeaseDuration  time.Duration `yaml:"leaseduration"`
}

// MinLeaseDuration is the shortest openshift.pruning.leaseduration: shorter, an API server
// slow for a moment would hand the lease to another replica in the middle of a prune.
const MinLeaseDuration = 5 * time.Second

// FallbackLeaseNamespace is the lease's namespace when neither POD_NAMESPACE nor the service
// account says which namespace the registry runs in: the registry operator's.
const FallbackLeaseNamespace = "openshift-image-registry"

// podNamespaceEnv is the downward API variable a deployment may set to the pod's namespace.
const podNamespaceEnv = "POD_NAMESPACE"

// serviceAccountNamespaceFile is where a pod's service account names its namespace; a
// variable so that tests can point it elsewhere.
var serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// CronSchedule parses Schedule as validate does: the one place that chooses the parser.
func (p Pruning) CronSchedule() (cron.Schedule, error) {
	return cron.ParseStandard(p.Schedule)
}

// defaultLeaseNamespace is the namespace the registry runs in, where its replicas meet: the
// POD_NAMESPACE variable, else the service account's namespace file, else
// FallbackLeaseNamespace.
func defaultLeaseNamespace() string {
	if ns := strings.TrimSpace(os.Getenv(podNamespaceEnv)); ns != "" {
		return ns
	}
	if b, err := os.ReadFile(serviceAccountNamespaceFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return FallbackLeaseNamespace
}

// validate refuses what would make the schedule, the prune or the lease fail only later, in
// the serving registry.
func (p Pruning) validate() error {
	if _, err := p.CronSchedule(); err != nil {
		return fmt.Errorf("openshift.pruning.schedule %q: %s", p.Schedule, oneLine(err))
	}
	if p.KeepTagRevisions < 0 {
		return fmt.Errorf("openshift.pruning.keeptagrevisions %d: must not be negative", p.KeepTagRevisions)
	}
	if p.KeepYoungerThan < 0 {
		return fmt.Errorf("openshift.pruning.keepyoungerthan %s: must not be negative", p.KeepYoungerThan)
	}
	if p.BlobGracePeriod < 0 {
		return fmt.Errorf("openshift.pruning.blobgraceperiod %s: must not be negative", p.BlobGracePeriod)
	}
	if p.LeaseDuration < MinLeaseDuration {
		return fmt.Errorf("openshift.pruning.leaseduration %s: must be at least %s", p.LeaseDuration, MinLeaseDuration)
	}
	if errs := validation.IsDNS1123Subdomain(p.LeaseName); len(errs) > 0 {
		return fmt.Errorf("openshift.pruning.leasename %q: not a Lease name: %s", p.LeaseName, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(p.LeaseNamespace); len(errs) > 0 {
		return fmt.Errorf("openshift.pruning.leasenamespace %q: not a namespace: %s",
			p.LeaseNamespace, strings.Join(errs, "; "))
	}
	return nil
}

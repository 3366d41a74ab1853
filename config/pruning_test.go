package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// withNamespaceFile points the service account's namespace file at content (none if empty).
func withNamespaceFile(t *testing.T, content string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "namespace")
	if content != "" {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	saved := serviceAccountNamespaceFile
	serviceAccountNamespaceFile = p
	t.Cleanup(func() { serviceAccountNamespaceFile = saved })
}

func unsetEnv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "")
	os.Unsetenv(name)
}

// The cluster's ImagePruner's defaults, and off unless enabled.
func TestPruningDefaults(t *testing.T) {
	clearLegacyEnv(t)
	unsetEnv(t, podNamespaceEnv)
	withNamespaceFile(t, "")
	cfg, err := Load(write(t, base))
	if err != nil {
		t.Fatal(err)
	}
	want := Pruning{
		Schedule: "0 0 * * *", KeepTagRevisions: 3, KeepYoungerThan: time.Hour, IgnoreInvalidRefs: true,
		All: true, PruneRegistry: true, BlobGracePeriod: time.Hour, LeaseName: "image-registry-pruner",
		LeaseNamespace: "openshift-image-registry", LeaseDuration: time.Minute,
	}
	if got := cfg.OpenShift.Pruning; got != want {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings %q", cfg.Warnings)
	}
	if s, err := cfg.OpenShift.Pruning.CronSchedule(); err != nil {
		t.Error(err)
	} else if next := s.Next(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)); !next.Equal(time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("next run %s, want midnight", next)
	}
}

// Values given are kept, zero ones included: a default fills only what is left out.
func TestPruningValuesGiven(t *testing.T) {
	clearLegacyEnv(t)
	cfg, err := Load(write(t, base+`openshift:
  pruning:
    enabled: true
    schedule: "@every 6h"
    keeptagrevisions: 0
    keepyoungerthan: 0s
    ignoreinvalidrefs: false
    all: false
    pruneregistry: false
    blobgraceperiod: 0s
    leasename: pruner
    leasenamespace: registry
    leaseduration: 5s
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Pruning{
		Enabled: true, Schedule: "@every 6h", LeaseName: "pruner", LeaseNamespace: "registry",
		LeaseDuration: 5 * time.Second,
	}
	if got := cfg.OpenShift.Pruning; got != want {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings %q", cfg.Warnings)
	}
}

// The lease's namespace is the pod's: POD_NAMESPACE, else the service account's, else the
// registry operator's.
func TestPruningLeaseNamespace(t *testing.T) {
	clearLegacyEnv(t)
	for _, tt := range []struct {
		name, env, file, want string
	}{
		{name: "POD_NAMESPACE first", env: "from-env", file: "from-file\n", want: "from-env"},
		{name: "the service account's", file: "from-file\n", want: "from-file"},
		{name: "neither", want: FallbackLeaseNamespace},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv(podNamespaceEnv, tt.env)
			} else {
				unsetEnv(t, podNamespaceEnv)
			}
			withNamespaceFile(t, tt.file)
			cfg, err := Load(write(t, base))
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.OpenShift.Pruning.LeaseNamespace; got != tt.want {
				t.Errorf("lease namespace %q, want %q", got, tt.want)
			}
		})
	}
	// Given, it wins.
	t.Setenv(podNamespaceEnv, "from-env")
	cfg, err := Load(write(t, base+"openshift:\n  pruning:\n    leasenamespace: given\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.OpenShift.Pruning.LeaseNamespace; got != "given" {
		t.Errorf("lease namespace %q, want the configuration's", got)
	}
}

// Every bad pruning value: one line naming the key and the value.
func TestBadPruningValues(t *testing.T) {
	pruning := func(s string) string { return base + "openshift:\n  pruning:\n" + s }
	for _, tt := range []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{
			name: "schedule that does not parse",
			file: pruning("    schedule: x\n"),
			want: `openshift.pruning.schedule "x": expected exactly 5 fields, found 1: [x]`,
		},
		{
			name: "schedule with six fields",
			file: pruning("    schedule: \"0 0 0 * * *\"\n"),
			want: `openshift.pruning.schedule "0 0 0 * * *": expected exactly 5 fields, found 6: [0 0 0 * * *]`,
		},
		{
			name: "unknown descriptor",
			env:  map[string]string{"REGISTRY_OPENSHIFT_PRUNING_SCHEDULE": "@sometimes"},
			want: `openshift.pruning.schedule "@sometimes": unrecognized descriptor: @sometimes`,
		},
		{
			name: "empty schedule",
			file: pruning("    schedule: \"\"\n"),
			want: `openshift.pruning.schedule "": empty spec string`,
		},
		{
			name: "negative revisions",
			file: pruning("    keeptagrevisions: -1\n"),
			want: "openshift.pruning.keeptagrevisions -1: must not be negative",
		},
		{
			name: "negative age",
			env:  map[string]string{"REGISTRY_OPENSHIFT_PRUNING_KEEPYOUNGERTHAN": "-1m"},
			want: "openshift.pruning.keepyoungerthan -1m0s: must not be negative",
		},
		{
			name: "negative blob grace period",
			file: pruning("    blobgraceperiod: -5m\n"),
			want: "openshift.pruning.blobgraceperiod -5m0s: must not be negative",
		},
		{
			name: "short lease",
			file: pruning("    leaseduration: 2s\n"),
			want: "openshift.pruning.leaseduration 2s: must be at least 5s",
		},
		{
			name: "lease name",
			file: pruning("    leasename: Image_Pruner\n"),
			want: `openshift.pruning.leasename "Image_Pruner": not a Lease name`,
		},
		{
			name: "lease namespace",
			file: pruning("    leasenamespace: a.b\n"),
			want: `openshift.pruning.leasenamespace "a.b": not a namespace`,
		},
		{
			name: "duration variable",
			env:  map[string]string{"REGISTRY_OPENSHIFT_PRUNING_LEASEDURATION": "long"},
			want: "REGISTRY_OPENSHIFT_PRUNING_LEASEDURATION",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clearLegacyEnv(t)
			setEnv(t, tt.env)
			file := tt.file
			if file == "" {
				file = base
			}
			_, err := Load(write(t, file))
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want one line with %q", err, tt.want)
			}
		})
	}
}

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hardprune/image-registry/config"
)

func TestOrdinaryPruneFlags(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		errHas string // empty: accepted
	}{
		{"oc's CronJob arguments", []string{"-prune-images", "--keep-tag-revisions=5", "--keep-younger-than=96h", "--confirm=true"}, ""},
		{"size limit alone", []string{"-prune-images", "--prune-over-size-limit"}, ""},
		{"size limit with revisions", []string{"-prune-images", "--prune-over-size-limit", "--keep-tag-revisions=3"},
			"--prune-over-size-limit cannot be specified with --keep-tag-revisions nor --keep-younger-than"},
		{"size limit with age", []string{"-prune-images", "--keep-younger-than=1h", "--prune-over-size-limit=false"},
			"--prune-over-size-limit cannot be specified with --keep-tag-revisions nor --keep-younger-than"},
		{"negative age", []string{"-prune-images", "--keep-younger-than=-1m"}, "--keep-younger-than must be greater than or equal to 0"},
		{"negative revisions", []string{"-prune-images", "--keep-tag-revisions=-1"}, "--keep-tag-revisions must be greater than or equal to 0"},
		{"no workers", []string{"-prune-images", "--num-workers=0"}, "--num-workers must be greater than 0"},
		{"CA and insecure", []string{"-prune-images", "--registry-url=r.example:5000", "--certificate-authority=ca.crt", "--force-insecure"},
			"--certificate-authority cannot be specified with --force-insecure"},
		{"CA over http", []string{"-prune-images", "--registry-url=http://r.example:5000", "--certificate-authority=ca.crt"},
			"--certificate-authority cannot be specified for insecure http protocol"},
		{"registry URL with a path", []string{"-prune-images", "--registry-url=https://r.example/v2"},
			"invalid --registry-url flag: no path after <host>[:<port>] is allowed"},
		{"registry URL with a query", []string{"-prune-images", "--registry-url=r.example?x=1"},
			"invalid --registry-url flag: no query arguments are allowed after <host>[:<port>]"},
		{"registry URL scheme", []string{"-prune-images", "--registry-url=ftp://r.example"}, "invalid --registry-url flag: unsupported scheme: ftp"},
		{"registry URL plain host", []string{"-prune-images", "--registry-url=image-registry.openshift-image-registry.svc:5000"}, ""},
		{"CA without a URL", []string{"-prune-images", "--certificate-authority=ca.crt"}, "go with -registry-url"},
		{"confirm without the mode", []string{"--confirm"}, "-confirm goes with -prune-images"},
		{"namespace without the mode", []string{"-n", "shop"}, "-n goes with -prune-images"},
		{"with the hard prune", []string{"-prune-images", "-prune=check"}, ""},
		{"with a list mode", []string{"-prune-images", "-list-blobs"}, "one mode at a time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, code := parseFlags(tt.args, &stderr)
			if tt.errHas == "" {
				if code >= 0 {
					t.Fatalf("refused (exit %d): %s", code, stderr.String())
				}
				return
			}
			if code != exitUsage || !strings.Contains(stderr.String(), tt.errHas) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), exitUsage, tt.errHas)
			}
			if n := strings.Count(strings.TrimSpace(stderr.String()), "\n"); n != 0 && !strings.Contains(tt.errHas, "one mode") {
				t.Errorf("want one line, got %d:\n%s", n+1, stderr.String())
			}
		})
	}
}

func TestOrdinaryPruneDefaults(t *testing.T) {
	opts, code := parseFlags([]string{"-prune-images", "-n", "shop"}, &bytes.Buffer{})
	if code >= 0 {
		t.Fatalf("exit %d", code)
	}
	o := opts.ordinary
	if o.confirm || o.keepTagRevisions != 3 || o.keepYoungerThan != 60*time.Minute || o.pruneOverSizeLimit ||
		!o.all || o.ignoreInvalidRefs || o.namespace != "shop" || !o.pruneRegistry || o.numWorkers != 5 {
		t.Fatalf("defaults: %+v", o)
	}
}

// The scheduled prune runs confirmed with openshift.pruning's settings; its blob grace period
// is pruning.blobgraceperiod, not the command's default hour.
func TestScheduledPruneOptions(t *testing.T) {
	settings := config.Pruning{
		KeepTagRevisions: 1, KeepYoungerThan: 2 * time.Minute, IgnoreInvalidRefs: true, All: false,
		PruneRegistry: true, BlobGracePeriod: 0,
	}
	opts := scheduledOptions(settings)
	o := opts.ordinary
	if !o.pruneImages || !o.confirm || o.keepTagRevisions != 1 || o.keepYoungerThan != 2*time.Minute ||
		!o.ignoreInvalidRefs || o.all || !o.pruneRegistry || o.registryURL != "" || o.namespace != "" {
		t.Errorf("ordinary options: %+v", o)
	}
	if opts.keepYoungerThan != 0 {
		t.Errorf("blob grace period %s, want openshift.pruning.blobgraceperiod's 0s", opts.keepYoungerThan)
	}
	settings.BlobGracePeriod = 90 * time.Minute
	if got := scheduledOptions(settings).keepYoungerThan; got != 90*time.Minute {
		t.Errorf("blob grace period %s, want 1h30m0s", got)
	}
}

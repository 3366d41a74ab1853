package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardprune/image-registry/imageapi"
	"github.com/hardprune/image-registry/internal/testutil"
	"github.com/hardprune/image-registry/prune"
)

// TestFlagsAfterConfigPath: flags after the configuration file are flags, as scripts write
// them (`-prune=check config.yml -prune-keep-younger-than=0s`).
func TestFlagsAfterConfigPath(t *testing.T) {
	tests := []struct {
		args   []string
		config string
		keep   time.Duration
		report string
	}{
		{[]string{"-prune=check", "config.yml", "-prune-keep-younger-than=0s"}, "config.yml", 0, ""},
		{
			[]string{"config.yml", "-prune=check", "-prune-keep-younger-than", "5m", "-prune-report", "r.jsonl"},
			"config.yml",
			5 * time.Minute,
			"r.jsonl",
		},
		{[]string{"-prune=check", "-prune-keep-younger-than=2h", "config.yml"}, "config.yml", 2 * time.Hour, ""},
		{[]string{"-prune=check", "--", "-odd-name.yml"}, "-odd-name.yml", time.Hour, ""},
		{[]string{"-prune=check", "-prune-report", "--", "config.yml"}, "config.yml", time.Hour, "--"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			var stderr bytes.Buffer
			opts, code := parseFlags(tt.args, &stderr)
			if code != -1 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if opts.configPath != tt.config || opts.keepYoungerThan != tt.keep || opts.prune != "check" ||
				opts.report != tt.report {
				t.Errorf(
					"config %q keep %s prune %q report %q",
					opts.configPath,
					opts.keepYoungerThan,
					opts.prune,
					opts.report,
				)
			}
		})
	}
	for _, args := range [][]string{
		{"-prune=check", "a.yml", "-prune-workers=2", "b.yml"},
		{"-prune=check", "a.yml", "--", "b.yml"},
	} {
		var stderr bytes.Buffer
		if _, code := parseFlags(args, &stderr); code != exitUsage ||
			!strings.Contains(stderr.String(), "one configuration file at most, got 2 arguments") {
			t.Errorf("%v: exit %d, %s", args, code, stderr.String())
		}
	}
	var stderr bytes.Buffer
	if _, code := parseFlags([]string{"-prune=check", "config.yml", "-prune-frobnicate"}, &stderr); code != exitUsage ||
		!strings.Contains(stderr.String(), "flag provided but not defined: -prune-frobnicate") {
		t.Errorf("unknown flag after the config: exit %d, %s", code, stderr.String())
	}
}

// TestReportNotCreatedByRefusedRun: -prune-report is checked writable before the run, but
// created only when the run reports; a run refused before leaves no file behind.
func TestReportNotCreatedByRefusedRun(t *testing.T) {
	good := writeConfig(t, "version: 0.1\nstorage:\n  inmemory: {}\n")
	t.Setenv("REGISTRY_CONFIGURATION_PATH", "")
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "missing"))
	for _, tt := range []struct {
		args   []string
		errHas string
	}{
		{[]string{"-prune=delete"}, "not read-only"},
		{[]string{"-prune=check"}, "KUBECONFIG"},
		{[]string{"-prune=delete", "-prune-ignore-read-only"}, "KUBECONFIG"},
	} {
		report := filepath.Join(t.TempDir(), "report.jsonl")
		var stdout, stderr bytes.Buffer
		code := run(append(tt.args, "-prune-report="+report, good), &stdout, &stderr)
		if code != exitFailure || !strings.Contains(stderr.String(), tt.errHas) {
			t.Errorf("%v: exit %d, stderr:\n%s", tt.args, code, stderr.String())
		}
		if _, err := os.Stat(report); !os.IsNotExist(err) {
			t.Errorf("%v: the refused run left %s behind (%v)", tt.args, report, err)
		}
	}

	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ report, errHas string }{
		{t.TempDir(), "is a directory"},
		{filepath.Join(notDir, "r.jsonl"), "not a directory"},
		{"/nonexistent/dir/r.jsonl", "no such file or directory"},
	} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"-prune=check", "-prune-report=" + tt.report, good}, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), "-prune-report: ") ||
			!strings.Contains(stderr.String(), tt.errHas) {
			t.Errorf("-prune-report=%s: exit %d, stderr:\n%s", tt.report, code, stderr.String())
		}
	}
	if os.Geteuid() != 0 { // root may write anything on a writable file system
		ro := filepath.Join(t.TempDir(), "ro.jsonl")
		if err := os.WriteFile(ro, nil, 0o400); err != nil {
			t.Fatal(err)
		}
		if err := checkWritable(ro); err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("checkWritable of a read-only file: %v", err)
		}
	}
	// An existing writable file or device passes the check untouched.
	existing := filepath.Join(t.TempDir(), "old.jsonl")
	if err := os.WriteFile(existing, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{existing, "/dev/full"} {
		if err := checkWritable(p); err != nil {
			t.Errorf("checkWritable(%s): %v", p, err)
		}
	}
	if data, _ := os.ReadFile(existing); string(data) != "old\n" {
		t.Errorf("the check changed the file: %q", data)
	}
}

// TestReportWriteFailureSaysWhatWasDeleted: a delete whose report cannot be written says, on
// its one error line, what it deleted.
func TestReportWriteFailureSaysWhatWasDeleted(t *testing.T) {
	var sum prune.Summary
	sum.Count[prune.KindBlob], sum.Bytes[prune.KindBlob], sum.Count[prune.KindRepository], sum.Count[prune.KindManifestLink] = 12, 3<<20, 3, 4
	sum.Count[prune.KindTag], sum.Count[prune.KindLayerLink], sum.Count[prune.KindUpload], sum.Bytes[prune.KindUpload] = 2, 7, 1, 10
	opts := options{maintenanceOptions: maintenanceOptions{report: "/dev/full"}}
	err := writePruneReport(opts, nil, nil, sum, nil)
	want := "the prune deleted 12 blobs (3 MiB), 3 repositories, 4 manifest links, 2 tags, 0 tag index entries, 7 layer links, 1 uploads (10 B); writing the report /dev/full failed: "
	if err == nil || !strings.HasPrefix(err.Error(), want) ||
		!strings.Contains(err.Error(), "no space left on device") ||
		strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q, want one line starting %q", err, want)
	}
	check := prune.Summary{DryRun: true}
	check.Count[prune.KindBlob] = 2
	err = writePruneReport(opts, nil, nil, check, nil)
	if err == nil ||
		!strings.HasPrefix(err.Error(), "the check deleted nothing; writing the report /dev/full failed: ") {
		t.Errorf("check: error %q", err)
	}
	var oneBlob prune.Summary
	oneBlob.Count[prune.KindBlob] = 1
	err = writePruneReport(opts, nil, nil, oneBlob, fmt.Errorf("deleting blob sha256:aa: boom"))
	if err == nil ||
		!strings.HasPrefix(err.Error(), "deleting blob sha256:aa: boom; the prune deleted 1 blobs (0 B), ") ||
		strings.Contains(err.Error(), "\n") {
		t.Errorf("failed delete: error %q", err)
	}
}

// TestIgnoreReadOnlyWarns: the override of the read-only interlock says, at the default log
// level, what it risks.
func TestIgnoreReadOnlyWarns(t *testing.T) {
	good := writeConfig(t, "version: 0.1\nstorage:\n  inmemory: {}\n")
	t.Setenv("REGISTRY_CONFIGURATION_PATH", "")
	t.Setenv("REGISTRY_LOG_LEVEL", "")
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "missing"))
	var stdout, stderr bytes.Buffer
	code := run([]string{"-prune=delete", "-prune-ignore-read-only", good}, &stdout, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "level=warning") ||
		!strings.Contains(stderr.String(), "may lose pushes") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr.String())
	}
	// Where the override changes nothing, nothing is said.
	stderr.Reset()
	run([]string{"-prune=check", "-prune-ignore-read-only", good}, &stdout, &stderr)
	if strings.Contains(stderr.String(), "may lose pushes") {
		t.Errorf("check run warned:\n%s", stderr.String())
	}
}

// silentAPI is an API server that accepts connections and never answers; it returns a
// kubeconfig naming it, and its URL.
func silentAPI(t *testing.T) (kubeconfig, host string) {
	return testutil.SilentKubeconfig(t)
}

// TestSilentAPITimesOut: an image API that accepts connections and never answers fails every
// mode that reads it within the timeout and its retries, with one error line, and the wait is
// reported at the default log level while it lasts.
func TestSilentAPITimesOut(t *testing.T) {
	kc, host := silentAPI(t)
	good := writeConfig(t, "version: 0.1\nstorage:\n  inmemory: {}\n")
	t.Setenv("REGISTRY_CONFIGURATION_PATH", "")
	t.Setenv("REGISTRY_LOG_LEVEL", "")
	t.Setenv("KUBECONFIG", kc)
	defer func(d time.Duration) { imageapi.WaitReportInterval = d }(imageapi.WaitReportInterval)
	imageapi.WaitReportInterval = 150 * time.Millisecond
	for _, mode := range [][]string{
		{"-prune=check"},
		{"-prune=delete", "-prune-ignore-read-only"},
		{"-restore=check"},
		{"-prune-explain=sha256:" + strings.Repeat("ab", 32)},
	} {
		t.Run(mode[0], func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			done := make(chan int, 1)
			start := time.Now()
			go func() { done <- run(append(mode, "-prune-api-timeout=400ms", good), &stdout, &stderr) }()
			var code int
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("still running after 30s")
			}
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Errorf("took %s", elapsed)
			}
			var errLines []string
			for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
				if strings.HasPrefix(l, "error: ") {
					errLines = append(errLines, l)
				}
			}
			if code != exitFailure || len(errLines) != 1 ||
				!strings.Contains(errLines[0], "no answer from the image API at "+host+" within 400ms") {
				t.Errorf("exit %d, stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "still waiting for the image API at "+host+" (listing image") ||
				!strings.Contains(stderr.String(), "trying again (attempt 3 of 3)") {
				t.Errorf("the wait was not reported at the default level:\n%s", stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout:\n%s", stdout.String())
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-prune=check", "-prune-api-timeout=0s", good}, &stdout, &stderr); code != exitUsage ||
		!strings.Contains(stderr.String(), "-prune-api-timeout=0s: must be positive") {
		t.Errorf("-prune-api-timeout=0s: exit %d, %s", code, stderr.String())
	}
}

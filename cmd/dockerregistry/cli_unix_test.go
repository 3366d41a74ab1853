//go:build unix

package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardprune/image-registry/prune"
)

// TestReportToPipeWithoutReader: a named pipe nobody reads fails the report at once; the run
// never waits for a reader.
func TestReportToPipeWithoutReader(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "report.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip(err)
	}
	good := writeConfig(t, "version: 0.1\nstorage:\n  inmemory: {}\n")
	t.Setenv("REGISTRY_CONFIGURATION_PATH", "")
	var stderr bytes.Buffer
	opts, code := parseFlags([]string{"-prune=delete", "-prune-report=" + fifo, good}, &stderr)
	if code != -1 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	done := make(chan error, 1)
	var sum prune.Summary
	sum.Count[prune.KindRepository] = 1
	go func() { done <- writePruneReport(opts, nil, nil, sum, nil) }()
	select {
	case err := <-done:
		if err == nil || !strings.HasPrefix(err.Error(), "the prune deleted 0 blobs (0 B), 1 repositories, ") ||
			!strings.Contains(err.Error(), "no such device or address") {
			t.Errorf("error %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writing the report waits for a reader")
	}
}

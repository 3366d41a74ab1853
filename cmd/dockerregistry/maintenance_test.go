package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestMaintenanceCommandLineErrors(t *testing.T) {
	good := writeConfig(t, "version: 0.1\nstorage:\n  inmemory: {}\n")
	t.Setenv("REGISTRY_CONFIGURATION_PATH", "")
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "missing"))
	tests := []struct {
		args   []string
		code   int
		errHas string
	}{
		{[]string{"-restore=fix", good}, exitUsage, "-restore=fix: want check or recover"},
		{[]string{"-restore=check", "-prune=check", good}, exitUsage, "one mode at a time"},
		{[]string{"-list-blobs", "-list-repositories", good}, exitUsage, "one mode at a time"},
		{[]string{"-prune-explain=sha256:nope", good}, exitUsage, "want a digest"},
		{[]string{"-list-manifests=Bad_Name", good}, exitUsage, "invalid repository name"},
		{
			[]string{"-prune-report=" + filepath.Join(t.TempDir(), "r.jsonl"), good},
			exitUsage,
			"-prune-report needs -prune",
		},
		{[]string{"-prune=check", "-prune-report=/nonexistent/dir/r.jsonl", good}, exitUsage, "-prune-report"},
		{[]string{"-list-manifests=ns/none", good}, exitFailure, "repository ns/none is not in storage"},
		{[]string{"-restore=check", good}, exitFailure, "KUBECONFIG"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:len(tt.args)-1], " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.errHas) {
				t.Errorf("stderr lacks %q:\n%s", tt.errHas, stderr.String())
			}
		})
	}
	// An empty storage lists nothing, successfully.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-list-repositories", good}, &stdout, &stderr); code != 0 || stdout.Len() != 0 {
		t.Errorf("-list-repositories on empty storage: exit %d, %q, %s", code, stdout.String(), stderr.String())
	}
}

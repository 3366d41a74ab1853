package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCommandLineErrors(t *testing.T) {
	good := writeConfig(t, "version: 0.1\nstorage:\n  inmemory: {}\n")
	t.Setenv("REGISTRY_CONFIGURATION_PATH", "")
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "missing"))
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		errHas string
	}{
		{"bad prune mode", []string{"-prune=nuke", good}, nil, exitUsage, "-prune=nuke: want check or delete"},
		{"unknown flag", []string{"-frobnicate", good}, nil, exitUsage, "flag provided but not defined"},
		{"two configs", []string{"-prune=check", good, good}, nil, exitUsage, "one configuration file at most"},
		{"no config", []string{"-prune=check"}, nil, exitUsage, "no configuration file"},
		{"negative workers", []string{"-prune=check", "-prune-workers=0", good}, nil, exitUsage, "must be positive"},
		{
			"force unlock while serving",
			[]string{"-prune-force-unlock", good},
			nil,
			exitUsage,
			"-prune-force-unlock goes with -prune=delete only",
		},
		{
			"force unlock with a list mode",
			[]string{"-list-blobs", "-prune-force-unlock", good},
			nil,
			exitUsage,
			"-prune-force-unlock goes with -prune=delete only",
		},
		{
			"delete ratio out of range",
			[]string{"-prune=delete", "-prune-max-delete-ratio=0", good},
			nil,
			exitUsage,
			"-prune-max-delete-ratio=0: want a share above 0 and at most 1",
		},
		{
			"delete ratio not a number",
			[]string{"-prune=delete", "-prune-max-delete-ratio=lots", good},
			nil,
			exitUsage,
			"invalid value",
		},
		{
			"missing config file",
			[]string{"-prune=check", "/nonexistent/config.yml"},
			nil,
			exitFailure,
			"reading configuration",
		},
		{
			"config does not parse",
			[]string{"-prune=check", writeConfig(t, "storage: [\n")},
			nil,
			exitFailure,
			"parsing configuration",
		},
		{
			"unknown storage driver",
			[]string{"-prune=check", writeConfig(t, "version: 0.1\nstorage:\n  floppy: {}\n")},
			nil,
			exitFailure,
			"creating the floppy storage driver",
		},
		{"delete on a writable registry", []string{"-prune=delete", good}, nil, exitFailure, "spec.readOnly: true"},
		{
			"bad log level",
			[]string{"-prune=check", good},
			map[string]string{"REGISTRY_LOG_LEVEL": "loud"},
			exitFailure,
			"REGISTRY_LOG_LEVEL",
		},
		{"no image API credentials", []string{"-prune=check", good}, nil, exitFailure, "KUBECONFIG"},
		{
			"bad read-only variable",
			[]string{"-prune=delete", good},
			map[string]string{"REGISTRY_STORAGE_MAINTENANCE_READONLY": "{enabled: maybe}"},
			exitFailure,
			"REGISTRY_STORAGE_MAINTENANCE_READONLY",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.errHas) {
				t.Errorf("stderr lacks %q:\n%s", tt.errHas, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout should be empty when nothing ran, got:\n%s", stdout.String())
			}
			if strings.Contains(stderr.String(), "panic") {
				t.Errorf("panicked:\n%s", stderr.String())
			}
		})
	}
}

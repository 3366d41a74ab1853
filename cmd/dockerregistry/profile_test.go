package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// isProfile tells whether the file holds a pprof profile: gzip-compressed protobuf.
func isProfile(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return false
	}
	n, err := io.Copy(io.Discard, z)
	return err == nil && n > 0
}

func TestProfiled(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")
	t.Setenv(cpuProfileEnv, cpu)
	t.Setenv(memProfileEnv, mem)
	var sink [][]byte
	code := profiled(io.Discard, func() int {
		for range 1000 {
			sink = append(sink, make([]byte, 4096))
		}
		return 3
	})
	if code != 3 {
		t.Errorf("profiled returned %d, want the run's own 3", code)
	}
	for _, p := range []string{cpu, mem} {
		if !isProfile(t, p) {
			t.Errorf("%s holds no profile", p)
		}
	}
	_ = sink
}

func TestProfiledUnwritable(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no", "such", "dir", "profile")
	for _, env := range []string{cpuProfileEnv, memProfileEnv} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(cpuProfileEnv, "")
			t.Setenv(memProfileEnv, "")
			t.Setenv(env, missing)
			var stderr bytes.Buffer
			ran := false
			code := profiled(&stderr, func() int { ran = true; return 0 })
			if ran || code != exitFailure || !strings.Contains(stderr.String(), env) {
				t.Errorf("ran %v, exit %d, stderr %q; want no run, exit %d, an error naming %s",
					ran, code, stderr.String(), exitFailure, env)
			}
		})
	}
}

func TestNotProfiled(t *testing.T) {
	t.Setenv(cpuProfileEnv, "")
	t.Setenv(memProfileEnv, "")
	if code := profiled(io.Discard, func() int { return 0 }); code != 0 {
		t.Errorf("profiled without profiles returned %d, want 0", code)
	}
}

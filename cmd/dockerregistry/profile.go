package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
)

// Profiles of a whole run, for the benchmark (`make profile`, bench -profile): the files these
// variables name receive a CPU profile of the run and an allocation profile at its end. They
// are environment variables rather than flags so that -help shows administrators only what
// runs the registry; a run without them pays nothing.
const (
	cpuProfileEnv = "DOCKERREGISTRY_CPUPROFILE"
	memProfileEnv = "DOCKERREGISTRY_MEMPROFILE"
)

// profiled runs f under the profiles the environment asks for and returns f's exit code. A
// profile that cannot be started stops the run before f (the caller asked for it); one that
// cannot be written fails a run that succeeded.
func profiled(stderr io.Writer, f func() int) int {
	cpuPath, memPath := os.Getenv(cpuProfileEnv), os.Getenv(memProfileEnv)
	if memPath != "" {
		// Fail now rather than after a run of many minutes.
		if err := os.WriteFile(memPath, nil, 0o644); err != nil {
			fmt.Fprintf(stderr, "error: %s: %v\n", memProfileEnv, err)
			return exitFailure
		}
	}
	var cpuOut *os.File
	if cpuPath != "" {
		var err error
		if cpuOut, err = os.Create(cpuPath); err == nil {
			if err = pprof.StartCPUProfile(cpuOut); err != nil {
				cpuOut.Close()
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "error: %s: %v\n", cpuProfileEnv, err)
			return exitFailure
		}
	}
	code := f()
	fail := func(env string, err error) {
		fmt.Fprintf(stderr, "error: %s: %v\n", env, err)
		if code == 0 {
			code = exitFailure
		}
	}
	if cpuOut != nil {
		pprof.StopCPUProfile()
		if err := cpuOut.Close(); err != nil {
			fail(cpuProfileEnv, err)
		}
	}
	if memPath != "" {
		// The allocation profile counts every allocation since the start; a collection first
		// makes its in-use figures current too.
		runtime.GC()
		if err := writeAllocs(memPath); err != nil {
			fail(memProfileEnv, err)
		}
	}
	return code
}

func writeAllocs(path string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(out, 0); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

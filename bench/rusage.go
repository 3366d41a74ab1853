package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// rusageChildEnv makes a process started from a binary importing this package run the
// command in its arguments and report that command's peak RSS (see init).
//
// Why: on Linux a child's ru_maxrss starts from the parent's high-water mark at the fork (the
// memory map is shared until exec), so every command the benchmark (holding its whole data set
// in memory) starts directly would report at least the benchmark's own size. A small
// intermediate process forks the command from a small memory map instead.
const rusageChildEnv = "BENCH_RUSAGE_CHILD"

func init() {
	out := os.Getenv(rusageChildEnv)
	if out == "" {
		return
	}
	os.Exit(rusageChild(out, os.Args[1:]))
}

// rusageChild runs args with this process's standard streams, writes the command's peak RSS
// in bytes to the file out, and returns its exit code.
func rusageChild(out string, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "bench: rusage child: no command")
		return 2
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = withoutEnv(os.Environ(), rusageChildEnv)
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		fmt.Fprintln(os.Stderr, "bench: rusage child:", err)
		return 127
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		_ = os.WriteFile(out, []byte(strconv.FormatInt(int64(ru.Maxrss)*1024, 10)), 0o644) // kilobytes on Linux
	}
	return code
}

func withoutEnv(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if len(kv) > len(key) && kv[:len(key)+1] == key+"=" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// viaRusageChild rewrites cmd to run through this binary as a rusage child reporting to out.
func viaRusageChild(cmd *exec.Cmd, out string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Args = append([]string{self}, append([]string{cmd.Path}, cmd.Args[1:]...)...)
	cmd.Path = self
	cmd.Env = append(env, rusageChildEnv+"="+out)
	return nil
}

// Command rusage runs a command and writes the command's peak resident set size and CPU time
// to a file:
//
//	rusage <file> <command> [args...]
//
// The file holds "maxrss=<bytes>", "utime=<ns>" and "stime=<ns>", one a line. The standard
// streams and the environment are the command's; the exit code is the command's (128 + the
// signal's number when a signal ended it).
//
// The benchmark starts every command it measures through this binary. On Linux a process
// inherits, at exec, the high-water mark of the memory map it was forked from: a command the
// benchmark started itself would report at least the benchmark's own peak (74 MB and more). So
// this binary stays as small as a Go program gets (os, os/exec, strconv and syscall only), and
// the floor it leaves under every figure is its own couple of MB.
package main

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) < 2 {
		os.Stderr.WriteString("usage: rusage <file> <command> [args...]\n")
		return 2
	}
	out := args[0]
	cmd := exec.Command(args[1], args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Killed with this process (the benchmark cancelled, or timed out): no command keeps
	// running, unmeasured, beside the next.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	if cmd.ProcessState == nil {
		os.Stderr.WriteString("rusage: " + err.Error() + "\n")
		return 127
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		content := "maxrss=" + strconv.FormatInt(int64(ru.Maxrss)*1024, 10) + "\n" + // kilobytes on Linux
			"utime=" + strconv.FormatInt(syscall.TimevalToNsec(ru.Utime), 10) + "\n" +
			"stime=" + strconv.FormatInt(syscall.TimevalToNsec(ru.Stime), 10) + "\n"
		if err := os.WriteFile(out, []byte(content), 0o644); err != nil {
			os.Stderr.WriteString("rusage: " + err.Error() + "\n")
			return 127
		}
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

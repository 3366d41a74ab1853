//go:build unix

package harness

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in a process group of its own, so Stop can
// signal it and anything it started, and so a ^C in the terminal of the demo
// reaches only the demo, which then stops its children in order.
func setProcAttr(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	setParentDeathSignal(cmd.SysProcAttr)
}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, sig)
	}
}

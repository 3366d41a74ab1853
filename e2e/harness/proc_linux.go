package harness

import "syscall"

// setParentDeathSignal kills the child if the test binary or demo dies
// without running Stop (for instance on a test timeout panic), so no etcd or
// API server outlives it.
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGKILL
}

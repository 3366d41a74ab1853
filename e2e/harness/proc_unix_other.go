//go:build unix && !linux

package harness

import "syscall"

func setParentDeathSignal(*syscall.SysProcAttr) {}

//go:build unix

package main

import "syscall"

// accessWrite asks the kernel whether this process may write path (a read-only file system
// included), or create files in it when it is a directory, without opening it.
func accessWrite(path string, dir bool) error {
	const xOK, wOK = 0x1, 0x2
	mode := uint32(wOK)
	if dir {
		mode |= xOK
	}
	return syscall.Access(path, mode)
}

//go:build unix

package main

import "syscall"

// openNonblock makes opening a named pipe without a reader fail instead of wait.
const openNonblock = syscall.O_NONBLOCK

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

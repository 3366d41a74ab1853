package harness

import (
	"os"

	"golang.org/x/sys/unix"
)

// SmallPipe is os.Pipe with the smallest buffer Linux allows (a page): a process writing into
// it runs at most a page ahead of its reader, so that a test acting on a line of its output
// catches the process close behind that line, not after it has finished.
func SmallPipe() (r, w *os.File, err error) {
	if r, w, err = os.Pipe(); err != nil {
		return nil, nil, err
	}
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, os.Getpagesize()); err != nil {
		r.Close()
		w.Close()
		return nil, nil, err
	}
	return r, w, nil
}

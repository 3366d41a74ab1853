package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// checkWritable tells whether path can be written, without creating it: an existing file (or
// device) must be writable and not a directory; otherwise its directory must exist and be
// writable.
func checkWritable(path string) error {
	if info, err := os.Stat(path); err == nil {
		if info.IsDir() {
			return fmt.Errorf("%s is a directory", path)
		}
		if err := accessWrite(path, false); err != nil {
			return fmt.Errorf("%s is not writable: %w", path, err)
		}
		return nil
	} else if !os.IsNotExist(err) {
		return fmt.Errorf("cannot create %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cannot create %s: %w", path, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("cannot create %s: %s is not a directory", path, dir)
	}
	if err := accessWrite(dir, true); err != nil {
		return fmt.Errorf("cannot create %s: directory %s is not writable: %w", path, dir, err)
	}
	return nil
}

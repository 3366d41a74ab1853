package bench

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"
)

// TestGenerateObjects: Objects is the number of files WriteStorage writes (the keys an S3
// bucket holds), which target 4's bound counts; a layer link that several images of a
// repository share is one file.
func TestGenerateObjects(t *testing.T) {
	ds := Generate(Sizes["tiny"])
	root := t.TempDir()
	if err := ds.WriteStorage(context.Background(), root, 4); err != nil {
		t.Fatal(err)
	}
	files := 0
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != ds.Objects {
		t.Errorf("Objects = %d, WriteStorage wrote %d files", ds.Objects, files)
	}
}

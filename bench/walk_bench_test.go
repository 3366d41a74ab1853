package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"

	"github.com/hardprune/image-registry/storage"
)

// benchTree is the full-size dataset written to the folder BENCH_TREE names (written on the
// first use, kept for the next), for the benchmarks that take the storage walk alone.
func benchTree(b *testing.B) string {
	root := os.Getenv("BENCH_TREE")
	if root == "" {
		b.Skip("set BENCH_TREE to a folder for the full-size tree (about 3 GB; written once)")
	}
	if _, err := os.Stat(root + "/docker"); err != nil {
		if err := Generate(Sizes["full"]).WriteStorage(context.Background(), root, 8); err != nil {
			b.Fatal(err)
		}
	}
	return root
}

// BenchmarkInventoryWalk is the inventory alone (no image API, no decision) over the full
// tree on the filesystem driver, for several worker counts: the part of -prune=check that
// find is compared with.
func BenchmarkInventoryWalk(b *testing.B) {
	root := benchTree(b)
	for _, workers := range []int{2, 4, 8, 16} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			store := &storage.Store{
				Driver:  filesystem.New(filesystem.DriverParameters{RootDirectory: root, MaxThreads: 100}),
				Workers: workers,
			}
			for b.Loop() {
				inv, err := store.Inventory(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				if len(inv.Blobs) != Sizes["full"].Blobs {
					b.Fatalf("%d blobs, want %d", len(inv.Blobs), Sizes["full"].Blobs)
				}
			}
		})
	}
}

// BenchmarkFindWalk is `find -type f` over the same tree, the baseline.
func BenchmarkFindWalk(b *testing.B) {
	root := benchTree(b)
	for b.Loop() {
		if out, err := exec.Command("find", root, "-type", "f").Output(); err != nil || len(out) == 0 {
			b.Fatalf("find: %v", err)
		}
	}
}

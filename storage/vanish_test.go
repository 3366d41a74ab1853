package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"

	"github.com/hardprune/image-registry/internal/testfixture"
	"github.com/hardprune/image-registry/storage"
)

// removingDriver is a filesystem driver on which a directory goes away while a walk is under
// it, as a finished upload's does while the registry serves: after Stat says it is there, or
// while List reads it.
type removingDriver struct {
	driver.StorageDriver
	root string
	// afterStat: paths removed from disk right after Stat saw them.
	afterStat map[string]bool
	// inList: paths whose List fails as a directory removed during its read fails.
	inList map[string]error
}

func (d *removingDriver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	fi, err := d.StorageDriver.Stat(ctx, p)
	if err == nil && d.afterStat[p] {
		if err := os.RemoveAll(filepath.Join(d.root, p)); err != nil {
			return nil, err
		}
	}
	return fi, err
}

func (d *removingDriver) List(ctx context.Context, p string) ([]string, error) {
	if err, ok := d.inList[p]; ok {
		return nil, err
	}
	return d.StorageDriver.List(ctx, p)
}

func (d *removingDriver) Walk(ctx context.Context, p string, f driver.WalkFn, opts ...func(*driver.WalkOptions)) error {
	return driver.WalkFallback(ctx, d, p, f, opts...)
}

// readdirGone is the error the filesystem driver gives for a directory removed between its
// open and its read.
var readdirGone = driver.Error{DriverName: "filesystem", Detail: &os.SyscallError{Syscall: "readdirent", Err: syscall.ENOENT}}

func TestInventoryWalksPastDirectoriesThatGo(t *testing.T) {
	const (
		uploads = "/docker/registry/v2/repositories/ns/app/_uploads"
		gone    = uploads + "/u1"
		reading = uploads + "/u2"
	)
	cases := []struct {
		name      string
		afterStat map[string]bool
		inList    map[string]error
		wantErr   string
	}{
		{name: "removed after its stat", afterStat: map[string]bool{gone: true}},
		{name: "removed while listed", inList: map[string]error{reading: readdirGone}},
		{name: "both", afterStat: map[string]bool{gone: true}, inList: map[string]error{reading: readdirGone}},
		{
			name:    "unreadable, not gone",
			inList:  map[string]error{reading: driver.Error{DriverName: "filesystem", Detail: &os.SyscallError{Syscall: "readdirent", Err: syscall.EIO}}},
			wantErr: "input/output error",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			fs := filesystem.New(filesystem.DriverParameters{RootDirectory: root, MaxThreads: 100})
			reg := testfixture.New(t, fs)
			img := reg.Image("ns/app", "latest", "cfg", "layer")
			for _, id := range []string{"u1", "u2"} {
				p := filepath.Join(root, uploads, id, "hashstates", "sha256", "0")
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte("state"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			d := &removingDriver{StorageDriver: fs, root: root, afterStat: tc.afterStat, inList: tc.inList}
			inv, err := (&storage.Store{Driver: d}).Inventory(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("inventory: got %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("inventory: %v", err)
			}
			if len(inv.Blobs) != 3 {
				t.Errorf("blobs: got %d, want 3", len(inv.Blobs))
			}
			if len(inv.Repositories) != 1 {
				t.Fatalf("repositories: got %+v", inv.Repositories)
			}
			r := inv.Repositories[0]
			if len(r.Manifests) != 1 || r.Manifests[0].Digest != img.Manifest || len(r.Layers) != 2 || len(r.Tags) != 1 {
				t.Errorf("ns/app: got %+v, want its manifest, two layers and its tag", r)
			}
		})
	}
}

// A walk's root that goes while it is read is walked as a missing one.
func TestInventoryOfARootThatGoesWhileListed(t *testing.T) {
	fs := filesystem.New(filesystem.DriverParameters{RootDirectory: t.TempDir(), MaxThreads: 100})
	testfixture.New(t, fs).Image("ns/app", "latest", "cfg", "layer")
	d := &removingDriver{StorageDriver: fs, inList: map[string]error{storage.RepositoriesPath: readdirGone}}
	inv, err := (&storage.Store{Driver: d, Workers: 1}).Inventory(context.Background())
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	if len(inv.Blobs) != 3 || len(inv.Repositories) != 0 {
		t.Errorf("got %d blobs and %+v, want 3 blobs and no repositories", len(inv.Blobs), inv.Repositories)
	}
}

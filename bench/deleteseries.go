package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/prune"
)

// DeleteResult is what the delete runs of one backend measured.
type DeleteResult struct {
	// Prune is -prune=delete's, with (S3) the storage requests of its median run classed by
	// what they serve (s3Attribution).
	Prune Measure
	// Rm is `xargs -0 rm -rf` of the same paths (filesystem).
	Rm *Measure
	// Objects are the plan's objects by kind (as the report names them).
	Objects map[string]int
	// Paths is how many paths the rm list holds (filesystem).
	Paths int
	// Keys is how many keys (files) the storage held before a run, Deleted how many a run
	// deleted (S3).
	Keys, Deleted int
}

// TotalObjects is the number of objects the delete removes, every kind.
func (d *DeleteResult) TotalObjects() int {
	n := 0
	for _, v := range d.Objects {
		n += v
	}
	return n
}

// readOnlyEnv configures the registry read-only, as the procedure has the administrator do
// before -prune=delete (the environment override of storage.maintenance.readonly).
const readOnlyEnv = `REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled":true}`

var deletedLine = regexp.MustCompile(`^Deleted (\d+) blobs$`)

// planRecords runs the check once more, untimed, with -prune-report, and returns the objects
// it would delete: what a delete run on a copy of the same storage removes.
func planRecords(check *series, rn runner, backend string) ([]prune.ReportRecord, error) {
	file := filepath.Join(filepath.Dir(rn.outDir), "prune-report-"+backend+".jsonl")
	c := check.timed
	c.file += "-report"
	c.proxies = nil
	c.newCmd = func() *exec.Cmd {
		cmd := check.newCmd()
		cmd.Args = append(cmd.Args, "-prune-report="+file)
		return cmd
	}
	if _, err := runOnce(c, rn); err != nil {
		return nil, fmt.Errorf("listing the plan: %w", err)
	}
	records, err := readReport(file)
	if err != nil {
		return nil, fmt.Errorf("listing the plan: %w", err)
	}
	if len(records) == 0 {
		return nil, fmt.Errorf("listing the plan: %s names nothing to delete", file)
	}
	return records, nil
}

// deleteCmd is -prune=delete of the storage configPath names, on a read-only registry, with
// the check's grace period.
func deleteCmd(ctx context.Context, binary, configPath string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binary, "-prune=delete", "-prune-keep-younger-than=0s", configPath)
	cmd.Env = append(os.Environ(), "KUBECONFIG=", "REGISTRY_LOG_LEVEL=warning", readOnlyEnv)
	return cmd
}

// checkDeleted makes a delete run's check: it must report deleting the dataset's orphans.
func checkDeleted(ds *Dataset) func(io.Reader) error {
	return func(stdout io.Reader) error {
		n, err := parseSummaryCount(stdout, deletedLine)
		if err != nil {
			return err
		}
		if n != ds.OrphanBlobs {
			return fmt.Errorf("-prune=delete deleted %d blobs, the dataset has %d orphans", n, ds.OrphanBlobs)
		}
		return nil
	}
}

// fsDeleteSeries are target 3's two commands, run in alternation with the check: -prune=delete
// on one hard-link copy of the filesystem storage at root, and `xargs -0 rm -rf` of the paths
// the plan's records come to (deletePaths) on another. Each run gets a fresh copy (untimed);
// after the rm, the two copies must hold the same files and directories, or the bench fails.
func fsDeleteSeries(
	ctx context.Context,
	cfg Config,
	ds *Dataset,
	binary, root, kubeconfig string,
	records []prune.ReportRecord,
) (ours, rm *series, paths int, err error) {
	oursRoot, rmRoot := filepath.Join(cfg.WorkDir, "filesystem-delete"), filepath.Join(cfg.WorkDir, "filesystem-rm")
	configPath := filepath.Join(cfg.WorkDir, "prune-config-filesystem-delete.yml")
	storageYAML := harness.FilesystemStorageYAML(oursRoot)
	if err := harness.WriteRegistryConfigStorage(configPath, "127.0.0.1:0", storageYAML, kubeconfig); err != nil {
		return nil, nil, 0, err
	}
	list, err := deletePaths(records, root)
	if err != nil {
		return nil, nil, 0, err
	}
	listFile := filepath.Join(cfg.WorkDir, "rm-list-filesystem")
	if err := writeNULList(listFile, rmRoot, list); err != nil {
		return nil, nil, 0, err
	}
	ours = &series{runs: cfg.Runs, timed: timed{
		what:    "dockerregistry -prune=delete",
		file:    "prune-delete-filesystem",
		newCmd:  func() *exec.Cmd { return deleteCmd(ctx, binary, configPath) },
		check:   checkDeleted(ds),
		prepare: func() error { return hardLinkCopy(root, oursRoot) },
	}}
	rm = &series{runs: cfg.Runs, timed: timed{
		what: "xargs -0 rm -rf",
		file: "rm-filesystem",
		// xargs -a reads the list as `xargs -0 rm -rf < list` would from its standard input.
		newCmd:  func() *exec.Cmd { return exec.CommandContext(ctx, "xargs", "-0", "-a", listFile, "rm", "-rf") },
		prepare: func() error { return hardLinkCopy(root, rmRoot) },
		verify: func() error {
			a, err := listTree(oursRoot, false)
			if err != nil {
				return err
			}
			b, err := listTree(rmRoot, false)
			if err != nil {
				return err
			}
			if err := compareTrees("-prune=delete", a, "xargs rm -rf", b); err != nil {
				return fmt.Errorf("%w: %w (the copies are kept: %s, %s)", errTreesDiffer, err, oursRoot, rmRoot)
			}
			for _, dir := range []string{oursRoot, rmRoot} {
				if err := os.RemoveAll(dir); err != nil {
					return err
				}
			}
			return nil
		},
	}}
	return ours, rm, len(list), nil
}

// s3DeleteSeries is target 4's delete run: -prune=delete of a hard-link copy of the bucket
// (a second bucket of the same versitygw, its own directory in the posix backend) through
// proxy, whose classifier is the plan's s3Attribution. What the run leaves in the bucket must
// be the bucket's files without the plan's objects, or the bench fails. The run's requests do
// not vary from run to run, so one run is taken.
func s3DeleteSeries(
	ctx context.Context,
	cfg Config,
	ds *Dataset,
	s3 *harness.S3,
	proxy *CountingProxy,
	binary, kubeconfig string,
	records []prune.ReportRecord,
	res *DeleteResult,
) (*series, error) {
	const bucket = "registry-delete"
	copyS3 := *s3
	copyS3.Bucket = bucket
	dir := copyS3.BucketDir()
	configPath := filepath.Join(cfg.WorkDir, "prune-config-s3-delete.yml")
	if err := harness.WriteRegistryConfigStorage(
		configPath, "127.0.0.1:0", copyS3.StorageYAML(proxy.URL), kubeconfig,
	); err != nil {
		return nil, err
	}
	before, err := listTree(s3.BucketDir(), true)
	if err != nil {
		return nil, err
	}
	paths, err := deletePaths(records, s3.BucketDir())
	if err != nil {
		return nil, err
	}
	want := withoutDeleted(before, paths)
	res.Keys = len(before)
	return &series{runs: 1, timed: timed{
		what:    "dockerregistry -prune=delete",
		file:    "prune-delete-s3",
		proxies: []*CountingProxy{nil, proxy}, // as pruneMeasure reads them: API, storage
		newCmd:  func() *exec.Cmd { return deleteCmd(ctx, binary, configPath) },
		check:   checkDeleted(ds),
		prepare: func() error { return hardLinkCopy(s3.BucketDir(), dir) },
		verify: func() error {
			after, err := listTree(dir, true)
			if err != nil {
				return err
			}
			if err := compareTrees("-prune=delete", after, "the plan", want); err != nil {
				return fmt.Errorf("%w: %w (the bucket is kept: %s)", errTreesDiffer, err, dir)
			}
			res.Deleted = len(before) - len(after)
			return os.RemoveAll(dir)
		},
	}}, nil
}

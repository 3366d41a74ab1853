package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// writePruneReport writes the -prune-report file of a run, if asked for, and returns runErr
// joined with any error writing it. The objects of a phase a failed delete stopped in are
// looked up in storage (through drv) to tell which went.
func writePruneReport(opts options, drv driver.StorageDriver, plan *prune.Plan, sum prune.Summary, dryRun bool, runErr error) error {
	if opts.report == "" {
		return runErr
	}
	f, err := os.Create(opts.report)
	if err != nil {
		return errors.Join(runErr, fmt.Errorf("writing the report: %w", err))
	}
	// The run's context may be cancelled (SIGINT); the report is written regardless.
	ctx := context.Background()
	stillStored := func(ctx context.Context, r prune.ReportRecord) (bool, error) {
		paths := reportPaths(r)
		if len(paths) == 0 {
			return false, fmt.Errorf("no storage path for a %s", r.Kind)
		}
		for _, p := range paths {
			_, err := drv.Stat(ctx, p)
			var notFound driver.PathNotFoundError
			if errors.As(err, &notFound) {
				continue
			}
			return err == nil, err
		}
		return false, nil
	}
	err = prune.WriteReport(ctx, f, plan, sum, dryRun, runErr, stillStored)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(runErr, fmt.Errorf("writing the report %s: %w", opts.report, err))
	}
	return runErr
}

// reportPaths are the storage paths whose presence (any of them) says an object of the report
// is still stored.
func reportPaths(r prune.ReportRecord) []string {
	d := digest.Digest(r.Digest)
	switch r.Kind {
	case "repository":
		// A repository goes whole, or (with nested ones) data directory by data directory.
		var paths []string
		for _, dir := range storage.RepositoryDataDirs {
			paths = append(paths, storage.RepositoryDataPath(r.Repository, dir))
		}
		return paths
	case "tag":
		return []string{storage.TagPath(r.Repository, r.Tag)}
	case "tag index entry":
		return []string{storage.TagIndexEntryPath(r.Repository, r.Tag, d)}
	case "manifest link":
		return []string{storage.ManifestRevisionPath(r.Repository, d)}
	case "layer link":
		return []string{storage.LayerLinkDirPath(r.Repository, d)}
	case "upload":
		return []string{storage.UploadPath(r.Repository, r.Upload)}
	case "blob":
		return []string{storage.BlobDataPath(d)}
	}
	return nil
}

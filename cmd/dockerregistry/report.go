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
	// Non-blocking: a named pipe nobody reads fails at once instead of holding the run for ever
	// (on regular files and devices the flag changes nothing).
	f, err := os.OpenFile(opts.report, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|openNonblock, 0o644)
	if err != nil {
		return reportFailed(runErr, sum, dryRun, fmt.Errorf("writing the report failed: %w", err))
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
		return reportFailed(runErr, sum, dryRun, fmt.Errorf("writing the report %s failed: %w", opts.report, err))
	}
	return runErr
}

// reportFailed is the one error line of a run whose report could not be written: what the run
// did comes first, so that a delete whose report failed is not taken for one that deleted
// nothing.
func reportFailed(runErr error, sum prune.Summary, dryRun bool, reportErr error) error {
	var did string
	switch {
	case dryRun:
		did = "the check deleted nothing"
	case sum == prune.Summary{}:
		did = "the prune deleted nothing"
	default:
		did = fmt.Sprintf("the prune deleted %d blobs (%s), %d repositories, %d manifest links, %d tags, %d tag index entries, %d layer links, %d uploads (%s)",
			sum.Blobs, prune.FormatSize(sum.BlobBytes), sum.Repositories, sum.ManifestLinks, sum.Tags, sum.TagIndexEntries, sum.LayerLinks,
			sum.Uploads, prune.FormatSize(sum.UploadBytes))
	}
	if runErr != nil {
		return fmt.Errorf("%w; %s; %w", runErr, did, reportErr)
	}
	return fmt.Errorf("%s; %w", did, reportErr)
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

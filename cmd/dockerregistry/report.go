package main

import (
	"context"
	"fmt"
	"os"

	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// writePruneReport writes the -prune-report file of a run, if asked for, and returns runErr
// joined with any error writing it. The objects of a phase a failed delete stopped in are
// looked up in storage to tell which went.
func writePruneReport(opts options, store *storage.Store, plan *prune.Plan, sum prune.Summary, runErr error) error {
	if opts.report == "" {
		return runErr
	}
	// Non-blocking: a named pipe nobody reads fails at once instead of holding the run for ever
	// (on regular files and devices the flag changes nothing).
	f, err := os.OpenFile(opts.report, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|openNonblock, 0o644)
	if err != nil {
		return reportFailed(runErr, sum, fmt.Errorf("writing the report failed: %w", err))
	}
	// The run's context may be cancelled (SIGINT); the report is written regardless.
	err = prune.WriteReport(context.Background(), f, plan, sum, runErr, store.Stored)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return reportFailed(runErr, sum, fmt.Errorf("writing the report %s failed: %w", opts.report, err))
	}
	return runErr
}

// reportFailed is the one error line of a run whose report could not be written: what the run
// did comes first, so that a delete whose report failed is not taken for one that deleted
// nothing.
func reportFailed(runErr error, sum prune.Summary, reportErr error) error {
	did := "the prune deleted " + sum.String()
	switch {
	case sum.DryRun:
		did = "the check deleted nothing"
	case sum.Total() == 0:
		did = "the prune deleted nothing"
	}
	if runErr != nil {
		return fmt.Errorf("%w; %s; %w", runErr, did, reportErr)
	}
	return fmt.Errorf("%s; %w", did, reportErr)
}

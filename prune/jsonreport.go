package prune

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
)

// The outcomes a report records for each object of the plan.
const (
	OutcomeWouldDelete = "would delete" // a dry run
	OutcomeDeleted     = "deleted"
	OutcomeNotDeleted  = "not deleted" // the delete run stopped before it
	OutcomeUnknown     = "unknown"     // the run stopped part-way and storage could not be asked
)

// ReportRecord is one line of the JSON Lines report of a run (-prune-report): one object of the
// plan, or the closing summary (Kind "summary").
type ReportRecord struct {
	Kind       string `json:"kind"` // repository, tag, tag index entry, manifest link, layer link, upload, blob
	Repository string `json:"repository,omitempty"`
	Tag        string `json:"tag,omitempty"`
	Digest     string `json:"digest,omitempty"`
	Upload     string `json:"upload,omitempty"`
	Size       *int64 `json:"size,omitempty"` // blobs and uploads
	Reason     string `json:"reason,omitempty"`
	Outcome    string `json:"outcome"`
}

// ReportSummary is the last line of the report.
type ReportSummary struct {
	Kind            string `json:"kind"` // "summary"
	Mode            string `json:"mode"` // check or delete
	Blobs           int    `json:"blobs"`
	BlobBytes       int64  `json:"blobBytes"`
	Repositories    int    `json:"repositories"`
	ManifestLinks   int    `json:"manifestLinks"`
	Tags            int    `json:"tags"`
	TagIndexEntries int    `json:"tagIndexEntries"`
	LayerLinks      int    `json:"layerLinks"`
	Uploads         int    `json:"uploads"`
	UploadBytes     int64  `json:"uploadBytes"`
	Error           string `json:"error,omitempty"`
}

// StillStored tells whether the object of a record is still in storage; a report asks it only
// about the objects of the phase a failed delete run stopped in.
type StillStored func(ctx context.Context, r ReportRecord) (bool, error)

// WriteReport streams the report of a run as JSON Lines: one record per object of plan, in
// sweep order (repositories, tags, tag index entries, manifest links, layer links, uploads,
// blobs), then the summary. A dry run records every object as "would delete". A delete run
// records each object's outcome: "deleted" for the phases the sweep finished, "not deleted"
// for those it never started, and for the one phase it stopped in, what storage says now.
// plan may be nil (the run failed before deciding): the report is then the summary alone.
func WriteReport(ctx context.Context, w io.Writer, plan *Plan, sum Summary, dryRun bool, runErr error, stored StillStored) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	mode := "delete"
	if dryRun {
		mode = "check"
	}
	if plan != nil {
		if err := writeRecords(ctx, enc, plan, sum, dryRun, runErr, stored); err != nil {
			return err
		}
	}
	s := ReportSummary{Kind: "summary", Mode: mode, Blobs: sum.Blobs, BlobBytes: sum.BlobBytes, Repositories: sum.Repositories,
		ManifestLinks: sum.ManifestLinks, Tags: sum.Tags, TagIndexEntries: sum.TagIndexEntries, LayerLinks: sum.LayerLinks,
		Uploads: sum.Uploads, UploadBytes: sum.UploadBytes}
	if runErr != nil {
		s.Error = runErr.Error()
	}
	if err := enc.Encode(s); err != nil {
		return err
	}
	return bw.Flush()
}

type reportKind struct {
	records func(yield func(ReportRecord) error) error
	planned int
	done    int
}

func writeRecords(ctx context.Context, enc *json.Encoder, plan *Plan, sum Summary, dryRun bool, runErr error, stored StillStored) error {
	size := func(n int64) *int64 { return &n }
	kinds := [][]reportKind{
		{{planned: len(plan.Repositories), done: sum.Repositories, records: func(y func(ReportRecord) error) error {
			for _, a := range plan.Repositories {
				if err := y(ReportRecord{Kind: "repository", Repository: a.Name, Reason: a.Reason}); err != nil {
					return err
				}
			}
			return nil
		}}},
		{{planned: len(plan.Tags), done: sum.Tags, records: func(y func(ReportRecord) error) error {
			for _, a := range plan.Tags {
				if err := y(ReportRecord{Kind: "tag", Repository: a.Repository, Tag: a.Tag, Digest: a.Manifest.String(), Reason: a.Reason}); err != nil {
					return err
				}
			}
			return nil
		}}, {planned: len(plan.TagIndexEntries), done: sum.TagIndexEntries, records: func(y func(ReportRecord) error) error {
			for _, a := range plan.TagIndexEntries {
				if err := y(ReportRecord{Kind: "tag index entry", Repository: a.Repository, Tag: a.Tag, Digest: a.Digest.String(), Reason: "its manifest link goes"}); err != nil {
					return err
				}
			}
			return nil
		}}},
		{{planned: len(plan.ManifestLinks), done: sum.ManifestLinks, records: func(y func(ReportRecord) error) error {
			for _, a := range plan.ManifestLinks {
				if err := y(ReportRecord{Kind: "manifest link", Repository: a.Repository, Digest: a.Digest.String(), Reason: a.Reason}); err != nil {
					return err
				}
			}
			return nil
		}}, {planned: len(plan.LayerLinks), done: sum.LayerLinks, records: func(y func(ReportRecord) error) error {
			for _, a := range plan.LayerLinks {
				if err := y(ReportRecord{Kind: "layer link", Repository: a.Repository, Digest: a.Digest.String(), Reason: a.Reason}); err != nil {
					return err
				}
			}
			return nil
		}}, {planned: len(plan.Uploads), done: sum.Uploads, records: func(y func(ReportRecord) error) error {
			for _, a := range plan.Uploads {
				if err := y(ReportRecord{Kind: "upload", Repository: a.Repository, Upload: a.ID, Size: size(a.Size), Reason: a.Reason}); err != nil {
					return err
				}
			}
			return nil
		}}},
		{{planned: len(plan.Blobs), done: sum.Blobs, records: func(y func(ReportRecord) error) error {
			for _, a := range plan.Blobs {
				if err := y(ReportRecord{Kind: "blob", Digest: a.Digest.String(), Size: size(a.Size), Reason: a.Reason}); err != nil {
					return err
				}
			}
			return nil
		}}},
	}
	// A phase starts only when every earlier one finished.
	started := !errors.Is(runErr, ErrWouldDeleteEverything)
	for _, phase := range kinds {
		finished := true
		for _, k := range phase {
			if k.done < k.planned {
				finished = false
			}
		}
		for _, k := range phase {
			err := k.records(func(r ReportRecord) error {
				switch {
				case dryRun:
					r.Outcome = OutcomeWouldDelete
				case runErr == nil || (started && k.done == k.planned):
					r.Outcome = OutcomeDeleted
				case !started:
					r.Outcome = OutcomeNotDeleted
				default:
					r.Outcome = OutcomeUnknown
					if stored != nil {
						if there, err := stored(ctx, r); err == nil && there {
							r.Outcome = OutcomeNotDeleted
						} else if err == nil {
							r.Outcome = OutcomeDeleted
						}
					}
				}
				return enc.Encode(r)
			})
			if err != nil {
				return err
			}
		}
		started = started && finished
	}
	return nil
}

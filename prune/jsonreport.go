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
	Rule       string `json:"rule,omitempty"` // the reason's code (Reason.String)
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

// StillStored tells whether an object is still in storage; a report asks it only about the
// objects of the phase a failed delete run stopped in.
type StillStored func(ctx context.Context, o Object) (bool, error)

// WriteReport streams the report of a run as JSON Lines: one record per object of plan, in
// sweep order (repositories, tags, tag index entries, manifest links, layer links, uploads,
// blobs), then the summary. A dry run (sum.DryRun) records every object as "would delete". A
// delete run records each object's outcome: "deleted" for the phases the sweep finished, "not
// deleted" for those it never started, and for the one phase it stopped in, what storage says
// now. plan may be nil (the run failed before deciding): the report is then the summary alone.
func WriteReport(ctx context.Context, w io.Writer, plan *Plan, sum Summary, runErr error, stored StillStored) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	if plan != nil {
		if err := writeRecords(ctx, enc, plan, sum, runErr, stored); err != nil {
			return err
		}
	}
	if err := enc.Encode(reportSummary(sum, runErr)); err != nil {
		return err
	}
	return bw.Flush()
}

func reportSummary(sum Summary, runErr error) ReportSummary {
	s := ReportSummary{Kind: "summary", Mode: "delete",
		Blobs: sum.Count[KindBlob], BlobBytes: sum.Bytes[KindBlob], Repositories: sum.Count[KindRepository],
		ManifestLinks: sum.Count[KindManifestLink], Tags: sum.Count[KindTag], TagIndexEntries: sum.Count[KindTagIndexEntry],
		LayerLinks: sum.Count[KindLayerLink], Uploads: sum.Count[KindUpload], UploadBytes: sum.Bytes[KindUpload]}
	if sum.DryRun {
		s.Mode = "check"
	}
	if runErr != nil {
		s.Error = runErr.Error()
	}
	return s
}

// record is the report's line for an object.
func record(o Object) ReportRecord {
	r := ReportRecord{
		Kind:       o.Kind.String(),
		Repository: o.Repository,
		Digest:     o.Digest.String(),
		Reason:     o.Why(),
		Rule:       o.Reason.String(),
	}
	switch o.Kind {
	case KindTag, KindTagIndexEntry:
		r.Tag = o.Name
	case KindUpload:
		r.Upload = o.Name
	}
	if kinds[o.Kind].sized {
		r.Size = &o.Size
	}
	return r
}

func writeRecords(
	ctx context.Context,
	enc *json.Encoder,
	plan *Plan,
	sum Summary,
	runErr error,
	stored StillStored,
) error {
	// A phase starts only when every earlier one finished.
	started := !errors.Is(runErr, ErrWouldDeleteEverything)
	for _, phase := range sweepPhases() {
		finished := true
		for _, k := range phase {
			if sum.Count[k] < len(plan.Of(k)) {
				finished = false
			}
		}
		for _, k := range phase {
			done := sum.Count[k] == len(plan.Of(k))
			for _, o := range plan.Of(k) {
				r := record(o)
				switch {
				case sum.DryRun:
					r.Outcome = OutcomeWouldDelete
				case runErr == nil || (started && done):
					r.Outcome = OutcomeDeleted
				case !started:
					r.Outcome = OutcomeNotDeleted
				default:
					r.Outcome = OutcomeUnknown
					if stored != nil {
						if there, err := stored(ctx, o); err == nil && there {
							r.Outcome = OutcomeNotDeleted
						} else if err == nil {
							r.Outcome = OutcomeDeleted
						}
					}
				}
				if err := enc.Encode(r); err != nil {
					return err
				}
			}
		}
		started = started && finished
	}
	return nil
}

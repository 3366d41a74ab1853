package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/prune"
)

// TestPruneReport: -prune-report writes every object of a check or delete run as JSON Lines,
// with its size, reason and outcome, then the summary.
func TestPruneReport(t *testing.T) {
	e := newEnv(t)
	e.startRegistry()
	keep := image(t, "keep", "base", "keep-only")
	gone := image(t, "gone", "base", "gone-only")
	e.mustPush("ns/app:latest", keep)
	gd := e.mustPush("ns/app:old", gone)
	mustDeleteImage(t, e, gd)
	bl := blobsOf(t, gone)
	wantBlobs := hashesToStrings([]v1.Hash{bl[0], bl[1], bl[3]})
	e.startRegistry(harness.ReadOnlyEnv)

	for _, mode := range []string{"check", "delete"} {
		file := filepath.Join(t.TempDir(), "report.jsonl")
		sizes := map[string]int64{}
		if mode == "check" {
			for _, h := range []v1.Hash{bl[0], bl[1], bl[3]} {
				sizes[h.String()] = e.blobSize(h)
			}
		}
		res := e.prune(nil, "-prune="+mode, noGrace, "-prune-report="+file)
		if res.ExitCode != 0 {
			t.Fatalf("%s: exit %d\n%s", mode, res.ExitCode, res.Stderr)
		}
		records, summary := readReport(t, file)
		wantOutcome := map[string]string{"check": prune.OutcomeWouldDelete, "delete": prune.OutcomeDeleted}[mode]
		var blobs []string
		kinds := map[string]int{}
		for _, r := range records {
			kinds[r.Kind]++
			if r.Outcome != wantOutcome || r.Reason == "" {
				t.Errorf("%s: record %+v, want outcome %q and a reason", mode, r, wantOutcome)
			}
			if r.Kind == "blob" {
				blobs = append(blobs, r.Digest)
				if r.Size == nil || (mode == "check" && *r.Size != sizes[r.Digest]) {
					t.Errorf("%s: blob %s has size %v, want %d", mode, r.Digest, r.Size, sizes[r.Digest])
				}
			}
		}
		sort.Strings(blobs)
		if mode == "check" && !reflect.DeepEqual(blobs, wantBlobs) {
			t.Errorf("check: blobs %v, want %v", blobs, wantBlobs)
		}
		if mode == "delete" && !reflect.DeepEqual(blobs, wantBlobs) {
			t.Errorf("delete: blobs %v, want %v", blobs, wantBlobs)
		}
		wantKinds := map[string]int{"blob": 3, "manifest link": 1, "tag": 1, "layer link": 2}
		if !reflect.DeepEqual(kinds, wantKinds) {
			t.Errorf("%s: kinds %v, want %v", mode, kinds, wantKinds)
		}
		if summary.Kind != "summary" || summary.Mode != mode || summary.Blobs != 3 || summary.Error != "" {
			t.Errorf("%s: summary %+v", mode, summary)
		}
		data, _ := os.ReadFile(file)
		t.Logf("-prune=%s -prune-report:\n%s", mode, data)
	}
	if err := e.pullsIdentical("ns/app:latest", keep); err != nil {
		t.Error(err)
	}
}

func readReport(t *testing.T, file string) ([]prune.ReportRecord, prune.ReportSummary) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	if len(lines) == 0 {
		t.Fatal("empty report")
	}
	var records []prune.ReportRecord
	for _, l := range lines[:len(lines)-1] {
		var r prune.ReportRecord
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatalf("line %s: %v", l, err)
		}
		records = append(records, r)
	}
	var s prune.ReportSummary
	if err := json.Unmarshal(lines[len(lines)-1], &s); err != nil {
		t.Fatal(err)
	}
	return records, s
}

package prune

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func reportLines(t *testing.T, out string) ([]ReportRecord, ReportSummary) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var recs []ReportRecord
	for _, l := range lines[:len(lines)-1] {
		var r ReportRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		recs = append(recs, r)
	}
	var s ReportSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
		t.Fatal(err)
	}
	return recs, s
}

func TestWriteReportOutcomes(t *testing.T) {
	plan := NewPlan(
		Object{Kind: KindRepository, Repository: "ns/gone", Reason: ReasonNoStream},
		Object{Kind: KindManifestLink, Repository: "ns/app", Digest: dg("m"), Reason: ReasonNotInHistory},
		Object{Kind: KindLayerLink, Repository: "ns/app", Digest: dg("l1"), Reason: ReasonNotUsed},
		Object{Kind: KindLayerLink, Repository: "ns/app", Digest: dg("l2"), Reason: ReasonNotUsed},
		Object{Kind: KindBlob, Digest: dg("b"), Size: 7, Reason: ReasonUnreferenced},
	)
	outcomes := func(recs []ReportRecord) map[string]string {
		m := map[string]string{}
		for _, r := range recs {
			m[r.Kind+" "+r.Repository+" "+r.Digest] = r.Outcome
		}
		return m
	}
	var buf bytes.Buffer
	if err := WriteReport(context.Background(), &buf, plan, Summary{DryRun: true}, nil, nil); err != nil {
		t.Fatal(err)
	}
	recs, sum := reportLines(t, buf.String())
	if len(recs) != 5 || sum.Mode != "check" {
		t.Fatalf("dry run: %v %+v", recs, sum)
	}
	for _, r := range recs {
		if r.Outcome != OutcomeWouldDelete {
			t.Errorf("dry run record %+v", r)
		}
	}
	if recs[4].Size == nil || *recs[4].Size != 7 {
		t.Errorf("blob size: %+v", recs[4])
	}
	if recs[0].Reason != "image stream ns/gone does not exist" || recs[0].Rule != "no-stream" ||
		recs[4].Reason != "no image references it" || recs[4].Rule != "unreferenced" {
		t.Errorf("reasons: %+v, %+v", recs[0], recs[4])
	}

	// A delete that failed in the links phase: the repository went, one layer link went
	// (storage says so), the blob phase never started.
	buf.Reset()
	stored := func(_ context.Context, o Object) (bool, error) {
		return o.Digest == dg("l2"), nil
	}
	runErr := errors.New("deleting layer link: boom")
	var sumSoFar Summary
	sumSoFar.Count[KindRepository], sumSoFar.Count[KindManifestLink], sumSoFar.Count[KindLayerLink] = 1, 1, 1
	if err := WriteReport(context.Background(), &buf, plan, sumSoFar, runErr, stored); err != nil {
		t.Fatal(err)
	}
	recs, sum = reportLines(t, buf.String())
	got := outcomes(recs)
	want := map[string]string{
		"repository ns/gone ":                      OutcomeDeleted,
		"manifest link ns/app " + dg("m").String(): OutcomeDeleted,
		"layer link ns/app " + dg("l1").String():   OutcomeDeleted,
		"layer link ns/app " + dg("l2").String():   OutcomeNotDeleted,
		"blob  " + dg("b").String():                OutcomeNotDeleted,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: outcome %q, want %q", k, got[k], v)
		}
	}
	if sum.Mode != "delete" || sum.Error != runErr.Error() || sum.LayerLinks != 1 {
		t.Errorf("summary %+v", sum)
	}

	// The interlock: nothing was deleted, and storage is not asked.
	buf.Reset()
	ask := func(context.Context, Object) (bool, error) { t.Error("storage asked"); return true, nil }
	if err := WriteReport(context.Background(), &buf, plan, Summary{}, ErrWouldDeleteEverything, ask); err != nil {
		t.Fatal(err)
	}
	recs, _ = reportLines(t, buf.String())
	for _, r := range recs {
		if r.Outcome != OutcomeNotDeleted {
			t.Errorf("interlocked record %+v", r)
		}
	}

	// No plan: the summary alone, with the error.
	buf.Reset()
	if err := WriteReport(context.Background(), &buf, nil, Summary{}, errors.New("403"), nil); err != nil {
		t.Fatal(err)
	}
	if recs, sum := reportLines(t, buf.String()); len(recs) != 0 || sum.Error != "403" {
		t.Errorf("no plan: %v %+v", recs, sum)
	}
}

package ordinary

import (
	"regexp"
	"testing"
)

func TestReasons(t *testing.T) {
	want := []struct {
		reason Reason
		code   string
		keeps  bool
	}{
		{reasonNone, "none", false},
		{ReasonYoungStream, "young-stream", true},
		{ReasonYoung, "young", true},
		{ReasonTagUsed, "tag-used", true},
		{ReasonWithinSizeLimit, "within-size-limit", true},
		{ReasonWithinRevisions, "within-revisions", true},
		{ReasonImageUsedByDigest, "image-used-by-digest", true},
		{ReasonImageMissing, "image-missing", false},
		{ReasonOldRevision, "old-revision", false},
		{ReasonOverSizeLimit, "over-size-limit", false},
		{ReasonNamedByStream, "named-by-stream", true},
		{ReasonChildOfUsedList, "child-of-used-list", true},
		{ReasonExternal, "external", true},
		{ReasonYoungImage, "young-image", true},
		{ReasonUnused, "unused", false},
	}
	if len(want) != int(numReasons) {
		t.Fatalf("the table lists %d reasons, the package has %d", len(want), numReasons)
	}
	kebab := regexp.MustCompile(`^[a-z]+(-[a-z]+)*$`)
	sentences := map[string]Reason{}
	for i, w := range want {
		if w.reason != Reason(i) {
			t.Errorf("row %d is reason %d", i, w.reason)
		}
		if got := w.reason.String(); got != w.code {
			t.Errorf("reason %d: code %q, want %q", w.reason, got, w.code)
		}
		if !kebab.MatchString(w.code) {
			t.Errorf("code %q is not kebab-case", w.code)
		}
		if got := w.reason.Keeps(); got != w.keeps {
			t.Errorf("%s: Keeps %v, want %v", w.code, got, w.keeps)
		}
		s := w.reason.Sentence()
		if w.reason == reasonNone {
			if s != "none" {
				t.Errorf("none: sentence %q", s)
			}
			continue
		}
		// young and young-image say the same of different things.
		if prev, dup := sentences[s]; dup && !(prev == ReasonYoung && w.reason == ReasonYoungImage) {
			t.Errorf("%s says what %s says: %q", w.code, prev, s)
		}
		sentences[s] = w.reason
		if s == w.code || len(s) < 15 {
			t.Errorf("%s: sentence %q", w.code, s)
		}
	}
	if got := numReasons.String(); got != "reason(15)" {
		t.Errorf("out of range: %q", got)
	}
	if got := numReasons.Sentence(); got != "reason(15)" {
		t.Errorf("out of range sentence: %q", got)
	}
	if numReasons.Keeps() {
		t.Error("an unknown reason keeps")
	}
}

func TestSentences(t *testing.T) {
	for _, tc := range []struct {
		reason Reason
		want   string
	}{
		{ReasonWithinRevisions, "among the -keep-tag-revisions newest revisions of its tag"},
		{ReasonTagUsed, "it is the current image (revision 0) of a tag that is in use"},
		{ReasonExternal, "it was not pushed to this registry (not managed), and -all=false prunes only managed Images"},
		{ReasonUnused, "no image stream's tag history names it, nor any manifest list that stays"},
	} {
		if got := tc.reason.Sentence(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.reason, got, tc.want)
		}
	}
}

package bench

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

func deleteBody(keys ...string) string {
	var b strings.Builder
	b.WriteString(`<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`)
	for _, k := range keys {
		b.WriteString("<Object><Key>" + k + "</Key></Object>")
	}
	b.WriteString("<Quiet>true</Quiet></Delete>")
	return b.String()
}

func key(p string) string { return strings.TrimPrefix(p, "/") }

// TestS3Attribution: each request of a delete run is classed by what it serves: the walk, the
// plan's exact keys, an object deleted by prefix (its listing and its DeleteObjects), the lock.
func TestS3Attribution(t *testing.T) {
	a, err := newS3Attribution([]prune.ReportRecord{
		{Kind: "repository", Repository: "ns/gone"},
		{Kind: "tag", Repository: "ns/app", Tag: "old"},
		{Kind: "upload", Repository: "ns/app", Upload: "u1"},
		{Kind: "layer link", Repository: "ns/app", Digest: dgstA.String()},
		{Kind: "blob", Digest: dgstB.String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, target, body, want string
	}{
		{"GET", "/registry?list-type=2&prefix=" + key(storage.RepositoriesPath) + "/", "", "LIST walk"},
		{"GET", "/registry?list-type=2&prefix=" + key(storage.RepositoryPath("ns/gone")), "", "LIST repository"},
		{"GET", "/registry?list-type=2&prefix=" + key(storage.TagCurrentPath("ns/app", "old")), "", "LIST tag"},
		{"GET", "/registry?list-type=2&prefix=" + key(storage.TagPath("ns/app", "old")), "", "LIST tag"},
		{"GET", "/registry?list-type=2&prefix=" + key(storage.UploadPath("ns/app", "u1")), "", "LIST upload"},
		{"GET", "/registry?list-type=2&prefix=" + key(storage.PruneLockPath()), "", "LIST lock"},
		{"GET", "/registry?list-type=2&prefix=" + key(storage.RepositoryPath("ns/app")), "", "LIST other"},
		{"POST", "/registry?delete", deleteBody(
			key(storage.LayerLinkPath("ns/gone", dgstA)), key(storage.ManifestRevisionLinkPath("ns/gone", dgstB)),
		), "DELETE-BATCH repository"},
		{"POST", "/registry?delete", deleteBody(
			key(storage.LayerLinkPath("ns/app", dgstA)), key(storage.BlobDataPath(dgstB)),
		), "DELETE-BATCH keys"},
		{"POST", "/registry?delete", deleteBody(key(storage.TagCurrentLinkPath("ns/app", "old"))), "DELETE-BATCH tag"},
		{"POST", "/registry?delete", deleteBody(key(storage.PruneLockPath())), "DELETE-BATCH lock"},
		// Keys of two objects deleted by prefix, or of one and the plan's keys: not one thing.
		{"POST", "/registry?delete", deleteBody(
			key(storage.LayerLinkPath("ns/gone", dgstA)), key(storage.BlobDataPath(dgstB)),
		), "DELETE-BATCH other"},
		{"POST", "/registry?delete", deleteBody(key(storage.BlobDataPath(dgstA))), "DELETE-BATCH other"},
		{"PUT", "/registry/" + key(storage.PruneLockPath()), "", "PUT lock"},
		{"GET", "/registry/" + key(storage.PruneLockPath()), "", "GET lock"},
		{"HEAD", "/registry/" + key(storage.BlobDataPath(dgstB)), "", "HEAD other"},
	} {
		r := httptest.NewRequest(c.method, c.target, strings.NewReader(c.body))
		if got := a.classify(r); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.method, c.target, got, c.want)
		}
		// The body goes on to S3 as it came: it is signed.
		if b, err := io.ReadAll(r.Body); err != nil || string(b) != c.body {
			t.Errorf("%s %s: the body passed on is %q, %v; want it unchanged", c.method, c.target, b, err)
		}
	}
}

func TestS3RequestBound(t *testing.T) {
	for _, c := range []struct {
		objects, deletions int
		want               float64
	}{
		{628_000, 0, 753.6},
		{628_000, 190_001, 1.2 * (628 + 191)},
		{12_560, 4_300, 1.2 * (13 + 5)},
		{1, 1, 2.4},
	} {
		if got := s3RequestBound(c.objects, c.deletions); got < c.want-1e-9 || got > c.want+1e-9 {
			t.Errorf("s3RequestBound(%d, %d) = %v, want %v", c.objects, c.deletions, got, c.want)
		}
	}
}

// TestS3DeleteTarget: a delete run within the bound is met; one over it is not, and the row
// says how many repositories (and tags, uploads) went by prefix and what they cost, and what
// the other requests served.
func TestS3DeleteTarget(t *testing.T) {
	within := Counts{"LIST walk": 13, "DELETE-BATCH keys": 5, "GET lock": 2}
	tg := s3DeleteTarget(12_560, 4_300, within, map[string]int{"blob": 1200, "layer link": 3000})
	if tg.N != 4 || tg.Status != Met ||
		!strings.Contains(tg.Measured, "20 (DELETE-BATCH=5, GET=2, LIST=13) deleting 4300 of 12560 keys") ||
		!strings.Contains(tg.Measured, "bound 1.2 × (13 + 5) = 21.6") || strings.Contains(tg.Measured, "by prefix") ||
		!strings.HasSuffix(tg.Measured, "the other requests: 20 (keys=5, lock=2, walk=13), within the bound") {
		t.Errorf("within the bound: %s, %q", tg.Status, tg.Measured)
	}
	over := Counts{
		"LIST walk": 13, "DELETE-BATCH keys": 5, "GET lock": 2,
		"LIST repository": 40, "DELETE-BATCH repository": 40,
		"LIST tag": 6, "DELETE-BATCH tag": 3, // 3 tags: two listings each, one with nothing below
	}
	tg = s3DeleteTarget(12_560, 4_300, over, map[string]int{"repository": 40, "tag": 3, "blob": 1200})
	for _, want := range []string{
		"109 (DELETE-BATCH=48, GET=2, LIST=59)",
		"40 repositories deleted by prefix cost 80 (LIST=40, DELETE-BATCH=40: 1 LIST and 1 DELETE-BATCH each)",
		"3 tags deleted by prefix cost 9 (LIST=6, DELETE-BATCH=3: 2 LIST and 1 DELETE-BATCH each)",
		"the other requests: 20 (keys=5, lock=2, walk=13), within the bound",
	} {
		if !strings.Contains(tg.Measured, want) {
			t.Errorf("over the bound: %q lacks %q", tg.Measured, want)
		}
	}
	if tg.Status != Missed {
		t.Errorf("over the bound: %s, want no", tg.Status)
	}
}

package storage

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

var (
	dgstA = digest.FromString("a")
	dgstB = digest.FromString("b")
)

func TestPathsRoundTrip(t *testing.T) {
	tests := []struct {
		path string
		want Entry
	}{
		{BlobDataPath(dgstA), Entry{Kind: KindBlobData, Digest: dgstA}},
		{
			ManifestRevisionLinkPath("ns/app", dgstA),
			Entry{Kind: KindManifestRevisionLink, Repository: "ns/app", Digest: dgstA},
		},
		{
			LayerLinkPath("ns/app/nested/deeper", dgstB),
			Entry{Kind: KindLayerLink, Repository: "ns/app/nested/deeper", Digest: dgstB},
		},
		{
			TagCurrentLinkPath("library/busybox", "v1.0_rc-1"),
			Entry{Kind: KindTagCurrentLink, Repository: "library/busybox", Tag: "v1.0_rc-1"},
		},
		{
			TagIndexEntryLinkPath("ns/app", "latest", dgstB),
			Entry{Kind: KindTagIndexLink, Repository: "ns/app", Tag: "latest", Digest: dgstB},
		},
		{
			UploadPath("ns/app", "0f3e-uuid") + "/data",
			Entry{Kind: KindUploadFile, Repository: "ns/app", UploadID: "0f3e-uuid"},
		},
		{
			UploadPath("ns/app", "0f3e-uuid") + "/hashstates/sha256/1024",
			Entry{Kind: KindUploadFile, Repository: "ns/app", UploadID: "0f3e-uuid"},
		},
		{UploadPath("single", "id") + "/startedat", Entry{Kind: KindUploadFile, Repository: "single", UploadID: "id"}},
	}
	for _, tt := range tests {
		got, err := ParsePath(tt.path)
		if err != nil {
			t.Errorf("ParsePath(%q): %v", tt.path, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParsePath(%q) = %+v, want %+v", tt.path, got, tt.want)
		}
	}
}

// The layout must be distribution's, to the character.
func TestPathsMatchDistribution(t *testing.T) {
	hex := dgstA.Encoded()
	tests := map[string]string{
		BlobDataPath(dgstA):                          "/docker/registry/v2/blobs/sha256/" + hex[:2] + "/" + hex + "/data",
		ManifestRevisionLinkPath("ns/app", dgstA):    "/docker/registry/v2/repositories/ns/app/_manifests/revisions/sha256/" + hex + "/link",
		LayerLinkPath("ns/app", dgstA):               "/docker/registry/v2/repositories/ns/app/_layers/sha256/" + hex + "/link",
		TagCurrentLinkPath("ns/app", "latest"):       "/docker/registry/v2/repositories/ns/app/_manifests/tags/latest/current/link",
		TagIndexEntryLinkPath("ns/app", "v1", dgstA): "/docker/registry/v2/repositories/ns/app/_manifests/tags/v1/index/sha256/" + hex + "/link",
		UploadPath("ns/app", "u"):                    "/docker/registry/v2/repositories/ns/app/_uploads/u",
	}
	for got, want := range tests {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestParsePathRejects(t *testing.T) {
	hex := dgstA.Encoded()
	bad := []string{
		"/elsewhere/file",
		"/docker/registry/v2/blobs/sha256/" + hex[:2] + "/" + hex + "/not-data",
		"/docker/registry/v2/blobs/sha256/ff/" + hex + "/data", // wrong prefix directory
		"/docker/registry/v2/blobs/sha256/ab/abc/data",         // short hex
		"/docker/registry/v2/blobs/sha256/" + strings.ToUpper(hex[:2]) + "/" + strings.ToUpper(hex) + "/data",
		"/docker/registry/v2/blobs/md5/ab/abcdef/data",
		"/docker/registry/v2/repositories/_layers/sha256/" + hex + "/link", // no name
		"/docker/registry/v2/repositories/Upper/_layers/sha256/" + hex + "/link",
		"/docker/registry/v2/repositories/ns/app/_layers/sha256/" + hex + "/data",
		"/docker/registry/v2/repositories/ns/app/_manifests/revisions/sha256/" + hex,
		"/docker/registry/v2/repositories/ns/app/_manifests/tags/-bad/current/link",
		"/docker/registry/v2/repositories/ns/app/_manifests/tags/latest/current/.tmp",
		"/docker/registry/v2/repositories/ns/app/_uploads/onlyid",
		"/docker/registry/v2/repositories/ns/app/_other/x",
		"/docker/registry/v2/repositories/ns/app",
	}
	for _, p := range bad {
		if e, err := ParsePath(p); err == nil {
			t.Errorf("ParsePath(%q) = %+v, want an error", p, e)
		}
	}
}

// TestParsePathInvalidNames: a name distribution refuses but the drivers can address comes
// back with its entry (the inventory keeps such repositories); one that cannot be addressed,
// or would not build back to its path, comes back without.
func TestParsePathInvalidNames(t *testing.T) {
	for _, repo := range []string{"ns/BadName", "UPPER", "ns/-dash", "ns/a___b"} {
		p := LayerLinkPath(repo, dgstA)
		e, err := ParsePath(p)
		if !errors.Is(err, ErrBadRepositoryName) || e != (Entry{Kind: KindLayerLink, Repository: repo, Digest: dgstA}) {
			t.Errorf("ParsePath(%q) = %+v, %v; want the entry and ErrBadRepositoryName", p, e, err)
		}
	}
	hex := dgstA.Encoded()
	for _, p := range []string{
		"/docker/registry/v2/repositories/BAD NAME/_layers/sha256/" + hex + "/link",
		"/docker/registry/v2/repositories/ns/../x/_layers/sha256/" + hex + "/link",
		"/docker/registry/v2/repositories/ns//x/_layers/sha256/" + hex + "/link",
		"/docker/registry/v2/repositories/ns/./x/_layers/sha256/" + hex + "/link",
		"/docker/registry/v2/repositories/ns/BadName/_layers/sha256/short/link",
	} {
		if e, err := ParsePath(p); err == nil || e != (Entry{}) {
			t.Errorf("ParsePath(%q) = %+v, %v; want no entry and an error", p, e, err)
		}
	}
	if got := RepositoryNameOf("/docker/registry/v2/repositories/ns/BAD NAME/_layers/x"); got != "ns/BAD NAME" {
		t.Errorf("RepositoryNameOf = %q", got)
	}
}

func TestParseLink(t *testing.T) {
	if d, err := ParseLink([]byte(dgstA.String())); err != nil || d != dgstA {
		t.Errorf("ParseLink(valid) = %v, %v", d, err)
	}
	if d, err := ParseLink([]byte(dgstA.String() + "\n")); err != nil || d != dgstA {
		t.Errorf("ParseLink(with newline) = %v, %v", d, err)
	}
	for _, bad := range []string{"", "garbage", "sha256:abc", "md5:" + strings.Repeat("a", 32), strings.Repeat("x", 5000)} {
		if _, err := ParseLink([]byte(bad)); !errors.Is(err, ErrBadDigest) {
			t.Errorf("ParseLink(%.20q): err = %v, want ErrBadDigest", bad, err)
		}
	}
}

// FuzzParsePath checks that parsing never panics, and that whatever parses builds back to the
// same path (for the kinds whose path is fully determined by the entry).
func FuzzParsePath(f *testing.F) {
	for _, seed := range []string{
		BlobDataPath(dgstA),
		ManifestRevisionLinkPath("ns/app", dgstA),
		LayerLinkPath("a/b/c", dgstB),
		TagCurrentLinkPath("ns/app", "latest"),
		TagIndexEntryLinkPath("ns/app", "latest", dgstB),
		UploadPath("ns/app", "id") + "/data",
		"/docker/registry/v2/repositories/x/_layers/sha256//link",
		"/docker/registry/v2/blobs/sha256/a/",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p string) {
		e, err := ParsePath(p)
		if err != nil && (!errors.Is(err, ErrBadRepositoryName) || e.Kind == 0) {
			return
		}
		var built string
		switch e.Kind {
		case KindBlobData:
			built = BlobDataPath(e.Digest)
		case KindManifestRevisionLink:
			built = ManifestRevisionLinkPath(e.Repository, e.Digest)
		case KindLayerLink:
			built = LayerLinkPath(e.Repository, e.Digest)
		case KindTagCurrentLink:
			built = TagCurrentLinkPath(e.Repository, e.Tag)
		case KindTagIndexLink:
			built = TagIndexEntryLinkPath(e.Repository, e.Tag, e.Digest)
		case KindUploadFile:
			if !strings.HasPrefix(p, UploadPath(e.Repository, e.UploadID)+"/") {
				t.Fatalf("upload %+v parsed from %q, which is not under its directory", e, p)
			}
			return
		default:
			t.Fatalf("unknown kind %v from %q", e.Kind, p)
		}
		if built != p {
			t.Fatalf("ParsePath(%q) = %+v, which builds %q", p, e, built)
		}
		if err := e.Digest.Validate(); e.Digest != "" && err != nil {
			t.Fatalf("ParsePath(%q) returned an invalid digest %q", p, e.Digest)
		}
	})
}

// FuzzParseLink checks that link parsing never panics and only returns valid digests.
func FuzzParseLink(f *testing.F) {
	f.Add([]byte(dgstA.String()))
	f.Add([]byte("sha256:"))
	f.Add([]byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, content []byte) {
		d, err := ParseLink(content)
		if err == nil {
			if verr := d.Validate(); verr != nil {
				t.Fatalf("ParseLink(%q) = %q, invalid: %v", content, d, verr)
			}
		}
	})
}

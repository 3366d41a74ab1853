package online

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/prune"
)

var (
	dA = digest.FromString("a")
	dB = digest.FromString("b")
)

// TestUseCovers: each kind of object against each shape of use.
func TestUseCovers(t *testing.T) {
	type tc struct {
		use  Use
		obj  prune.Object
		want bool
	}
	blob := prune.Object{Kind: prune.KindBlob, Digest: dA}
	repo := prune.Object{Kind: prune.KindRepository, Repository: "ns/app"}
	upload := prune.Object{Kind: prune.KindUpload, Repository: "ns/app", Name: "uuid"}
	mlink := prune.Object{Kind: prune.KindManifestLink, Repository: "ns/app", Digest: dA}
	llink := prune.Object{Kind: prune.KindLayerLink, Repository: "ns/app", Digest: dA}
	tag := prune.Object{Kind: prune.KindTag, Repository: "ns/app", Name: "v1", Digest: dA}
	tagUnknown := prune.Object{Kind: prune.KindTag, Repository: "ns/app", Name: "v1"}
	entry := prune.Object{Kind: prune.KindTagIndexEntry, Repository: "ns/app", Name: "v1", Digest: dA}
	cases := []tc{
		{Use{Repository: "ns/app", Digest: dA}, blob, true},
		{Use{Repository: "other/x", Digest: dA}, blob, true}, // a blob serves every repository
		{Use{Digest: dA}, blob, true},
		{Use{Repository: "ns/app", Digest: dB}, blob, false},
		{Use{Repository: "ns/app"}, blob, false},

		{Use{Repository: "ns/app"}, repo, true},
		{Use{Repository: "ns/app", Digest: dB}, repo, true},
		{Use{Repository: "ns/app2", Digest: dA}, repo, false},
		{Use{Digest: dA}, repo, false},
		{Use{Repository: "ns/app"}, upload, true},
		{Use{Repository: "ns/ap"}, upload, false},

		{Use{Repository: "ns/app", Digest: dA}, mlink, true},
		{Use{Repository: "ns/app", Digest: dB}, mlink, false},
		{Use{Repository: "other/x", Digest: dA}, mlink, false},
		{Use{Digest: dA}, mlink, false},
		{Use{Repository: "ns/app", Digest: dA}, llink, true},
		{Use{Repository: "ns/app"}, llink, false},

		{Use{Repository: "ns/app", Tag: "v1"}, tag, true},
		{Use{Repository: "ns/app", Tag: "v2"}, tag, false},
		{Use{Repository: "ns/app", Digest: dA}, tag, true},
		{Use{Repository: "ns/app", Digest: dB, Tag: "v2"}, tag, false},
		{Use{Repository: "other/x", Tag: "v1"}, tag, false},
		{Use{Repository: "ns/app", Tag: "v1"}, tagUnknown, true},
		{Use{Repository: "ns/app", Digest: dA}, tagUnknown, false},
		{Use{Repository: "ns/app", Tag: "v1"}, entry, true},
		{Use{Repository: "ns/app", Digest: dA}, entry, true},
		{Use{Repository: "ns/app", Digest: dB}, entry, false},

		// A kind the protocol does not know stays.
		{Use{}, prune.Object{Kind: prune.Kind(200)}, true},
	}
	for _, c := range cases {
		if got := c.use.Covers(c.obj); got != c.want {
			t.Errorf("%+v covers %s: %v, want %v", c.use, c.obj, got, c.want)
		}
		var set UseSet
		set.Add(c.use)
		if got := set.Covers(c.obj); got != c.want {
			t.Errorf("set of %+v covers %s: %v, want %v", c.use, c.obj, got, c.want)
		}
	}
}

// TestUseSetAgreesWithCovers: a set covers an object exactly when one of its uses does, over
// random uses and objects of a small universe (so that they meet often).
func TestUseSetAgreesWithCovers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	repos := []string{"", "a/x", "a/y", "b/x"}
	digests := []digest.Digest{"", dA, dB}
	tags := []string{"", "v1", "v2"}
	pick := func(n int) int { return rng.IntN(n) }
	for round := range 2000 {
		var set UseSet
		var uses []Use
		for range pick(4) {
			u := Use{Repository: repos[pick(len(repos))], Digest: digests[pick(len(digests))], Tag: tags[pick(len(tags))]}
			uses = append(uses, u)
			set.Add(u)
		}
		for k := range prune.Kind(7) {
			o := prune.Object{Kind: k, Repository: repos[1+pick(3)], Digest: digests[pick(len(digests))], Name: tags[1+pick(2)]}
			want := false
			for _, u := range uses {
				want = want || u.Covers(o)
			}
			if got := set.Covers(o); got != want {
				t.Fatalf("round %d: set %+v covers %s: %v, want %v", round, uses, o, got, want)
			}
		}
	}
}

func TestUsesRoundTrip(t *testing.T) {
	uses := []Use{
		{Repository: "ns/app", Digest: dA, Tag: "latest"},
		{Repository: "ns/app"},
		{Digest: dB},
	}
	got, err := ParseUses(EncodeUses(uses))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, uses) {
		t.Errorf("round trip: %+v, want %+v", got, uses)
	}
	objs := []prune.Object{
		{Kind: prune.KindRepository, Repository: "ns/app"},
		{Kind: prune.KindTag, Repository: "ns/app", Name: "v1", Digest: dA},
		{Kind: prune.KindBlob, Digest: dB},
		{Kind: prune.KindUpload, Repository: "a/b/c", Name: "6f1c0d1e-uuid"},
	}
	claim, err := ParseClaim(EncodeClaim(objs))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(claim, objs) {
		t.Errorf("round trip: %+v, want %+v", claim, objs)
	}
}

// TestParseRefusesWhatItCannotRead: a record the prune does not understand stops it.
func TestParseRefusesWhatItCannotRead(t *testing.T) {
	for _, content := range []string{
		"ns/app sha256:abc -\n",                 // bad digest
		"ns/app " + dA.String() + "\n",          // a field missing
		"ns/app " + dA.String() + " v1 extra\n", // one too many
	} {
		if _, err := ParseUses([]byte(content)); err == nil {
			t.Errorf("ParseUses(%q) succeeded", content)
		}
	}
	for _, content := range []string{
		"x ns/app - -\n",
		fmt.Sprintf("%d ns/app nothex -\n", prune.KindBlob),
	} {
		if _, err := ParseClaim([]byte(content)); err == nil {
			t.Errorf("ParseClaim(%q) succeeded", content)
		}
	}
	if got, err := ParseUses([]byte(strings.Repeat("\n", 3))); err != nil || len(got) != 0 {
		t.Errorf("blank record: %v, %v", got, err)
	}
}

func digestOf(s string) digest.Digest { return digest.FromString(s) }

package bench

import (
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/prune"
)

// The pure parts of the prune on the full-size dataset (200k blobs, 20k repositories, 30%
// orphans): go test -run '^$' -bench . ./bench

var fullInputs struct {
	images  []prune.Image
	streams []prune.Stream
	inv     *prune.Inventory
	refs    *prune.References
}

func loadFull(b *testing.B) {
	b.Helper()
	if fullInputs.inv == nil {
		ds := Generate(Sizes["full"])
		fullInputs.images, fullInputs.streams, fullInputs.inv = ds.PruneInputs(time.Now().Add(-48 * time.Hour))
		fullInputs.refs = buildRefs(fullInputs.images, fullInputs.streams)
	}
	b.ResetTimer()
}

func buildRefs(images []prune.Image, streams []prune.Stream) *prune.References {
	rb := prune.NewReferenceBuilder()
	for _, im := range images {
		rb.AddImage(im)
	}
	for _, s := range streams {
		rb.AddStream(s)
	}
	return rb.Build()
}

// BenchmarkReferenceBuilder: every Image and ImageStream added, then joined.
func BenchmarkReferenceBuilder(b *testing.B) {
	loadFull(b)
	b.ReportAllocs()
	for b.Loop() {
		buildRefs(fullInputs.images, fullInputs.streams)
	}
	b.ReportMetric(float64(len(fullInputs.images)+len(fullInputs.streams)), "objects/op")
}

// BenchmarkDecide: the whole decision over the inventory.
func BenchmarkDecide(b *testing.B) {
	loadFull(b)
	opts := prune.Options{Now: time.Now(), KeepYoungerThan: time.Hour, UploadPurgeAge: 168 * time.Hour}
	b.ReportAllocs()
	var plan *prune.Plan
	for b.Loop() {
		plan = prune.Decide(fullInputs.refs, fullInputs.inv, opts)
	}
	if want := 60_000; len(plan.Of(prune.KindBlob)) != want {
		b.Fatalf("Decide found %d blobs to delete, want %d", len(plan.Of(prune.KindBlob)), want)
	}
	b.ReportMetric(float64(len(fullInputs.inv.Blobs)), "blobs/op")
}

// BenchmarkDigestSetAdd: one set of 200k sha256 digests.
func BenchmarkDigestSetAdd(b *testing.B) {
	loadFull(b)
	digests := blobDigests()
	b.ReportAllocs()
	for b.Loop() {
		s := prune.NewDigestSet()
		for _, d := range digests {
			s.Add(d)
		}
	}
	b.ReportMetric(float64(len(digests)), "digests/op")
}

// BenchmarkDigestSetHas: 200k lookups, 70% hits.
func BenchmarkDigestSetHas(b *testing.B) {
	loadFull(b)
	digests := blobDigests()
	set := fullInputs.refs.Blobs
	b.ReportAllocs()
	hits := 0
	for b.Loop() {
		hits = 0
		for _, d := range digests {
			if set.Has(d) {
				hits++
			}
		}
	}
	if hits != 140_000 {
		b.Fatalf("%d hits, want 140000", hits)
	}
	b.ReportMetric(float64(len(digests)), "lookups/op")
}

func blobDigests() []digest.Digest {
	out := make([]digest.Digest, len(fullInputs.inv.Blobs))
	for i, bl := range fullInputs.inv.Blobs {
		out[i] = bl.Digest
	}
	return out
}

// TestPruneInputsDecide checks the in-memory dataset against Decide at the tiny size: exactly
// the generated orphans go.
func TestPruneInputsDecide(t *testing.T) {
	ds := Generate(Sizes["tiny"])
	images, streams, inv := ds.PruneInputs(time.Now().Add(-48 * time.Hour))
	plan := prune.Decide(buildRefs(images, streams), inv, prune.Options{Now: time.Now(), KeepYoungerThan: time.Hour})
	if len(plan.Of(prune.KindBlob)) != ds.OrphanBlobs || len(inv.Blobs) != ds.StoredBlobs {
		t.Fatalf(
			"Decide: %d blobs of %d go, want %d of %d",
			len(plan.Of(prune.KindBlob)),
			len(inv.Blobs),
			ds.OrphanBlobs,
			ds.StoredBlobs,
		)
	}
}

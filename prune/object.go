package prune

import (
	"fmt"

	"github.com/opencontainers/go-digest"
)

// Kind is what a stored object is. Every kind is one constant here and one row of kinds; the
// sweep order, the log lines, the report, the summary and the storage paths all follow from
// them.
type Kind uint8

// The kinds, in the order of the summary lines (kinds' phase orders the sweep).
const (
	KindRepository Kind = iota
	KindManifestLink
	KindTag
	KindTagIndexEntry
	KindLayerLink
	KindUpload
	KindBlob
	numKinds
)

// kindTraits is what the rest of the package needs to know of a kind.
type kindTraits struct {
	name   string // in logs, errors, the JSON report and explanations
	plural string // in the summary lines
	// phase orders the sweep: every object of a phase is deleted before the next phase
	// starts, so that a run stopped at any point leaves every remaining link pointing at an
	// existing blob.
	phase int
	sized bool // the object has a size that the summary adds up
}

var kinds = [numKinds]kindTraits{
	KindRepository:    {name: "repository", plural: "repositories", phase: 0},
	KindTag:           {name: "tag", plural: "tags", phase: 1},
	KindTagIndexEntry: {name: "tag index entry", plural: "tag index entries", phase: 1},
	KindManifestLink:  {name: "manifest link", plural: "manifest links", phase: 2},
	KindLayerLink:     {name: "layer link", plural: "layer links", phase: 2},
	KindUpload:        {name: "upload", plural: "uploads", phase: 2, sized: true},
	KindBlob:          {name: "blob", plural: "blobs", phase: 3, sized: true},
}

func (k Kind) String() string {
	if k >= numKinds {
		return fmt.Sprintf("kind(%d)", k)
	}
	return kinds[k].name
}

// sweepPhases groups the kinds by phase, in order.
func sweepPhases() [][]Kind {
	var out [][]Kind
	for k := range numKinds {
		p := kinds[k].phase
		for len(out) <= p {
			out = append(out, nil)
		}
		out[p] = append(out[p], k)
	}
	return out
}

// Object is one stored object the prune decides about: a repository, a tag, an entry of a
// tag's index, a manifest or layer link, an unfinished upload or a blob.
type Object struct {
	Kind       Kind
	Repository string // every kind but blobs
	// Name is a tag's name (tags and tag index entries) or an upload's ID.
	Name string
	// Digest is what a link, index entry or blob is, or the manifest a tag points at (empty
	// when not known).
	Digest digest.Digest
	Size   int64 // blobs and uploads
	// Nested says other repositories live below a repository's directory (a/b and a/b/c), so
	// removing it must leave its directory and remove only its own data directories.
	Nested bool
	// Reason is the rule that decided the object's fate. Cause is, for a tag that goes with
	// the manifest it points at, why that manifest goes.
	Reason, Cause Reason
}

// Ref names the object within its kind: "ns/app", "ns/app:latest", "ns/app:latest@sha256:…",
// "ns/app@sha256:…", "ns/app/<upload id>", "sha256:…".
func (o Object) Ref() string {
	switch o.Kind {
	case KindRepository:
		return o.Repository
	case KindTag:
		return o.Repository + ":" + o.Name
	case KindTagIndexEntry:
		return o.Repository + ":" + o.Name + "@" + o.Digest.String()
	case KindManifestLink, KindLayerLink:
		return o.Repository + "@" + o.Digest.String()
	case KindUpload:
		return o.Repository + "/" + o.Name
	default:
		return o.Digest.String()
	}
}

// String is the object's kind and name: "manifest link ns/app@sha256:…".
func (o Object) String() string { return o.Kind.String() + " " + o.Ref() }

// Why says, as a sentence of its own, why the object goes or stays.
func (o Object) Why() string {
	if o.Reason == ReasonManifestGoes {
		return fmt.Sprintf(reasons[ReasonManifestGoes].text, o.Cause.sentence(o.Repository))
	}
	return o.Reason.sentence(o.Repository)
}

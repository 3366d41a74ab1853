package ordinary

import "fmt"

// Reason is the rule that settled the fate of a history item or an Image, said once: the log,
// the report and -prune-explain print it. String is the stable code, Sentence the sentence.
type Reason uint8

const (
	reasonNone Reason = iota

	// Why history items stay, in the order DecideStream tries the rules.
	ReasonYoungStream       // the whole stream is younger than the age
	ReasonYoung             // the item is younger than the age
	ReasonTagUsed           // revision 0 of a tag something uses
	ReasonWithinSizeLimit   // size-limit mode: the Image does not exceed its namespace's limit
	ReasonWithinRevisions   // among the -keep-tag-revisions newest revisions of its tag
	ReasonImageUsedByDigest // something uses the image by digest through this stream

	// Why history items go.
	ReasonImageMissing  // the item's Image does not exist
	ReasonOldRevision   // none of the rules that keep an item holds
	ReasonOverSizeLimit // size-limit mode: the Image exceeds its namespace's limit

	// Why Images stay.
	ReasonNamedByStream   // a remaining item of a tag history names it
	ReasonChildOfUsedList // a manifest list that stays lists it
	ReasonExternal        // -all=false and the Image was not pushed to this registry
	ReasonYoungImage      // the Image is younger than the age

	// Why Images go.
	ReasonUnused // no remaining history names it, nor any list that stays

	numReasons
)

// reasonTraits are a reason's stable code and its sentence.
type reasonTraits struct {
	code, text string
	keeps      bool
}

var reasons = [numReasons]reasonTraits{
	reasonNone: {code: "none"},

	ReasonYoungStream: {code: "young-stream", keeps: true,
		text: "its image stream was created within -keep-younger-than, so all of the stream's history stays"},
	ReasonYoung: {code: "young", keeps: true, text: "created within -keep-younger-than"},
	ReasonTagUsed: {code: "tag-used", keeps: true,
		text: "it is the current image (revision 0) of a tag that is in use"},
	ReasonWithinSizeLimit: {code: "within-size-limit", keeps: true,
		text: "its Image does not exceed the size limit of its namespace (or the namespace has none)"},
	ReasonWithinRevisions: {code: "within-revisions", keeps: true,
		text: "among the -keep-tag-revisions newest revisions of its tag"},
	ReasonImageUsedByDigest: {code: "image-used-by-digest", keeps: true,
		text: "its image is used by digest through this image stream"},

	ReasonImageMissing: {code: "image-missing",
		text: "its Image does not exist, so it holds no registry data the prune could delete"},
	ReasonOldRevision: {code: "old-revision",
		text: "created more than -keep-younger-than ago, not among the -keep-tag-revisions newest revisions " +
			"of its tag, and not in use"},
	ReasonOverSizeLimit: {code: "over-size-limit",
		text: "its Image exceeds the size limit of its namespace and it is not in use"},

	ReasonNamedByStream: {code: "named-by-stream", keeps: true, text: "an image stream's tag history names it"},
	ReasonChildOfUsedList: {code: "child-of-used-list", keeps: true,
		text: "a manifest list that an image stream's tag history names lists it"},
	ReasonExternal: {code: "external", keeps: true,
		text: "it was not pushed to this registry (not managed), and -all=false prunes only managed Images"},
	ReasonYoungImage: {code: "young-image", keeps: true, text: "created within -keep-younger-than"},

	ReasonUnused: {code: "unused",
		text: "no image stream's tag history names it, nor any manifest list that stays"},
}

// String is the reason's stable code, e.g. "within-revisions".
func (r Reason) String() string {
	if r >= numReasons {
		return fmt.Sprintf("reason(%d)", r)
	}
	return reasons[r].code
}

// Sentence says the reason as a sentence of its own, about the item or Image it settled.
func (r Reason) Sentence() string {
	if r >= numReasons || reasons[r].text == "" {
		return r.String()
	}
	return reasons[r].text
}

// Keeps tells whether the reason is one to keep the item or Image.
func (r Reason) Keeps() bool { return r < numReasons && reasons[r].keeps }

package prune

import (
	"fmt"
	"strings"
)

// Reason is the rule of Decide that settled an object's fate: why it goes, or why it stays.
// Decide records one for every object it removes, and, for Explain, for every object it
// keeps; the plan, the log, the JSON report and explanations all print it, so that each rule
// is said once. String is the stable code (the report's "rule"); Object.Why the sentence.
type Reason uint8

const (
	reasonNone Reason = iota

	// Why objects go.
	ReasonNoStream          // a repository (or its links) whose image stream does not exist
	ReasonImageDeleted      // a manifest link whose Image was deleted
	ReasonNotInHistory      // a manifest link no tag history names
	ReasonNotUsed           // a layer link no image of the stream uses
	ReasonStaleUpload       // an upload older than the purge age
	ReasonUnreferenced      // a blob no Image and no link that stays names
	ReasonNoCurrentLink     // a tag that lost its current link
	ReasonIndexAllGo        // a tag whose whole index goes
	ReasonManifestGoes      // a tag whose manifest goes (Object.Cause says why)
	ReasonManifestNotLinked // a tag pointing at a manifest its repository does not link
	ReasonEntryManifestGoes // a tag index entry whose manifest link goes

	// Why objects stay.
	ReasonInHistory       // a manifest link a tag history names
	ReasonUsedByStream    // a layer link an image of the stream uses
	ReasonYoung           // anything modified within the grace period
	ReasonYoungManifest   // a link of a repository holding a young manifest no stream names
	ReasonYoungTag        // a manifest link a young tag points at
	ReasonFailsClosed     // what the stream uses is not fully known
	ReasonPointsAtKept    // a tag whose manifest link stays
	ReasonNamesKept       // a tag index entry whose manifest link stays
	ReasonUnreadTag       // a tag whose current link could not be read
	ReasonNamedByImage    // a blob an Image names
	ReasonLinked          // a blob a link that stays points at
	ReasonReadFromStorage // a blob a manifest read from storage uses (or is)
	ReasonRecentUpload    // an upload younger than the purge age
	numReasons
)

// reasonTraits are a reason's code and sentence; %s in the sentence is the repository.
type reasonTraits struct {
	code, text string
	keeps      bool
}

var reasons = [numReasons]reasonTraits{
	reasonNone:     {code: "none"},
	ReasonNoStream: {code: "no-stream"}, // NoStreamReason
	ReasonImageDeleted: {
		code: "image-deleted",
		text: "its Image does not exist (the tag history of image stream %s still names it)",
	},
	ReasonNotInHistory:  {code: "not-in-history", text: "not in the tag history of image stream %s"},
	ReasonNotUsed:       {code: "not-used", text: "not used by any image of image stream %s"},
	ReasonStaleUpload:   {code: "stale-upload", text: "unfinished upload older than the purge age"},
	ReasonUnreferenced:  {code: "unreferenced", text: "no image references it"},
	ReasonNoCurrentLink: {code: "no-current-link", text: "has no current link (an interrupted deletion)"},
	ReasonIndexAllGo: {
		code: "index-all-go",
		text: "every manifest its index names goes, the one it points at included",
	},
	ReasonManifestGoes: {code: "manifest-goes", text: "the manifest it points at goes (%s)"},
	ReasonManifestNotLinked: {
		code: "manifest-not-linked",
		text: "the repository does not link the manifest it points at",
	},
	ReasonEntryManifestGoes: {code: "entry-manifest-goes", text: "its manifest link goes"},

	ReasonInHistory:    {code: "in-history", keeps: true, text: "the tag history of image stream %s names it"},
	ReasonUsedByStream: {code: "used-by-stream", keeps: true, text: "an image of image stream %s uses it"},
	ReasonYoung:        {code: "young", keeps: true, text: "modified within the grace period"},
	ReasonYoungManifest: {
		code:  "young-manifest",
		keeps: true,
		text: "the repository holds a manifest pushed within the grace period " +
			"that no image stream names yet; what it uses is not known, so every link of the repository stays this run",
	},
	ReasonYoungTag: {code: "young-tag", keeps: true, text: "a tag modified within the grace period points at it"},
	ReasonFailsClosed: {code: "fails-closed", keeps: true,
		text: "what image stream %s uses is not fully known, so every link and tag of the repository stays this run"},
	ReasonPointsAtKept: {code: "points-at-kept", keeps: true, text: "the manifest link it points at stays"},
	ReasonNamesKept:    {code: "names-kept", keeps: true, text: "the manifest link it names stays"},
	ReasonUnreadTag: {
		code:  "unread-tag",
		keeps: true,
		text:  "its current link could not be read, so what it points at is not known",
	},
	ReasonNamedByImage: {code: "named-by-image", keeps: true, text: "an Image names it"},
	ReasonLinked:       {code: "linked", keeps: true, text: "a link that stays points at it"},
	ReasonReadFromStorage: {code: "read-from-storage", keeps: true,
		text: "a list that stays reaches a manifest that uses it (or is it), read from storage where the image API could not say"},
	ReasonRecentUpload: {code: "recent-upload", keeps: true, text: "unfinished upload younger than the purge age"},
}

// String is the reason's stable code, e.g. "not-in-history".
func (r Reason) String() string {
	if r >= numReasons {
		return fmt.Sprintf("reason(%d)", r)
	}
	return reasons[r].code
}

// Keeps tells whether the reason is one to keep the object.
func (r Reason) Keeps() bool { return r < numReasons && reasons[r].keeps }

// sentence is the reason said of an object of repo.
func (r Reason) sentence(repo string) string {
	if r >= numReasons {
		return r.String()
	}
	if r == ReasonNoStream {
		return NoStreamReason(repo)
	}
	if text := reasons[r].text; strings.Contains(text, "%s") {
		return fmt.Sprintf(text, repo)
	}
	return reasons[r].text
}

// NoStreamReason says why a repository without an image stream goes: a name of two
// components may still get one (its stream does not exist); any other name never can.
func NoStreamReason(repo string) string {
	ns, name, ok := strings.Cut(repo, "/")
	if !ok || strings.Contains(name, "/") {
		return fmt.Sprintf("no image stream can name it: %s is not <namespace>/<name>", repo)
	}
	if strings.ToLower(repo) != repo || ns == "" || name == "" {
		return fmt.Sprintf("no image stream can name it: %s is not a valid <namespace>/<name>", repo)
	}
	return fmt.Sprintf("image stream %s does not exist", repo)
}

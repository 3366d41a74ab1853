package ordinary

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Explanation says what the ordinary prune would do with one image, and why: the question
// administrators ask most ("why is this image not pruned?"), answered by the rules that
// decide, not by a hand-written template.
type Explanation struct {
	Image digest.Digest
	// Known says the image API has an Image of that name.
	Known bool
	// Items are the tag history items that name the image, in every stream read.
	Items []ExplainedItem
	// Fate is the Image's: kept or removed, and by which rule. Unset when Known is false or
	// the prune is restricted to a namespace (it never removes Images then).
	Fate *ImageDecision
	// Options are those the explanation was made with.
	Options Options
}

// ExplainedItem is one history item naming the image, with its decision.
type ExplainedItem struct {
	Repository string // ns/stream
	ItemDecision
}

// Explain decides as the ordinary prune would, over what it read, and returns what concerns
// the image d. Pure.
func Explain(in *Input, d digest.Digest) *Explanation {
	e := &Explanation{Image: d, Options: in.Options}
	_, e.Known = in.Images[d]
	remaining := make([]*Stream, 0, len(in.Streams))
	for _, s := range in.Streams {
		plan := DecideStream(s, in.Images, in.Referrers, in.Limits, in.Options)
		remaining = append(remaining, plan.Remaining())
		for _, it := range plan.Items {
			if it.Item.Image == d {
				e.Items = append(e.Items, ExplainedItem{Repository: s.Repository(), ItemDecision: it})
			}
		}
	}
	slices.SortFunc(e.Items, func(a, b ExplainedItem) int {
		return strings.Compare(a.Repository+":"+a.Tag, b.Repository+":"+b.Tag)
	})
	if e.Known && in.Options.Namespace == "" {
		for _, dec := range DecideImages(in.Images, remaining, in.Options).Images {
			if dec.Image == d {
				dec := dec
				e.Fate = &dec
			}
		}
	}
	return e
}

// WriteExplanation prints an Explanation for administrators: one line per history item naming
// the image, "ns/stream:tag at position P out of N", then the Image's fate.
func WriteExplanation(w io.Writer, e *Explanation) {
	o := e.Options
	mode := fmt.Sprintf("-keep-tag-revisions=%d -keep-younger-than=%s", o.KeepTagRevisions, o.KeepYoungerThan)
	if o.PruneOverSizeLimit {
		mode = "-prune-over-size-limit"
	}
	if o.Namespace != "" {
		mode += " -namespace=" + o.Namespace
	}
	if !o.All {
		mode += " -all=false"
	}
	fmt.Fprintf(w, "The ordinary prune (-prune-images %s) and image %s:\n", mode, e.Image)
	if !e.Known {
		fmt.Fprintln(w, "  no Image of that name in the image API")
	}
	if len(e.Items) == 0 {
		fmt.Fprintln(w, "  no tag history names it")
	}
	for _, it := range e.Items {
		verdict := "stays"
		if it.Remove {
			verdict = "goes"
		}
		fmt.Fprintf(w, "  %s:%s at position %d out of %d: %s (%s: %s", it.Repository, it.Tag, it.Revision, it.Of,
			verdict, it.Reason, it.Reason.Sentence())
		if it.Users != nil && it.Users.Count > 0 {
			fmt.Fprintf(w, "; used by %s", usersSample(it.Users))
		}
		fmt.Fprintln(w, ")")
	}
	switch {
	case e.Fate == nil && e.Known:
		fmt.Fprintln(w, "  the Image stays: a prune restricted to a namespace removes no Images")
	case e.Fate != nil && e.Fate.Remove:
		fmt.Fprintf(w, "  the Image goes (%s: %s)\n", e.Fate.Reason, e.Fate.Reason.Sentence())
	case e.Fate != nil:
		fmt.Fprintf(w, "  the Image stays (%s: %s)\n", e.Fate.Reason, e.Fate.Reason.Sentence())
	}
}

// usersSample names the first referrers, as oc's log does: "pod/a namespace=x, ..., and 4 more".
func usersSample(u *Users) string {
	names := make([]string, 0, len(u.Sample))
	for _, r := range u.Sample {
		names = append(names, r.String())
	}
	s := strings.Join(names, ", ")
	if more := u.Count - len(u.Sample); more > 0 {
		s += fmt.Sprintf(", and %d more", more)
	}
	return s
}

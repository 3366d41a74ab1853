package ordinary

import (
	"bytes"
	"strings"
	"testing"
)

// TestExplainTheSeedsExample is the seeds' troubleshooting case, answered by one command: an
// image at myapp:v2 position 3 out of 5, myapp:v2.1 1 out of 2 and myapp:v2.1-may-2016 0 out
// of 1 stays with the defaults and goes with -keep-tag-revisions=0; the explanation names each
// position, the rule that settled it, who uses the tag, and the Image's fate.
func TestExplainTheSeedsExample(t *testing.T) {
	images := imageSet(img("x", ""), img("v2a", ""), img("v2c", ""), img("v2d", ""), img("v2e", ""), img("v21b", ""))
	input := func(opts Options, refs *Referrers) *Input {
		return &Input{
			Images: images,
			Streams: []*Stream{stream("ns", "myapp",
				tagOf("v2", "v2e", "v2d", "v2c", "x", "v2a"),
				tagOf("v2.1", "v21b", "x"),
				tagOf("v2.1-may-2016", "x"),
			), stream("other", "app", tagOf("latest", "v2a"))},
			Referrers: refs,
			Options:   opts,
		}
	}
	for _, tc := range []struct {
		name string
		in   *Input
		want string
	}{
		{
			name: "defaults",
			in:   input(defaults(), nil),
			want: "The ordinary prune (-prune-images -keep-tag-revisions=3 -keep-younger-than=1h0m0s) and image " + dg("x").String() + ":\n" +
				"  ns/myapp:v2 at position 3 out of 5: goes (old-revision: " + ReasonOldRevision.Sentence() + ")\n" +
				"  ns/myapp:v2.1 at position 1 out of 2: stays (within-revisions: " + ReasonWithinRevisions.Sentence() + ")\n" +
				"  ns/myapp:v2.1-may-2016 at position 0 out of 1: stays (within-revisions: " + ReasonWithinRevisions.Sentence() + ")\n" +
				"  the Image stays (named-by-stream: " + ReasonNamedByStream.Sentence() + ")\n",
		},
		{
			name: "keep-tag-revisions=0",
			in:   input(keep(0), nil),
			want: "The ordinary prune (-prune-images -keep-tag-revisions=0 -keep-younger-than=1h0m0s) and image " + dg("x").String() + ":\n" +
				"  ns/myapp:v2 at position 3 out of 5: goes (old-revision: " + ReasonOldRevision.Sentence() + ")\n" +
				"  ns/myapp:v2.1 at position 1 out of 2: goes (old-revision: " + ReasonOldRevision.Sentence() + ")\n" +
				"  ns/myapp:v2.1-may-2016 at position 0 out of 1: goes (old-revision: " + ReasonOldRevision.Sentence() + ")\n" +
				"  the Image goes (unused: " + ReasonUnused.Sentence() + ")\n",
		},
		{
			name: "the dated tag in use by four pods",
			in:   input(keep(0), referrers("ns/myapp:v2.1-may-2016", "ns/myapp:v2.1-may-2016", "ns/myapp:v2.1-may-2016", "ns/myapp:v2.1-may-2016")),
			want: "  ns/myapp:v2.1-may-2016 at position 0 out of 1: stays (tag-used: " + ReasonTagUsed.Sentence() +
				"; used by pod/pod-0 namespace=ns, pod/pod-1 namespace=ns, pod/pod-2 namespace=ns, and 1 more)\n" +
				"  the Image stays (named-by-stream: " + ReasonNamedByStream.Sentence() + ")\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			WriteExplanation(&b, Explain(tc.in, dg("x")))
			if !strings.Contains(b.String(), tc.want) {
				t.Errorf("got:\n%s\nwant it to contain:\n%s", b.String(), tc.want)
			}
		})
	}
}

// TestExplainUnknownAndNamespaced: an image no Image names and no history holds is said so; a
// namespaced prune never removes Images, and says it.
func TestExplainUnknownAndNamespaced(t *testing.T) {
	in := &Input{Images: imageSet(img("x", "")), Streams: []*Stream{stream("ns", "app", tagOf("latest", "x"))}, Options: keep(0)}
	var b bytes.Buffer
	WriteExplanation(&b, Explain(in, dg("nothing")))
	for _, want := range []string{"no Image of that name in the image API", "no tag history names it"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("unknown image: want %q in:\n%s", want, b.String())
		}
	}
	in.Options.Namespace = "ns"
	b.Reset()
	WriteExplanation(&b, Explain(in, dg("x")))
	if !strings.Contains(b.String(), "-namespace=ns) and image") ||
		!strings.Contains(b.String(), "the Image stays: a prune restricted to a namespace removes no Images") {
		t.Errorf("namespaced:\n%s", b.String())
	}
}

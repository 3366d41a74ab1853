package ordinary

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/prune"
)

var (
	now    = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	old    = now.Add(-48 * time.Hour)
	fresh  = now.Add(-10 * time.Minute) // within the default age of an hour
	cutoff = now.Add(-time.Hour)
)

// dg is a digest that reads as its name: the name's bytes in hex, padded with zeros. Digest
// order is then name order, so that tables list digests the way the code sorts them.
func dg(name string) digest.Digest {
	if len(name) > 32 {
		panic("dg: name longer than 32 bytes: " + name)
	}
	enc := hex.EncodeToString([]byte(name))
	return digest.Digest("sha256:" + enc + strings.Repeat("0", 64-len(enc)))
}

// nameOf is the name dg made d from, or d itself.
func nameOf(d digest.Digest) string {
	raw, err := hex.DecodeString(d.Encoded())
	if err != nil || d.Algorithm() != digest.SHA256 {
		return d.String()
	}
	return strings.TrimRight(string(raw), "\x00")
}

func namesOf(ds []digest.Digest) []string {
	var out []string
	for _, d := range ds {
		out = append(out, nameOf(d))
	}
	return out
}

// img is an old, managed Image with the given config ("" for none) and layers.
func img(name, config string, layers ...string) *Image {
	out := &Image{Image: prune.Image{Manifest: dg(name)}, Created: old, Managed: true}
	if config != "" {
		out.Config = dg(config)
	}
	for _, l := range layers {
		out.Layers = append(out.Layers, dg(l))
	}
	return out
}

// list is an old, managed manifest list naming children.
func list(name string, children ...string) *Image {
	out := img(name, "")
	for _, c := range children {
		out.Children = append(out.Children, dg(c))
	}
	return out
}

func sized(i *Image, size int64) *Image { i.Size = size; return i }

func createdAt(i *Image, at time.Time) *Image { i.Created = at; return i }

func external(i *Image) *Image { i.Managed = false; return i }

func imageSet(imgs ...*Image) map[digest.Digest]*Image {
	out := map[digest.Digest]*Image{}
	for _, i := range imgs {
		out[i.Manifest] = i
	}
	return out
}

// item is an old history item naming the image name.
func item(name string) Item { return Item{Image: dg(name), Created: old} }

func itemAt(name string, at time.Time) Item { return Item{Image: dg(name), Created: at} }

// tag is a tag history, newest first.
func tag(name string, items ...Item) Tag {
	for i := range items {
		items[i].Raw = i
	}
	return Tag{Name: name, Items: items}
}

// tagOf is a tag history of old items naming images.
func tagOf(name string, images ...string) Tag {
	var items []Item
	for _, i := range images {
		items = append(items, item(i))
	}
	return tag(name, items...)
}

// stream is an old stream.
func stream(ns, name string, tags ...Tag) *Stream {
	return &Stream{Namespace: ns, Name: name, Created: old, Tags: tags}
}

// defaults are oc's defaults at now: 60m, 3 revisions, all Images, the registry pruned.
func defaults() Options {
	return Options{Now: now, KeepYoungerThan: time.Hour, KeepTagRevisions: 3, All: true, PruneRegistry: true}
}

func keep(revisions int) Options {
	o := defaults()
	o.KeepTagRevisions = revisions
	return o
}

// sizeMode is -prune-over-size-limit.
func sizeMode() Options {
	o := defaults()
	o.PruneOverSizeLimit = true
	return o
}

// referrers builds a referrer set: "ns/name:tag" uses a tag, "ns/name@image" an image by
// digest; each use is by a pod of its own.
func referrers(uses ...string) *Referrers {
	rs := NewReferrers()
	for i, u := range uses {
		pod := Referrer{Resource: "pod", Namespace: "ns", Name: fmt.Sprintf("pod-%d", i)}
		ns, rest, _ := strings.Cut(u, "/")
		if name, image, ok := strings.Cut(rest, "@"); ok {
			rs.UseImage(ImageRef{Namespace: ns, Name: name, Digest: dg(image)}, pod)
			continue
		}
		name, t, _ := strings.Cut(rest, ":")
		rs.UseTag(TagRef{Namespace: ns, Name: name, Tag: t}, pod)
	}
	return rs
}

// decisions renders a stream plan's items as "tag position/of image reason [users=N]", and
// checks that each removal agrees with its reason.
func decisions(t *testing.T, p *StreamPlan) []string {
	t.Helper()
	var out []string
	for _, d := range p.Items {
		if d.Remove == d.Reason.Keeps() {
			t.Errorf("%s %d: Remove=%v with reason %s", d.Tag, d.Revision, d.Remove, d.Reason)
		}
		line := fmt.Sprintf("%s %d/%d %s %s", d.Tag, d.Revision, d.Of, nameOf(d.Item.Image), d.Reason)
		if d.Users != nil {
			line += fmt.Sprintf(" users=%d", d.Users.Count)
		}
		out = append(out, line)
	}
	return out
}

package online

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/prune"
)

// Use is one use of stored content by a serving registry: a blob asked for or linked in a
// repository, a manifest put, a tag set. Repository is "<namespace>/<name>"; Digest and Tag
// may be empty (a use of the repository alone, or of a digest alone).
type Use struct {
	Repository string
	Digest     digest.Digest
	Tag        string
}

// Covers tells whether a prune must keep o because of u: u uses o itself, or something o
// holds (a repository holds its links, tags and uploads), or something whose deletion would
// break u (the blob of a used digest, in whatever repository).
func (u Use) Covers(o prune.Object) bool {
	sameRepo := u.Repository != "" && u.Repository == o.Repository
	switch o.Kind {
	case prune.KindBlob:
		return u.Digest != "" && u.Digest == o.Digest
	case prune.KindRepository:
		// Removing a repository removes what lies below its directory: nested ones too.
		return sameRepo || u.Repository != "" && strings.HasPrefix(u.Repository, o.Repository+"/")
	case prune.KindUpload:
		return sameRepo
	case prune.KindManifestLink, prune.KindLayerLink:
		return sameRepo && u.Digest != "" && u.Digest == o.Digest
	case prune.KindTag, prune.KindTagIndexEntry:
		return sameRepo && (u.Tag != "" && u.Tag == o.Name || u.Digest != "" && u.Digest == o.Digest)
	}
	// A kind this protocol does not know: keep it.
	return true
}

// UseSet is the uses a prune has read, indexed for Covers.
type UseSet struct {
	digests      map[digest.Digest]bool
	repositories map[string]bool
	trees        map[string]bool // every used repository and every one above it
	links        map[repoDigest]bool
	tags         map[repoTag]bool
	n            int
}

type repoDigest struct {
	repo string
	dgst digest.Digest
}

type repoTag struct{ repo, tag string }

// Add records u.
func (s *UseSet) Add(u Use) {
	if s.digests == nil {
		s.digests = map[digest.Digest]bool{}
		s.repositories = map[string]bool{}
		s.trees = map[string]bool{}
		s.links = map[repoDigest]bool{}
		s.tags = map[repoTag]bool{}
	}
	s.n++
	if u.Digest != "" {
		s.digests[u.Digest] = true
	}
	if u.Repository == "" {
		return
	}
	s.repositories[u.Repository] = true
	for r := u.Repository; r != "." && r != "/" && r != ""; r = path.Dir(r) {
		s.trees[r] = true
	}
	if u.Digest != "" {
		s.links[repoDigest{u.Repository, u.Digest}] = true
	}
	if u.Tag != "" {
		s.tags[repoTag{u.Repository, u.Tag}] = true
	}
}

// Len is how many uses were added.
func (s *UseSet) Len() int { return s.n }

// Covers tells whether any use of the set covers o (see Use.Covers).
func (s *UseSet) Covers(o prune.Object) bool {
	if s.n == 0 {
		return false
	}
	switch o.Kind {
	case prune.KindBlob:
		return s.digests[o.Digest]
	case prune.KindRepository:
		return s.trees[o.Repository]
	case prune.KindUpload:
		return s.repositories[o.Repository]
	case prune.KindManifestLink, prune.KindLayerLink:
		return s.links[repoDigest{o.Repository, o.Digest}]
	case prune.KindTag, prune.KindTagIndexEntry:
		return s.tags[repoTag{o.Repository, o.Name}] || o.Digest != "" && s.links[repoDigest{o.Repository, o.Digest}]
	}
	return true
}

// The record formats are lines of space-separated fields, "-" for an empty one: names and
// digests hold no spaces, and a line stays readable in a storage browser.
//
//	use:   <repository> <digest> <tag>
//	claim: <kind> <repository> <digest> <name>

const empty = "-"

func field(s string) string {
	if s == "" {
		return empty
	}
	return s
}

func unfield(s string) string {
	if s == empty {
		return ""
	}
	return s
}

// EncodeUses is the content of a use record.
func EncodeUses(uses []Use) []byte {
	var b bytes.Buffer
	for _, u := range uses {
		fmt.Fprintf(&b, "%s %s %s\n", field(u.Repository), field(string(u.Digest)), field(u.Tag))
	}
	return b.Bytes()
}

// ParseUses reads a use record. A line it cannot read is an error: the prune stops rather
// than delete what a record it does not understand may protect.
func ParseUses(content []byte) ([]Use, error) {
	var out []Use
	err := eachLine(content, 3, func(f []string) error {
		d, err := parseDigest(f[1])
		if err != nil {
			return err
		}
		out = append(out, Use{Repository: unfield(f[0]), Digest: d, Tag: unfield(f[2])})
		return nil
	})
	return out, err
}

// EncodeClaim is the content of a claim: the objects of one batch a prune is about to delete.
func EncodeClaim(objs []prune.Object) []byte {
	var b bytes.Buffer
	for _, o := range objs {
		fmt.Fprintf(&b, "%d %s %s %s\n", o.Kind, field(o.Repository), field(string(o.Digest)), field(o.Name))
	}
	return b.Bytes()
}

// ParseClaim reads a claim: the objects' kinds, repositories, digests and names.
func ParseClaim(content []byte) ([]prune.Object, error) {
	var out []prune.Object
	err := eachLine(content, 4, func(f []string) error {
		n, err := strconv.ParseUint(f[0], 10, 8)
		if err != nil {
			return fmt.Errorf("kind %q", f[0])
		}
		k := prune.Kind(n)
		d, err := parseDigest(f[2])
		if err != nil {
			return err
		}
		out = append(out, prune.Object{Kind: k, Repository: unfield(f[1]), Digest: d, Name: unfield(f[3])})
		return nil
	})
	return out, err
}

func eachLine(content []byte, fields int, fn func([]string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != fields {
			return fmt.Errorf("line %d: %d fields, want %d", n, len(f), fields)
		}
		if err := fn(f); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	return sc.Err()
}

func parseDigest(s string) (digest.Digest, error) {
	if s == empty {
		return "", nil
	}
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("digest %q: %w", s, err)
	}
	return d, nil
}

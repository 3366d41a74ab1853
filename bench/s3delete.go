package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"net/http"
	"path"
	"strings"

	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// What the S3 requests of a delete run serve, the second word of their class.
const (
	servesWalk  = "walk"  // a listing of the inventory
	servesKeys  = "keys"  // a DeleteObjects of exact keys from the plan (links, index entries, blobs)
	servesLock  = "lock"  // the prune's lock
	servesOther = "other" // anything else
	// Objects deleted by prefix (a listing, then a DeleteObjects per page) are named by kind:
	// "repository", "tag", "upload".
)

// s3Attribution tells which objects of a delete plan an S3 request serves. The S3 driver's
// Delete removes a prefix: it lists the keys below it and deletes each page of the listing
// with one DeleteObjects; the prune's batches delete exact keys. So a listing whose prefix is
// an object's path serves that object, and a DeleteObjects serves the object its keys lie
// below, or the plan's exact keys.
//
// Keys are taken to be storage paths without their leading slash: the bench's S3
// configuration sets no rootdirectory.
type s3Attribution struct {
	exact  map[string]bool   // keys of the objects deleted by key
	prefix map[string]string // storage path -> kind, for the objects deleted by prefix
}

func newS3Attribution(records []prune.ReportRecord) (*s3Attribution, error) {
	a := &s3Attribution{exact: map[string]bool{}, prefix: map[string]string{}}
	for _, r := range records {
		switch r.Kind {
		case prune.KindRepository.String():
			// Nested or not: the whole directory, or its data directories.
			a.prefix[storage.RepositoryPath(r.Repository)] = r.Kind
			for _, dir := range storage.RepositoryDataDirs {
				a.prefix[storage.RepositoryDataPath(r.Repository, dir)] = r.Kind
			}
		case prune.KindTag.String():
			// The current link first, then the rest (storage.Store.Delete).
			a.prefix[storage.TagCurrentPath(r.Repository, r.Tag)] = r.Kind
			a.prefix[storage.TagPath(r.Repository, r.Tag)] = r.Kind
		case prune.KindUpload.String():
			a.prefix[storage.UploadPath(r.Repository, r.Upload)] = r.Kind
		default:
			// One key each: the path recordPaths gives is the key's directory.
			paths, err := recordPaths(r, func(string) bool { return false })
			if err != nil {
				return nil, err
			}
			for _, p := range paths {
				a.exact[p] = true
			}
		}
	}
	return a, nil
}

// classify is ClassifyS3's class, then what the request serves: "LIST walk", "LIST repository",
// "DELETE-BATCH keys", "DELETE-BATCH repository", "PUT lock", ...
func (a *s3Attribution) classify(r *http.Request) string {
	class := ClassifyS3(r)
	switch class {
	case "LIST":
		return class + " " + a.listServes(r.URL.Query().Get("prefix"))
	case "DELETE-BATCH":
		body, err := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body)) // passed on unchanged: it is signed
		if err != nil {
			return class + " " + servesOther
		}
		return class + " " + a.batchServes(body)
	}
	_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if a.underLock("/" + key) {
		return class + " " + servesLock
	}
	return class + " " + servesOther
}

func (a *s3Attribution) underLock(p string) bool {
	return strings.HasPrefix(p, path.Dir(storage.PruneLockPath())+"/")
}

func (a *s3Attribution) listServes(prefix string) string {
	p := "/" + prefix
	switch {
	case a.prefix[p] != "":
		return a.prefix[p]
	case a.underLock(p) || p+"/" == path.Dir(storage.PruneLockPath())+"/":
		return servesLock
	case strings.HasSuffix(p, "/"):
		return servesWalk // the driver's Walk and List list directories
	}
	return servesOther
}

// batchServes is what a DeleteObjects serves: the kind of the prefix object all its keys lie
// below, the plan's exact keys, or the lock.
func (a *s3Attribution) batchServes(body []byte) string {
	var req struct {
		Objects []struct {
			Key string `xml:"Key"`
		} `xml:"Object"`
	}
	if err := xml.Unmarshal(body, &req); err != nil || len(req.Objects) == 0 {
		return servesOther
	}
	serves := ""
	for _, o := range req.Objects {
		s := a.keyServes("/" + o.Key)
		if serves != "" && s != serves {
			return servesOther
		}
		serves = s
	}
	return serves
}

func (a *s3Attribution) keyServes(p string) string {
	if a.underLock(p) {
		return servesLock
	}
	// A key below an object deleted by prefix serves that object; an exact key's directory is
	// its object's path (a blob's data in its directory, a link in its).
	for dir := path.Dir(p); strings.HasPrefix(dir, storage.RootPath+"/"); dir = path.Dir(dir) {
		if k := a.prefix[dir]; k != "" {
			return k
		}
	}
	if a.exact[path.Dir(p)] {
		return servesKeys
	}
	return servesOther
}

// byMethod sums counts classed "METHOD what" by their first word.
func (c Counts) byMethod() Counts {
	out := Counts{}
	for k, v := range c {
		m, _, _ := strings.Cut(k, " ")
		out[m] += v
	}
	return out
}

// s3RequestBound is target 4's bound on the requests of a run over objects stored keys that
// deletes deletions of them: 1.2 × (⌈objects/1000⌉ + ⌈deletions/1000⌉).
func s3RequestBound(objects, deletions int) float64 {
	return targetS3Requests * float64(ceilDiv(objects, 1000)+ceilDiv(deletions, 1000))
}

// s3DeleteTarget evaluates target 4 on a delete run: the run's requests (counts, classed by
// s3Attribution) against the bound for objects keys of which it deleted deletions, and what
// cost them: the objects deleted by prefix, with their number from deleted (the plan's
// objects by kind), and what the other requests served, so that a miss says its cause.
func s3DeleteTarget(objects, deletions int, counts Counts, deleted map[string]int) Target {
	t := Target{N: 4, What: "S3 requests: -prune=delete", Goal: fmt.Sprintf(
		"≤ %.1f × (⌈objects/1000⌉ + ⌈deletions/1000⌉)", targetS3Requests)}
	bound := s3RequestBound(objects, deletions)
	got := counts.Total()
	t.Measured = fmt.Sprintf("%d (%s) deleting %d of %d keys, bound %.1f × (%d + %d) = %.1f",
		got, counts.byMethod(), deletions, objects, targetS3Requests,
		ceilDiv(objects, 1000), ceilDiv(deletions, 1000), bound)
	t.Status = met(float64(got) <= bound)
	var costs []string
	prefixCost := 0
	for _, kind := range []string{
		prune.KindRepository.String(), prune.KindTag.String(), prune.KindUpload.String(),
	} {
		lists, batches := counts["LIST "+kind], counts["DELETE-BATCH "+kind]
		if lists+batches == 0 && deleted[kind] == 0 {
			continue
		}
		prefixCost += lists + batches
		costs = append(costs, fmt.Sprintf("%d %s deleted by prefix cost %d (LIST=%d, DELETE-BATCH=%d: %s each)",
			deleted[kind], pluralKind(kind, deleted[kind]), lists+batches, lists, batches,
			perObject(lists, batches, deleted[kind])))
	}
	rest := got - prefixCost
	if len(costs) > 0 {
		t.Measured += "; the objects deleted by prefix: " + strings.Join(costs, ", ")
	}
	verdict := "within"
	if float64(rest) > bound {
		verdict = "over"
	}
	t.Measured += fmt.Sprintf("; the other requests: %d (%s), %s the bound", rest, otherServes(counts), verdict)
	return t
}

// otherServes sums the requests that serve no object deleted by prefix by what they serve:
// "walk=12, keys=5, lock=12".
func otherServes(counts Counts) string {
	byServes := Counts{}
	for class, n := range counts {
		_, serves, _ := strings.Cut(class, " ")
		switch serves {
		case prune.KindRepository.String(), prune.KindTag.String(), prune.KindUpload.String():
		case "":
			byServes[servesOther] += n
		default:
			byServes[serves] += n
		}
	}
	return byServes.String()
}

func pluralKind(kind string, n int) string {
	if n == 1 {
		return kind
	}
	switch kind {
	case prune.KindRepository.String():
		return "repositories"
	}
	return kind + "s"
}

// perObject is "1 LIST and 1 DELETE-BATCH" when every object cost the same, else the averages.
func perObject(lists, batches, objects int) string {
	if objects == 0 {
		return "no object"
	}
	if lists%objects == 0 && batches%objects == 0 {
		return fmt.Sprintf("%d LIST and %d DELETE-BATCH", lists/objects, batches/objects)
	}
	round := func(x int) float64 { return math.Round(float64(x)/float64(objects)*100) / 100 }
	return fmt.Sprintf("%.2f LIST and %.2f DELETE-BATCH on average", round(lists), round(batches))
}

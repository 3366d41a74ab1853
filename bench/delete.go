package bench

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/storage"
)

// The delete benchmarks (targets 3 and 4) delete the objects a -prune=check lists in its
// report: -prune=delete on one copy of the storage, `xargs rm -rf` of the same paths on
// another (filesystem), and each run must leave exactly what the other does.

// readReport reads the records of a -prune-report file (JSON Lines), the summary line left out.
func readReport(file string) ([]prune.ReportRecord, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []prune.ReportRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r prune.ReportRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if r.Kind != "summary" {
			out = append(out, r)
		}
	}
	return out, sc.Err()
}

// countKinds is how many objects of each kind the records name.
func countKinds(records []prune.ReportRecord) map[string]int {
	out := map[string]int{}
	for _, r := range records {
		out[r.Kind]++
	}
	return out
}

// sortedKinds are the kinds of deleted in the prune's order of kinds (for the report).
func sortedKinds(deleted map[string]int) []string {
	order := []prune.Kind{prune.KindRepository, prune.KindManifestLink, prune.KindTag, prune.KindTagIndexEntry,
		prune.KindLayerLink, prune.KindUpload, prune.KindBlob}
	var out []string
	for _, k := range order {
		if deleted[k.String()] > 0 {
			out = append(out, k.String())
		}
	}
	var other []string
	for k := range deleted {
		if !slices.Contains(out, k) {
			other = append(other, k)
		}
	}
	slices.Sort(other)
	return append(out, other...)
}

// recordPaths are the storage paths whose removal (each recursively) deletes the object of a
// report record, as storage.Store.Delete removes them on the filesystem: a repository is its
// directory, or only its data directories when repositories are nested below it (nested says
// which); a tag, index entry, link, upload or blob is its directory.
func recordPaths(r prune.ReportRecord, nested func(repo string) bool) ([]string, error) {
	var dgst digest.Digest
	if r.Digest != "" {
		var err error
		if dgst, err = digest.Parse(r.Digest); err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.Kind, r.Repository, err)
		}
	}
	needs := func(ok bool, what string) error {
		if !ok {
			return fmt.Errorf("a %s record without its %s", r.Kind, what)
		}
		return nil
	}
	var err error
	switch r.Kind {
	case prune.KindRepository.String():
		if err = needs(r.Repository != "", "repository"); err != nil {
			return nil, err
		}
		if !nested(r.Repository) {
			return []string{storage.RepositoryPath(r.Repository)}, nil
		}
		var out []string
		for _, dir := range storage.RepositoryDataDirs {
			out = append(out, storage.RepositoryDataPath(r.Repository, dir))
		}
		return out, nil
	case prune.KindTag.String():
		if err = needs(r.Repository != "" && r.Tag != "", "repository and tag"); err == nil {
			return []string{storage.TagPath(r.Repository, r.Tag)}, nil
		}
	case prune.KindTagIndexEntry.String():
		if err = needs(r.Repository != "" && r.Tag != "" && dgst != "", "repository, tag and digest"); err == nil {
			return []string{storage.TagIndexEntryPath(r.Repository, r.Tag, dgst)}, nil
		}
	case prune.KindManifestLink.String():
		if err = needs(r.Repository != "" && dgst != "", "repository and digest"); err == nil {
			return []string{storage.ManifestRevisionPath(r.Repository, dgst)}, nil
		}
	case prune.KindLayerLink.String():
		if err = needs(r.Repository != "" && dgst != "", "repository and digest"); err == nil {
			return []string{storage.LayerLinkDirPath(r.Repository, dgst)}, nil
		}
	case prune.KindUpload.String():
		if err = needs(r.Repository != "" && r.Upload != "", "repository and upload"); err == nil {
			return []string{storage.UploadPath(r.Repository, r.Upload)}, nil
		}
	case prune.KindBlob.String():
		if err = needs(dgst != "", "digest"); err == nil {
			return []string{storage.BlobDirPath(dgst)}, nil
		}
	default:
		// A kind added to the prune and not here would make the two copies differ for a
		// reason the comparison cannot name.
		return nil, fmt.Errorf("a report record of unknown kind %q", r.Kind)
	}
	return nil, err
}

// deletePaths are the storage paths, each removed recursively, that delete what the records
// name from the filesystem tree at root, in the order -prune=delete removes them: the records'
// paths (recordPaths), then the directories that removing repositories empties, which the
// prune removes too (storage.Store's removeEmptyParents), deepest first. root tells which
// repositories have others nested below them and which directories become empty.
func deletePaths(records []prune.ReportRecord, root string) ([]string, error) {
	local := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	nested := func(repo string) bool {
		entries, _ := os.ReadDir(local(storage.RepositoryPath(repo)))
		for _, e := range entries {
			if !slices.Contains(storage.RepositoryDataDirs, e.Name()) {
				return true
			}
		}
		return false
	}
	var out []string
	removed := map[string]bool{}
	parents := map[string]bool{} // directories a removed repository may leave empty
	for _, r := range records {
		paths, err := recordPaths(r, nested)
		if err != nil {
			return nil, err
		}
		for _, p := range paths {
			if !removed[p] {
				removed[p] = true
				out = append(out, p)
			}
		}
		if r.Kind != prune.KindRepository.String() {
			continue
		}
		// The prune tries the repository's own directory when it removed only the data
		// directories, its parent otherwise, and goes up while they are empty.
		dir := storage.RepositoryPath(r.Repository)
		if !nested(r.Repository) {
			dir = path.Dir(dir)
		}
		for ; strings.HasPrefix(dir, storage.RepositoriesPath+"/"); dir = path.Dir(dir) {
			parents[dir] = true
		}
	}
	// Deepest first, so that a directory whose children all went counts as gone for its parent.
	dirs := slices.Collect(func(yield func(string) bool) {
		for d := range parents {
			if !yield(d) {
				return
			}
		}
	})
	slices.SortFunc(dirs, func(a, b string) int {
		return cmp.Or(cmp.Compare(strings.Count(b, "/"), strings.Count(a, "/")), strings.Compare(a, b))
	})
	for _, d := range dirs {
		if removed[d] {
			continue
		}
		entries, err := os.ReadDir(local(d))
		if err != nil {
			continue // gone already, or never there
		}
		empty := true
		for _, e := range entries {
			if !removed[path.Join(d, e.Name())] {
				empty = false
				break
			}
		}
		if empty {
			removed[d] = true
			out = append(out, d)
		}
	}
	return out, nil
}

// writeNULList writes paths (storage paths) below root to file, each ended by a NUL, for
// `xargs -0`.
func writeNULList(file, root string, paths []string) error {
	var b strings.Builder
	for _, p := range paths {
		b.WriteString(filepath.Join(root, filepath.FromSlash(p)))
		b.WriteByte(0)
	}
	return os.WriteFile(file, []byte(b.String()), 0o644)
}

// pruneOwnDir is the prune's own directory (its lock), which a delete run writes and an rm does
// not: the comparisons leave it out.
var pruneOwnDir = strings.TrimPrefix(path.Dir(storage.PruneLockPath()), "/")

// listTree is every file and directory below root, as slash paths relative to it (directories
// with a trailing slash), sorted, the prune's own directory left out. With filesOnly, only the
// regular files: what an object store holds.
func listTree(root string, filesOnly bool) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == pruneOwnDir || strings.HasPrefix(path.Base(rel), ".sgwtmp") {
				return filepath.SkipDir // the prune's lock; versitygw's own temporary files
			}
			if !filesOnly {
				out = append(out, rel+"/")
			}
			return nil
		}
		if d.Type().IsRegular() || !filesOnly {
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

// compareTrees fails, naming the first differences, unless the sorted listings a and b (of
// what aName and bName left) are the same.
func compareTrees(aName string, a []string, bName string, b []string) error {
	var onlyA, onlyB []string
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			onlyA = append(onlyA, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			onlyB = append(onlyB, b[j])
			j++
		default:
			i++
			j++
		}
	}
	if len(onlyA) == 0 && len(onlyB) == 0 {
		return nil
	}
	first := func(xs []string) string {
		if len(xs) > 5 {
			return strings.Join(xs[:5], ", ") + fmt.Sprintf(" and %d more", len(xs)-5)
		}
		return strings.Join(xs, ", ")
	}
	var parts []string
	if len(onlyA) > 0 {
		parts = append(parts, fmt.Sprintf("%d only after %s: %s", len(onlyA), aName, first(onlyA)))
	}
	if len(onlyB) > 0 {
		parts = append(parts, fmt.Sprintf("%d only after %s: %s", len(onlyB), bName, first(onlyB)))
	}
	return fmt.Errorf("%s and %s left different storage: %s", aName, bName, strings.Join(parts, "; "))
}

// withoutDeleted is files (relative slash paths) without those at or below any of paths
// (storage paths): what deleting paths from a bucket leaves.
func withoutDeleted(files, paths []string) []string {
	gone := map[string]bool{}
	for _, p := range paths {
		gone[strings.TrimPrefix(p, "/")] = true
	}
	var out []string
	for _, f := range files {
		keep := true
		for p := f; p != "." && p != "/" && p != ""; p = path.Dir(p) {
			if gone[p] {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, f)
		}
	}
	return out
}

// hardLinkCopy makes dst a fresh copy of the tree src whose files are hard links to src's
// (cp -al): copying is quick, and deleting from the copy leaves src whole (only the copy's
// links go). The deletions measured on the copy unlink files as they would on a plain copy.
//
// The filesystem is then synced, so that the copy's metadata (and the previous run's
// deletions) are not written back while the next command is timed, whichever command it is.
func hardLinkCopy(src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	for _, args := range [][]string{{"cp", "-al", src, dst}, {"sync", "-f", dst}} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// errTreesDiffer marks a delete run that left other storage than it should: the bench fails.
var errTreesDiffer = errors.New("the delete runs disagree")

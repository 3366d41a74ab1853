// Package storage owns everything that knows the registry's on-storage layout under
// /docker/registry/v2: building paths from (repository, digest), parsing walked paths back
// into typed entries, enumerating what is stored and deleting it.
//
// This file is the single owner of the path layout, in both directions. Nothing else in the
// project concatenates storage paths.
package storage

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
)

// The layout is distribution's (registry/storage/paths.go); we must read and write exactly the
// same paths as the registry that serves this storage. The paths are the storage driver's, so
// below its rootdirectory setting where it has one. Each node is named with the function or
// constant here that builds its path:
//
//	/docker/registry/v2                              RootPath
//	├── blobs                                        BlobsPath
//	│   └── <algorithm>
//	│       └── <first two hex digits>               BlobPrefixPath
//	│           └── <hex digest>                     BlobDirPath
//	│               └── data                         BlobDataPath
//	├── repositories                                 RepositoriesPath
//	│   └── <name>/.../<name>                        RepositoryPath
//	│       ├── _layers                              RepositoryDataPath
//	│       │   └── <algorithm>
//	│       │       └── <hex digest>                 LayerLinkDirPath
//	│       │           └── link                     LayerLinkPath
//	│       ├── _manifests                           RepositoryDataPath
//	│       │   ├── revisions
//	│       │   │   └── <algorithm>
//	│       │   │       └── <hex digest>             ManifestRevisionPath
//	│       │   │           └── link                 ManifestRevisionLinkPath
//	│       │   └── tags                             TagsPath
//	│       │       └── <tag>                        TagPath
//	│       │           ├── current                  TagCurrentPath
//	│       │           │   └── link                 TagCurrentLinkPath
//	│       │           └── index
//	│       │               └── <algorithm>
//	│       │                   └── <hex digest>     TagIndexEntryPath
//	│       │                       └── link         TagIndexEntryLinkPath
//	│       ├── _uploads                             RepositoryDataPath
//	│       │   └── <upload id>                      UploadPath
//	│       │       ├── data
//	│       │       ├── startedat
//	│       │       └── hashstates
//	│       │           └── <algorithm>
//	│       │               └── <offset>
//	│       └── <name>/...                           a repository nested in this one
//	└── hardprune                                    ours, not distribution's
//	    ├── lock                                     PruneLockPath
//	    └── marker                                   PruneMarkerPath
//
// The content is in the blobs: manifests, configs and layers alike, each stored once however
// many repositories share it. A repository holds links, files whose whole content is a digest
// (ParseLink): a layer link makes a blob readable through the repository, a revision link makes
// a manifest part of it, a tag's current link names the manifest the tag points at now, and its
// index entries the manifests it has pointed at. An upload is a blob being pushed: its data so
// far, its start time and the states of its digest computation. ParsePath classifies the files
// below blobs/ and repositories/ (EntryKind); the inventory leaves hardprune/ alone.
const (
	// RootPath is the prefix of every path the registry writes.
	RootPath = "/docker/registry/v2"
	// BlobsPath holds the content-addressed blobs.
	BlobsPath = RootPath + "/blobs"
	// RepositoriesPath holds the repositories, whose names may nest.
	RepositoriesPath = RootPath + "/repositories"
)

// The directories that make a directory under RepositoriesPath a repository. Repository name
// components cannot start with an underscore, so the first component that does ends the name.
const (
	manifestsDir = "_manifests"
	layersDir    = "_layers"
	uploadsDir   = "_uploads"
)

// RepositoryDataDirs are the directories a repository owns; deleting them deletes the
// repository without touching repositories nested below it.
var RepositoryDataDirs = []string{manifestsDir, layersDir, uploadsDir}

// BlobDirPath is the directory of a blob (its data file and nothing else).
func BlobDirPath(dgst digest.Digest) string {
	enc := dgst.Encoded()
	return path.Join(BlobsPath, dgst.Algorithm().String(), enc[:2], enc)
}

// BlobDataPath is the file holding a blob's bytes.
func BlobDataPath(dgst digest.Digest) string {
	return path.Join(BlobDirPath(dgst), "data")
}

// BlobPrefixPath is one of the 256 two-hex-digit directories that spread the blobs of an
// algorithm; the inventory walks them in parallel.
func BlobPrefixPath(alg digest.Algorithm, prefix string) string {
	return path.Join(BlobsPath, alg.String(), prefix)
}

// RepositoryPath is the directory of a repository.
func RepositoryPath(repo string) string {
	return path.Join(RepositoriesPath, repo)
}

// RepositoryDataPath is one of the directories in RepositoryDataDirs of a repository.
func RepositoryDataPath(repo, dir string) string {
	return path.Join(RepositoriesPath, repo, dir)
}

// ManifestRevisionPath is the directory of a manifest revision link.
func ManifestRevisionPath(repo string, dgst digest.Digest) string {
	return path.Join(RepositoriesPath, repo, manifestsDir, "revisions", dgst.Algorithm().String(), dgst.Encoded())
}

// ManifestRevisionLinkPath is the link file that makes a manifest part of a repository.
func ManifestRevisionLinkPath(repo string, dgst digest.Digest) string {
	return path.Join(ManifestRevisionPath(repo, dgst), "link")
}

// LayerLinkDirPath is the directory of a layer link.
func LayerLinkDirPath(repo string, dgst digest.Digest) string {
	return path.Join(RepositoriesPath, repo, layersDir, dgst.Algorithm().String(), dgst.Encoded())
}

// LayerLinkPath is the link file that makes a blob readable through a repository.
func LayerLinkPath(repo string, dgst digest.Digest) string {
	return path.Join(LayerLinkDirPath(repo, dgst), "link")
}

// TagsPath is the directory of a repository's tags.
func TagsPath(repo string) string {
	return path.Join(RepositoriesPath, repo, manifestsDir, "tags")
}

// TagPath is the directory of a tag: its current link and its index.
func TagPath(repo, tag string) string {
	return path.Join(TagsPath(repo), tag)
}

// TagCurrentPath is the directory of a tag's current link.
func TagCurrentPath(repo, tag string) string {
	return path.Join(TagPath(repo, tag), "current")
}

// TagCurrentLinkPath is the link naming the manifest a tag points at now.
func TagCurrentLinkPath(repo, tag string) string {
	return path.Join(TagCurrentPath(repo, tag), "link")
}

// TagIndexEntryPath is the directory of one entry of a tag's index of past manifests.
func TagIndexEntryPath(repo, tag string, dgst digest.Digest) string {
	return path.Join(TagPath(repo, tag), "index", dgst.Algorithm().String(), dgst.Encoded())
}

// TagIndexEntryLinkPath is the link file of a tag index entry.
func TagIndexEntryLinkPath(repo, tag string, dgst digest.Digest) string {
	return path.Join(TagIndexEntryPath(repo, tag, dgst), "link")
}

// UploadPath is the directory of an unfinished upload.
func UploadPath(repo, id string) string {
	return path.Join(RepositoriesPath, repo, uploadsDir, id)
}

// PruneMarkerPath is the object -prune=delete writes when its sweep starts and again when it
// ends; serving registries poll it and drop their in-memory blob descriptor cache when it
// changes. It lies outside BlobsPath and RepositoriesPath, where every inventory looks (ours,
// and distribution's catalog, upload purger and garbage collector), so none takes it for
// registry data.
func PruneMarkerPath() string {
	return path.Join(RootPath, "hardprune", "marker")
}

// PruneLockPath is the object -prune=delete holds while it runs, so that only one prune at a
// time deletes from a storage (see Lock). It lies next to the marker, for the same reason.
func PruneLockPath() string {
	return path.Join(RootPath, "hardprune", "lock")
}

// The online prune's objects (package online), beside the lock and for the same reason.
//
// OnlineReplicasPath holds one advert per serving registry (its protocol version, and the
// prune run it has acknowledged); OnlineUsesPath(run) the uses of stored content the replicas
// recorded while that run was under way; OnlineClaimsPath(run) the batches that run is
// deleting right now.
func OnlineReplicasPath() string { return path.Join(RootPath, "hardprune", "replicas") }

// OnlineReplicaPath is the advert of the replica id.
func OnlineReplicaPath(id string) string { return path.Join(OnlineReplicasPath(), id) }

// OnlineUsesRootPath holds the use records of every run (one directory a run).
func OnlineUsesRootPath() string { return path.Join(RootPath, "hardprune", "uses") }

// OnlineUsesPath holds the use records of one prune run.
func OnlineUsesPath(run string) string { return path.Join(OnlineUsesRootPath(), run) }

// OnlineClaimsRootPath holds the claims of every run (one directory a run).
func OnlineClaimsRootPath() string { return path.Join(RootPath, "hardprune", "claims") }

// OnlineClaimsPath holds the claims of one prune run.
func OnlineClaimsPath(run string) string { return path.Join(OnlineClaimsRootPath(), run) }

// EntryKind says what a stored file is.
type EntryKind int

// The kinds of file the registry stores.
const (
	KindBlobData EntryKind = iota + 1
	KindManifestRevisionLink
	KindLayerLink
	KindTagCurrentLink
	KindTagIndexLink
	KindUploadFile
)

func (k EntryKind) String() string {
	switch k {
	case KindBlobData:
		return "blob"
	case KindManifestRevisionLink:
		return "manifest link"
	case KindLayerLink:
		return "layer link"
	case KindTagCurrentLink:
		return "tag link"
	case KindTagIndexLink:
		return "tag index link"
	case KindUploadFile:
		return "upload"
	}
	return "unknown"
}

// Entry is a stored file, parsed from its path.
type Entry struct {
	Kind       EntryKind
	Repository string        // all kinds but KindBlobData
	Digest     digest.Digest // blobs, revision links, layer links, tag index links
	Tag        string        // tag links
	UploadID   string        // upload files
}

// ErrNotRegistryPath says a path is not one the registry writes; walkers skip such files.
var ErrNotRegistryPath = errors.New("not a registry storage path")

// ParsePath classifies a file path found by a walk. It is the inverse of the builders above:
// for every entry e, ParsePath(path built for e) == e (the fuzz test checks it).
func ParsePath(p string) (Entry, error) {
	switch {
	case strings.HasPrefix(p, BlobsPath+"/"):
		return parseBlobPath(p, strings.TrimPrefix(p, BlobsPath+"/"))
	case strings.HasPrefix(p, RepositoriesPath+"/"):
		return parseRepositoryPath(p, strings.TrimPrefix(p, RepositoriesPath+"/"))
	}
	return Entry{}, fmt.Errorf("%q: %w", p, ErrNotRegistryPath)
}

// parseBlobPath parses "<alg>/<2 hex>/<hex>/data".
func parseBlobPath(full, rel string) (Entry, error) {
	parts := strings.Split(rel, "/")
	if len(parts) != 4 || parts[3] != "data" {
		return Entry{}, fmt.Errorf("%q: %w", full, ErrNotRegistryPath)
	}
	dgst, err := parseDigest(parts[0], parts[2])
	if err != nil {
		return Entry{}, fmt.Errorf("%q: %w", full, err)
	}
	if parts[1] != parts[2][:2] {
		return Entry{}, fmt.Errorf("%q: blob is in prefix directory %q: %w", full, parts[1], ErrNotRegistryPath)
	}
	return Entry{Kind: KindBlobData, Digest: dgst}, nil
}

// parseRepositoryPath parses "<name...>/_<dir>/...".
func parseRepositoryPath(full, rel string) (Entry, error) {
	parts := strings.Split(rel, "/")
	split := -1
	for i, part := range parts {
		if strings.HasPrefix(part, "_") {
			split = i
			break
		}
	}
	if split < 1 {
		return Entry{}, fmt.Errorf("%q: no repository data directory: %w", full, ErrNotRegistryPath)
	}
	repo := strings.Join(parts[:split], "/")
	e, err := parseRepositoryData(full, repo, parts[split], parts[split+1:])
	if err != nil {
		return Entry{}, err
	}
	if err := ValidateRepositoryName(repo); err != nil {
		// A name distribution refuses (ns/BadName) but that the storage driver can address
		// still names a repository: the entry comes with the error, for the inventory, which
		// keeps such repositories (no image stream can hold them, so they are garbage once
		// old). A name the driver cannot address, or that would not build back to this path
		// (empty, "." or ".." components), is no repository at all.
		if !addressableName(repo) {
			return Entry{}, fmt.Errorf("%q: %w", full, err)
		}
		return e, fmt.Errorf("%q: %w", full, err)
	}
	return e, nil
}

// addressableName tells whether a repository name, valid or not, builds back to the same path
// and is one the storage drivers accept (storagedriver.PathRegexp).
func addressableName(name string) bool {
	for _, c := range strings.Split(name, "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
		for i := 0; i < len(c); i++ {
			switch b := c[i]; {
			case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '.', b == '_', b == '-':
			default:
				return false
			}
		}
	}
	return true
}

// RepositoryNameOf returns the repository part of a path below RepositoriesPath (what precedes
// the first component starting with an underscore), valid or not, or "" when there is none.
func RepositoryNameOf(p string) string {
	rel, ok := strings.CutPrefix(p, RepositoriesPath+"/")
	if !ok {
		return ""
	}
	parts := strings.Split(rel, "/")
	for i, part := range parts {
		if strings.HasPrefix(part, "_") {
			return strings.Join(parts[:i], "/")
		}
	}
	return ""
}

// parseRepositoryData parses what follows a repository name: "_<dir>/...".
func parseRepositoryData(full, repo, dir string, rest []string) (Entry, error) {
	bad := func(why string) (Entry, error) {
		return Entry{}, fmt.Errorf("%q: %s: %w", full, why, ErrNotRegistryPath)
	}
	switch dir {
	case layersDir:
		// <alg>/<hex>/link
		if len(rest) != 3 || rest[2] != "link" {
			return bad("not a layer link")
		}
		dgst, err := parseDigest(rest[0], rest[1])
		if err != nil {
			return Entry{}, fmt.Errorf("%q: %w", full, err)
		}
		return Entry{Kind: KindLayerLink, Repository: repo, Digest: dgst}, nil
	case manifestsDir:
		if len(rest) == 4 && rest[0] == "revisions" && rest[3] == "link" {
			dgst, err := parseDigest(rest[1], rest[2])
			if err != nil {
				return Entry{}, fmt.Errorf("%q: %w", full, err)
			}
			return Entry{Kind: KindManifestRevisionLink, Repository: repo, Digest: dgst}, nil
		}
		if len(rest) >= 2 && rest[0] == "tags" {
			tag := rest[1]
			if !validTag(tag) {
				return bad("invalid tag name")
			}
			switch {
			case len(rest) == 4 && rest[2] == "current" && rest[3] == "link":
				return Entry{Kind: KindTagCurrentLink, Repository: repo, Tag: tag}, nil
			case len(rest) == 6 && rest[2] == "index" && rest[5] == "link":
				dgst, err := parseDigest(rest[3], rest[4])
				if err != nil {
					return Entry{}, fmt.Errorf("%q: %w", full, err)
				}
				return Entry{Kind: KindTagIndexLink, Repository: repo, Tag: tag, Digest: dgst}, nil
			}
		}
		return bad("not a manifest revision or tag link")
	case uploadsDir:
		// <id>/data, <id>/startedat, <id>/hashstates/<alg>/<offset>
		if len(rest) < 2 || rest[0] == "" {
			return bad("not an upload file")
		}
		return Entry{Kind: KindUploadFile, Repository: repo, UploadID: rest[0]}, nil
	}
	return bad("unknown repository data directory " + dir)
}

// ErrBadDigest says a digest in a path or a link is not one this registry can have written.
var ErrBadDigest = errors.New("invalid digest")

// parseDigest builds a digest from the algorithm and encoded parts of a path. Only algorithms
// distribution can write are accepted, and the encoded part must be canonical for the algorithm.
func parseDigest(alg, encoded string) (digest.Digest, error) {
	// sha256, nearly every digest, is checked by hand: go-digest's check is a regular
	// expression, and a walk parses hundreds of thousands of paths.
	if alg == string(digest.SHA256) {
		if !isLowerHex(encoded, 64) {
			return "", fmt.Errorf("%s:%s: %w", alg, encoded, ErrBadDigest)
		}
		return digest.Digest("sha256:" + encoded), nil
	}
	dgst := digest.NewDigestFromEncoded(digest.Algorithm(alg), encoded)
	if err := dgst.Validate(); err != nil {
		return "", fmt.Errorf("%s:%s: %w", alg, encoded, ErrBadDigest)
	}
	return dgst, nil
}

// isLowerHex tells whether s is n lowercase hexadecimal digits, the only form distribution
// writes.
func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ParseLink parses the content of a link file: a digest, nothing else.
func ParseLink(content []byte) (digest.Digest, error) {
	dgst, err := digest.Parse(strings.TrimSpace(string(content)))
	if err != nil {
		return "", fmt.Errorf("link content %q: %w", truncate(string(content), 80), ErrBadDigest)
	}
	return dgst, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

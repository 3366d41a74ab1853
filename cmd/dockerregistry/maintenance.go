package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	imagev1 "github.com/openshift/api/image/v1"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/config"
	"github.com/hardprune/image-registry/imageapi"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/restore"
	"github.com/hardprune/image-registry/storage"
)

// exitProblems is the exit code of -restore when it found (check) or left (recover) problems:
// 0 says storage and the image API agree, 1 that the run failed, 2 a wrong command line.
const exitProblems = 3

// maintenanceOptions are the flags of the maintenance modes around the prune.
type maintenanceOptions struct {
	restore          string
	listRepositories bool
	listBlobs        bool
	listManifests    string
	explain          string
	report           string
}

func (m *maintenanceOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&m.restore, "restore", "", "find Images whose data storage lost, and stored data the image API does not know: check (dry run) or recover (record it in the image API); exit 3 when problems are found (check) or remain (recover)")
	fs.BoolVar(&m.listRepositories, "list-repositories", false, "print the repositories in storage, one a line")
	fs.BoolVar(&m.listBlobs, "list-blobs", false, "print the blobs in storage, one digest a line")
	fs.StringVar(&m.listManifests, "list-manifests", "", "print the manifests linked in `repository`, one digest a line")
	fs.StringVar(&m.explain, "prune-explain", "", "say whether -prune would delete the blob `digest` and its links, and every reason it keeps them")
	fs.StringVar(&m.report, "prune-report", "", "with -prune, write every object the run deletes (or would), its size, reason and outcome to `file` as JSON Lines")
}

// modes lists the maintenance modes the command line asks for.
func (m *maintenanceOptions) modes() []string {
	var out []string
	if m.restore != "" {
		out = append(out, "-restore")
	}
	if m.listRepositories {
		out = append(out, "-list-repositories")
	}
	if m.listBlobs {
		out = append(out, "-list-blobs")
	}
	if m.listManifests != "" {
		out = append(out, "-list-manifests")
	}
	if m.explain != "" {
		out = append(out, "-prune-explain")
	}
	return out
}

// validate checks the maintenance flags against each other and -prune; it returns an exit
// code, or -1 when all is well.
func (o *options) validateMaintenance(stderr io.Writer) int {
	m := &o.maintenanceOptions
	usage := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "error: "+format+"\n", args...)
		return exitUsage
	}
	modes := m.modes()
	if o.prune != "" {
		modes = append(modes, "-prune")
	}
	if len(modes) > 1 {
		return usage("%v: one mode at a time", modes)
	}
	switch m.restore {
	case "", "check", "recover":
	default:
		return usage("-restore=%s: want check or recover", m.restore)
	}
	if m.explain != "" {
		if _, err := digest.Parse(m.explain); err != nil {
			return usage("-prune-explain=%s: want a digest such as sha256:<64 hex digits>: %v", m.explain, err)
		}
	}
	if m.listManifests != "" {
		if err := storage.ValidateRepositoryName(m.listManifests); err != nil {
			return usage("-list-manifests: %v", err)
		}
	}
	if m.report != "" {
		if o.prune == "" {
			return usage("-prune-report needs -prune=check or -prune=delete")
		}
		// Find out now, before anything is deleted, that the report can be written, without
		// creating it: a run refused later leaves no empty report behind.
		if err := checkWritable(m.report); err != nil {
			return usage("-prune-report: %v", err)
		}
	}
	return -1
}

// maintenance tells whether the command line asks for a maintenance mode.
func (o *options) maintenance() bool { return len(o.maintenanceOptions.modes()) > 0 }

// runMaintenance runs the mode the command line asks for. Results go to stdout, one item a
// line; logs go to stderr.
func runMaintenance(ctx context.Context, cfg *config.Config, opts options, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFailure
	}
	log, drv, err := openStorage(ctx, cfg, stderr)
	if err != nil {
		return fail(err)
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	m := opts.maintenanceOptions
	switch {
	case m.listRepositories:
		err = listRepositories(ctx, drv, out)
	case m.listBlobs:
		err = listBlobs(ctx, drv, out)
	case m.listManifests != "":
		err = listManifests(ctx, drv, m.listManifests, out)
	case m.explain != "":
		err = explainDigest(ctx, cfg, opts, drv, log, out)
	case m.restore != "":
		var code int
		code, err = runRestore(ctx, cfg, opts, drv, log, out)
		if err == nil {
			return code
		}
	}
	if err != nil {
		out.Flush()
		return fail(err)
	}
	return 0
}

// walkEntries walks root and calls fn with every file the registry writes below it. A missing
// root is reported as notFound.
func walkEntries(ctx context.Context, drv driver.StorageDriver, root string, fn func(storage.Entry, driver.FileInfo) error) (notFound bool, err error) {
	err = drv.Walk(ctx, root, func(fi driver.FileInfo) error {
		if fi.IsDir() {
			return nil
		}
		e, err := storage.ParsePath(fi.Path())
		if err != nil {
			return nil // not the registry's: the prune's inventory warns about these
		}
		return fn(e, fi)
	})
	var nf driver.PathNotFoundError
	if errors.As(err, &nf) && nf.Path == root {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("walking %s: %w", root, err)
	}
	return false, nil
}

func listRepositories(ctx context.Context, drv driver.StorageDriver, w io.Writer) error {
	repos := map[string]bool{}
	_, err := walkEntries(ctx, drv, storage.RepositoriesPath, func(e storage.Entry, _ driver.FileInfo) error {
		repos[e.Repository] = true
		return nil
	})
	if err != nil {
		return err
	}
	names := make([]string, 0, len(repos))
	for r := range repos {
		names = append(names, r)
	}
	sort.Strings(names)
	for _, r := range names {
		fmt.Fprintln(w, r)
	}
	return nil
}

// listBlobs streams the blobs as the walk finds them (in digest order on every driver we know),
// so that millions take no memory.
func listBlobs(ctx context.Context, drv driver.StorageDriver, w io.Writer) error {
	_, err := walkEntries(ctx, drv, storage.BlobsPath, func(e storage.Entry, _ driver.FileInfo) error {
		if e.Kind == storage.KindBlobData {
			_, err := fmt.Fprintln(w, e.Digest)
			return err
		}
		return nil
	})
	return err
}

func listManifests(ctx context.Context, drv driver.StorageDriver, repo string, w io.Writer) error {
	var manifests []string
	notFound, err := walkEntries(ctx, drv, storage.RepositoryPath(repo), func(e storage.Entry, _ driver.FileInfo) error {
		if e.Kind == storage.KindManifestRevisionLink && e.Repository == repo {
			manifests = append(manifests, e.Digest.String())
		}
		return nil
	})
	if err != nil {
		return err
	}
	if notFound {
		return fmt.Errorf("repository %s is not in storage (see -list-repositories)", repo)
	}
	sort.Strings(manifests)
	for _, d := range manifests {
		fmt.Fprintln(w, d)
	}
	return nil
}

// imageLister connects to the image API the way the prune does.
func imageLister(cfg *config.Config, opts options, log logrus.FieldLogger) (*imageapi.Lister, error) {
	api, err := connectImageAPI(cfg, opts, log)
	if err != nil {
		return nil, err
	}
	log.WithFields(logrus.Fields{"credentials": api.Source, "server": api.Host}).Info("reading the image API")
	return &imageapi.Lister{Client: api.Client, PageSize: opts.pageSize, Log: log}, nil
}

// explainDigest runs the prune's decision, with its own listing pass that keeps what the API
// says about the one digest, and explains the verdict.
func explainDigest(ctx context.Context, cfg *config.Config, opts options, drv driver.StorageDriver, log logrus.FieldLogger, w io.Writer) error {
	target := digest.Digest(opts.explain)
	lister, err := imageLister(cfg, opts, log)
	if err != nil {
		return err
	}
	now := time.Now()
	refs, usage, err := lister.Explain(ctx, target)
	if err != nil {
		return fmt.Errorf("reading the image API: %w", err)
	}
	store := &storage.Store{Driver: drv, Workers: opts.workers, Log: log}
	inv, err := store.Inventory(ctx)
	if err != nil {
		return fmt.Errorf("reading storage: %w", err)
	}
	if err := refs.Resolve(ctx, store, opts.workers); err != nil {
		return fmt.Errorf("reading storage: %w", err)
	}
	// The explanation names the tags pointing at the digest: read those tags' current links.
	var tags []prune.TagRef
	for _, r := range inv.Repositories {
		for _, t := range r.Tags {
			if slices.Contains(t.Index, target) {
				tags = append(tags, prune.TagRef{Repository: r.Name, Tag: t.Name})
			}
		}
	}
	if err := store.ResolveTags(ctx, inv, tags); err != nil {
		return fmt.Errorf("reading storage: %w", err)
	}
	popts := prune.Options{Now: now, KeepYoungerThan: opts.keepYoungerThan, UploadPurgeAge: opts.uploadPurgeAge}
	// Deciding reads the current links of the tags it cannot decide without; Explain then
	// decides again, over the tags as read.
	if _, err := prune.DecideAndResolve(ctx, refs, inv, popts, store); err != nil {
		return fmt.Errorf("reading storage: %w", err)
	}
	prune.WriteExplanation(w, prune.Explain(target, usage, refs, inv, popts))
	return nil
}

// runRestore checks storage against the image API and, with -restore=recover, records what
// the API lost. It returns 0 when they agree (after the recovery), exitProblems otherwise.
func runRestore(ctx context.Context, cfg *config.Config, opts options, drv driver.StorageDriver, log logrus.FieldLogger, w io.Writer) (int, error) {
	lister, err := imageLister(cfg, opts, log)
	if err != nil {
		return 0, err
	}
	store := &storage.Store{Driver: drv, Workers: opts.workers, Log: log}
	inv, err := store.Inventory(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading storage: %w", err)
	}
	var c *restore.Checker
	err = lister.Restarting(ctx, func(ctx context.Context) error {
		c = restore.NewChecker(inv)
		if err := lister.EachImage(ctx, func(img *imagev1.Image) error {
			reduced, err := imageapi.ReduceImage(img)
			if err != nil {
				return err
			}
			c.AddImage(reduced, imageapi.Managed(img))
			return nil
		}); err != nil {
			return err
		}
		if err := lister.EachImageStream(ctx, func(is *imagev1.ImageStream) error {
			st, err := imageapi.TagHistories(is)
			if err != nil {
				return err
			}
			c.AddStream(st, imageapi.LocalReference)
			return nil
		}); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reading the image API: %w", err)
	}
	if err := c.FollowLists(ctx, store); err != nil {
		return 0, fmt.Errorf("reading storage: %w", err)
	}
	report := c.Report()
	restore.WriteReport(w, report)
	recs := report.Recoverable()
	if opts.restore == "check" {
		if len(recs) > 0 {
			fmt.Fprintf(w, "Use -restore=recover to record %d stored manifests in the image API\n", len(recs))
		}
		if report.Problems() > 0 {
			return exitProblems, nil
		}
		return 0, nil
	}
	r := &restore.Recoverer{Driver: drv, Client: lister.Client, Log: log}
	res, err := r.Recover(ctx, w, recs)
	fmt.Fprintf(w, "Recovered %d images, recorded %d lost-found tags\n", res.Images, res.Tags)
	if res.Images > 0 || res.Tags > 0 {
		fmt.Fprintln(w, "Labels and annotations of the recovered images could not be recovered: storage does not keep them")
	}
	if err != nil {
		return 0, err
	}
	if report.Unrecoverable()+res.Failed > 0 {
		fmt.Fprintf(w, "Left %d problems that recovery cannot fix\n", report.Unrecoverable()+res.Failed)
		return exitProblems, nil
	}
	return 0, nil
}

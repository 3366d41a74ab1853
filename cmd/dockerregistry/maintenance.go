package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/config"
	"github.com/hardprune/image-registry/imageapi"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/prune/ordinary"
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
	fs.StringVar(
		&m.restore,
		"restore",
		"",
		"find Images whose data storage lost, and stored data the image API does not know: check (dry run) or recover (record it in the image API); exit 3 when problems are found (check) or remain (recover)",
	)
	fs.BoolVar(&m.listRepositories, "list-repositories", false, "print the repositories in storage, one a line")
	fs.BoolVar(&m.listBlobs, "list-blobs", false, "print the blobs in storage, one digest a line")
	fs.StringVar(
		&m.listManifests,
		"list-manifests",
		"",
		"print the manifests linked in `repository`, one digest a line",
	)
	fs.StringVar(
		&m.explain,
		"prune-explain",
		"",
		"say whether -prune would delete the blob `digest` and its links, and every reason it keeps them",
	)
	fs.StringVar(
		&m.report,
		"prune-report",
		"",
		"with -prune, write every object the run deletes (or would), its size, reason and outcome to `file` as JSON Lines",
	)
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
	// -prune-images and -prune go together: the ordinary prune, then the hard prune, in one
	// maintenance window.
	switch {
	case o.prune != "" && o.ordinary.pruneImages:
		modes = append(modes, "-prune-images -prune")
	case o.prune != "":
		modes = append(modes, "-prune")
	case o.ordinary.pruneImages:
		modes = append(modes, "-prune-images")
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
	store := &storage.Store{Driver: drv, Workers: opts.workers, Log: log}
	m := opts.maintenanceOptions
	var api *imageapi.Connection
	if m.explain != "" || m.restore != "" {
		if api, err = connectImageAPI(cfg, opts, log); err != nil {
			return fail(err)
		}
		log.WithFields(logrus.Fields{"credentials": api.Source, "server": api.Host}).Info("reading the image API")
	}
	code := 0
	switch {
	case m.listRepositories:
		err = store.Repositories(ctx, printLine[string](out))
	case m.listBlobs:
		err = store.Blobs(ctx, printLine[digest.Digest](out))
	case m.listManifests != "":
		err = store.Manifests(ctx, m.listManifests, printLine[digest.Digest](out))
		if errors.Is(err, storage.ErrRepositoryNotFound) {
			err = fmt.Errorf("%w (see -list-repositories)", err)
		}
	case m.explain != "":
		err = explainDigest(ctx, opts, api, store, log, out)
	case m.restore != "":
		code, err = runRestore(ctx, opts, api, store, cfg.OpenShift.Server.Addr, log, out)
	}
	if err != nil {
		out.Flush()
		return fail(err)
	}
	return code
}

// printLine returns a function that prints its argument on w, one a line.
func printLine[T any](w io.Writer) func(T) error {
	return func(v T) error {
		_, err := fmt.Fprintln(w, v)
		return err
	}
}

// explainDigest says whether the prune would delete the digest of -prune-explain, and why.
func explainDigest(
	ctx context.Context,
	opts options,
	api *imageapi.Connection,
	store *storage.Store,
	log logrus.FieldLogger,
	w io.Writer,
) error {
	e, err := prune.ExplainRun(ctx, pruneConfig(opts, api, store, log), digest.Digest(opts.explain))
	if err != nil {
		return err
	}
	prune.WriteExplanation(w, e)
	// The ordinary prune's view: where the image sits in each tag history, and what keeps it.
	// It reads the workloads too, which the registry's own account may not be allowed to list:
	// then it says so, after the hard prune's answer.
	fmt.Fprintln(w)
	in, err := readCluster(ctx, api, opts.ordinary, time.Now(), log)
	if err != nil {
		fmt.Fprintf(w, "The ordinary prune's view is not available: %v\n", err)
		return nil
	}
	ordinary.WriteExplanation(w, ordinary.Explain(in, digest.Digest(opts.explain)))
	return nil
}

// runRestore checks storage against the image API and, with -restore=recover, records what
// the API lost, the Images naming the registry at addr as pushes do. It returns 0 when they
// agree (after the recovery), exitProblems otherwise.
func runRestore(
	ctx context.Context,
	opts options,
	api *imageapi.Connection,
	store *storage.Store,
	addr string,
	log logrus.FieldLogger,
	w io.Writer,
) (int, error) {
	report, err := restore.Check(ctx, api.Lister, store)
	if err != nil {
		return 0, err
	}
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
	r := &restore.Recoverer{Driver: store.Driver, Client: api.Client, ServerAddr: addr, Log: log}
	res, err := r.Recover(ctx, w, recs)
	fmt.Fprintf(w, "Recovered %d images, recorded %d lost-found tags\n", res.Images, res.Tags)
	if res.Images > 0 || res.Tags > 0 {
		fmt.Fprintln(
			w,
			"Labels and annotations of the recovered images could not be recovered: storage does not keep them",
		)
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

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/hardprune/image-registry/cache"
	"github.com/hardprune/image-registry/config"
	"github.com/hardprune/image-registry/imageapi"
	"github.com/hardprune/image-registry/prune/ordinary"
	"github.com/hardprune/image-registry/registryclient"
	"github.com/hardprune/image-registry/storage"
)

// needsStorage tells whether the ordinary prune deletes registry data in storage, and so
// needs the registry's configuration file: a confirmed run that prunes the registry without
// -registry-url.
func (o *ordinaryOptions) needsStorage() bool {
	return o.confirm && o.pruneRegistry && o.registryURL == ""
}

// settings are the decision's options.
func (o *ordinaryOptions) settings(now time.Time) ordinary.Options {
	opts := ordinary.Options{
		Now:                now,
		KeepYoungerThan:    o.keepYoungerThan,
		KeepTagRevisions:   o.keepTagRevisions,
		PruneOverSizeLimit: o.pruneOverSizeLimit,
		All:                o.all,
		Namespace:          o.namespace,
		PruneRegistry:      o.pruneRegistry,
	}
	return opts
}

// runOrdinary runs the ordinary prune (-prune-images): oc adm prune images' decisions, made
// registry-side. Its lines and summary go to stdout, the dry-run header, the invalid references
// and the log to stderr.
func runOrdinary(ctx context.Context, cfg *config.Config, opts options, stdout, stderr io.Writer) int {
	limitMaintenanceMemory()
	log, err := pruneLogger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFailure
	}
	if _, err := ordinaryPrune(ctx, cfg, opts, stdout, stderr, log); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", oneLineErrors(err))
		return exitFailure
	}
	return 0
}

// scheduledPrune is the ordinary prune the serving registry runs on its schedule
// (openshift.pruning): confirmed, with the settings of the configuration (scheduledOptions).
// oc's progress lines go to the log at debug level; the summary is returned for the
// schedule's status line and the Lease's annotations.
func scheduledPrune(ctx context.Context, cfg *config.Config, settings config.Pruning) (string, error) {
	opts := scheduledOptions(settings)
	log := logrus.StandardLogger().WithField("component", "scheduled image prune")
	out := log.WriterLevel(logrus.DebugLevel)
	defer out.Close()
	errOut := log.WriterLevel(logrus.WarnLevel)
	defer errOut.Close()
	stats, err := ordinaryPrune(ctx, cfg, opts, out, errOut, log)
	return stats.String(), err
}

// scheduledOptions are the scheduled prune's options: a confirmed -prune-images with the
// settings of openshift.pruning (blobgraceperiod as -prune-keep-younger-than), this command's
// defaults for the rest.
func scheduledOptions(settings config.Pruning) options {
	opts, _ := parseFlags(nil, io.Discard)
	opts.keepYoungerThan = settings.BlobGracePeriod
	o := &opts.ordinary
	o.pruneImages, o.confirm = true, true
	o.keepTagRevisions, o.keepYoungerThan = settings.KeepTagRevisions, settings.KeepYoungerThan
	o.ignoreInvalidRefs, o.all, o.pruneRegistry = settings.IgnoreInvalidRefs, settings.All, settings.PruneRegistry
	return opts
}

// ordinaryPrune reads the image API whole (paged) before it changes anything; registry data
// goes in storage directly (with the storage's prune lock and the cache invalidation of the
// hard prune), or through the registry's HTTP API with -registry-url.
func ordinaryPrune(
	ctx context.Context,
	cfg *config.Config,
	opts options,
	out, errOut io.Writer,
	log logrus.FieldLogger,
) (ordinary.Stats, error) {
	o := opts.ordinary
	if o.needsStorage() && cfg.Distribution == nil {
		return ordinary.Stats{}, errors.New(
			"-prune-images -confirm deletes registry data in storage, which needs the registry's configuration file " +
				"(the argument or " + config.PathEnv + "); pass -registry-url to delete through the registry instead, " +
				"or -prune-registry=false to prune API objects only")
	}
	if o.registryURL != "" && !o.confirm {
		log.Info("-registry-url is not used by a dry run: nothing is deleted in the registry")
	}
	api, err := connectImageAPI(cfg, opts, log)
	if err != nil {
		return ordinary.Stats{}, err
	}
	log.WithField("server", api.Host).WithField("credentials", api.Source).Info("reading the cluster for the ordinary prune")

	in, err := readCluster(ctx, api, o, time.Now(), log)
	if err != nil {
		return ordinary.Stats{}, fmt.Errorf("%w (nothing was changed)", err)
	}
	rcfg := ordinary.Config{
		Cluster:           api,
		DryRun:            !o.confirm,
		IgnoreInvalidRefs: o.ignoreInvalidRefs,
		Workers:           o.numWorkers,
		Out:               out,
		ErrOut:            errOut,
		Log:               log,
	}
	finish := func() error { return nil }
	if o.pruneRegistry && o.registryURL == "" && cfg.Distribution != nil && !o.confirm {
		// A dry run keeps, as the run would, the blobs written within the grace period.
		drv, err := storage.OpenDriver(ctx, cfg.Distribution.Storage, "")
		if err != nil {
			return ordinary.Stats{}, err
		}
		rcfg.BlobModified, rcfg.Grace = blobModified(drv), opts.keepYoungerThan
	}
	if o.confirm && o.pruneRegistry {
		if finish, err = registryRemover(ctx, cfg, opts, &rcfg); err != nil {
			return ordinary.Stats{}, fmt.Errorf("%w (nothing was changed)", err)
		}
	}
	stats, err := ordinary.Run(ctx, rcfg, in)
	if ferr := finish(); ferr != nil {
		err = errors.Join(err, ferr)
	}
	return stats, err
}

// readCluster reads what the ordinary prune decides from, each list paged and reduced at once.
// A listing whose continue token expired (a read longer than etcd's compaction interval)
// starts again, up to three times.
func readCluster(
	ctx context.Context,
	api *imageapi.Connection,
	o ordinaryOptions,
	now time.Time,
	log logrus.FieldLogger,
) (*ordinary.Input, error) {
	in := &ordinary.Input{Options: o.settings(now)}
	err := restartOnExpiry(func() error {
		in.Images = map[digest.Digest]*ordinary.Image{}
		return api.EachOrdinaryImage(ctx, func(img ordinary.Image) error {
			in.Images[img.Manifest] = &img
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	err = restartOnExpiry(func() error {
		in.Streams = in.Streams[:0]
		return api.EachOrdinaryStream(ctx, o.namespace, func(s ordinary.Stream) error {
			in.Streams = append(in.Streams, &s)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	refs, notes, err := api.Referrers(ctx, o.namespace, in.Options.Cutoff())
	if err != nil {
		return nil, err
	}
	for _, n := range notes {
		log.Warn(n)
	}
	in.Referrers = refs
	if o.pruneOverSizeLimit {
		if in.Limits, err = api.Limits(ctx, o.namespace); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// restartOnExpiry runs list again when its continue token expired, three attempts in all.
func restartOnExpiry(list func() error) error {
	var err error
	for range 3 {
		if err = list(); err == nil || !apierrors.IsResourceExpired(err) {
			return err
		}
	}
	return err
}

// registryRemover sets rcfg up to delete registry data: through the registry's HTTP API with
// -registry-url, else in storage. It returns what ends the deletions (the cache invalidation's
// end marker, the storage lock's release).
func registryRemover(
	ctx context.Context,
	cfg *config.Config,
	opts options,
	rcfg *ordinary.Config,
) (func() error, error) {
	o := opts.ordinary
	if o.registryURL != "" {
		restCfg, _, err := imageapi.RESTConfig(cfg.OpenShift.KubeConfig)
		if err != nil {
			return nil, err
		}
		token := restCfg.BearerToken
		if token == "" && restCfg.BearerTokenFile != "" {
			b, err := os.ReadFile(restCfg.BearerTokenFile)
			if err != nil {
				return nil, fmt.Errorf("reading the token for the registry: %w", err)
			}
			token = strings.TrimSpace(string(b))
		}
		client, err := registryclient.Connect(ctx, registryclient.Options{
			URL:                o.registryURL,
			Token:              token,
			CAFile:             o.certificateAuth,
			ForceInsecure:      o.forceInsecure,
			KubeconfigInsecure: restCfg.Insecure,
		})
		if err != nil {
			return nil, err
		}
		rcfg.Registry = client
		return func() error { return nil }, nil
	}
	drv, err := storage.OpenDriver(ctx, cfg.Distribution.Storage, "")
	if err != nil {
		return nil, err
	}
	// One prune at a time deletes in a storage: the hard prune's lock.
	lock, err := storage.AcquireLock(ctx, drv, storage.LockOptions{Force: opts.forceUnlock, Log: rcfg.Log})
	if err != nil {
		return nil, fmt.Errorf("-prune-images cannot delete registry data now: %w", err)
	}
	inval, err := cache.NewInvalidation(ctx, cfg.Distribution, drv)
	if err != nil {
		releaseLock(lock, rcfg.Log)
		return nil, err
	}
	store := &storage.Store{Driver: drv, Workers: opts.workers, Log: rcfg.Log, Root: storage.Location(cfg.Distribution.Storage)}
	rcfg.Registry = store.Untagging(inval.Wrap(store))
	rcfg.BlobModified = blobModified(drv)
	rcfg.Grace = opts.keepYoungerThan
	return func() error {
		defer releaseLock(lock, rcfg.Log)
		defer inval.Close()
		return inval.Finish(context.WithoutCancel(ctx))
	}, nil
}

// blobModified says when a blob's data was written: the zero time when it is not stored.
func blobModified(drv storagedriver.StorageDriver) func(context.Context, digest.Digest) (time.Time, error) {
	return func(ctx context.Context, d digest.Digest) (time.Time, error) {
		fi, err := drv.Stat(ctx, storage.BlobDataPath(d))
		var notFound storagedriver.PathNotFoundError
		switch {
		case errors.As(err, &notFound):
			return time.Time{}, nil
		case err != nil:
			return time.Time{}, err
		}
		return fi.ModTime(), nil
	}
}

// oneLineErrors joins the errors of a run on one line each, the first on the error line.
func oneLineErrors(err error) error {
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		return err
	}
	var parts []string
	for _, e := range joined.Unwrap() {
		parts = append(parts, e.Error())
	}
	if len(parts) == 1 {
		return errors.New(parts[0])
	}
	return fmt.Errorf("%d failures:\n  %s", len(parts), strings.Join(parts, "\n  "))
}

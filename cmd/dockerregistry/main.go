// Command dockerregistry serves the registry, or, with -prune, runs its hard prune: it removes
// the storage data (repositories, manifest and layer links, blobs) that the cluster's image API
// no longer references.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/cache"
	"github.com/hardprune/image-registry/config"
	"github.com/hardprune/image-registry/imageapi"
	onlineprune "github.com/hardprune/image-registry/online"
	"github.com/hardprune/image-registry/prune"
	"github.com/hardprune/image-registry/registry"
	"github.com/hardprune/image-registry/storage"
)

// defaultMemoryLimit is the soft memory limit of the maintenance modes: what the benchmark of
// 200,000 blobs keeps at most, with room; above it the collector runs more often.
const defaultMemoryLimit = 150 << 20

// Exit codes: 1 for a run that failed, 2 for a command line that is wrong.
const (
	exitFailure = 1
	exitUsage   = 2
)

type options struct {
	prune           string
	keepYoungerThan time.Duration
	uploadPurgeAge  time.Duration
	workers         int
	pageSize        int64
	allowDeleteAll  bool
	maxDeleteRatio  float64
	ignoreReadOnly  bool
	forceUnlock     bool
	apiTimeout      time.Duration
	configPath      string
	maintenanceOptions
	ordinary ordinaryOptions
}

func main() {
	registry.ScheduledPrune = scheduledPrune
	os.Exit(profiled(os.Stderr, func() int { return run(os.Args[1:], os.Stdout, os.Stderr) }))
}

func run(args []string, stdout, stderr io.Writer) int {
	opts, code := parseFlags(args, stderr)
	if code >= 0 {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	path, err := config.ResolvePath(opts.configPath)
	var cfg *config.Config
	switch {
	case errors.Is(err, config.ErrNoConfig) && opts.ordinary.pruneImages && opts.prune == "":
		// The ordinary prune away from the registry (a CronJob with -registry-url) has no
		// registry configuration: the cluster's credentials are all it needs.
		cfg = &config.Config{}
	case err != nil:
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitUsage
	default:
		if cfg, err = config.Load(path); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return exitFailure
		}
	}
	if opts.ordinary.pruneImages {
		code := runOrdinary(ctx, cfg, opts, stdout, stderr)
		if code != 0 || opts.prune == "" {
			return code
		}
	}
	if opts.maintenance() {
		return runMaintenance(ctx, cfg, opts, stdout, stderr)
	}
	if opts.prune == "" {
		if err := registry.Serve(ctx, cfg); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return exitFailure
		}
		return 0
	}
	return runPrune(ctx, cfg, opts, stdout, stderr)
}

func parseFlags(args []string, stderr io.Writer) (options, int) {
	var opts options
	fs := flag.NewFlagSet("dockerregistry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: dockerregistry [flags] [config.yml]\n\n"+
			"Without -prune, serves the registry. The configuration comes from the argument or %s.\n\nFlags:\n", config.PathEnv)
		fs.PrintDefaults()
	}
	fs.StringVar(&opts.prune, "prune", "", "hard prune the storage: check (dry run) or delete")
	fs.DurationVar(
		&opts.keepYoungerThan,
		"prune-keep-younger-than",
		time.Hour,
		"keep blobs, links and uploads modified more recently than this",
	)
	fs.DurationVar(
		&opts.uploadPurgeAge,
		"prune-upload-purge-age",
		168*time.Hour,
		"remove unfinished uploads older than this",
	)
	fs.IntVar(&opts.workers, "prune-workers", 4*runtime.NumCPU(), "storage requests under way at once")
	fs.Int64Var(&opts.pageSize, "prune-page-size", imageapi.DefaultPageSize, "objects per image API list request")
	fs.BoolVar(
		&opts.allowDeleteAll,
		"prune-allow-delete-all",
		false,
		"let -prune=delete remove every blob in storage (refused otherwise)",
	)
	fs.Float64Var(
		&opts.maxDeleteRatio,
		"prune-max-delete-ratio",
		prune.DefaultMaxDeleteRatio,
		"largest share (0 to 1) of the stored repositories, and of the stored blob bytes, that -prune=delete removes; more means the wrong cluster or storage (1 allows any)",
	)
	fs.BoolVar(
		&opts.ignoreReadOnly,
		"prune-ignore-read-only",
		false,
		"let -prune=delete run on a registry not configured read-only (only when no registry serves this storage)",
	)
	fs.BoolVar(
		&opts.forceUnlock,
		"prune-force-unlock",
		false,
		"with -prune=delete, remove the storage's prune lock a stopped run left (only when no other prune runs)",
	)
	fs.DurationVar(
		&opts.apiTimeout,
		"prune-api-timeout",
		imageapi.DefaultRequestTimeout,
		"give up on an image API request with no complete answer after this long (a read is tried 3 times)",
	)
	opts.maintenanceOptions.register(fs)
	opts.ordinary.register(fs)
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return opts, 0
		}
		return opts, exitUsage
	}
	opts.ordinary.noteGiven(fs)
	if len(positional) > 1 {
		fmt.Fprintf(stderr, "error: one configuration file at most, got %d arguments\n", len(positional))
		return opts, exitUsage
	}
	if len(positional) == 1 {
		opts.configPath = positional[0]
	}
	switch opts.prune {
	case "", "check", "delete":
	default:
		fmt.Fprintf(stderr, "error: -prune=%s: want check or delete\n", opts.prune)
		fs.Usage()
		return opts, exitUsage
	}
	if opts.forceUnlock && opts.prune != "delete" {
		fmt.Fprintf(stderr, "error: %v\n", errForceUnlockWithoutDelete)
		return opts, exitUsage
	}
	if !(opts.maxDeleteRatio > 0 && opts.maxDeleteRatio <= 1) {
		fmt.Fprintf(
			stderr,
			"error: -prune-max-delete-ratio=%g: want a share above 0 and at most 1\n",
			opts.maxDeleteRatio,
		)
		return opts, exitUsage
	}
	if opts.workers < 1 || opts.pageSize < 1 || opts.keepYoungerThan < 0 || opts.uploadPurgeAge < 0 {
		fmt.Fprintln(
			stderr,
			"error: -prune-workers and -prune-page-size must be positive, durations must not be negative",
		)
		return opts, exitUsage
	}
	if opts.apiTimeout <= 0 {
		fmt.Fprintf(stderr, "error: -prune-api-timeout=%s: must be positive\n", opts.apiTimeout)
		return opts, exitUsage
	}
	if code := opts.validateMaintenance(stderr); code >= 0 {
		return opts, code
	}
	if code := opts.ordinary.validate(stderr, opts.explain != ""); code >= 0 {
		return opts, code
	}
	return opts, -1
}

// parseInterspersed parses args with fs, flags before and after the positional arguments
// (`-prune=check config.yml -prune-keep-younger-than=0s`, as scripts write it), and returns the
// positional ones. After "--" every argument is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" &&
			!takesValue(fs, args, consumed-1) {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// takesValue tells whether args[i] is the value of the flag before it (`-prune-report --`)
// rather than a flag of its own.
func takesValue(fs *flag.FlagSet, args []string, i int) bool {
	if i == 0 {
		return false
	}
	prev := strings.TrimLeft(args[i-1], "-")
	if prev == args[i-1] || strings.Contains(prev, "=") {
		return false
	}
	f := fs.Lookup(prev)
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

// pruneLogger logs to standard error, leaving standard output to the summary. Like the
// registry's own pruner it ignores the configuration's log level (many installations keep
// "debug" there, far too verbose for a prune) and reads REGISTRY_LOG_LEVEL, default warning.
func pruneLogger(stderr io.Writer) (*logrus.Logger, error) {
	log := logrus.New()
	log.SetOutput(stderr)
	level := logrus.WarnLevel
	if v := os.Getenv("REGISTRY_LOG_LEVEL"); v != "" {
		var err error
		if level, err = logrus.ParseLevel(v); err != nil {
			return nil, fmt.Errorf("REGISTRY_LOG_LEVEL=%q: want panic, fatal, error, warning, info, debug or trace", v)
		}
	}
	log.SetLevel(level)
	return log, nil
}

// limitMaintenanceMemory sets the soft memory limit of a maintenance run (never of the serving
// registry, whose scheduled prune shares its heap). A walk of millions of files, or pages of
// 100k Images, make garbage fast; without a limit the heap grows to twice what the run keeps.
// A soft limit makes the collector work harder instead (GOMEMLIMIT, when set, is the
// administrator's choice and wins).
func limitMaintenanceMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}

// openStorage sets up what every mode but serving needs: the logger and the storage driver the
// configuration names.
func openStorage(
	ctx context.Context,
	cfg *config.Config,
	stderr io.Writer,
) (*logrus.Logger, storagedriver.StorageDriver, error) {
	limitMaintenanceMemory()
	log, err := pruneLogger(stderr)
	if err != nil {
		return nil, nil, err
	}
	drv, err := storage.OpenDriver(ctx, cfg.Distribution.Storage, "")
	if err != nil {
		return nil, nil, err
	}
	return log, drv, nil
}

// connectImageAPI is how every mode reaches the image API: the credentials the configuration
// leads to, each request bounded by -prune-api-timeout, lists paged by -prune-page-size.
func connectImageAPI(cfg *config.Config, opts options, log logrus.FieldLogger) (*imageapi.Connection, error) {
	return imageapi.Connect(
		cfg.OpenShift.KubeConfig,
		imageapi.ConnectOptions{Timeout: opts.apiTimeout, PageSize: opts.pageSize, Log: log},
	)
}

// pruneConfig is the prune the options ask for, from what api references and store holds. It
// is a dry run: a delete run adds its Remover.
func pruneConfig(opts options, api *imageapi.Connection, store *storage.Store, log logrus.FieldLogger) prune.Config {
	return prune.Config{
		References: api.Lister,
		Inventory:  store,
		Options: prune.Options{
			Now:             time.Now(),
			KeepYoungerThan: opts.keepYoungerThan,
			UploadPurgeAge:  opts.uploadPurgeAge,
		},
		Workers:        opts.workers,
		AllowDeleteAll: opts.allowDeleteAll,
		MaxDeleteRatio: opts.maxDeleteRatio,
		Remover:        prune.DryRun{},
		Log:            log,
	}
}

func runPrune(ctx context.Context, cfg *config.Config, opts options, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFailure
	}
	dryRun := opts.prune == "check"
	log, drv, err := openStorage(ctx, cfg, stderr)
	if err != nil {
		return fail(err)
	}
	// Online: a delete run on a registry that serves, through the protocol every replica
	// must speak (package online); checked once the lock is held.
	online := !dryRun && !cfg.ReadOnly() && !opts.ignoreReadOnly
	if !dryRun && !cfg.ReadOnly() && opts.ignoreReadOnly {
		log.Warn(
			"-prune-ignore-read-only: the registry is not configured read-only; a registry serving this storage during the run " +
				"may lose pushes made meanwhile (the prune can delete the blobs and links of an image pushed but not yet recorded in the image API)",
		)
	}
	// One delete run at a time: the lock is taken before anything is read, and its context
	// stops the run if another takes it over.
	lock, err := lockStorage(ctx, drv, dryRun, opts.forceUnlock, log)
	if err != nil {
		return fail(err)
	}
	defer releaseLock(lock, log)
	if lock != nil {
		ctx = lock.Context()
	}
	var guard *onlineprune.Coordinator
	if online {
		if guard, err = startOnline(ctx, drv, lock, log); err != nil {
			return fail(err)
		}
		defer guard.Finish(context.WithoutCancel(ctx))
	}
	api, err := connectImageAPI(cfg, opts, log)
	if err != nil {
		return fail(err)
	}
	mode := "start prune"
	if dryRun {
		mode += " (dry-run mode)"
	}
	log.WithFields(logrus.Fields{"storage": drv.Name(), "credentials": api.Source, "server": api.Host}).Info(mode)

	// The blob descriptor cache: Redis entries removed with what they describe, and the marker
	// that makes registries with an in-memory cache drop theirs. Redis must answer before
	// anything is deleted.
	inval, err := cache.NewInvalidation(ctx, cfg.Distribution, drv)
	if err != nil {
		return fail(fmt.Errorf("%w (nothing was deleted)", err))
	}
	defer inval.Close()

	store := &storage.Store{
		Driver:  drv,
		Workers: opts.workers,
		Log:     log,
		Root:    storage.Location(cfg.Distribution.Storage),
	}
	pcfg := pruneConfig(opts, api, store, log)
	if !dryRun {
		pcfg.Remover = inval.Wrap(store.Remover())
		pcfg.BeforeSweep = lock.Confirm
	}
	if guard != nil {
		pcfg.Guard = guard
	}
	plan, sum, err := prune.Run(ctx, pcfg)
	err = lockLost(lock, err)
	if !dryRun {
		// The end marker goes even after a failed or interrupted sweep.
		if ferr := inval.Finish(ctx); ferr != nil {
			err = errors.Join(err, ferr)
		}
	}
	// The counts are printed once the run reached its sweep, so that an interrupted or failed
	// delete still says what it removed. A run stopped before (reading, deciding, or by the
	// wrong-cluster interlock) deleted nothing, and prints no counts that a script could take
	// for a clean result.
	reachedSweep := plan != nil && !errors.Is(err, prune.ErrWouldDeleteEverything)
	if guard != nil && reachedSweep {
		log.WithField("objects", sum.TotalInUse()).Info("online: kept what the serving registries used during the run")
	}
	if reachedSweep {
		prune.WriteSummary(stdout, sum)
		switch {
		case !dryRun:
			// The cache entries the delete removed, however far it got.
			inval.WriteSummary(stdout, inval.Invalidated(), dryRun)
		case err == nil:
			// The cache entries the check's plan would remove; a failed check counts none.
			var entries int
			if entries, err = inval.Count(ctx, plan, opts.workers); err == nil {
				inval.WriteSummary(stdout, entries, dryRun)
			}
		}
	}
	err = writePruneReport(opts, store, plan, sum, err)
	if err != nil {
		return fail(err)
	}
	return 0
}

// startOnline starts an online delete run: every serving registry must speak the protocol and
// acknowledge the run, or the run refuses as a delete on a registry not read-only always did.
func startOnline(ctx context.Context, drv storagedriver.StorageDriver, lock *storage.Lock, log logrus.FieldLogger) (*onlineprune.Coordinator, error) {
	guard := &onlineprune.Coordinator{
		Driver: drv,
		Run:    lock.Record().Owner,
		Log:    log,
		Alive: func() error {
			if err := lock.Err(); err != nil {
				return err
			}
			// Replicas follow the run while its lock lasts: stop claiming well before it
			// could expire unrenewed.
			if left := time.Until(lock.Record().Expires); left < storage.DefaultLockTTL/2 {
				return fmt.Errorf("%w: the prune lock was not renewed (it expires in %s)", storage.ErrLockLost, left.Round(time.Second))
			}
			return nil
		},
	}
	// Replicas follow only the runs their lock says are online; this write is what a replica
	// that starts now reads, after writing its advert (see online.Replica.Start).
	if err := lock.MarkOnline(ctx); err != nil {
		return nil, fmt.Errorf("starting the online prune (nothing was deleted): %w", err)
	}
	err := guard.Start(ctx)
	if errors.Is(err, onlineprune.ErrNotOnline) {
		return nil, fmt.Errorf("refusing -prune=delete: the registry is not read-only, and %w; "+
			"switch it to read-only (spec.readOnly: true in the registry operator config, or storage.maintenance.readonly.enabled: true, "+
			`or REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled":true}), or pass -prune-ignore-read-only if no registry serves this storage`, err)
	}
	if err != nil {
		return nil, fmt.Errorf("starting the online prune (nothing was deleted): %w", err)
	}
	return guard, nil
}

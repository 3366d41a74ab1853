package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// Defaults of the ordinary prune, oc adm prune images' own.
const (
	defaultKeepTagRevisions = 3
	defaultKeepYoungerThan  = 60 * time.Minute
	defaultNumWorkers       = 5
)

// ordinaryOptions are the flags of -prune-images, named as oc adm prune images names them so
// that an administrator's CronJob arguments carry over (Go's flag package reads --x=y too).
type ordinaryOptions struct {
	pruneImages        bool
	confirm            bool
	keepTagRevisions   int
	keepYoungerThan    time.Duration
	pruneOverSizeLimit bool
	all                bool
	ignoreInvalidRefs  bool
	namespace          string
	pruneRegistry      bool
	numWorkers         int
	registryURL        string
	certificateAuth    string
	forceInsecure      bool

	// given are the flags set on the command line, for oc's rules on explicit flags.
	given map[string]bool
}

// ordinaryFlags are the flags that go with -prune-images only.
var ordinaryFlags = []string{
	"confirm", "keep-tag-revisions", "keep-younger-than", "prune-over-size-limit", "all",
	"ignore-invalid-refs", "namespace", "n", "prune-registry", "num-workers", "registry-url",
	"certificate-authority", "force-insecure",
}

func (o *ordinaryOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(
		&o.pruneImages,
		"prune-images",
		false,
		"run the ordinary prune (oc adm prune images): remove old image stream history, unused Images and their registry data; a dry run without -confirm",
	)
	fs.BoolVar(&o.confirm, "confirm", false, "with -prune-images, make the changes (otherwise a dry run)")
	fs.IntVar(
		&o.keepTagRevisions,
		"keep-tag-revisions",
		defaultKeepTagRevisions,
		"with -prune-images, keep this many newest revisions of every tag",
	)
	fs.DurationVar(
		&o.keepYoungerThan,
		"keep-younger-than",
		defaultKeepYoungerThan,
		"with -prune-images, keep images, history items and streams younger than this, and what pods younger than this use",
	)
	fs.BoolVar(
		&o.pruneOverSizeLimit,
		"prune-over-size-limit",
		false,
		"with -prune-images, remove the images exceeding their namespace's openshift.io/Image limit (not with -keep-tag-revisions nor -keep-younger-than)",
	)
	fs.BoolVar(&o.all, "all", true, "with -prune-images, prune every Image; false: only those pushed to this registry")
	fs.BoolVar(
		&o.ignoreInvalidRefs,
		"ignore-invalid-refs",
		false,
		"with -prune-images, go on when objects name images by invalid references (the images they meant may be pruned)",
	)
	fs.StringVar(
		&o.namespace,
		"namespace",
		"",
		"with -prune-images, prune the image streams of this namespace only (never Images nor blobs)",
	)
	fs.StringVar(&o.namespace, "n", "", "short for -namespace")
	fs.BoolVar(
		&o.pruneRegistry,
		"prune-registry",
		true,
		"with -prune-images, also remove the registry data (links, blobs) of what is pruned; false: API objects only",
	)
	fs.IntVar(&o.numWorkers, "num-workers", defaultNumWorkers, "with -prune-images, image streams and Images handled at once")
	fs.StringVar(
		&o.registryURL,
		"registry-url",
		"",
		"with -prune-images, delete registry data through the registry at this address (https by default) instead of in storage",
	)
	fs.StringVar(
		&o.certificateAuth,
		"certificate-authority",
		"",
		"with -prune-images -registry-url, the CA bundle that signed the registry's certificate",
	)
	fs.BoolVar(
		&o.forceInsecure,
		"force-insecure",
		false,
		"with -prune-images -registry-url, allow plain HTTP or an unverified certificate",
	)
}

// explainFlags are the ordinary prune's settings that -prune-explain takes.
var explainFlags = map[string]bool{
	"keep-tag-revisions": true, "keep-younger-than": true, "prune-over-size-limit": true, "all": true,
	"namespace": true, "n": true,
}

// noteGiven records which flags the command line set.
func (o *ordinaryOptions) noteGiven(fs *flag.FlagSet) {
	o.given = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.given[f.Name] = true })
}

// validate checks the ordinary prune's flags with oc's rules and oc's messages; it returns an
// exit code, or -1 when all is well.
func (o *ordinaryOptions) validate(stderr io.Writer, explaining bool) int {
	usage := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "error: "+format+"\n", args...)
		return exitUsage
	}
	if !o.pruneImages {
		for _, name := range ordinaryFlags {
			// -prune-explain explains the ordinary prune too, with its settings.
			if o.given[name] && !(explaining && explainFlags[name]) {
				return usage("-%s goes with -prune-images", name)
			}
		}
		if !explaining {
			return -1
		}
	}
	if o.given["prune-over-size-limit"] && (o.given["keep-tag-revisions"] || o.given["keep-younger-than"]) {
		return usage("--prune-over-size-limit cannot be specified with --keep-tag-revisions nor --keep-younger-than")
	}
	if o.keepYoungerThan < 0 {
		return usage("--keep-younger-than must be greater than or equal to 0")
	}
	if o.keepTagRevisions < 0 {
		return usage("--keep-tag-revisions must be greater than or equal to 0")
	}
	if o.numWorkers < 1 {
		return usage("--num-workers must be greater than 0")
	}
	if o.registryURL != "" {
		if err := validateRegistryURL(o.registryURL); err != nil {
			return usage("invalid --registry-url flag: %v", err)
		}
	}
	if o.forceInsecure && o.certificateAuth != "" {
		return usage("--certificate-authority cannot be specified with --force-insecure")
	}
	if o.certificateAuth != "" && strings.HasPrefix(o.registryURL, "http://") {
		return usage("--certificate-authority cannot be specified for insecure http protocol")
	}
	if (o.certificateAuth != "" || o.forceInsecure) && o.registryURL == "" {
		return usage(
			"-certificate-authority and -force-insecure go with -registry-url: without it the registry data is deleted in storage, with no connection to secure",
		)
	}
	return -1
}

// validateRegistryURL accepts what oc accepts: host[:port], optionally after http:// or
// https://, and nothing after the host.
func validateRegistryURL(raw string) error {
	withScheme := raw
	if !strings.Contains(raw, "://") {
		withScheme = "https://" + raw
	}
	u, err := url.Parse(withScheme)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return fmt.Errorf("unsupported scheme: %s", u.Scheme)
	}
	switch {
	case u.Path != "" && u.Path != "/":
		return errors.New("no path after <host>[:<port>] is allowed")
	case u.RawQuery != "":
		return errors.New("no query arguments are allowed after <host>[:<port>]")
	case u.Host == "":
		return errors.New("no host name specified")
	}
	return nil
}

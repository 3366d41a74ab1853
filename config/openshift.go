package config

import (
	"fmt"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/reference"
	"go.yaml.in/yaml/v2"
)

// OpenShiftVersion is the only openshift.version this registry reads, as OpenShift's.
const OpenShiftVersion = "1.0"

// openShiftEnvPrefix starts the environment overrides of the openshift section:
// REGISTRY_OPENSHIFT_<SECTION>_<KEY>, the keys' names in capitals.
const openShiftEnvPrefix = "REGISTRY_OPENSHIFT_"

// versionEnv is not an override: as in OpenShift's registry, the version is the file's.
const versionEnv = openShiftEnvPrefix + "VERSION"

// DefaultTokenPath is where the token endpoint sits, on the registry or under
// openshift.auth.tokenrealm.
const DefaultTokenPath = "/openshift/token"

// OpenShift is the openshift: section: OpenShift's registry keys, with their defaults there,
// plus this registry's own (kubeconfig, cache.pollinterval, pruning). Each key has an environment
// override, REGISTRY_OPENSHIFT_<SECTION>_<KEY>.
//
// Field names matter: distribution's parser, which applies the overrides, matches the
// variable's parts against them, ignoring case.
type OpenShift struct {
	Version string `yaml:"version"`
	// KubeConfig names the kubeconfig file used to reach the image API when the process has
	// no KUBECONFIG environment variable; see imageapi.RESTConfig for the full order.
	KubeConfig    string        `yaml:"kubeconfig"`
	Server        Server        `yaml:"server"`
	Auth          Auth          `yaml:"auth"`
	Audit         Audit         `yaml:"audit"`
	Metrics       Metrics       `yaml:"metrics"`
	Requests      Requests      `yaml:"requests"`
	Quota         Quota         `yaml:"quota"`
	Cache         Cache         `yaml:"cache"`
	Pullthrough   Pullthrough   `yaml:"pullthrough"`
	Compatibility Compatibility `yaml:"compatibility"`
	Pruning       Pruning       `yaml:"pruning"`
}

// Server is openshift.server.
type Server struct {
	// Addr is the registry's public host[:port], the registry part of the references of the
	// Images it records. The legacy variables OPENSHIFT_DEFAULT_REGISTRY, DOCKER_REGISTRY_URL
	// and REGISTRY_MIDDLEWARE_REPOSITORY_OPENSHIFT_DOCKERREGISTRYURL override it, and
	// DOCKER_REGISTRY_SERVICE_HOST:DOCKER_REGISTRY_SERVICE_PORT stands in when all are unset,
	// as in OpenShift's registry. Empty: references name no registry host.
	Addr string `yaml:"addr"`
}

// Auth is openshift.auth; when absent, realm and tokenrealm come from auth.openshift's
// parameters, as in OpenShift's registry.
type Auth struct {
	// Realm is the realm of Basic challenges; default "origin".
	Realm string `yaml:"realm"`
	// TokenRealm is the base URL (scheme://host[:port], nothing more) of the token endpoint
	// that challenges name; empty: the scheme and host of each request. See TokenRealmURL.
	TokenRealm string `yaml:"tokenrealm"`
}

// Audit is openshift.audit; when absent, auth.openshift.audit.enabled stands in.
type Audit struct {
	Enabled bool `yaml:"enabled"`
}

// Metrics is openshift.metrics.
type Metrics struct {
	Enabled bool   `yaml:"enabled"`
	Secret  string `yaml:"secret"`
}

// Requests is openshift.requests: limits of concurrent reads (GET, HEAD) and writes.
type Requests struct {
	Read  RequestLimits `yaml:"read"`
	Write RequestLimits `yaml:"write"`
}

// RequestLimits limits requests of one kind; zero means no limit.
type RequestLimits struct {
	MaxRunning     int           `yaml:"maxrunning"`
	MaxInQueue     int           `yaml:"maxinqueue"`
	MaxWaitInQueue time.Duration `yaml:"maxwaitinqueue"`
}

// Quota is openshift.quota.
type Quota struct {
	Enabled bool `yaml:"enabled"`
	// CacheTTL: default 1m.
	CacheTTL time.Duration `yaml:"cachettl"`
}

// Cache is openshift.cache.
type Cache struct {
	// Disabled and BlobRepositoryTTL (default 10m) are OpenShift's: its cache of which
	// repository holds which blob.
	Disabled          bool          `yaml:"disabled"`
	BlobRepositoryTTL time.Duration `yaml:"blobrepositoryttl"`
	// PollInterval is how often a registry with the in-memory blob descriptor cache looks
	// for a finished prune (a duration; "0" turns it off). This registry's own key.
	PollInterval string `yaml:"pollinterval"`
}

// Pullthrough is openshift.pullthrough; both default to true, as in OpenShift.
type Pullthrough struct {
	Enabled bool `yaml:"enabled"`
	Mirror  bool `yaml:"mirror"`
}

// Compatibility is openshift.compatibility.
type Compatibility struct {
	// AcceptSchema2: default true.
	AcceptSchema2 bool `yaml:"acceptschema2"`
}

// TokenRealmURL is the URL challenges name for the token endpoint: openshift.auth.tokenrealm
// with the path DefaultTokenPath, or only that path when tokenrealm is empty (the scheme and
// host then come from each request). Parse has validated tokenrealm.
func (a Auth) TokenRealmURL() *url.URL {
	if a.TokenRealm == "" {
		return &url.URL{Path: DefaultTokenPath}
	}
	u, err := url.Parse(a.TokenRealm)
	if err != nil {
		return &url.URL{Path: DefaultTokenPath}
	}
	u.Path = DefaultTokenPath
	return u
}

// defaults are OpenShift's for the keys a configuration leaves out.
var defaults = map[string]string{
	"auth.realm":                  "origin",
	"quota.cachettl":              "1m",
	"cache.blobrepositoryttl":     "10m",
	"pullthrough.enabled":         "true",
	"pullthrough.mirror":          "true",
	"compatibility.acceptschema2": "true",
	// The cluster's ImagePruner's; pruning.leasenamespace depends on the pod (see
	// defaultLeaseNamespace).
	"pruning.schedule":          `"0 0 * * *"`,
	"pruning.keeptagrevisions":  "3",
	"pruning.keepyoungerthan":   "60m",
	"pruning.ignoreinvalidrefs": "true",
	"pruning.all":               "true",
	"pruning.pruneregistry":     "true",
	"pruning.leasename":         "image-registry-pruner",
	"pruning.leaseduration":     "60s",
	// The command's -prune-keep-younger-than.
	"pruning.blobgraceperiod": "1h",
}

// Legacy names OpenShift's registry still reads: options of the openshift repository
// middleware and their REGISTRY_MIDDLEWARE_REPOSITORY_OPENSHIFT_<OPTION> variables. A variable
// wins over everything; an option counts only when its openshift section is absent.
const legacyEnvPrefix = "REGISTRY_MIDDLEWARE_REPOSITORY_OPENSHIFT_"

var legacyOptions = []struct{ key, option string }{
	{"quota.enabled", "enforcequota"},
	{"quota.cachettl", "projectcachettl"},
	{"cache.blobrepositoryttl", "blobrepositorycachettl"},
	{"pullthrough.enabled", "pullthrough"},
	{"pullthrough.mirror", "mirrorpullthrough"},
	{"compatibility.acceptschema2", "acceptschema2"},
}

// serverAddrEnvs are the legacy server address variables, strongest first; all of them beat
// openshift.server.addr in OpenShift's registry, and so they do here.
var serverAddrEnvs = []string{
	"OPENSHIFT_DEFAULT_REGISTRY", "DOCKER_REGISTRY_URL", legacyEnvPrefix + "DOCKERREGISTRYURL",
}

// domainRegexp is what a registry host[:port] looks like in an image reference.
var domainRegexp = regexp.MustCompile(`^` + reference.DomainRegexp.String() + `$`)

// sources records where each key of the openshift section was given: fromFile, a variable,
// or a legacy name. Keys are dotted paths inside the section ("quota.enabled").
type sources map[string]string

const fromFile = "the file"

// given tells whether key, or a section holding it, was given.
func (s sources) given(key string) bool {
	for k := key; ; {
		if _, ok := s[k]; ok {
			return true
		}
		i := strings.LastIndex(k, ".")
		if i < 0 {
			return false
		}
		k = k[:i]
	}
}

// section tells whether anything in the section was given.
func (s sources) section(name string) bool {
	for k := range s {
		if k == name || strings.HasPrefix(k, name+".") {
			return true
		}
	}
	return false
}

// parseOpenShift reads the openshift section of content with its REGISTRY_OPENSHIFT_*
// overrides, the legacy names and OpenShift's defaults, and validates it. It returns the
// keys given that are not known, for a warning.
func parseOpenShift(content []byte, dcfg *configuration.Configuration) (OpenShift, sources, []string, error) {
	var o OpenShift
	// The version first: a section of another version may not parse as this one.
	var v struct {
		OpenShift struct {
			Version *string `yaml:"version"`
		} `yaml:"openshift"`
	}
	if yaml.Unmarshal(content, &v) == nil && v.OpenShift.Version != nil && *v.OpenShift.Version != OpenShiftVersion {
		return o, nil, nil, fmt.Errorf(
			"openshift.version %q is not supported: this registry reads version %s", *v.OpenShift.Version, OpenShiftVersion)
	}

	// Distribution's parser applies the overrides, with the rules it applies to its own keys.
	// It sees only the openshift variables, or it would warn about every other REGISTRY_ one.
	var wrapper struct {
		OpenShift OpenShift `yaml:"openshift"`
	}
	hide := []string{versionEnv}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "REGISTRY_") && !strings.HasPrefix(name, openShiftEnvPrefix) {
			hide = append(hide, name)
		}
	}
	err := withoutEnv(hide, func() error {
		return withEnvValue(scheduleEnv, quoteSchedule, func() error {
			p := configuration.NewParser("registry", []configuration.VersionedParseInfo{{
				Version:        dcfg.Version,
				ParseAs:        reflect.TypeOf(wrapper),
				ConversionFunc: func(c any) (any, error) { return c, nil },
			}})
			return p.Parse(content, &wrapper)
		})
	})
	if err != nil {
		return o, nil, nil, fmt.Errorf("the openshift section: %s", oneLine(err))
	}
	o = wrapper.OpenShift

	src, unknown, err := givenKeys(content)
	if err != nil {
		return o, nil, nil, err
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if rest, ok := strings.CutPrefix(name, openShiftEnvPrefix); ok && name != versionEnv {
			src[strings.ToLower(strings.ReplaceAll(rest, "_", "."))] = name
		}
	}
	if err := applyLegacy(&o, src, dcfg); err != nil {
		return o, nil, nil, err
	}
	for key, value := range defaults {
		if !src.given(key) {
			if err := setKey(&o, key, value); err != nil {
				return o, nil, nil, fmt.Errorf("default of openshift.%s: %w", key, err)
			}
		}
	}
	if !src.given("pruning.leasenamespace") {
		o.Pruning.LeaseNamespace = defaultLeaseNamespace()
	}
	return o, src, unknown, o.validate()
}

// givenKeys lists the keys the file's openshift section gives, and those of them that are
// neither a known key nor a known section.
func givenKeys(content []byte) (sources, []string, error) {
	var raw struct {
		OpenShift map[string]any `yaml:"openshift"`
	}
	if err := yaml.Unmarshal(content, &raw); err != nil {
		return nil, nil, fmt.Errorf("the openshift section: %s", oneLine(err))
	}
	known := map[string]bool{}
	knownKeys(reflect.TypeOf(OpenShift{}), "", known)
	src := sources{}
	var unknown []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			key := prefix + k
			if sub, ok := stringMap(v); ok && len(sub) > 0 {
				walk(key+".", sub)
				continue
			}
			// A key, or a section given empty (which then holds each of its keys, unset).
			src[key] = fromFile
			if !known[key] {
				unknown = append(unknown, "openshift."+key)
			}
		}
	}
	walk("", raw.OpenShift)
	slices.Sort(unknown)
	return src, unknown, nil
}

// knownKeys adds the dotted names of t's yaml fields to known, keys and sections alike: the
// struct is the one list of the section's keys.
func knownKeys(t reflect.Type, prefix string, known map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		known[prefix+name] = true
		if f.Type.Kind() == reflect.Struct {
			knownKeys(f.Type, prefix+name+".", known)
		}
	}
}

// stringMap turns a YAML mapping into a map with string keys.
func stringMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out, true
	}
	return nil, false
}

// setKey sets the field of a dotted key from its YAML text, as an override would.
func setKey(o *OpenShift, key, value string) error {
	v := reflect.ValueOf(o).Elem()
	for _, part := range strings.Split(key, ".") {
		found := false
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if name == part {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return fmt.Errorf("no key %s", key)
		}
	}
	return yaml.Unmarshal([]byte(value), v.Addr().Interface())
}

// applyLegacy applies what OpenShift's registry still reads under older names: auth.openshift's
// realm, tokenrealm and audit, the openshift repository middleware's options and their
// variables, and the legacy server address variables.
func applyLegacy(o *OpenShift, src sources, dcfg *configuration.Configuration) error {
	authParams := dcfg.Auth["openshift"]
	if !src.section("auth") {
		for _, key := range []string{"realm", "tokenrealm"} {
			if v, ok := authParams[key]; ok {
				s, isString := v.(string)
				if !isString {
					return fmt.Errorf("auth.openshift.%s: want a string, not %v", key, v)
				}
				if err := setKey(o, "auth."+key, yamlQuote(s)); err != nil {
					return err
				}
				src["auth."+key] = "auth.openshift." + key
			}
		}
	}
	if audit, ok := stringMap(authParams["audit"]); ok && !src.section("audit") {
		if v, ok := audit["enabled"]; ok {
			if err := setLegacy(o, src, "audit.enabled", "auth.openshift.audit.enabled", v); err != nil {
				return err
			}
		}
	}

	options := repositoryMiddlewareOptions(dcfg)
	// Which sections the configuration has, before the options add to them.
	hasSection := map[string]bool{}
	for _, l := range legacyOptions {
		section, _, _ := strings.Cut(l.key, ".")
		hasSection[section] = src.section(section)
	}
	for _, l := range legacyOptions {
		section, _, _ := strings.Cut(l.key, ".")
		if v, ok := options[l.option]; ok && !hasSection[section] {
			if err := setLegacy(o, src, l.key, "middleware option "+l.option, v); err != nil {
				return err
			}
		}
		name := legacyEnvPrefix + strings.ToUpper(l.option)
		if v := os.Getenv(name); v != "" {
			if err := setLegacy(o, src, l.key, name, v); err != nil {
				return err
			}
		}
	}

	addr, from := o.Server.Addr, ""
	if v, ok := options["dockerregistryurl"].(string); ok && v != "" {
		addr, from = v, "middleware option dockerregistryurl"
	}
	for i := len(serverAddrEnvs) - 1; i >= 0; i-- {
		if v := os.Getenv(serverAddrEnvs[i]); v != "" {
			addr, from = v, serverAddrEnvs[i]
		}
	}
	host, port := os.Getenv("DOCKER_REGISTRY_SERVICE_HOST"), os.Getenv("DOCKER_REGISTRY_SERVICE_PORT")
	if addr == "" && host != "" && port != "" {
		addr, from = host+":"+port, "DOCKER_REGISTRY_SERVICE_HOST:DOCKER_REGISTRY_SERVICE_PORT"
	}
	if from != "" {
		o.Server.Addr = addr
		src["server.addr"] = from
	}
	return nil
}

// setLegacy sets key from a value given under a legacy name (a YAML value or a variable's
// text), recording where it came from.
func setLegacy(o *OpenShift, src sources, key, from string, value any) error {
	text, isString := value.(string)
	if !isString {
		b, err := yaml.Marshal(value)
		if err != nil {
			return fmt.Errorf("%s: %w", from, err)
		}
		text = string(b)
	}
	if err := setKey(o, key, text); err != nil {
		return fmt.Errorf("%s=%q (openshift.%s): %s", from, strings.TrimSpace(text), key, oneLine(err))
	}
	src[key] = from
	return nil
}

// scheduleEnv overrides openshift.pruning.schedule. The parser reads a variable's value as YAML,
// where the usual schedules are no plain strings ("*/5 * * * *" starts with an alias, "@daily"
// with a reserved character): quoteSchedule quotes it unless it is quoted already.
const scheduleEnv = openShiftEnvPrefix + "PRUNING_SCHEDULE"

func quoteSchedule(v string) string {
	if t := strings.TrimSpace(v); strings.HasPrefix(t, `"`) || strings.HasPrefix(t, "'") {
		return v
	}
	return strings.TrimSpace(yamlQuote(v))
}

// yamlQuote makes s a YAML string whatever it holds.
func yamlQuote(s string) string {
	b, _ := yaml.Marshal(s)
	return string(b)
}

// repositoryMiddlewareOptions are the options of the openshift repository middleware, if the
// configuration names it.
func repositoryMiddlewareOptions(dcfg *configuration.Configuration) map[string]any {
	for _, m := range dcfg.Middleware["repository"] {
		if m.Name == "openshift" {
			return m.Options
		}
	}
	return nil
}

// validate refuses values that would make the registry record or announce wrong addresses,
// negative limits, and pruning settings the schedule could not use.
func (o *OpenShift) validate() error {
	if a := o.Server.Addr; a != "" && !domainRegexp.MatchString(a) {
		return fmt.Errorf(
			"openshift.server.addr %q: want the registry's public host[:port], without a scheme or a path", a)
	}
	if t := o.Auth.TokenRealm; t != "" {
		u, err := url.Parse(t)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf(
				"openshift.auth.tokenrealm %q: want a base URL such as https://registry.example.com:5000, "+
					"without a path, query or fragment", t)
		}
	}
	for _, r := range []struct {
		kind string
		l    RequestLimits
	}{{"read", o.Requests.Read}, {"write", o.Requests.Write}} {
		if r.l.MaxRunning < 0 || r.l.MaxInQueue < 0 || r.l.MaxWaitInQueue < 0 {
			return fmt.Errorf("openshift.requests.%s: maxrunning, maxinqueue and maxwaitinqueue must not be negative",
				r.kind)
		}
	}
	return o.Pruning.validate()
}

// legacyAddress is a warning line when the server address came from an older name, which wins
// over openshift.server.addr and its variable: an administrator who set those would wonder.
func legacyAddress(o OpenShift, src sources) []string {
	from := src["server.addr"]
	if from == "" || from == fromFile || strings.HasPrefix(from, openShiftEnvPrefix) {
		return nil
	}
	return []string{fmt.Sprintf("openshift.server.addr is %s, from %s: an older name, which wins over "+
		"openshift.server.addr and REGISTRY_OPENSHIFT_SERVER_ADDR as in OpenShift's registry", o.Server.Addr, from)}
}

// notInEffect names the keys given that ask for what this registry does not do yet, each with
// its value (secrets without), for the warning.
func notInEffect(o OpenShift, src sources) []string {
	var out []string
	if _, ok := os.LookupEnv(versionEnv); ok {
		out = append(out, versionEnv+" (the file's openshift.version counts)")
	}
	add := func(key string, value any, when bool) {
		if !when {
			return
		}
		named := "openshift." + key
		if value != nil {
			named += fmt.Sprintf("=%v", value)
		}
		// A key given under an older name is named under both.
		if from := src[key]; from != "" && from != fromFile && !strings.HasPrefix(from, openShiftEnvPrefix) {
			named += " (from " + from + ")"
		}
		out = append(out, named)
	}
	add("audit.enabled", true, o.Audit.Enabled)
	add("metrics.enabled", true, o.Metrics.Enabled)
	add("metrics.secret", nil, o.Metrics.Secret != "")
	for _, r := range []struct {
		kind string
		l    RequestLimits
	}{{"read", o.Requests.Read}, {"write", o.Requests.Write}} {
		add("requests."+r.kind+".maxrunning", r.l.MaxRunning, r.l.MaxRunning != 0)
		add("requests."+r.kind+".maxinqueue", r.l.MaxInQueue, r.l.MaxInQueue != 0)
		add("requests."+r.kind+".maxwaitinqueue", r.l.MaxWaitInQueue, r.l.MaxWaitInQueue != 0)
	}
	add("quota.enabled", true, o.Quota.Enabled)
	add("quota.cachettl", o.Quota.CacheTTL, o.Quota.CacheTTL != 0 && src.given("quota.cachettl"))
	add("cache.blobrepositoryttl", o.Cache.BlobRepositoryTTL,
		o.Cache.BlobRepositoryTTL != 0 && src.given("cache.blobrepositoryttl"))
	add("pullthrough.enabled", true, o.Pullthrough.Enabled && src.given("pullthrough.enabled"))
	add("pullthrough.mirror", true, o.Pullthrough.Mirror && src.given("pullthrough.mirror"))
	add("compatibility.acceptschema2", false,
		!o.Compatibility.AcceptSchema2 && src.given("compatibility.acceptschema2"))
	return out
}

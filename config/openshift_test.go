package config

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hardprune/image-registry/internal/testutil"

	"github.com/sirupsen/logrus"
)

// stockConfig is the configuration file of OpenShift's registry image, as shipped.
const stockConfig = testutil.OpenShiftStockConfig

// operatorEnv is what the registry operator sets on the registry's container (filesystem
// storage; TLS files left out).
var operatorEnv = map[string]string{
	"REGISTRY_STORAGE":                          "filesystem",
	"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/registry",
	"REGISTRY_HTTP_ADDR":                        ":5000",
	"REGISTRY_HTTP_NET":                         "tcp",
	"REGISTRY_HTTP_SECRET":                      "0123456789abcdef",
	"REGISTRY_LOG_LEVEL":                        "info",
	"REGISTRY_OPENSHIFT_QUOTA_ENABLED":          "true",
	"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR":     "inmemory",
	"REGISTRY_STORAGE_DELETE_ENABLED":           "true",
	"REGISTRY_HEALTH_STORAGEDRIVER_ENABLED":     "true",
	"REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL":    "10s",
	"REGISTRY_HEALTH_STORAGEDRIVER_THRESHOLD":   "1",
	"REGISTRY_OPENSHIFT_METRICS_ENABLED":        "true",
	"REGISTRY_OPENSHIFT_SERVER_ADDR":            "image-registry.openshift-image-registry.svc:5000",
}

// captureLog collects what the standard logger writes (distribution's parser warns there).
func captureLog(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	out := logrus.StandardLogger().Out
	logrus.SetOutput(&buf)
	t.Cleanup(func() { logrus.SetOutput(out) })
	return &buf
}

func setEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// legacyEnvNames are unset in every test that depends on the server address, so that a
// developer's environment cannot change the outcome.
var legacyEnvNames = []string{
	"OPENSHIFT_DEFAULT_REGISTRY", "DOCKER_REGISTRY_URL", "DOCKER_REGISTRY_SERVICE_HOST",
	"DOCKER_REGISTRY_SERVICE_PORT", legacyEnvPrefix + "DOCKERREGISTRYURL",
}

func clearLegacyEnv(t *testing.T) {
	t.Helper()
	for _, n := range legacyEnvNames {
		t.Setenv(n, "")
		os.Unsetenv(n)
	}
}

func TestStockConfigurationWithOperatorEnv(t *testing.T) {
	clearLegacyEnv(t)
	setEnv(t, operatorEnv)
	log := captureLog(t)
	cfg, err := Load(write(t, stockConfig))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "Ignoring unrecognized environment variable") {
		t.Errorf("the parser warned about known variables:\n%s", log)
	}
	o := cfg.OpenShift
	if o.Server.Addr != "image-registry.openshift-image-registry.svc:5000" {
		t.Errorf("server.addr = %q", o.Server.Addr)
	}
	if !o.Quota.Enabled || !o.Metrics.Enabled {
		t.Errorf("quota.enabled = %v, metrics.enabled = %v: the operator's variables are lost",
			o.Quota.Enabled, o.Metrics.Enabled)
	}
	if o.Auth.Realm != "openshift" || o.Quota.CacheTTL != time.Minute || o.Cache.BlobRepositoryTTL != 10*time.Minute ||
		!o.Pullthrough.Enabled || !o.Pullthrough.Mirror || !o.Compatibility.AcceptSchema2 {
		t.Errorf("file values lost: %+v", o)
	}
	// The registry registers the openshift access controller that distribution's app looks up.
	if !cfg.OpenShiftAuth || cfg.Distribution.Auth.Type() != "openshift" {
		t.Errorf("auth.openshift: OpenShiftAuth=%v, distribution's auth %v", cfg.OpenShiftAuth, cfg.Distribution.Auth)
	}
	d := cfg.Distribution
	if d.HTTP.Addr != ":5000" || d.HTTP.Secret != "0123456789abcdef" || d.Storage.Type() != "filesystem" ||
		d.Storage.Parameters()["rootdirectory"] != "/registry" {
		t.Errorf("distribution's keys: http %+v, storage %v", d.HTTP, d.Storage)
	}
	if d.Storage["delete"]["enabled"] != true || d.Storage["cache"]["blobdescriptor"] != "inmemory" {
		t.Errorf("storage.delete / storage.cache lost: %v", d.Storage)
	}
	want := []string{NotInEffectWarning + "openshift.metrics.enabled=true, openshift.quota.enabled=true, " +
		"openshift.quota.cachettl=1m0s, openshift.cache.blobrepositoryttl=10m0s, openshift.pullthrough.enabled=true, " +
		"openshift.pullthrough.mirror=true"}
	if strings.Join(cfg.Warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%q\nwant:\n%q", cfg.Warnings, want)
	}
}

// Keys that describe what the registry does anyway, and our own keys, are not named.
func TestNoWarningForKeysInEffect(t *testing.T) {
	clearLegacyEnv(t)
	cfg, err := Load(write(t, base+`openshift:
  version: 1.0
  kubeconfig: /etc/kube.conf
  server:
    addr: registry.example.com
  audit:
    enabled: false
  metrics:
    enabled: false
  requests:
    read:
      maxrunning: 0
  quota:
    enabled: false
  cache:
    pollinterval: 2s
    disabled: true
  pullthrough:
    enabled: false
  compatibility:
    acceptschema2: true
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings %q", cfg.Warnings)
	}
}

func TestEveryKeyHasAnEnvironmentOverride(t *testing.T) {
	clearLegacyEnv(t)
	setEnv(t, map[string]string{
		"REGISTRY_OPENSHIFT_SERVER_ADDR":                   "registry.example.com:443",
		"REGISTRY_OPENSHIFT_AUTH_REALM":                    "myrealm",
		"REGISTRY_OPENSHIFT_AUTH_TOKENREALM":               "https://token.example.com:5000",
		"REGISTRY_OPENSHIFT_AUDIT_ENABLED":                 "true",
		"REGISTRY_OPENSHIFT_METRICS_ENABLED":               "true",
		"REGISTRY_OPENSHIFT_METRICS_SECRET":                "s3cr3t",
		"REGISTRY_OPENSHIFT_REQUESTS_READ_MAXRUNNING":      "10",
		"REGISTRY_OPENSHIFT_REQUESTS_READ_MAXINQUEUE":      "20",
		"REGISTRY_OPENSHIFT_REQUESTS_READ_MAXWAITINQUEUE":  "30s",
		"REGISTRY_OPENSHIFT_REQUESTS_WRITE_MAXRUNNING":     "1",
		"REGISTRY_OPENSHIFT_REQUESTS_WRITE_MAXINQUEUE":     "2",
		"REGISTRY_OPENSHIFT_REQUESTS_WRITE_MAXWAITINQUEUE": "1m",
		"REGISTRY_OPENSHIFT_QUOTA_ENABLED":                 "true",
		"REGISTRY_OPENSHIFT_QUOTA_CACHETTL":                "2m",
		"REGISTRY_OPENSHIFT_CACHE_DISABLED":                "true",
		"REGISTRY_OPENSHIFT_CACHE_BLOBREPOSITORYTTL":       "3m",
		"REGISTRY_OPENSHIFT_CACHE_POLLINTERVAL":            "7s",
		"REGISTRY_OPENSHIFT_PULLTHROUGH_ENABLED":           "false",
		"REGISTRY_OPENSHIFT_PULLTHROUGH_MIRROR":            "false",
		"REGISTRY_OPENSHIFT_COMPATIBILITY_ACCEPTSCHEMA2":   "false",
		"REGISTRY_OPENSHIFT_KUBECONFIG":                    "/env/kubeconfig",
		"REGISTRY_OPENSHIFT_PRUNING_ENABLED":               "true",
		// Not plain YAML: the variable is taken as the string it is.
		"REGISTRY_OPENSHIFT_PRUNING_SCHEDULE":          "*/5 * * * *",
		"REGISTRY_OPENSHIFT_PRUNING_SUSPEND":           "true",
		"REGISTRY_OPENSHIFT_PRUNING_KEEPTAGREVISIONS":  "5",
		"REGISTRY_OPENSHIFT_PRUNING_KEEPYOUNGERTHAN":   "2h",
		"REGISTRY_OPENSHIFT_PRUNING_IGNOREINVALIDREFS": "false",
		"REGISTRY_OPENSHIFT_PRUNING_ALL":               "false",
		"REGISTRY_OPENSHIFT_PRUNING_PRUNEREGISTRY":     "false",
		"REGISTRY_OPENSHIFT_PRUNING_BLOBGRACEPERIOD":   "10m",
		"REGISTRY_OPENSHIFT_PRUNING_LEASENAME":         "env-pruner",
		"REGISTRY_OPENSHIFT_PRUNING_LEASENAMESPACE":    "env-ns",
		"REGISTRY_OPENSHIFT_PRUNING_LEASEDURATION":     "90s",
	})
	log := captureLog(t)
	// The file says otherwise everywhere; the environment wins.
	cfg, err := Load(write(t, stockConfig+"  server:\n    addr: file.example.com\n  kubeconfig: /file\n"+
		"  pruning:\n    schedule: \"@daily\"\n    keeptagrevisions: 1\n    leasename: file-pruner\n"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "Ignoring unrecognized") {
		t.Errorf("the parser warned:\n%s", log)
	}
	o := cfg.OpenShift
	want := OpenShift{
		Version:    "1.0",
		KubeConfig: "/env/kubeconfig",
		Server:     Server{Addr: "registry.example.com:443"},
		Auth:       Auth{Realm: "myrealm", TokenRealm: "https://token.example.com:5000"},
		Audit:      Audit{Enabled: true},
		Metrics:    Metrics{Enabled: true, Secret: "s3cr3t"},
		Requests: Requests{
			Read:  RequestLimits{MaxRunning: 10, MaxInQueue: 20, MaxWaitInQueue: 30 * time.Second},
			Write: RequestLimits{MaxRunning: 1, MaxInQueue: 2, MaxWaitInQueue: time.Minute},
		},
		Quota:         Quota{Enabled: true, CacheTTL: 2 * time.Minute},
		Cache:         Cache{Disabled: true, BlobRepositoryTTL: 3 * time.Minute, PollInterval: "7s"},
		Pullthrough:   Pullthrough{},
		Compatibility: Compatibility{AcceptSchema2: false},
		Pruning: Pruning{
			Enabled: true, Schedule: "*/5 * * * *", Suspend: true, KeepTagRevisions: 5,
			KeepYoungerThan: 2 * time.Hour, BlobGracePeriod: 10 * time.Minute, LeaseName: "env-pruner",
			LeaseNamespace: "env-ns", LeaseDuration: 90 * time.Second,
		},
	}
	if o != want {
		t.Errorf("got\n%+v\nwant\n%+v", o, want)
	}
	w := strings.Join(cfg.Warnings, "\n")
	// The access controller honours the realms.
	for _, honoured := range []string{"openshift.auth.realm", "openshift.auth.tokenrealm"} {
		if strings.Contains(w, honoured) {
			t.Errorf("warning names %s, which is in effect:\n%s", honoured, w)
		}
	}
	for _, named := range []string{
		"openshift.audit.enabled=true", "openshift.metrics.enabled=true", "openshift.metrics.secret,",
		"openshift.requests.read.maxrunning=10", "openshift.requests.write.maxwaitinqueue=1m0s",
		"openshift.quota.cachettl=2m0s", "openshift.cache.blobrepositoryttl=3m0s",
		"openshift.compatibility.acceptschema2=false",
	} {
		if !strings.Contains(w, named) {
			t.Errorf("warning does not name %s:\n%s", named, w)
		}
	}
	if strings.Contains(w, "s3cr3t") {
		t.Errorf("warning shows the metrics secret: %s", w)
	}
	if strings.Contains(w, "pullthrough") {
		t.Errorf("pullthrough switched off is in effect, yet named: %s", w)
	}
	if got := cfg.OpenShift.Auth.TokenRealmURL().String(); got != "https://token.example.com:5000/openshift/token" {
		t.Errorf("TokenRealmURL = %s", got)
	}
}

func TestOpenShiftVersion(t *testing.T) {
	clearLegacyEnv(t)
	for _, tt := range []struct {
		version string
		ok      bool
	}{{"1.0", true}, {`"1.0"`, true}, {"", true}, {"2.0", false}, {"1", false}, {"1.1", false}, {"x", false}} {
		section := "openshift:\n  kubeconfig: /k\n"
		if tt.version != "" {
			section += "  version: " + tt.version + "\n"
		}
		_, err := Load(write(t, base+section))
		if tt.ok && err != nil {
			t.Errorf("version %s: %v", tt.version, err)
		}
		if !tt.ok {
			if err == nil || !strings.Contains(err.Error(), "openshift.version") ||
				!strings.Contains(err.Error(), "reads version 1.0") || strings.Contains(err.Error(), "\n") {
				t.Errorf("version %s: err = %v, want one line refusing it", tt.version, err)
			}
		}
	}
	// A version 2.0 section is refused before its keys are read.
	_, err := Load(write(t, base+"openshift:\n  version: 2.0\n  metrics: [a, b]\n"))
	if err == nil || !strings.Contains(err.Error(), `openshift.version "2.0" is not supported`) {
		t.Errorf("err = %v", err)
	}
	// The version is the file's, as in OpenShift's registry: the variable is named, not applied.
	t.Setenv(versionEnv, "2.0")
	cfg, err := Load(write(t, base+"openshift:\n  version: 1.0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OpenShift.Version != "1.0" || !strings.Contains(strings.Join(cfg.Warnings, ""), versionEnv) {
		t.Errorf("version %q, warnings %q", cfg.OpenShift.Version, cfg.Warnings)
	}
}

// The order in which OpenShift's registry takes its address: the legacy variables first.
func TestServerAddrOrder(t *testing.T) {
	file := base + "openshift:\n  version: 1.0\n  server:\n    addr: from-config.example.com\n"
	for _, tt := range []struct {
		name string
		env  map[string]string
		file string
		want string
		// legacy: the address comes from an older name, and a warning says which.
		legacy string
	}{
		{name: "file", want: "from-config.example.com"},
		{name: "no address anywhere", file: base, want: ""},
		{
			name: "REGISTRY_OPENSHIFT_SERVER_ADDR",
			env:  map[string]string{"REGISTRY_OPENSHIFT_SERVER_ADDR": "env.example.com:5000"},
			want: "env.example.com:5000",
		},
		{
			name: "service variables only without anything else",
			env: map[string]string{
				"DOCKER_REGISTRY_SERVICE_HOST": "172.30.1.1", "DOCKER_REGISTRY_SERVICE_PORT": "5000",
			},
			file:   base,
			want:   "172.30.1.1:5000",
			legacy: "DOCKER_REGISTRY_SERVICE_HOST:DOCKER_REGISTRY_SERVICE_PORT",
		},
		{
			name: "service variables lose to the file",
			env: map[string]string{
				"DOCKER_REGISTRY_SERVICE_HOST": "172.30.1.1", "DOCKER_REGISTRY_SERVICE_PORT": "5000",
			},
			want: "from-config.example.com",
		},
		{
			name: "middleware option",
			file: base + "middleware:\n  repository:\n    - name: openshift\n      options:\n" +
				"        dockerregistryurl: option.example.com\nopenshift:\n  server:\n    addr: from-config.example.com\n",
			want:   "option.example.com",
			legacy: "middleware option dockerregistryurl",
		},
		{
			name: "legacy variables beat the new one",
			env: map[string]string{
				"REGISTRY_OPENSHIFT_SERVER_ADDR":                             "env.example.com",
				"REGISTRY_MIDDLEWARE_REPOSITORY_OPENSHIFT_DOCKERREGISTRYURL": "mw.example.com",
			},
			want:   "mw.example.com",
			legacy: "REGISTRY_MIDDLEWARE_REPOSITORY_OPENSHIFT_DOCKERREGISTRYURL",
		},
		{
			name: "DOCKER_REGISTRY_URL",
			env: map[string]string{
				"REGISTRY_MIDDLEWARE_REPOSITORY_OPENSHIFT_DOCKERREGISTRYURL": "mw.example.com",
				"DOCKER_REGISTRY_URL": "url.example.com",
			},
			want:   "url.example.com",
			legacy: "DOCKER_REGISTRY_URL",
		},
		{
			name: "OPENSHIFT_DEFAULT_REGISTRY",
			env: map[string]string{
				"DOCKER_REGISTRY_URL": "url.example.com", "OPENSHIFT_DEFAULT_REGISTRY": "default.example.com",
			},
			want:   "default.example.com",
			legacy: "OPENSHIFT_DEFAULT_REGISTRY",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clearLegacyEnv(t)
			setEnv(t, tt.env)
			f := file
			if tt.file != "" {
				f = tt.file
			}
			log := captureLog(t)
			cfg, err := Load(write(t, f))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.OpenShift.Server.Addr != tt.want {
				t.Errorf("server.addr = %q, want %q", cfg.OpenShift.Server.Addr, tt.want)
			}
			if strings.Contains(log.String(), "Ignoring") {
				t.Errorf("the parser warned:\n%s", log)
			}
			warned := strings.Join(cfg.Warnings, "\n")
			if tt.legacy == "" && strings.Contains(warned, "older name") ||
				tt.legacy != "" && !strings.Contains(warned, "openshift.server.addr is "+tt.want+", from "+tt.legacy) {
				t.Errorf("warnings %q", cfg.Warnings)
			}
		})
	}
}

// Configurations older than the openshift section keep working, as in OpenShift's registry.
func TestLegacyNames(t *testing.T) {
	clearLegacyEnv(t)
	legacy := base + `auth:
  openshift:
    realm: legacy-realm
    tokenrealm: https://legacy.example.com
    audit:
      enabled: true
middleware:
  repository:
    - name: openshift
      options:
        acceptschema2: false
        pullthrough: false
        mirrorpullthrough: false
        enforcequota: true
        projectcachettl: 5m
        blobrepositorycachettl: 6m
`
	cfg, err := Load(write(t, legacy))
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.OpenShift
	if o.Auth.Realm != "legacy-realm" || o.Auth.TokenRealm != "https://legacy.example.com" || !o.Audit.Enabled {
		t.Errorf("auth.openshift parameters not used: %+v %+v", o.Auth, o.Audit)
	}
	if o.Compatibility.AcceptSchema2 || o.Pullthrough.Enabled || o.Pullthrough.Mirror || !o.Quota.Enabled ||
		o.Quota.CacheTTL != 5*time.Minute || o.Cache.BlobRepositoryTTL != 6*time.Minute {
		t.Errorf("middleware options not used: %+v", o)
	}
	for _, named := range []string{
		"openshift.quota.enabled=true (from middleware option enforcequota)",
		"openshift.audit.enabled=true (from auth.openshift.audit.enabled)",
	} {
		if !strings.Contains(strings.Join(cfg.Warnings, ""), named) {
			t.Errorf("warnings %q do not name %s", cfg.Warnings, named)
		}
	}

	// The openshift section wins over the options; the legacy variables win over both.
	t.Setenv(legacyEnvPrefix+"ENFORCEQUOTA", "false")
	t.Setenv(legacyEnvPrefix+"PROJECTCACHETTL", "9m")
	cfg, err = Load(write(t, legacy+"openshift:\n  auth:\n    realm: new\n  quota:\n    enabled: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	o = cfg.OpenShift
	if o.Auth.Realm != "new" || o.Auth.TokenRealm != "" {
		t.Errorf("auth = %+v, want the section's only", o.Auth)
	}
	if o.Quota.Enabled || o.Quota.CacheTTL != 9*time.Minute {
		t.Errorf("quota = %+v, want the legacy variables'", o.Quota)
	}
	if o.Cache.BlobRepositoryTTL != 6*time.Minute {
		t.Errorf("cache = %+v: the option counts while the section is absent", o.Cache)
	}
}

func TestDefaults(t *testing.T) {
	clearLegacyEnv(t)
	cfg, err := Load(write(t, base))
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.OpenShift
	if o.Auth.Realm != "origin" || o.Quota.CacheTTL != time.Minute || o.Cache.BlobRepositoryTTL != 10*time.Minute ||
		!o.Pullthrough.Enabled || !o.Pullthrough.Mirror || !o.Compatibility.AcceptSchema2 {
		t.Errorf("defaults: %+v", o)
	}
	if len(cfg.Warnings) != 0 || cfg.OpenShiftAuth {
		t.Errorf("warnings %q, OpenShiftAuth %v for a configuration without them", cfg.Warnings, cfg.OpenShiftAuth)
	}
	if got := o.Auth.TokenRealmURL().String(); got != "/openshift/token" {
		t.Errorf("TokenRealmURL = %q", got)
	}
}

func TestUnknownOpenShiftKeys(t *testing.T) {
	clearLegacyEnv(t)
	cfg, err := Load(write(t, base+"openshift:\n  version: 1.0\n  kubconfig: /typo\n  quota:\n    enable: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := UnknownKeysWarning + "openshift.kubconfig, openshift.quota.enable"
	if strings.Join(cfg.Warnings, "\n") != want {
		t.Errorf("warnings %q, want %q", cfg.Warnings, want)
	}
}

// Every bad value: an error of one line that names the key or the variable.
func TestBadOpenShiftValues(t *testing.T) {
	section := func(s string) string { return base + "openshift:\n  version: 1.0\n" + s }
	for _, tt := range []struct {
		name, file string
		env        map[string]string
		names      string
	}{
		{name: "bool as string", file: section("  metrics:\n    enabled: \"true\"\n"), names: "cannot unmarshal"},
		{name: "section as list", file: section("  quota: [1, 2]\n"), names: "openshift section"},
		{name: "bad duration", file: section("  quota:\n    cachettl: soon\n"), names: "soon"},
		{
			name:  "bad bool variable",
			file:  section(""),
			env:   map[string]string{"REGISTRY_OPENSHIFT_QUOTA_ENABLED": "maybe"},
			names: "REGISTRY_OPENSHIFT_QUOTA_ENABLED",
		},
		{
			name:  "bad duration variable",
			file:  section(""),
			env:   map[string]string{"REGISTRY_OPENSHIFT_REQUESTS_READ_MAXWAITINQUEUE": "forever"},
			names: "REGISTRY_OPENSHIFT_REQUESTS_READ_MAXWAITINQUEUE",
		},
		{
			name:  "bad legacy variable",
			file:  section(""),
			env:   map[string]string{legacyEnvPrefix + "ENFORCEQUOTA": "maybe"},
			names: legacyEnvPrefix + "ENFORCEQUOTA",
		},
		{
			name:  "server address with a scheme",
			file:  section("  server:\n    addr: https://registry.example.com\n"),
			names: "openshift.server.addr",
		},
		{name: "server address without a host", file: section("  server:\n    addr: :5000\n"), names: "server.addr"},
		{
			name:  "tokenrealm with a path",
			file:  section("  auth:\n    tokenrealm: https://example.com/openshift/token\n"),
			names: "openshift.auth.tokenrealm",
		},
		{
			name:  "tokenrealm without a scheme",
			file:  section("  auth:\n    tokenrealm: example.com\n"),
			names: "openshift.auth.tokenrealm",
		},
		{
			name:  "negative limit",
			file:  section("  requests:\n    write:\n      maxrunning: -1\n"),
			names: "openshift.requests.write",
		},
		{
			name:  "legacy realm not a string",
			file:  base + "auth:\n  openshift:\n    realm: [a]\n",
			names: "auth.openshift.realm",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clearLegacyEnv(t)
			setEnv(t, tt.env)
			_, err := Load(write(t, tt.file))
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), tt.names) {
				t.Errorf("err = %q, want one line naming %s", err, tt.names)
			}
		})
	}
}

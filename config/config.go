// Package config loads the registry's configuration: distribution's own file format and
// REGISTRY_* environment overrides, plus the openshift: section of OpenShift's registry (see
// OpenShift) with its REGISTRY_OPENSHIFT_* overrides and legacy names.
//
// A stock OpenShift registry configuration loads unchanged. What distribution itself cannot
// take is adapted here: the read-only forms the registry operator sets are normalized, and
// logrus level names are mapped to distribution's. auth.openshift stays in distribution's
// configuration: the registry package registers that access controller. Keys that are
// accepted but do nothing yet are listed in Config.Warnings.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	"go.yaml.in/yaml/v2"
)

// PathEnv names the configuration file when no argument does.
const PathEnv = "REGISTRY_CONFIGURATION_PATH"

// Environment variables that Parse handles itself. Distribution's parser turns the first into
// a map its server then rejects ("readonly config key must contain additional keys") and
// mangles the JSON form the registry operator sets; and of the log levels it accepts only
// four, so the others are mapped to them. It never sees the REGISTRY_OPENSHIFT_* variables
// (it would warn that they are unrecognized) nor the legacy REGISTRY_MIDDLEWARE_REPOSITORY_OPENSHIFT_*
// ones (it fails on them: the middleware list has no key "openshift").
const (
	readOnlyEnv        = "REGISTRY_STORAGE_MAINTENANCE_READONLY"
	readOnlyEnabledEnv = "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED"
	logLevelEnv        = "REGISTRY_LOG_LEVEL"
)

// Config is the loaded configuration.
type Config struct {
	// Distribution is distribution's configuration, ready for storage.OpenDriver and
	// distribution's registry server.
	Distribution *configuration.Configuration
	OpenShift    OpenShift
	// OpenShiftAuth says the configuration asks for the openshift access controller
	// (auth.openshift), which the registry's serve mode sets up with the cluster's
	// credentials before distribution's app looks it up by that name.
	OpenShiftAuth bool
	// Warnings are lines for the server to log: keys given that are accepted but not in
	// effect yet, unknown keys of the openshift section, a server address from an older name.
	Warnings []string
	// Path is the file it came from.
	Path string
}

// ErrNoConfig says no configuration file was named.
var ErrNoConfig = errors.New("no configuration file: pass its path as the argument or set " + PathEnv)

// ResolvePath picks the configuration file: the argument, else REGISTRY_CONFIGURATION_PATH.
func ResolvePath(arg string) (string, error) {
	if arg != "" {
		return arg, nil
	}
	if p := os.Getenv(PathEnv); p != "" {
		return p, nil
	}
	return "", ErrNoConfig
}

// Load reads and parses the configuration file at path, applying REGISTRY_* overrides.
func Load(path string) (*Config, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	return Parse(path, content)
}

// Parse parses configuration content; path is only for messages.
func Parse(path string, content []byte) (*Config, error) {
	readOnly, haveReadOnly, err := readOnlyFromEnv()
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", path, err)
	}
	var dcfg *configuration.Configuration
	hidden := []string{readOnlyEnv, readOnlyEnabledEnv}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, openShiftEnvPrefix) || strings.HasPrefix(name, legacyEnvPrefix) {
			hidden = append(hidden, name)
		}
	}
	err = withoutEnv(hidden, func() error {
		return withEnvValue(logLevelEnv, distributionLogLevel, func() error {
			var perr error
			dcfg, perr = configuration.Parse(bytes.NewReader(content))
			return perr
		})
	})
	if err != nil {
		return nil, fmt.Errorf("parsing configuration %s: %s", path, oneLine(err))
	}
	if err := normalizeReadOnly(dcfg, readOnly, haveReadOnly); err != nil {
		return nil, fmt.Errorf("configuration %s: %w", path, err)
	}
	openshift, src, unknown, err := parseOpenShift(content, dcfg)
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", path, err)
	}
	cfg := &Config{Distribution: dcfg, OpenShift: openshift, Path: path}
	_, cfg.OpenShiftAuth = dcfg.Auth["openshift"]
	if keys := notInEffect(openshift, src); len(keys) > 0 {
		cfg.Warnings = append(cfg.Warnings, NotInEffectWarning+strings.Join(keys, ", "))
	}
	if len(unknown) > 0 {
		cfg.Warnings = append(cfg.Warnings, UnknownKeysWarning+strings.Join(unknown, ", "))
	}
	cfg.Warnings = append(cfg.Warnings, legacyAddress(openshift, src)...)
	return cfg, nil
}

// The beginnings of the lines in Config.Warnings.
const (
	NotInEffectWarning = "configuration accepted, but these keys have no effect in this registry yet: "
	UnknownKeysWarning = "unknown keys of the openshift section, ignored: "
)

// ReadOnly tells whether the storage maintenance read-only mode is on.
func (c *Config) ReadOnly() bool {
	enabled, _ := readOnlyMap(c.Distribution)["enabled"].(bool)
	return enabled
}

func readOnlyMap(dcfg *configuration.Configuration) map[any]any {
	m, _ := dcfg.Storage["maintenance"]["readonly"].(map[any]any)
	return m
}

// readOnlyFromEnv reads both environment forms; the JSON/YAML form wins if both are set.
func readOnlyFromEnv() (enabled, set bool, err error) {
	if v, ok := os.LookupEnv(readOnlyEnabledEnv); ok {
		b, perr := strconv.ParseBool(strings.TrimSpace(v))
		if perr != nil {
			return false, false, fmt.Errorf("%s=%q: want true or false", readOnlyEnabledEnv, v)
		}
		enabled, set = b, true
	}
	if v, ok := os.LookupEnv(readOnlyEnv); ok {
		b, perr := parseReadOnlyValue(v)
		if perr != nil {
			return false, false, fmt.Errorf("%s=%q: %v", readOnlyEnv, v, perr)
		}
		enabled, set = b, true
	}
	return enabled, set, nil
}

// parseReadOnlyValue accepts {"enabled":true} (what the registry operator sets), its YAML
// spelling, or a bare boolean.
func parseReadOnlyValue(v string) (bool, error) {
	var value any
	if err := yaml.Unmarshal([]byte(v), &value); err != nil {
		return false, fmt.Errorf("want {\"enabled\":true} or {\"enabled\":false}")
	}
	return readOnlyEnabled(value)
}

func readOnlyEnabled(value any) (bool, error) {
	switch v := value.(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("enabled must be true or false, not %q", v)
		}
		return b, nil
	case map[any]any:
		e, ok := v["enabled"]
		if !ok {
			return false, nil
		}
		return readOnlyEnabled(e)
	case map[string]any:
		e, ok := v["enabled"]
		if !ok {
			return false, nil
		}
		return readOnlyEnabled(e)
	}
	return false, fmt.Errorf("want {\"enabled\":true} or {\"enabled\":false}, not %v", value)
}

// normalizeReadOnly leaves storage.maintenance.readonly in the one form distribution's server
// accepts, map[any]any{"enabled": bool}, whichever way it was given.
func normalizeReadOnly(dcfg *configuration.Configuration, fromEnv, haveEnv bool) error {
	maintenance := dcfg.Storage["maintenance"]
	enabled := false
	if v, ok := maintenance["readonly"]; ok {
		var err error
		if enabled, err = readOnlyEnabled(v); err != nil {
			return fmt.Errorf("storage.maintenance.readonly: %w", err)
		}
	} else if !haveEnv {
		return nil
	}
	if haveEnv {
		enabled = fromEnv
	}
	if maintenance == nil {
		maintenance = configuration.Parameters{}
		dcfg.Storage["maintenance"] = maintenance
	}
	maintenance["readonly"] = map[any]any{"enabled": enabled}
	return nil
}

// withoutEnv runs f with the named variables unset, then restores them.
func withoutEnv(names []string, f func() error) error {
	saved := map[string]string{}
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok {
			saved[n] = v
			os.Unsetenv(n)
		}
	}
	defer func() {
		for n, v := range saved {
			os.Setenv(n, v)
		}
	}()
	return f()
}

// withEnvValue runs f with the variable name, if set, rewritten by fix, then restores it.
func withEnvValue(name string, fix func(string) string, f func() error) error {
	v, ok := os.LookupEnv(name)
	if !ok || fix(v) == v {
		return f()
	}
	os.Setenv(name, fix(v))
	defer os.Setenv(name, v)
	return f()
}

// distributionLogLevel maps logrus level names, which administrators use (and the prune
// accepts), to the four distribution's parser accepts; it rejects "warning" outright.
func distributionLogLevel(level string) string {
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "warning":
		return "warn"
	case "trace":
		return "debug"
	case "fatal", "panic":
		return "error"
	}
	return level
}

// oneLine folds a multi-line parser error into one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

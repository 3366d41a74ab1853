package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// base ends inside the storage section, so that tests can append storage keys.
const base = `version: 0.1
http:
  addr: :5000
storage:
  filesystem:
    rootdirectory: /registry
`

func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadOnlyForms(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		env    map[string]string
		want   bool
		errHas string
	}{
		{name: "not set", file: base, want: false},
		{name: "config key", file: base + "  maintenance:\n    readonly:\n      enabled: true\n", want: true},
		{name: "config key false", file: base + "  maintenance:\n    readonly:\n      enabled: false\n", want: false},
		{name: "operator JSON env", file: base, env: map[string]string{readOnlyEnv: `{"enabled":true}`}, want: true},
		{
			name: "operator JSON env false",
			file: base,
			env:  map[string]string{readOnlyEnv: `{"enabled":false}`},
			want: false,
		},
		{
			name: "distribution's _ENABLED env",
			file: base,
			env:  map[string]string{readOnlyEnabledEnv: "true"},
			want: true,
		},
		{
			name: "env overrides the file",
			file: base + "  maintenance:\n    readonly:\n      enabled: true\n",
			env:  map[string]string{readOnlyEnabledEnv: "false"},
			want: false,
		},
		{
			name: "env with other maintenance keys",
			file: base + "  maintenance:\n    uploadpurging:\n      enabled: false\n",
			env:  map[string]string{readOnlyEnv: `{"enabled":true}`},
			want: true,
		},
		{
			name:   "bad _ENABLED value",
			file:   base,
			env:    map[string]string{readOnlyEnabledEnv: "yes please"},
			errHas: readOnlyEnabledEnv,
		},
		{
			name:   "bad JSON value",
			file:   base,
			env:    map[string]string{readOnlyEnv: `{"enabled":"maybe"}`},
			errHas: readOnlyEnv,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := Load(write(t, tt.file))
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want one naming %s", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.ReadOnly(); got != tt.want {
				t.Errorf("ReadOnly() = %v, want %v", got, tt.want)
			}
			// Distribution's server accepts only this form (it panics on any other).
			if v, ok := cfg.Distribution.Storage["maintenance"]["readonly"]; ok {
				m, isMap := v.(map[any]any)
				if _, isBool := m["enabled"].(bool); !isMap || !isBool {
					t.Errorf("readonly is %#v, want map[any]any{\"enabled\": bool}", v)
				}
			}
			// The environment is left as it was.
			for k, v := range tt.env {
				if os.Getenv(k) != v {
					t.Errorf("%s changed to %q", k, os.Getenv(k))
				}
			}
		})
	}
}

func TestOpenShiftSection(t *testing.T) {
	cfg, err := Load(write(t, base+"openshift:\n  version: 1.0\n  kubeconfig: /etc/kube.conf\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OpenShift.KubeConfig != "/etc/kube.conf" {
		t.Errorf("kubeconfig = %q", cfg.OpenShift.KubeConfig)
	}
	if cfg.Distribution.Storage.Type() != "filesystem" {
		t.Errorf("storage type = %q", cfg.Distribution.Storage.Type())
	}
	t.Setenv("REGISTRY_OPENSHIFT_KUBECONFIG", "/other")
	cfg, err = Load(write(t, base+"openshift:\n  kubeconfig: /etc/kube.conf\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OpenShift.KubeConfig != "/other" {
		t.Errorf("kubeconfig with REGISTRY_OPENSHIFT_KUBECONFIG = %q", cfg.OpenShift.KubeConfig)
	}
}

func TestEnvironmentOverridesStorage(t *testing.T) {
	t.Setenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/elsewhere")
	cfg, err := Load(write(t, base))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Distribution.Storage.Parameters()["rootdirectory"]; got != "/elsewhere" {
		t.Errorf("rootdirectory = %v, want the environment's", got)
	}
}

func TestBadConfigs(t *testing.T) {
	tests := map[string]string{
		"not YAML":   "version: 0.1\nstorage: [\n",
		"no storage": "version: 0.1\nhttp:\n  addr: :5000\n",
		"no version": "storage:\n  inmemory: {}\n",
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Load(write(t, content))
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yml")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestResolvePath(t *testing.T) {
	t.Setenv(PathEnv, "")
	if _, err := ResolvePath(""); err != ErrNoConfig {
		t.Errorf("err = %v, want ErrNoConfig", err)
	}
	t.Setenv(PathEnv, "/from/env")
	if p, _ := ResolvePath(""); p != "/from/env" {
		t.Errorf("path = %q", p)
	}
	if p, _ := ResolvePath("/from/arg"); p != "/from/arg" {
		t.Errorf("path = %q", p)
	}
}

// Administrators set REGISTRY_LOG_LEVEL to logrus names; distribution's parser rejects some.
func TestLogLevelNames(t *testing.T) {
	for level, want := range map[string]string{"warning": "warn", "info": "info", "trace": "debug", "debug": "debug"} {
		t.Setenv(logLevelEnv, level)
		cfg, err := Load(write(t, base))
		if err != nil {
			t.Fatalf("REGISTRY_LOG_LEVEL=%s: %v", level, err)
		}
		if string(cfg.Distribution.Log.Level) != want {
			t.Errorf("REGISTRY_LOG_LEVEL=%s: level %q, want %q", level, cfg.Distribution.Log.Level, want)
		}
		if os.Getenv(logLevelEnv) != level {
			t.Errorf("the variable was not restored")
		}
	}
}

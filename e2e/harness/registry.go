package harness

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// ReadOnlyEnv is how the registry operator switches the registry to read-only.
const ReadOnlyEnv = `REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled":true}`

// RegistryOptions configures StartRegistry.
type RegistryOptions struct {
	// Kubeconfig reaches the image API (required).
	Kubeconfig string
	// StorageDir is the filesystem driver's root directory. One of StorageDir and Storage is
	// required, so that several registries and prunes can share one storage.
	StorageDir string
	// Storage, when set, is the storage section's driver part instead of the filesystem one
	// (e.g. S3.StorageYAML or FilesystemStorageYAML; not indented, without `storage:`).
	Storage string
	// Env are extra KEY=value variables, e.g. ReadOnlyEnv.
	Env []string
	// Config is extra top-level configuration appended to the file (not indented), e.g.
	// Redis.ConfigYAML. Settings under storage: go in Storage instead.
	Config string
	// TLS, when set, serves the registry over TLS (http.tls in its configuration); readiness is
	// then checked over https, trusting TLS.CAFile alone, for the address in Host.
	TLS *TLSFiles
	// AllAddresses listens on every address of the machine (:<port>) instead of the loopback
	// only, so that a name of the machine resolving to another of its addresses reaches it.
	AllAddresses bool
}

// TLSFiles are the registry's serving certificate and key (PEM), and the CA that signed the
// certificate (see TestCA).
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

// Registry is a running dockerregistry serving the distribution API.
type Registry struct {
	*Process
	// Host is 127.0.0.1:<port>, the registry part of image references.
	Host string
	// URL is http://<Host>, or https://<Host> when served over TLS.
	URL string
	// ConfigPath is the configuration it was started with; a prune uses the same.
	ConfigPath string
}

// DockerRegistryBinary returns the path of the product's binary, built by `make build`.
func DockerRegistryBinary() (string, error) {
	dir, err := BinDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "dockerregistry")
	if !isExecutable(path) {
		return "", fmt.Errorf("%s (run make build): %w", path, ErrBinaryMissing)
	}
	return path, nil
}

// WriteRegistryConfig writes a registry configuration of the kind an administrator keeps:
// filesystem storage, the openshift section naming the kubeconfig.
func WriteRegistryConfig(path, addr, storageDir, kubeconfig string) error {
	return WriteRegistryConfigStorage(path, addr, FilesystemStorageYAML(storageDir), kubeconfig)
}

// WriteRegistryConfigStorage is WriteRegistryConfig with any storage driver: storage is the
// storage section's driver part (not indented, without `storage:`), e.g. S3.StorageYAML.
func WriteRegistryConfigStorage(path, addr, storage, kubeconfig string) error {
	return writeRegistryConfig(path, addr, "", storage, kubeconfig)
}

// writeRegistryConfig is WriteRegistryConfigStorage with extra settings of the http section
// (not indented, without `http:`), e.g. its tls part.
func writeRegistryConfig(path, addr, httpExtra, storage, kubeconfig string) error {
	if httpExtra != "" {
		httpExtra = indent(httpExtra, "  ")
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
http:
  addr: %s
  secret: e2e-secret
%sstorage:
%s  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
openshift:
  version: 1.0
  kubeconfig: %s
`, addr, httpExtra, indent(storage, "  "), kubeconfig)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

// StartRegistry starts the registry on a free loopback port and waits until /healthz answers
// (/v2/ asks for credentials under auth: openshift), over https with a certificate verified
// against opts.TLS.CAFile when opts.TLS is set.
// ctx bounds the start-up only; call Stop to end it.
func StartRegistry(ctx context.Context, dir string, log io.Writer, opts RegistryOptions) (*Registry, error) {
	if opts.Kubeconfig == "" || (opts.StorageDir == "" && opts.Storage == "") {
		return nil, errors.New("registry: Kubeconfig and StorageDir (or Storage) are required")
	}
	storage := opts.Storage
	if storage == "" {
		storage = FilesystemStorageYAML(opts.StorageDir)
	}
	binary, err := DockerRegistryBinary()
	if err != nil {
		return nil, err
	}
	scheme, httpExtra, tlsConfig := "http", "", (*tls.Config)(nil)
	if opts.TLS != nil {
		pem, err := os.ReadFile(opts.TLS.CAFile)
		if err != nil {
			return nil, err
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry: no certificate in %s", opts.TLS.CAFile)
		}
		scheme, tlsConfig = "https", &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		httpExtra = fmt.Sprintf("tls:\n  certificate: %s\n  key: %s\n", opts.TLS.CertFile, opts.TLS.KeyFile)
	}
	configPath := filepath.Join(dir, "registry-config.yml")
	var host string
	p, err := startOnFreePorts(1, func(ports []int) (*Process, error) {
		host = "127.0.0.1:" + strconv.Itoa(ports[0])
		addr := host
		if opts.AllAddresses {
			addr = ":" + strconv.Itoa(ports[0])
		}
		if err := writeRegistryConfig(configPath, addr, httpExtra, storage, opts.Kubeconfig); err != nil {
			return nil, err
		}
		if err := appendFile(configPath, opts.Config); err != nil {
			return nil, err
		}
		return startProcessEnv(dir, "registry", log, append(isolatedEnv(), opts.Env...), binary, configPath)
	}, func(p *Process) error {
		if tlsConfig != nil {
			return p.waitReadyTLS(ctx, scheme+"://"+host+"/healthz", "", "", tlsConfig)
		}
		return p.waitReady(ctx, scheme+"://"+host+"/healthz", "")
	})
	if err != nil {
		return nil, err
	}
	return &Registry{Process: p, Host: host, URL: scheme + "://" + host, ConfigPath: configPath}, nil
}

// StartRegistryFromFile starts the registry with the caller's configuration file, unchanged,
// and env (KEY=value, e.g. the registry operator's variables) on top of the harness's. The
// listening address is REGISTRY_HTTP_ADDR, set to a free loopback port, as the operator sets it
// (to :5000). ctx bounds the start-up only; call Stop to end it.
func StartRegistryFromFile(
	ctx context.Context,
	dir string,
	log io.Writer,
	configPath string,
	env []string,
) (*Registry, error) {
	binary, err := DockerRegistryBinary()
	if err != nil {
		return nil, err
	}
	var host string
	p, err := startOnFreePorts(1, func(ports []int) (*Process, error) {
		host = "127.0.0.1:" + strconv.Itoa(ports[0])
		full := append(append(isolatedEnv(), env...), "REGISTRY_HTTP_ADDR="+host)
		return startProcessEnv(dir, "registry", log, full, binary, configPath)
	}, func(p *Process) error {
		return p.waitReady(ctx, "http://"+host+"/healthz", "")
	})
	if err != nil {
		return nil, err
	}
	return &Registry{Process: p, Host: host, URL: "http://" + host, ConfigPath: configPath}, nil
}

// PruneResult is what one run of dockerregistry -prune=... printed.
type PruneResult struct {
	Stdout, Stderr string
	ExitCode       int
}

// PruneCommand prepares the product's binary with args (e.g. -prune=check, the config path)
// and extra environment variables, as an administrator would run it inside the registry pod.
func PruneCommand(ctx context.Context, env []string, args ...string) (*exec.Cmd, error) {
	binary, err := DockerRegistryBinary()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(append(os.Environ(), isolatedEnv()...), env...)
	return cmd, nil
}

// RunPrune runs PruneCommand to the end and returns what it printed.
func RunPrune(ctx context.Context, env []string, args ...string) (PruneResult, error) {
	cmd, err := PruneCommand(ctx, env, args...)
	if err != nil {
		return PruneResult{}, err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	res := PruneResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	case err != nil:
		return res, fmt.Errorf("running %s: %w", cmd.Path, err)
	}
	return res, nil
}

// isolatedEnv keeps the developer's own cluster credentials out of the processes under test:
// KUBECONFIG would take precedence over the configuration's openshift.kubeconfig.
func isolatedEnv() []string {
	return []string{"KUBECONFIG=", "REGISTRY_LOG_LEVEL="}
}

// KubeconfigFor writes a kubeconfig for the image API server that authenticates with token,
// to act as another identity (a pruner without rights, a bad token, a service account).
func (s *ImageAPIServer) KubeconfigFor(path, token string) error {
	return writeKubeconfig(path, s.URL, s.CAFile, token)
}

// appendFile appends content, if any, to the file at path.
func appendFile(path, content string) error {
	if content == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

package harness

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// DefaultToken is the bearer token written to the kubeconfig. With
// --insecure-allow-all the server accepts any token (or none) as
// system:admin, so its value does not matter there.
const DefaultToken = "e2e-admin-token"

// ImageAPIServerOptions configures StartImageAPIServer.
type ImageAPIServerOptions struct {
	// EtcdEndpoint is the etcd client URL (required).
	EtcdEndpoint string
	// Token is the bearer token of the kubeconfig; DefaultToken if empty.
	Token string
	// AuthArgs are the authentication/authorization/admission flags. Nil
	// means --insecure-allow-all; pass e.g. --authentication-kubeconfig=...,
	// --authorization-kubeconfig=..., --kubeconfig=... to delegate to a
	// kube-apiserver instead.
	AuthArgs []string
	// ExtraArgs are appended to the command line (e.g. -v=4).
	ExtraArgs []string
	// ServingDNSNames are names the serving certificate is valid for besides localhost,
	// 127.0.0.1 and ::1: the aggregator checks it against <service>.<namespace>.svc. When
	// set, the harness issues the certificate from a CA of its own (CAFile); otherwise the
	// server makes a self-signed one.
	ServingDNSNames []string
}

// ImageAPIServer is a running imageapiserver.
type ImageAPIServer struct {
	*Process
	// URL is https://127.0.0.1:<port>.
	URL string
	// Kubeconfig is the path of a kubeconfig for URL (CA pinned, bearer token).
	Kubeconfig string
	// CAFile holds the self-signed serving certificate and its CA.
	CAFile string
	Token  string
}

// StartImageAPIServer starts <bin dir>/imageapiserver against opts.EtcdEndpoint
// on a free loopback port, with its certificates in <dir>/imageapiserver-certs
// and its log in <dir>/imageapiserver.log (also copied to log, if not nil),
// waits for /readyz and writes <dir>/kubeconfig. ctx bounds the start-up only
// (DefaultStartTimeout if it has no deadline); call Stop to end it.
func StartImageAPIServer(
	ctx context.Context,
	dir string,
	log io.Writer,
	opts ImageAPIServerOptions,
) (*ImageAPIServer, error) {
	if opts.EtcdEndpoint == "" {
		return nil, errors.New("imageapiserver: no etcd endpoint")
	}
	binary, err := ImageAPIServerBinary()
	if err != nil {
		return nil, err
	}
	if opts.Token == "" {
		opts.Token = DefaultToken
	}
	certDir := filepath.Join(dir, "imageapiserver-certs")
	// Written by the server on first start, or below.
	caFile := filepath.Join(certDir, "apiserver.crt")
	var certArgs []string
	if len(opts.ServingDNSNames) > 0 {
		if caFile, certArgs, err = writeServingCert(certDir, opts.ServingDNSNames); err != nil {
			return nil, fmt.Errorf("imageapiserver: %w", err)
		}
	}
	authArgs := opts.AuthArgs
	if authArgs == nil {
		authArgs = []string{"--insecure-allow-all"}
	}
	var url string
	p, err := startOnFreePorts(1, func(ports []int) (*Process, error) {
		url = "https://127.0.0.1:" + strconv.Itoa(ports[0])
		args := []string{
			"--etcd-servers=" + opts.EtcdEndpoint,
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(ports[0]),
			// The server writes a self-signed CA and serving certificate
			// (for localhost, 127.0.0.1 and ::1) here on first start.
			"--cert-dir=" + certDir,
		}
		args = append(append(append(args, certArgs...), authArgs...), opts.ExtraArgs...)
		return startProcess(dir, "imageapiserver", log, binary, args...)
	}, func(p *Process) error {
		if err := p.waitReady(ctx, url+"/readyz", ""); err != nil {
			return fmt.Errorf("imageapiserver: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s := &ImageAPIServer{Process: p, URL: url, CAFile: caFile, Token: opts.Token,
		Kubeconfig: filepath.Join(dir, "kubeconfig")}
	if err := writeKubeconfig(s.Kubeconfig, s.URL, s.CAFile, s.Token); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return s, nil
}

// writeServingCert issues a serving certificate for localhost, the loopback addresses and
// dnsNames from a new CA, writes both into certDir, and returns the CA's file and the flags
// that make the server use the certificate.
func writeServingCert(certDir string, dnsNames []string) (caFile string, args []string, err error) {
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return "", nil, err
	}
	ca, err := newCertAuthority("e2e-imageapiserver-ca")
	if err != nil {
		return "", nil, err
	}
	caFile = filepath.Join(certDir, "ca.crt")
	if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
		return "", nil, err
	}
	certFile, keyFile := filepath.Join(certDir, "serving.crt"), filepath.Join(certDir, "serving.key")
	err = ca.writeIssued(certFile, keyFile, "imageapiserver", x509.ExtKeyUsageServerAuth,
		append([]string{"localhost"}, dnsNames...), []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback})
	if err != nil {
		return "", nil, err
	}
	return caFile, []string{"--tls-cert-file=" + certFile, "--tls-private-key-file=" + keyFile}, nil
}

// writeKubeconfig writes a kubeconfig (as JSON, which is valid YAML and
// loads with client-go's clientcmd) with the CA inlined.
func writeKubeconfig(path, server, caFile, token string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("reading the serving CA: %w", err)
	}
	type named struct {
		Name    string `json:"name"`
		Cluster any    `json:"cluster,omitempty"`
		User    any    `json:"user,omitempty"`
		Context any    `json:"context,omitempty"`
	}
	cfg := map[string]any{
		"apiVersion": "v1",
		"kind":       "Config",
		"clusters": []named{{Name: "imageapiserver", Cluster: map[string]string{
			"server":                     server,
			"certificate-authority-data": base64.StdEncoding.EncodeToString(ca),
		}}},
		"users": []named{{Name: "e2e", User: map[string]string{"token": token}}},
		"contexts": []named{
			{Name: "imageapiserver", Context: map[string]string{"cluster": "imageapiserver", "user": "e2e"}},
		},
		"current-context": "imageapiserver",
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o600)
}

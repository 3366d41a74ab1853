// Package registryclient deletes registry data through a registry's HTTP API, the calls `oc adm
// prune images` makes: the ordinary prune run as a CronJob away from the registry's storage
// (-prune-images -registry-url). It reaches the registry under oc's rules: https first; plain
// http or an unverified certificate only when forced, asked for by an http:// URL, for a
// loopback or private address, or when the kubeconfig itself is insecure.
package registryclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/prune"
)

// DefaultTimeout bounds each request to the registry.
const DefaultTimeout = 30 * time.Second

// Options say how to reach the registry.
type Options struct {
	// URL is -registry-url: host[:port], optionally with http:// or https://.
	URL string
	// Token is the password of the Basic credentials, as oc sends it (the user is ignored).
	Token string
	// CAFile is -certificate-authority: the bundle that signed the registry's certificate,
	// added to the system's roots.
	CAFile string
	// ForceInsecure is -force-insecure: plain http and unverified certificates are allowed.
	ForceInsecure bool
	// KubeconfigInsecure says the cluster's own connection skips verification
	// (insecure-skip-tls-verify), which oc takes as leave to do the same with the registry.
	KubeconfigInsecure bool
	// Timeout bounds each request; zero means DefaultTimeout.
	Timeout time.Duration
	Log     logrus.FieldLogger
}

// Client deletes through one registry. It implements prune.Remover for layer links, manifest
// links and blobs.
type Client struct {
	base  *url.URL // scheme and host that answered the ping
	http  *http.Client
	token string
	log   logrus.FieldLogger
}

// Connect finds how the registry answers (https first, then http when insecure connections
// are allowed), pinging GET / and then GET /healthz as oc does, and returns a client for the
// scheme that answered. Its error says which rule applied and what to pass.
func Connect(ctx context.Context, opts Options) (*Client, error) {
	if opts.Token == "" {
		return nil, errors.New("deleting through -registry-url needs a token (a service account or a kubeconfig with a token), which the registry checks")
	}
	host, schemes, insecure, why := plan(opts)
	httpClient, err := newHTTPClient(opts, insecure)
	if err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	var errs []string
	for _, scheme := range schemes {
		base := &url.URL{Scheme: scheme, Host: host}
		c := &Client{base: base, http: httpClient, token: opts.Token, log: log}
		err := c.ping(ctx)
		if err == nil {
			log.WithFields(logrus.Fields{"registry": base.String(), "rule": why}).Info("reaching the registry")
			return c, nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v%s", base, err, remedy(scheme, err, insecure, opts)))
	}
	return nil, fmt.Errorf("cannot reach the registry at %s (%s): %s", opts.URL, why, strings.Join(errs, "; "))
}

// plan returns the host, the schemes to try in order, whether certificates go unverified, and
// the rule that decided it, in words.
func plan(opts Options) (host string, schemes []string, insecure bool, why string) {
	raw := opts.URL
	scheme := ""
	if i := strings.Index(raw, "://"); i >= 0 {
		scheme, raw = raw[:i], raw[i+3:]
	}
	host = strings.TrimSuffix(raw, "/")
	switch {
	case opts.CAFile != "":
		insecure, why = false, "certificates verified against -certificate-authority"
	case opts.ForceInsecure:
		insecure, why = true, "-force-insecure"
	case scheme == "http":
		insecure, why = true, "an http:// URL"
	case opts.KubeconfigInsecure:
		insecure, why = true, "the kubeconfig skips TLS verification"
	case isPrivateAddress(host):
		insecure, why = true, "a loopback or private address"
	default:
		insecure, why = false, "https with verified certificates"
	}
	switch {
	case scheme != "":
		schemes = []string{scheme}
	case insecure:
		schemes = []string{"https", "http"}
	default:
		schemes = []string{"https"}
	}
	return host, schemes, insecure, why
}

// isPrivateAddress tells whether host (with or without a port) is a loopback, private or
// link-local IP address, or localhost. Names are not resolved: what a name resolves to may
// change between this check and the requests.
func isPrivateAddress(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast())
}

// remedy says, after an error, what the administrator should pass.
func remedy(scheme string, err error, insecure bool, opts Options) string {
	msg := err.Error()
	var unknownAuthority x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	switch {
	case scheme == "https" && strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		httpURL := "--registry-url=http://" + strings.TrimPrefix(opts.URL, "https://")
		switch {
		case opts.CAFile != "":
			// Neither an http:// URL nor --force-insecure goes with --certificate-authority.
			return " (the registry speaks plain HTTP: pass " + httpURL + " without --certificate-authority, " +
				"which is for https only, or serve the registry over TLS)"
		case insecure:
			return " (the registry speaks plain HTTP: use an http:// --registry-url)"
		}
		return " (the registry speaks plain HTTP: pass " + httpURL +
			" or --force-insecure if you really want an insecure connection)"
	case scheme == "http" && (strings.Contains(msg, "malformed HTTP response") || errors.Is(err, errTLSOnly)):
		return " (the registry speaks TLS: use an https:// --registry-url)"
	case errors.As(err, &unknownAuthority) || strings.Contains(msg, "certificate signed by unknown authority"):
		if opts.CAFile != "" {
			return " (the registry's certificate is not signed by the CA in --certificate-authority=" + opts.CAFile + ")"
		}
		return " (pass --certificate-authority with the CA that signed the registry's certificate)"
	case errors.As(err, &hostnameErr):
		return " (the registry's certificate does not name this host: use the name it was issued for in --registry-url)"
	}
	return ""
}

func newHTTPClient(opts Options, insecure bool) (*http.Client, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case opts.CAFile != "":
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--certificate-authority: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--certificate-authority=%s: no PEM certificate in it", opts.CAFile)
		}
		tlsConfig.RootCAs = pool
	case insecure:
		tlsConfig.InsecureSkipVerify = true //nolint:gosec // oc's rules: only when forced or asked for
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	return &http.Client{Transport: transport, Timeout: timeout}, nil
}

// errTLSOnly is a TLS server's answer to a request in plain HTTP.
var errTLSOnly = errors.New("client sent an HTTP request to an HTTPS server")

// ping asks GET / and, when that does not answer 200, GET /healthz.
func (c *Client) ping(ctx context.Context) error {
	var last error
	for _, path := range []string{"/", "/healthz"} {
		resp, err := c.do(ctx, http.MethodGet, path)
		if err != nil {
			return err // a transport error: the other path will not do better
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			return nil
		case resp.StatusCode == http.StatusBadRequest && strings.Contains(strings.ToLower(string(body)), strings.ToLower(errTLSOnly.Error())):
			// Go's TLS servers (the registry's) answer plain HTTP so.
			return fmt.Errorf("GET %s: %s: %w", path, resp.Status, errTLSOnly)
		}
		last = fmt.Errorf("GET %s: unexpected status %s", path, resp.Status)
	}
	return last
}

func (c *Client) do(ctx context.Context, method, path string) (*http.Response, error) {
	u := *c.base
	u.Path = path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth("unused", c.token)
	return c.http.Do(req)
}

// URL is where the client sends its requests: scheme and host.
func (c *Client) URL() string { return c.base.String() }

// Delete deletes a layer link (DELETE /v2/<repo>/blobs/<d>), a manifest link (DELETE
// /v2/<repo>/manifests/<d>) or a blob (DELETE /admin/blobs/<d>). A 404 means already gone,
// as oc takes it.
func (c *Client) Delete(ctx context.Context, o prune.Object) error {
	var path string
	switch o.Kind {
	case prune.KindLayerLink:
		path = "/v2/" + o.Repository + "/blobs/" + o.Digest.String()
	case prune.KindManifestLink:
		path = "/v2/" + o.Repository + "/manifests/" + o.Digest.String()
	case prune.KindBlob:
		path = "/admin/blobs/" + o.Digest.String()
	default:
		return fmt.Errorf("deleting %s through the registry: not a call the registry serves", o)
	}
	resp, err := c.do(ctx, http.MethodDelete, path)
	if err != nil {
		return fmt.Errorf("deleting %s: %w", o, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		c.log.Debugf("%s was already gone (DELETE %s: 404)", o, path)
		return nil
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	}
	return fmt.Errorf("deleting %s: DELETE %s: %s%s", o, path, resp.Status, registryErrors(resp.Body))
}

// registryErrors reads the registry's error body ({"errors":[{"code":...,"message":...}]}).
func registryErrors(body io.Reader) string {
	var e struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.NewDecoder(io.LimitReader(body, 64<<10)).Decode(&e); err != nil || len(e.Errors) == 0 {
		return ""
	}
	var parts []string
	for _, x := range e.Errors {
		parts = append(parts, x.Code+": "+x.Message)
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

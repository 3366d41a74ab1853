package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CountingProxy is a reverse proxy that counts the requests it passes on, by class, and may
// hold each one back a while first.
type CountingProxy struct {
	// URL is http://127.0.0.1:<port> (https:// for StartCountingProxyTLS).
	URL      string
	srv      *http.Server
	classify func(*http.Request) string
	// delay is added to every request, as a distant server's round trip adds it.
	delay time.Duration

	mu     sync.Mutex
	counts map[string]int
}

// StartCountingProxy listens on a free loopback port and forwards to upstream. The Host
// header is passed on unchanged, so S3 signatures (which cover it) still verify.
func StartCountingProxy(
	upstream *url.URL,
	transport http.RoundTripper,
	classify func(*http.Request) string,
) (*CountingProxy, error) {
	return startCountingProxy(upstream, transport, classify, nil, 0)
}

// StartLatencyProxy is StartCountingProxy, passing each request on only after delay: a server
// on the loopback answers in well under a millisecond, a cloud region's S3 in tens.
func StartLatencyProxy(
	upstream *url.URL,
	transport http.RoundTripper,
	classify func(*http.Request) string,
	delay time.Duration,
) (*CountingProxy, error) {
	return startCountingProxy(upstream, transport, classify, nil, delay)
}

// StartCountingProxyTLS is StartCountingProxy serving HTTPS, with a self-signed certificate
// for 127.0.0.1 that it returns PEM-encoded, for clients to trust: a kubeconfig's credentials
// are sent to a TLS server only (clientcmd drops them for plain HTTP).
func StartCountingProxyTLS(
	upstream *url.URL,
	transport http.RoundTripper,
	classify func(*http.Request) string,
) (*CountingProxy, []byte, error) {
	cert, certPEM, err := selfSignedLoopbackCert()
	if err != nil {
		return nil, nil, err
	}
	p, err := startCountingProxy(upstream, transport, classify, &tls.Config{Certificates: []tls.Certificate{cert}}, 0)
	return p, certPEM, err
}

func startCountingProxy(
	upstream *url.URL,
	transport http.RoundTripper,
	classify func(*http.Request) string,
	tlsConfig *tls.Config,
	delay time.Duration,
) (*CountingProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(upstream)
	if transport != nil {
		rp.Transport = transport
	}
	scheme := "http://"
	if tlsConfig != nil {
		scheme = "https://"
	}
	p := &CountingProxy{URL: scheme + l.Addr().String(), classify: classify, delay: delay, counts: map[string]int{}}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := p.classify(r)
		p.mu.Lock()
		p.counts[c]++
		p.mu.Unlock()
		if p.delay > 0 {
			t := time.NewTimer(p.delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		rp.ServeHTTP(w, r)
	}), TLSConfig: tlsConfig}
	go func() {
		var err error
		if tlsConfig != nil {
			err = p.srv.ServeTLS(l, "", "")
		} else {
			err = p.srv.Serve(l)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err)
		}
	}()
	return p, nil
}

// selfSignedLoopbackCert is a certificate for 127.0.0.1 that is its own CA.
func selfSignedLoopbackCert() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bench counting proxy"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, certPEM, nil
}

// Reset zeroes the counts.
func (p *CountingProxy) Reset() {
	p.mu.Lock()
	p.counts = map[string]int{}
	p.mu.Unlock()
}

// Counts returns the counts since the last Reset.
func (p *CountingProxy) Counts() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := Counts{}
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

// Close stops the proxy.
func (p *CountingProxy) Close() error { return p.srv.Shutdown(context.Background()) }

// Counts are request counts by class.
type Counts map[string]int

// Total is the sum of all classes.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// String is "class=n, ..." in class order.
func (c Counts) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(strconv.Itoa(c[k]))
	}
	return b.String()
}

// ClassifyAPI sorts image API requests: lists of images, lists of image streams, and the rest
// by method and resource.
func ClassifyAPI(r *http.Request) string {
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(p, "/image.openshift.io/v1/images"):
		return "list images"
	case r.Method == http.MethodGet && strings.HasSuffix(p, "/image.openshift.io/v1/imagestreams"):
		return "list imagestreams"
	}
	parts := strings.Split(p, "/")
	return "other " + r.Method + " " + parts[len(parts)-1]
}

// ClassifyS3 sorts S3 requests (path style): LIST, GET, HEAD, PUT, DELETE, DELETE-BATCH
// (POST ?delete), and the rest by method.
func ClassifyS3(r *http.Request) string {
	q := r.URL.Query()
	key := strings.TrimPrefix(r.URL.Path, "/")
	_, object, _ := strings.Cut(key, "/")
	switch {
	case r.Method == http.MethodGet && (object == "" || q.Has("list-type")):
		return "LIST"
	case r.Method == http.MethodPost && q.Has("delete"):
		return "DELETE-BATCH"
	case r.Method == http.MethodPost && (q.Has("uploads") || q.Has("uploadId")):
		return "MULTIPART"
	}
	return r.Method
}

// ClassifyKube sorts the requests to a kube-apiserver (and the APIs it aggregates) by verb and
// resource, as RBAC names them: "list pods", "get imagestreams", "update imagestreams/status",
// "delete images"; a list's every page is one request. Discovery is "discovery".
func ClassifyKube(r *http.Request) string {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var rest []string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		rest = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		rest = parts[3:]
	}
	if len(rest) == 0 {
		return "discovery"
	}
	if rest[0] == "namespaces" && len(rest) >= 3 {
		rest = rest[2:]
	}
	resource, named := rest[0], len(rest) >= 2
	if len(rest) >= 3 {
		resource += "/" + rest[2]
	}
	verb := strings.ToLower(r.Method)
	switch r.Method {
	case http.MethodGet:
		verb = "get"
		if !named {
			verb = "list"
			if r.URL.Query().Get("watch") == "true" {
				verb = "watch"
			}
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodDelete:
		if !named {
			verb = "deletecollection"
		}
	}
	return verb + " " + resource
}

package registryclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hardprune/image-registry/prune"
)

func TestPlanFollowsOcRules(t *testing.T) {
	tests := []struct {
		opts     Options
		schemes  string
		insecure bool
	}{
		{Options{URL: "registry.example.com:5000"}, "https", false},
		{Options{URL: "https://registry.example.com"}, "https", false},
		{Options{URL: "http://registry.example.com"}, "http", true},
		{Options{URL: "registry.example.com", ForceInsecure: true}, "https,http", true},
		{Options{URL: "registry.example.com", KubeconfigInsecure: true}, "https,http", true},
		{Options{URL: "127.0.0.1:5000"}, "https,http", true},
		{Options{URL: "10.0.3.4:5000"}, "https,http", true},
		{Options{URL: "[::1]:5000"}, "https,http", true},
		{Options{URL: "localhost:5000"}, "https,http", true},
		{Options{URL: "172.30.1.1"}, "https,http", true},
		{Options{URL: "8.8.8.8"}, "https", false},
		{Options{URL: "127.0.0.1:5000", CAFile: "ca.crt"}, "https", false},
	}
	for _, tt := range tests {
		_, schemes, insecure, why := plan(tt.opts)
		if strings.Join(schemes, ",") != tt.schemes || insecure != tt.insecure || why == "" {
			t.Errorf("%+v: schemes %v insecure %v (%s); want %s %v", tt.opts, schemes, insecure, why, tt.schemes, tt.insecure)
		}
	}
}

// registry answers the ping and records the deletes, with the statuses given by path.
func registry(t *testing.T, statuses map[string]int) (http.Handler, *[]string) {
	var calls []string
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pass, ok := r.BasicAuth(); !ok || pass != "token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodGet && r.URL.Path == "/" {
			return
		}
		calls = append(calls, r.Method+" "+r.URL.Path)
		code := statuses[r.URL.Path]
		if code == 0 {
			code = http.StatusAccepted
		}
		if code >= 400 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}`))
			return
		}
		w.WriteHeader(code)
	}), &calls
}

func writeCA(t *testing.T, srv *httptest.Server) string {
	p := filepath.Join(t.TempDir(), "ca.crt")
	cert := srv.Certificate()
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// otherCA writes a CA certificate that signed nothing the test servers present.
func otherCA(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "another CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "other-ca.crt")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDeletesAreOcCalls(t *testing.T) {
	d := digest.FromString("layer")
	h, calls := registry(t, map[string]int{
		"/v2/ns/app/manifests/" + d.String(): http.StatusMethodNotAllowed,
		"/admin/blobs/" + d.String():         http.StatusNotFound,
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := Connect(context.Background(), Options{URL: srv.URL, Token: "token"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Delete(ctx, prune.Object{Kind: prune.KindLayerLink, Repository: "ns/app", Digest: d}); err != nil {
		t.Errorf("layer link: %v", err)
	}
	err = c.Delete(ctx, prune.Object{Kind: prune.KindManifestLink, Repository: "ns/app", Digest: d})
	if err == nil || !strings.Contains(err.Error(), "405") || !strings.Contains(err.Error(), "UNSUPPORTED") {
		t.Errorf("manifest link refused: %v", err)
	}
	if err := c.Delete(ctx, prune.Object{Kind: prune.KindBlob, Digest: d}); err != nil {
		t.Errorf("blob already gone: %v", err)
	}
	if err := c.Delete(ctx, prune.Object{Kind: prune.KindRepository, Repository: "ns/app"}); err == nil {
		t.Error("a repository has no call, want an error")
	}
	want := []string{
		"DELETE /v2/ns/app/blobs/" + d.String(),
		"DELETE /v2/ns/app/manifests/" + d.String(),
		"DELETE /admin/blobs/" + d.String(),
	}
	if strings.Join(*calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(*calls, "\n"), strings.Join(want, "\n"))
	}
}

func TestConnectSaysWhatToPass(t *testing.T) {
	h, _ := registry(t, nil)
	tlsSrv := httptest.NewTLSServer(h)
	defer tlsSrv.Close()
	plain := httptest.NewServer(h)
	defer plain.Close()
	tlsHost := strings.TrimPrefix(tlsSrv.URL, "https://")
	plainHost := strings.TrimPrefix(plain.URL, "http://")
	ctx := context.Background()

	tests := []struct {
		name    string
		opts    Options
		errHas  string // empty: connects
		wantURL string
	}{
		{"right CA", Options{URL: tlsHost, CAFile: writeCA(t, tlsSrv)}, "", tlsSrv.URL},
		{"wrong CA", Options{URL: tlsHost, CAFile: otherCA(t)}, "not signed by the CA in --certificate-authority", ""},
		{"plain HTTP asked as https", Options{URL: "https://" + plainHost}, "use an http:// --registry-url", ""},
		{
			// Neither remedy of the secure default goes with --certificate-authority (usage errors).
			"plain HTTP asked as https with a CA",
			Options{URL: "https://" + plainHost, CAFile: writeCA(t, tlsSrv)},
			"(the registry speaks plain HTTP: pass --registry-url=http://" + plainHost +
				" without --certificate-authority, which is for https only, or serve the registry over TLS)",
			"",
		},
		{"TLS asked as http", Options{URL: "http://" + tlsHost}, "the registry speaks TLS", ""},
		{"plain HTTP on loopback falls back", Options{URL: plainHost}, "", plain.URL},
		{"forced insecure over TLS", Options{URL: tlsHost, ForceInsecure: true}, "", tlsSrv.URL},
		{"no token", Options{URL: tlsHost}, "needs a token", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name != "no token" {
				tt.opts.Token = "token"
			}
			c, err := Connect(ctx, tt.opts)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("error %v, want %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.URL() != tt.wantURL {
				t.Errorf("reached %s, want %s", c.URL(), tt.wantURL)
			}
		})
	}
}

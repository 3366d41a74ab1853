package harness

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certValidity is long enough for any test run and short enough that a leaked key does not
// matter; the certificates live in temporary directories.
const certValidity = 24 * time.Hour

// certAuthority is a CA that signs the certificates of one purpose (front proxy, serving).
type certAuthority struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

// newCertAuthority creates a self-signed CA. ECDSA P-256: generating RSA keys takes a
// noticeable part of a start-up on a slow machine, and every Kubernetes component accepts
// ECDSA.
func newCertAuthority(commonName string) (*certAuthority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serialNumber(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating CA %s: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &certAuthority{cert: cert, key: key, pem: pemCert(der)}, nil
}

// issue signs a leaf certificate for commonName with the given extended usage and names,
// and returns it (PEM, followed by the CA's, as servers send their chain) and its key (PEM).
func (ca *certAuthority) issue(
	commonName string,
	usage x509.ExtKeyUsage,
	dnsNames []string,
	ips []net.IP,
) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serialNumber(),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing certificate %s: %w", commonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return append(pemCert(der), ca.pem...), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// writeIssued issues a certificate (see issue) and writes it and its key to certPath and
// keyPath.
func (ca *certAuthority) writeIssued(
	certPath, keyPath, commonName string,
	usage x509.ExtKeyUsage,
	dnsNames []string,
	ips []net.IP,
) error {
	certPEM, keyPEM, err := ca.issue(commonName, usage, dnsNames, ips)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, keyPEM, 0o600)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func serialNumber() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		// crypto/rand does not fail on supported platforms (Go 1.24+ crashes instead).
		panic(err)
	}
	return n
}

// TestCA is a CA for a test's own servers (a registry served over TLS): it issues serving
// certificates, and clients trust it through CertPath or CertPool.
type TestCA struct {
	// CertPath is the CA's certificate (PEM): what a client passes as its CA bundle
	// (--certificate-authority).
	CertPath string
	ca       *certAuthority
}

// NewTestCA creates a CA named commonName and writes its certificate to <dir>/ca.crt.
func NewTestCA(dir, commonName string) (*TestCA, error) {
	ca, err := newCertAuthority(commonName)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(path, ca.pem, 0o644); err != nil {
		return nil, err
	}
	return &TestCA{CertPath: path, ca: ca}, nil
}

// Issue signs a serving certificate for the given names and addresses, writes it (followed by
// the CA's, as a server sends its chain) and its key into a new directory under dir, and
// returns their paths.
func (c *TestCA) Issue(dir string, dnsNames []string, ips []net.IP) (certFile, keyFile string, err error) {
	certDir, err := os.MkdirTemp(dir, "serving-")
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key")
	if err := c.ca.writeIssued(certFile, keyFile, "e2e-server", x509.ExtKeyUsageServerAuth, dnsNames, ips); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// CertPool is a pool holding the CA alone, for a test's clients.
func (c *TestCA) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(c.ca.cert)
	return pool
}

// Package testutil holds small helpers that tests of several packages share. It imports
// nothing of the project, so any package's tests can use it.
package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer that goroutines may write while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// SilentKubeconfig starts a TCP listener that accepts connections and never answers (an API
// server that hangs), and writes a kubeconfig naming it. It returns the kubeconfig's path and
// the server's URL; both go away with the test.
func SilentKubeconfig(t testing.TB) (kubeconfig, server string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	server = "http://" + l.Addr().String()
	kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	content := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters: [{name: silent, cluster: {server: %q}}]\n"+
		"users: [{name: u, user: {token: any}}]\ncontexts: [{name: c, context: {cluster: silent, user: u}}]\ncurrent-context: c\n", server)
	if err := os.WriteFile(kubeconfig, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return kubeconfig, server
}

// OpenShiftStockConfig is the configuration file OpenShift's registry image ships
// (images/dockerregistry/config.yml in openshift/image-registry), comments left out: the
// configuration tests and the end-to-end start-up test read it unchanged.
const OpenShiftStockConfig = `version: 0.1
log:
  level: debug
http:
  addr: :5000
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /registry
  delete:
    enabled: true
auth:
  openshift: {}
openshift:
  version: 1.0
  auth:
    realm: openshift
  audit:
    enabled: false
  metrics:
    enabled: false
  requests:
    read:
      maxrunning: 0
      maxinqueue: 0
      maxwaitinqueue: 0
    write:
      maxrunning: 0
      maxinqueue: 0
      maxwaitinqueue: 0
  quota:
    enabled: false
    cachettl: 1m
  cache:
    blobrepositoryttl: 10m
  pullthrough:
    enabled: true
    mirror: true
  compatibility:
    acceptschema2: true
`

package imageapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sirupsen/logrus"
)

// TestConnectReachesEverythingBounded: one kubeconfig reaches the image API, the Kubernetes
// APIs and the OpenShift apps and build APIs, every request bounded by the same timeout.
func TestConnectReachesEverythingBounded(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)

	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	config := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "` + srv.URL + `"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	if err := os.WriteFile(kubeconfig, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(clientcmd.RecommendedConfigPathEnvVar, kubeconfig)
	quiet := logrus.New()
	quiet.SetOutput(&syncBuffer{})
	c, err := Connect("", ConnectOptions{Timeout: 50 * time.Millisecond, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opts := metav1.ListOptions{Limit: 1}
	for what, list := range map[string]func() error{
		"listing pods, page 1": func() error {
			_, err := c.Kube.CoreV1().Pods("").List(ctx, opts)
			return err
		},
		"listing deployment configs, page 1": func() error {
			_, err := c.Apps.DeploymentConfigs("ns").List(ctx, opts)
			return err
		},
		"listing build configs, page 1": func() error {
			_, err := c.Builds.BuildConfigs("").List(ctx, opts)
			return err
		},
		"listing image streams, page 1": func() error {
			_, err := c.Client.ImageStreams("").List(ctx, opts)
			return err
		},
	} {
		start := time.Now()
		err := list()
		if !errors.Is(err, ErrNoAnswer) || !strings.Contains(err.Error(), "("+what+")") {
			t.Errorf("%s: err %v", what, err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("%s: took %s", what, time.Since(start))
		}
	}
	if c.Host != srv.URL || !strings.HasPrefix(c.Source, "KUBECONFIG=") {
		t.Errorf("host %s, source %s", c.Host, c.Source)
	}
}

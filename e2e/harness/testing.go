package harness

import (
	"context"
	"errors"
	"os"
	"testing"
)

// RequireBinaries skips the test when imageapiserver or etcd is missing, or
// fails it when E2E_REQUIRED=1 (CI, where a missing build is a bug).
func RequireBinaries(t testing.TB) {
	t.Helper()
	for _, find := range []func() (string, error){ImageAPIServerBinary, EtcdBinary} {
		if _, err := find(); err != nil {
			skipOrFail(t, err)
		}
	}
}

// RequireKubeBinaries is RequireBinaries plus kube-apiserver.
func RequireKubeBinaries(t testing.TB) {
	t.Helper()
	RequireBinaries(t)
	if _, err := KubeAPIServerBinary(); err != nil {
		skipOrFail(t, err)
	}
}

func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrBinaryMissing) && os.Getenv("E2E_REQUIRED") != "1" {
		t.Skipf("skipping end-to-end test: %v (set E2E_REQUIRED=1 to fail instead)", err)
	}
	t.Fatal(err)
}

// StartEtcdT starts etcd in a fresh t.TempDir and stops it in t.Cleanup,
// printing the end of its log if the test failed.
func StartEtcdT(t testing.TB) *Etcd {
	t.Helper()
	e, err := StartEtcd(context.Background(), t.TempDir(), nil)
	if err != nil {
		skipOrFail(t, err)
	}
	cleanupProcess(t, e.Process)
	return e
}

// StartImageAPIServerT starts imageapiserver against etcd (in insecure mode
// unless opts says otherwise) in a fresh t.TempDir and stops it in
// t.Cleanup, printing the end of its log if the test failed.
func StartImageAPIServerT(t testing.TB, etcd *Etcd, opts ImageAPIServerOptions) *ImageAPIServer {
	t.Helper()
	if opts.EtcdEndpoint == "" {
		opts.EtcdEndpoint = etcd.Endpoint
	}
	s, err := StartImageAPIServer(context.Background(), t.TempDir(), nil, opts)
	if err != nil {
		skipOrFail(t, err)
	}
	cleanupProcess(t, s.Process)
	return s
}

// StartImageAPIT starts etcd and imageapiserver in insecure mode.
func StartImageAPIT(t testing.TB) *ImageAPIServer {
	t.Helper()
	RequireBinaries(t)
	return StartImageAPIServerT(t, StartEtcdT(t), ImageAPIServerOptions{})
}

// StartKubeAPIServerT starts kube-apiserver against etcd in a fresh
// t.TempDir and stops it in t.Cleanup, printing the end of its log if the
// test failed.
func StartKubeAPIServerT(t testing.TB, etcd *Etcd, opts KubeAPIServerOptions) *KubeAPIServer {
	t.Helper()
	if opts.EtcdEndpoint == "" {
		opts.EtcdEndpoint = etcd.Endpoint
	}
	s, err := StartKubeAPIServer(context.Background(), t.TempDir(), nil, opts)
	if err != nil {
		skipOrFail(t, err)
	}
	cleanupProcess(t, s.Process)
	return s
}

// StartClusterT starts a Cluster (etcd, kube-apiserver, the image API aggregated behind
// it, OpenShift's workload APIs) in a fresh t.TempDir and stops it in t.Cleanup, printing
// the end of each log if the test failed.
func StartClusterT(t testing.TB) *Cluster {
	t.Helper()
	return StartClusterWithOptionsT(t, ClusterOptions{})
}

// StartClusterWithOptionsT is StartClusterT with opts (see StartCluster).
func StartClusterWithOptionsT(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	RequireKubeBinaries(t)
	etcd := StartEtcdT(t)
	kube := StartKubeAPIServerT(t, etcd, KubeAPIServerOptions{ExtraArgs: opts.KubeExtraArgs})
	c := &Cluster{Etcd: etcd, KubeAPIServer: kube}
	err := c.startImageAPI(context.Background(), opts, func() error {
		c.ImageAPI = StartImageAPIServerT(t, etcd, c.imageAPIOptions(opts))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func cleanupProcess(t testing.TB, p *Process) {
	t.Cleanup(func() {
		err := p.Stop()
		if err != nil {
			t.Errorf("%v", err)
		}
		if t.Failed() {
			t.Logf("last lines of %s (%s):\n%s", p.Name, p.LogPath, LogTail(p.LogPath, 150))
		}
	})
}

// StartS3T starts versitygw in a fresh t.TempDir and stops it in t.Cleanup, printing the end
// of its log if the test failed.
func StartS3T(t testing.TB) *S3 {
	t.Helper()
	if _, err := VersityGWBinary(); err != nil {
		skipOrFail(t, err)
	}
	s, err := StartS3(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cleanupProcess(t, s.Process)
	return s
}

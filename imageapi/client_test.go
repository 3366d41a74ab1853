package imageapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	imagev1 "github.com/openshift/api/image/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/internal/testutil"
)

type syncBuffer = testutil.SyncBuffer

// boundedClient is an image API client of srv whose requests are bounded by timeout.
func boundedClient(t *testing.T, srv *httptest.Server, timeout time.Duration) (*Lister, *syncBuffer) {
	t.Helper()
	var out syncBuffer
	log := logrus.New()
	log.SetOutput(&out)
	log.SetLevel(logrus.WarnLevel)
	cfg := &rest.Config{Host: srv.URL}
	cfg.Wrap(BoundedTransport(srv.URL, ConnectOptions{Timeout: timeout, Log: log}))
	client, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Lister{Client: client, PageSize: 1, Log: log}, &out
}

const emptyImageList = `{"kind":"ImageList","apiVersion":"image.openshift.io/v1","metadata":{},"items":[]}`

// TestBoundedTransport: a request with no complete answer within the timeout is tried again, a
// bounded number of times, each wait logged; the caller never hangs.
func TestBoundedTransport(t *testing.T) {
	defer func(d time.Duration) { WaitReportInterval = d }(WaitReportInterval)
	WaitReportInterval = 40 * time.Millisecond
	release := make(chan struct{})
	defer close(release)

	t.Run("silent once, then answers", func(t *testing.T) {
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				select {
				case <-r.Context().Done():
				case <-release:
				}
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(emptyImageList))
		}))
		defer srv.Close()
		l, out := boundedClient(t, srv, 200*time.Millisecond)
		if err := l.EachImage(context.Background(), func(*imagev1.Image) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if n.Load() != 2 ||
			!strings.Contains(
				out.String(),
				"did not answer within 200ms (listing images, page 1); trying again (attempt 2 of 3)",
			) ||
			!strings.Contains(out.String(), "still waiting for the image API at "+srv.URL+" (listing images, page 1)") {
			t.Errorf("%d requests, log:\n%s", n.Load(), out.String())
		}
	})

	t.Run("headers, then a body that never ends", func(t *testing.T) {
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"kind":"ImageList","items":[`))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer srv.Close()
		l, _ := boundedClient(t, srv, 150*time.Millisecond)
		start := time.Now()
		err := l.EachImage(context.Background(), func(*imagev1.Image) error { return nil })
		if !errors.Is(err, ErrNoAnswer) || n.Load() != 3 ||
			!strings.Contains(err.Error(), "within 150ms (listing images, page 1), 3 attempts") {
			t.Errorf("%d requests, err %v", n.Load(), err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("took %s", time.Since(start))
		}
	})

	t.Run("a write is not repeated", func(t *testing.T) {
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			io.Copy(io.Discard, r.Body) // the server notices a closed connection only after the body
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer srv.Close()
		l, _ := boundedClient(t, srv, 100*time.Millisecond)
		_, err := l.Client.ImageStreams("ns").
			Create(context.Background(), &imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{})
		if !errors.Is(err, ErrNoAnswer) || n.Load() != 1 ||
			!strings.Contains(
				err.Error(),
				"(POST /apis/image.openshift.io/v1/namespaces/ns/imagestreams), not tried again",
			) {
			t.Errorf("%d requests, err %v", n.Load(), err)
		}
	})

	t.Run("the caller's cancellation is not retried", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer srv.Close()
		l, _ := boundedClient(t, srv, time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := l.EachImage(ctx, func(*imagev1.Image) error { return nil })
		if err == nil || errors.Is(err, ErrNoAnswer) || time.Since(start) > 5*time.Second {
			t.Errorf("err %v after %s", err, time.Since(start))
		}
	})
}

func TestWithRateLimitRaisesClientGoDefaultOnly(t *testing.T) {
	orig := &rest.Config{Host: "https://api"}
	got := WithRateLimit(orig)
	if got.QPS != clientQPS || got.Burst != clientBurst {
		t.Errorf("QPS, burst %v, %d; want %v, %d", got.QPS, got.Burst, float32(clientQPS), clientBurst)
	}
	if orig.QPS != 0 {
		t.Error("WithRateLimit changed the configuration it was given")
	}
	own := WithRateLimit(&rest.Config{QPS: 7, Burst: 9})
	if own.QPS != 7 || own.Burst != 9 {
		t.Errorf("a configuration's own limit became %v, %d", own.QPS, own.Burst)
	}
}

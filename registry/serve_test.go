package registry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/health"
)

// Distribution's app panics on a configuration it cannot use; the administrator gets a line.
func TestNewRegistryTurnsPanicsIntoErrors(t *testing.T) {
	dcfg, err := configuration.Parse(strings.NewReader(
		"version: 0.1\nhttp:\n  addr: 127.0.0.1:0\nstorage:\n  inmemory: {}\nauth:\n  nosuchcontroller: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := newRegistry(context.Background(), dcfg)
	if reg != nil || err == nil {
		t.Fatalf("registry %v, err %v", reg, err)
	}
	if !strings.Contains(err.Error(), "nosuchcontroller") || strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %q, want one line naming the controller", err)
	}
}

// /healthz answers without credentials, 503 while a health check fails; the rest goes on.
func TestHealthz(t *testing.T) {
	var failing atomic.Bool
	health.RegisterFunc("test-healthz", func(context.Context) error {
		if failing.Load() {
			return errors.New("storage unreachable")
		}
		return nil
	})
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := front(next, nil)
	get := func(path string) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w.Code
	}
	if got := get(HealthzPath); got != http.StatusOK {
		t.Errorf("healthy: %d", got)
	}
	if got := get("/v2/"); got != http.StatusTeapot {
		t.Errorf("other paths: %d, want the app's", got)
	}
	failing.Store(true)
	defer failing.Store(false)
	if got := get(HealthzPath); got != http.StatusServiceUnavailable {
		t.Errorf("a failing check: %d", got)
	}
}

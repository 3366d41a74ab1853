package bench

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// The latency proxy holds every request back by its delay, and counts it.
func TestLatencyProxy(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	const delay = 50 * time.Millisecond
	p, err := StartLatencyProxy(u, nil, func(*http.Request) string { return "any" }, delay)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for range 3 {
		start := time.Now()
		resp, err := http.Get(p.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if took := time.Since(start); took < delay {
			t.Errorf("a request through the proxy took %s, less than its delay %s", took, delay)
		}
	}
	if n := p.Counts()["any"]; n != 3 {
		t.Errorf("counted %d requests, want 3", n)
	}
}

package bench

import (
	"context"
	"errors"
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
	// URL is http://127.0.0.1:<port>.
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
	return StartLatencyProxy(upstream, transport, classify, 0)
}

// StartLatencyProxy is StartCountingProxy, passing each request on only after delay: a server
// on the loopback answers in well under a millisecond, a cloud region's S3 in tens.
func StartLatencyProxy(
	upstream *url.URL,
	transport http.RoundTripper,
	classify func(*http.Request) string,
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
	p := &CountingProxy{URL: "http://" + l.Addr().String(), classify: classify, delay: delay, counts: map[string]int{}}
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
	})}
	go func() {
		if err := p.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err)
		}
	}()
	return p, nil
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

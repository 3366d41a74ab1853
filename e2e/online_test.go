package e2e

// The online prune (issue 13): -prune=delete while registry replicas keep serving, through a
// protocol every replica speaks. TestOnlinePruneSoak pushes, pulls and prunes at once, then
// checks that nothing a client was told is stored got lost; TestOnlinePruneRefusesOldProtocol
// checks that a replica not taking part stops the online prune before it deletes anything.
//
// The soak's knobs (environment):
//
//	E2E_SOAK_DURATION    how long each subtest pushes, pulls and prunes (a Go duration;
//	                     default 3m).
//	E2E_SOAK_PRUNE_ARGS  extra arguments of every prune run, space separated. With
//	                     -prune-ignore-read-only the prune deletes while the replicas serve,
//	                     without any protocol, as today's binary can: the soak then loses
//	                     data and fails, which shows that it can fail:
//	                       E2E_SOAK_DURATION=45s E2E_SOAK_PRUNE_ARGS=-prune-ignore-read-only \
//	                       E2E_REQUIRED=1 go test -count=1 -run 'TestOnlinePruneSoak/filesystem-inmemory' ./e2e/
//	                     Adding -prune-keep-younger-than=1h (the last value wins) makes the
//	                     runs delete nothing: a control in which every push and pull passes
//	                     and only the checks of what the prune removes fail.
//
// A subtest takes the duration plus about 20s when nothing is lost (start-up, the pushes under
// way, the checks), up to a few minutes more when much is (a pull of a lost image waits on the
// registry's image API lookups), so the four need a -timeout above go test's default 10m
// (make e2e gives 30m). -short skips the soak.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	mathrand "math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/storage"
)

const (
	soakPushers = 3
	soakPullers = 2
	// The orphan pool: images pushed, then removed from the image API, spread over
	// repositories whose streams are deleted too (the prune removes those repositories whole).
	// The pushers reuse the pool's layers, so that the prune's decision "orphan" races with a
	// push that makes the layer referenced again.
	soakPoolImages  = 6
	soakDoomedRepos = 3
	// soakOpTimeout bounds one push or pull; soakPruneTimeout one prune run.
	soakOpTimeout    = time.Minute
	soakPruneTimeout = 3 * time.Minute
	// soakMaxPushFailureShare: a push may fail now and then (the protocol may turn a push away
	// rather than lose it), but rarely.
	soakMaxPushFailureShare = 0.10
	// soakMaxFailedRunsInARow ends the soak early: the prune does not run, so pushing on for
	// minutes proves nothing (and the test has failed already).
	soakMaxFailedRunsInARow = 3
	// soakListed caps each list of failures in the test output.
	soakListed = 20
)

// replicasPath is where serving replicas advertise themselves, one object per replica, JSON
// with the protocol version they speak.
var replicasPath = path.Join(storage.RootPath, "hardprune", "replicas")

// onlineProtocolEnv makes a registry advertise protocol 1: a replica that does not take part
// in the online prune.
const onlineProtocolEnv = "HARDPRUNE_ONLINE_PROTOCOL=1"

// TestOnlinePruneSoak: two replicas serve one storage, read-write, while pushers push images
// that reuse orphaned layers (into fresh repositories and into repositories being removed),
// pullers check what was pushed, and -prune=delete runs again and again without a grace
// period. Afterwards every image a client was told is pushed, and every image the image API
// names, pulls byte for byte from both replicas; the orphans nobody reused are gone; and
// -restore=check finds nothing broken.
func TestOnlinePruneSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak runs for minutes")
	}
	duration := soakDuration(t)
	for _, store := range []string{"filesystem", "s3"} {
		for _, cache := range []string{"inmemory", "redis"} {
			t.Run(store+"-"+cache, func(t *testing.T) {
				var e *env
				if store == "s3" {
					e = newS3Env(t)
				} else {
					e = newEnv(t)
				}
				setup := inMemoryCacheSetup(e)
				if cache == "redis" {
					setup = redisCacheSetup(e, harness.StartRedisT(t))
				}
				runSoak(t, e, setup, duration)
			})
		}
	}
}

// TestOnlinePruneRefusesOldProtocol: with a replica advertising protocol 1 (one that does not
// take part), -prune=delete on a read-write registry refuses, says why, and deletes nothing.
func TestOnlinePruneRefusesOldProtocol(t *testing.T) {
	e := newEnv(t)
	setup := inMemoryCacheSetup(e)
	e.startRegistryWith(setup)
	e.startReplica(setup, onlineProtocolEnv)

	e.mustPush("ns/keep:v1", image(t, "online-keep", "online-kept-layer")) // a prune never empties storage
	orphan := image(t, "online-orphan", "online-orphan-layer")
	d := e.mustPush("ns/orphan:v1", orphan)
	mustDeleteImage(t, e, d)
	if err := e.images.ImageStreams("ns").Delete(context.Background(), "orphan", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	ads := e.waitAdvertised(2, 15*time.Second)
	if len(ads) != 2 || !slices.Contains(slices.Collect(maps.Values(ads)), 1) {
		t.Errorf("advertised replicas %v, want two, one on protocol 1", ads)
	}
	before := registryData(e.snapshot())
	res := e.prune(nil, "-prune=delete", noGrace, anyShare)
	t.Logf("prune: exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	if res.ExitCode == 0 {
		t.Error("-prune=delete ran with a replica on protocol 1")
	}
	if !strings.Contains(res.Stderr, "protocol 1") || !strings.Contains(res.Stderr, "protocol 2") {
		t.Errorf("stderr names neither the replica's protocol 1 nor the protocol 2 it needs:\n%s", res.Stderr)
	}
	if after := registryData(e.snapshot()); after != before {
		t.Errorf("the refused prune changed storage:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for _, h := range blobsOf(t, orphan) {
		if !e.blobExists(h) {
			t.Errorf("orphan blob %s was deleted", h)
		}
	}
}

// soakDuration is E2E_SOAK_DURATION, 3 minutes by default.
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("E2E_SOAK_DURATION")
	if v == "" {
		return 3 * time.Minute
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("E2E_SOAK_DURATION=%s: want a positive duration such as 3m", v)
	}
	return d
}

// runSoak is one subtest of TestOnlinePruneSoak on e's storage with setup's cache.
func runSoak(t *testing.T, e *env, setup cacheSetup, duration time.Duration) {
	begun := time.Now()
	e.startRegistryWith(setup)
	replicas := []*harness.Registry{e.reg, e.startReplica(setup)}
	extra := strings.Fields(os.Getenv("E2E_SOAK_PRUNE_ARGS"))
	s := &soak{
		pruneArgs: append(append([]string{"-prune=delete", noGrace, anyShare}, extra...), e.reg.ConfigPath),
		pruneEnv:  e.regEnv,
		// Without the override, a run is the online prune, which says so.
		online: !slices.Contains(extra, "-prune-ignore-read-only"),
	}
	for _, r := range replicas {
		s.hosts = append(s.hosts, r.Host)
	}

	// Referenced all along, so that no run finds only garbage (which the prune refuses).
	keep := image(t, "soak-keep", "soak-kept-layer")
	keepDigest := e.mustPush("soak/keep:v1", keep)
	pool := seedOrphanPool(t, e, s)
	t.Logf("orphan pool: %d layers in %d images over %v; prune args %q",
		len(s.pool), soakPoolImages, s.doomed, s.pruneArgs[:len(s.pruneArgs)-1])
	if ads := e.waitAdvertised(len(replicas), 5*time.Second); len(ads) != len(replicas) {
		t.Logf("advertised replicas %v (fewer than %d: this binary may not speak the online protocol)", ads, len(replicas))
	} else {
		t.Logf("advertised replicas: %v", ads)
	}

	// The soak. The pushes, pulls and runs under way when it ends finish (each bounded).
	started := time.Now()
	ctx, stop := context.WithTimeout(context.Background(), duration)
	defer stop()
	var wg sync.WaitGroup
	for p := range soakPushers {
		wg.Go(func() { s.pushLoop(ctx, p) })
	}
	for range soakPullers {
		wg.Go(func() { s.pullLoop(ctx) })
	}
	wg.Go(func() { s.pruneLoop(ctx, stop) })
	wg.Wait()
	soaked := time.Since(started)
	checksStarted := time.Now()

	final := s.runPrune()
	final.n = len(s.runs) + 1
	s.runs = append(s.runs, final)
	if p := final.problem(s.online); p != "" {
		t.Errorf("the final prune run: %s\n%s", p, lastLines(final.res.Stderr, 20))
	} else {
		t.Logf("final prune run (%s):\n%s", final.took.Round(time.Millisecond), final.res.Stdout)
	}

	failedPushes, retriedOK := s.retryFailedPushes(t)
	s.pushed = append(s.pushed, pushedImage{repo: "soak/keep", tag: "v1", digest: keepDigest})

	pullFailures := checkPulls(t, e, s)
	removed, kept := 0, 0
	if final.problem(s.online) == "" {
		removed, kept = checkOrphansGone(t, e, s, pool)
		checkRestore(t, e)
	} else {
		t.Log("the final prune run failed: what it should have removed is not checked, nor -restore=check run")
	}

	var runFailures []string
	deleted := 0
	for _, r := range s.runs {
		if p := r.problem(s.online); p != "" {
			runFailures = append(runFailures, fmt.Sprintf("run %d (%s after the start): %s", r.n, r.started.Sub(started).Round(time.Second), p))
		}
		deleted += r.deletedBlobs()
	}
	reportList(t, t.Errorf, "prune runs failed", runFailures)
	reportList(t, t.Errorf, "pulls of pushed images failed during the soak", s.pullFailures)
	reportList(t, t.Logf, "pushes failed during the soak", failedPushes)
	if total := len(s.pushes); total == 0 {
		t.Error("no push was made")
	} else if share := float64(len(failedPushes)) / float64(total); share > soakMaxPushFailureShare {
		t.Errorf("%d of %d pushes failed (%.1f%%, at most %.0f%% allowed)", len(failedPushes), total, 100*share, 100*soakMaxPushFailureShare)
	}
	t.Logf("took: setup %s, soak %s, final prune and checks %s; pushes took %s (median), %s (slowest); slowest pull %s",
		started.Sub(begun).Round(time.Second), soaked.Round(time.Second), time.Since(checksStarted).Round(time.Second),
		s.pushTime(0.5), s.pushTime(1), s.slowestPull.Round(time.Millisecond))
	t.Logf("soak summary (%s, %s): pushes %d ok, %d failed (%d of them ok when retried); "+
		"pulls %d ok, %d failed during the soak, %d failed afterwards; prune runs %d (%d failed, %d blobs deleted); "+
		"orphans %d removed, %d kept",
		t.Name(), soaked.Round(time.Second), len(s.pushes)-len(failedPushes), len(failedPushes), retriedOK,
		s.pulls, len(s.pullFailures), pullFailures, len(s.runs), len(runFailures), deleted, removed, kept)
}

// pushTime is the q-quantile (0 to 1) of the soak's push durations.
func (s *soak) pushTime(q float64) time.Duration {
	var took []time.Duration
	for _, p := range s.pushes {
		took = append(took, p.took)
	}
	if len(took) == 0 {
		return 0
	}
	slices.Sort(took)
	return took[int(q*float64(len(took)-1))].Round(time.Millisecond)
}

// soak is one soak: the replicas, the prune's command line, the orphan pool, and what the
// clients and the prune saw. The loops run concurrently; mu guards the records.
type soak struct {
	hosts     []string // the replicas, host:port
	pruneArgs []string // every run's arguments, the configuration last
	pruneEnv  []string
	online    bool       // a run that exits 0 must say it ran online
	doomed    []string   // repositories whose image streams were deleted
	pool      []v1.Layer // the orphaned layers, pushed again by the pushers

	mu           sync.Mutex
	pushes       []pushRecord
	pushed       []pushedImage // the successful pushes
	pulls        int           // successful pulls
	pullFailures []string
	slowestPull  time.Duration
	runs         []pruneRun
}

// pushedImage is an image a push reported as stored.
type pushedImage struct {
	repo, tag string
	digest    v1.Hash
	reused    []v1.Hash // the pool layers it contains
}

func (p pushedImage) String() string { return p.repo + ":" + p.tag + "@" + p.digest.String() }

// pushRecord is one push: to which replica, and how it ended. img is kept, to push it again,
// when it failed.
type pushRecord struct {
	pushedImage
	img     v1.Image
	replica int
	err     error
	took    time.Duration
}

// seedOrphanPool pushes the pool's images into the doomed repositories, then removes them from
// the image API as the ordinary prune and a user would: the Images, and the image streams.
// It returns every blob of the pool (manifests, configs, layers).
func seedOrphanPool(t *testing.T, e *env, s *soak) []v1.Hash {
	t.Helper()
	for i := range soakDoomedRepos {
		s.doomed = append(s.doomed, fmt.Sprintf("soak/doomed-%d", i))
	}
	var blobs []v1.Hash
	for i := range soakPoolImages {
		var layers []v1.Layer
		for range 3 + mathrand.IntN(2) {
			layers = append(layers, randomLayer(4<<10, 100<<10))
		}
		img, err := imageOf(fmt.Sprintf("soak-pool-%d", i), layers)
		if err != nil {
			t.Fatal(err)
		}
		d := e.mustPush(fmt.Sprintf("%s:pool-%d", s.doomed[i%len(s.doomed)], i), img)
		mustDeleteImage(t, e, d)
		s.pool = append(s.pool, layers...)
		blobs = append(blobs, blobsOf(t, img)...)
	}
	for _, repo := range s.doomed {
		ns, stream, _ := strings.Cut(repo, "/")
		if err := e.images.ImageStreams(ns).Delete(context.Background(), stream, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return blobs
}

// pushLoop pushes new images until ctx ends: one fresh layer, one to three of the pool's,
// a unique config, to a random replica, into a fresh repository or a doomed one. Either kind
// is one the prune removes whole when its listing of the image API comes before the push
// records the image stream: a doomed repository until the first push recreates its stream, a
// fresh one in every run.
func (s *soak) pushLoop(ctx context.Context, pusher int) {
	for n := 0; ctx.Err() == nil; n++ {
		rec := s.newPush(pusher, n)
		if rec.err == nil {
			start := time.Now()
			rec.err = pushImage(s.hosts[rec.replica], rec.repo+":"+rec.tag, rec.img)
			rec.took = time.Since(start)
		}
		if rec.err == nil {
			rec.img = nil // only a failed push is pushed again
		}
		s.mu.Lock()
		s.pushes = append(s.pushes, rec)
		if rec.err == nil {
			s.pushed = append(s.pushed, rec.pushedImage)
		}
		s.mu.Unlock()
	}
}

// newPush builds the n-th image of a pusher and picks where it goes.
func (s *soak) newPush(pusher, n int) pushRecord {
	rec := pushRecord{replica: mathrand.IntN(len(s.hosts))}
	rec.tag = fmt.Sprintf("p%d-%d", pusher, n)
	rec.repo = fmt.Sprintf("soak/fresh-%d-%d", pusher, n)
	if mathrand.IntN(2) == 0 {
		rec.repo = s.doomed[mathrand.IntN(len(s.doomed))]
	}
	layers := []v1.Layer{randomLayer(2<<10, 32<<10)}
	for _, i := range mathrand.Perm(len(s.pool))[:1+mathrand.IntN(3)] {
		layers = append(layers, s.pool[i])
		d, _ := s.pool[i].Digest() // static layers know their digest
		rec.reused = append(rec.reused, d)
	}
	rec.img, rec.err = imageOf(fmt.Sprintf("soak-%d-%d", pusher, n), layers)
	if rec.err == nil {
		rec.digest, rec.err = rec.img.Digest()
	}
	return rec
}

// pullLoop pulls random pushed images from random replicas until ctx ends.
func (s *soak) pullLoop(ctx context.Context) {
	for ctx.Err() == nil {
		s.mu.Lock()
		var im pushedImage
		ok := len(s.pushed) > 0
		if ok {
			im = s.pushed[mathrand.IntN(len(s.pushed))]
		}
		s.mu.Unlock()
		if !ok {
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		replica := mathrand.IntN(len(s.hosts))
		start := time.Now()
		err := pullVerified(s.hosts[replica], im.repo, im.digest)
		took := time.Since(start)
		s.mu.Lock()
		s.slowestPull = max(s.slowestPull, took)
		if err != nil {
			s.pullFailures = append(s.pullFailures, fmt.Sprintf("%s from replica %d: %v", im, replica, err))
		} else {
			s.pulls++
		}
		s.mu.Unlock()
	}
}

// pruneLoop runs the prune again and again until ctx ends, or ends the soak (stop) when the
// prune keeps failing.
func (s *soak) pruneLoop(ctx context.Context, stop context.CancelFunc) {
	failedInARow := 0
	for ctx.Err() == nil {
		run := s.runPrune()
		s.mu.Lock()
		run.n = len(s.runs) + 1
		s.runs = append(s.runs, run)
		s.mu.Unlock()
		if run.problem(s.online) == "" {
			failedInARow = 0
			continue
		}
		if failedInARow++; failedInARow >= soakMaxFailedRunsInARow {
			stop()
			return
		}
	}
}

// pruneRun is one run of -prune=delete.
type pruneRun struct {
	n       int
	started time.Time
	took    time.Duration
	res     harness.PruneResult
	err     error // it could not run, or did not end in time
}

func (s *soak) runPrune() pruneRun {
	ctx, cancel := context.WithTimeout(context.Background(), soakPruneTimeout)
	defer cancel()
	r := pruneRun{started: time.Now()}
	r.res, r.err = harness.RunPrune(ctx, s.pruneEnv, s.pruneArgs...)
	r.took = time.Since(r.started)
	if r.err == nil && ctx.Err() != nil {
		r.err = fmt.Errorf("still running after %s: %w", soakPruneTimeout, ctx.Err())
	}
	return r
}

// problem says what was wrong with the run, "" if nothing: it must exit 0 and, online, say so.
func (r pruneRun) problem(online bool) string {
	switch {
	case r.err != nil:
		return r.err.Error()
	case r.res.ExitCode != 0:
		return fmt.Sprintf("exit %d: %s", r.res.ExitCode, strings.TrimSpace(lastLines(r.res.Stderr, 3)))
	case online && !strings.Contains(strings.ToLower(r.res.Stderr), "online"):
		return "exit 0 without logging that it ran online"
	}
	return ""
}

var deletedBlobsLine = regexp.MustCompile(`(?m)^Deleted (\d+) blobs$`)

func (r pruneRun) deletedBlobs() int {
	m := deletedBlobsLine.FindStringSubmatch(r.res.Stdout)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// retryFailedPushes pushes every failed image again, once, to the same replica: a push the
// online prune turned away must succeed later. It returns the failures (listed later) and how
// many retries succeeded; the successful ones join s.pushed.
func (s *soak) retryFailedPushes(t *testing.T) (failed []string, retriedOK int) {
	t.Helper()
	for _, p := range s.pushes {
		if p.err == nil {
			continue
		}
		failed = append(failed, fmt.Sprintf("%s to replica %d: %v", p.pushedImage, p.replica, p.err))
		if p.img == nil || p.digest == (v1.Hash{}) {
			t.Errorf("push %s failed before it reached the registry: %v", p.pushedImage, p.err)
			continue
		}
		if err := pushImage(s.hosts[p.replica], p.repo+":"+p.tag, p.img); err != nil {
			t.Errorf("push %s failed again after the soak: %v (during the soak: %v)", p.pushedImage, err, p.err)
			continue
		}
		retriedOK++
		s.pushed = append(s.pushed, p.pushedImage)
	}
	return failed, retriedOK
}

// checkPulls pulls, from every replica, every image a push reported as stored and every image
// the image API names (the image streams' tag histories, the Images' references); each must
// come back byte for byte. It returns the number of failed pulls.
func checkPulls(t *testing.T, e *env, s *soak) int {
	t.Helper()
	type target struct {
		repo   string
		digest v1.Hash
		why    string
	}
	seen := map[string]bool{}
	var targets []target
	add := func(repo string, d v1.Hash, why string) {
		if key := repo + "@" + d.String(); !seen[key] {
			seen[key] = true
			targets = append(targets, target{repo, d, why})
		}
	}
	for _, p := range s.pushed {
		add(p.repo, p.digest, "pushed as "+p.repo+":"+p.tag)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	streams, err := e.images.ImageStreams("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing image streams: %v", err)
	}
	for _, is := range streams.Items {
		for _, tag := range is.Status.Tags {
			for i, item := range tag.Items {
				d, err := v1.NewHash(item.Image)
				if err != nil {
					t.Errorf("stream %s/%s tag %s names %q: %v", is.Namespace, is.Name, tag.Tag, item.Image, err)
					continue
				}
				add(is.Namespace+"/"+is.Name, d, fmt.Sprintf("named by tag %s, item %d", tag.Tag, i))
			}
		}
	}
	images, err := e.images.Images().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing Images: %v", err)
	}
	for _, img := range images.Items {
		d, err := v1.NewHash(img.Name)
		repo, ok := repositoryOf(img.DockerImageReference)
		if err != nil || !ok {
			t.Errorf("Image %s, reference %q: not <repository>@<digest> (%v)", img.Name, img.DockerImageReference, err)
			continue
		}
		add(repo, d, "its Image's reference")
	}

	var mu sync.Mutex
	var failures []string
	var g errgroup.Group
	g.SetLimit(4)
	for _, tg := range targets {
		for replica, host := range s.hosts {
			g.Go(func() error {
				if err := pullVerified(host, tg.repo, tg.digest); err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s@%s (%s) from replica %d: %v", tg.repo, tg.digest, tg.why, replica, err))
					mu.Unlock()
				}
				return nil
			})
		}
	}
	_ = g.Wait() // the pulls record their failures
	slices.Sort(failures)
	t.Logf("after the soak: %d images (%d pushed; %d image streams, %d Images) pulled from %d replicas, %d failures",
		len(targets), len(s.pushed), len(streams.Items), len(images.Items), len(s.hosts), len(failures))
	reportList(t, t.Errorf, "pulls after the soak failed", failures)
	return len(failures)
}

// repositoryOf is the repository of an Image's reference, [<registry>/]<repository>@<digest>.
func repositoryOf(ref string) (string, bool) {
	repo, _, ok := strings.Cut(ref, "@")
	if first, rest, nested := strings.Cut(repo, "/"); nested && strings.ContainsAny(first, ".:") {
		repo = rest // a registry host, as the reference names it when openshift.server.addr is set
	}
	return repo, ok && repo != ""
}

// checkOrphansGone checks that the final prune left no blob of the orphan pool that no
// successful push reused, and returns how many such blobs are gone and how many are not.
func checkOrphansGone(t *testing.T, e *env, s *soak, pool []v1.Hash) (removed, kept int) {
	t.Helper()
	reused := map[v1.Hash]bool{}
	for _, p := range s.pushed {
		for _, d := range p.reused {
			reused[d] = true
		}
	}
	var left []string
	for _, d := range pool {
		if reused[d] {
			continue
		}
		if e.blobExists(d) {
			left = append(left, d.String())
		} else {
			removed++
		}
	}
	t.Logf("orphan pool: %d blobs, %d reused by successful pushes, %d of the rest removed", len(pool), len(reused), removed)
	reportList(t, t.Errorf, "orphans no push reused are still stored", left)
	return removed, len(left)
}

// checkRestore runs -restore=check, which must find storage and the image API consistent.
func checkRestore(t *testing.T, e *env) {
	t.Helper()
	res := e.prune(nil, "-restore=check")
	if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "Consistent: ") {
		t.Errorf("-restore=check: exit %d\n%s\n%s", res.ExitCode, res.Stdout, lastLines(res.Stderr, 10))
		return
	}
	t.Logf("-restore=check: %s", strings.TrimSpace(res.Stdout))
}

// reportList reports (t.Errorf, or t.Logf for what may happen) up to soakListed items of a
// list of failures.
func reportList(t *testing.T, report func(string, ...any), what string, items []string) {
	t.Helper()
	if len(items) == 0 {
		return
	}
	shown := items[:min(len(items), soakListed)]
	more := ""
	if len(items) > len(shown) {
		more = fmt.Sprintf("\n... and %d more", len(items)-len(shown))
	}
	report("%d %s:\n%s%s", len(items), what, strings.Join(shown, "\n"), more)
}

// randomLayer is a layer of minSize to maxSize random bytes, held in memory so that it can be
// pushed again.
func randomLayer(minSize, maxSize int) v1.Layer {
	b := make([]byte, minSize+mathrand.IntN(maxSize-minSize+1))
	_, _ = rand.Read(b) // never fails
	return static.NewLayer(b, types.DockerLayer)
}

// imageOf is a schema 2 image of layers whose config carries label, so that it is unique.
func imageOf(label string, layers []v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	return mutate.Config(img, v1.Config{Labels: map[string]string{"e2e": label}})
}

// pushImage pushes img to host as repoAndTag, as a client would, within soakOpTimeout.
func pushImage(host, repoAndTag string, img v1.Image) error {
	ctx, cancel := context.WithTimeout(context.Background(), soakOpTimeout)
	defer cancel()
	ref, err := name.NewTag(host+"/"+repoAndTag, name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(ref, img, remote.WithContext(ctx), remote.WithAuth(authn.Anonymous))
}

// pullVerified pulls repo@d from host within soakOpTimeout and checks every byte: the manifest
// hashes to d, the config and every layer to the digests the manifest names. The content is
// addressed by those digests, so this is the comparison with what was pushed.
func pullVerified(host, repo string, d v1.Hash) error {
	ctx, cancel := context.WithTimeout(context.Background(), soakOpTimeout)
	defer cancel()
	ref, err := name.NewDigest(host+"/"+repo+"@"+d.String(), name.Insecure)
	if err != nil {
		return err
	}
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithAuth(authn.Anonymous))
	if err != nil {
		return err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	if got := sha256.Sum256(raw); hex.EncodeToString(got[:]) != d.Hex {
		return errors.New("the manifest differs")
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("config %s: %w", cfgName, err)
	}
	if got := sha256.Sum256(cfg); hex.EncodeToString(got[:]) != cfgName.Hex {
		return fmt.Errorf("config %s: content differs", cfgName)
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		ld, err := l.Digest()
		if err != nil {
			return err
		}
		if err := verifyLayer(l, ld); err != nil {
			return fmt.Errorf("layer %s: %w", ld, err)
		}
	}
	return nil
}

// verifyLayer reads a layer's bytes and checks that they hash to its digest.
func verifyLayer(l v1.Layer, d v1.Hash) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != d.Hex {
		return errors.New("content differs")
	}
	return nil
}

// waitAdvertised waits up to timeout until n replicas advertise themselves in storage, and
// returns what they advertise (replica id: protocol); fewer when the time ran out.
func (e *env) waitAdvertised(n int, timeout time.Duration) map[string]int {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ads, err := e.advertisedReplicas()
		if err != nil {
			e.t.Fatalf("reading the replicas' advertisements: %v", err)
		}
		if len(ads) >= n || time.Now().After(deadline) {
			return ads
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// advertisedReplicas reads the replicas' advertisements, through the driver on S3.
func (e *env) advertisedReplicas() (map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	contents := map[string][]byte{}
	if e.driver != nil {
		keys, err := e.driver.List(ctx, replicasPath)
		var notFound storagedriver.PathNotFoundError
		if errors.As(err, &notFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			c, err := e.driver.GetContent(ctx, k)
			if err != nil {
				return nil, err
			}
			contents[path.Base(k)] = c
		}
	} else {
		dir := filepath.Join(e.storageDir, replicasPath)
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		for _, ent := range entries {
			c, err := os.ReadFile(filepath.Join(dir, ent.Name()))
			if err != nil {
				return nil, err
			}
			contents[ent.Name()] = c
		}
	}
	ads := map[string]int{}
	for id, c := range contents {
		var ad struct {
			Protocol int `json:"protocol"`
		}
		if err := json.Unmarshal(c, &ad); err != nil {
			return nil, fmt.Errorf("replica %s advertises %q: %w", id, c, err)
		}
		ads[id] = ad.Protocol
	}
	return ads, nil
}

// registryData is a snapshot without the hardprune/ objects (advertisements, the marker), which
// replicas rewrite while serving: what a refused prune must leave unchanged.
func registryData(snapshot string) string {
	var kept []string
	for _, line := range strings.Split(snapshot, "\n") {
		if !strings.HasPrefix(line, path.Join(storage.RootPath, "hardprune")+"/") {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n")
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

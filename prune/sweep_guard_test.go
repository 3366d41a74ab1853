package prune

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

// guardRecorder is a Guard that keeps the objects inUse says are in use, and records its
// claims and releases.
type guardRecorder struct {
	mu       sync.Mutex
	inUse    func(Object) bool
	claims   [][]Object
	released int
	out      int // claims not yet released
	fail     error
}

func (g *guardRecorder) Claim(_ context.Context, objs []Object) ([]bool, func(), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fail != nil {
		return nil, nil, g.fail
	}
	g.claims = append(g.claims, slices.Clone(objs))
	g.out++
	keep := make([]bool, len(objs))
	for i, o := range objs {
		keep[i] = g.inUse(o)
	}
	return keep, func() {
		g.mu.Lock()
		g.released++
		g.out--
		g.mu.Unlock()
	}, nil
}

func TestSweepGuardedKeepsWhatIsInUse(t *testing.T) {
	used := func(o Object) bool { return o.Repository == "ns/gone" || o.Digest == dg("l") }
	for _, workers := range []int{1, 8} {
		r := &recorder{}
		g := &guardRecorder{inUse: used}
		sum, err := SweepGuarded(context.Background(), samplePlan(), r, workers, nil, g)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range r.calls {
			if c == "repo ns/gone" || c == "layer ns/app" || c == "blob "+dg("l").String()[7:9] {
				t.Errorf("workers=%d: %q was deleted though in use", workers, c)
			}
		}
		if len(r.calls) != 4 {
			t.Errorf("workers=%d: deleted %v, want the 4 objects not in use", workers, r.calls)
		}
		if sum.TotalInUse() != 3 || sum.InUse[KindRepository] != 1 || sum.InUse[KindLayerLink] != 1 || sum.InUse[KindBlob] != 1 {
			t.Errorf("workers=%d: in use %+v", workers, sum.InUse)
		}
		if sum.Total() != 4 || sum.Bytes[KindBlob] != 10 {
			t.Errorf("workers=%d: summary %+v", workers, sum)
		}
		// One claim a kind (each fits a batch), every one released, blobs claimed last.
		if len(g.claims) != 6 || g.released != 6 || g.out != 0 {
			t.Errorf("workers=%d: %d claims, %d released", workers, len(g.claims), g.released)
		}
		if last := g.claims[len(g.claims)-1]; last[0].Kind != KindBlob {
			t.Errorf("workers=%d: the last claim is of %s", workers, last[0].Kind)
		}
	}
}

// TestSweepGuardedBatches: a batch remover gets only the objects not in use, after the claim.
func TestSweepGuardedBatches(t *testing.T) {
	b := &batchRecorder{}
	g := &guardRecorder{inUse: func(o Object) bool { return o.Kind == KindBlob && o.Digest == dg("m") }}
	sum, err := SweepGuarded(context.Background(), samplePlan(), b, 4, nil, g)
	if err != nil {
		t.Fatal(err)
	}
	if sum.InUse[KindBlob] != 1 || sum.Count[KindBlob] != 1 || sum.Bytes[KindBlob] != 20 {
		t.Errorf("summary %+v", sum)
	}
	if g.released != len(g.claims) {
		t.Errorf("%d claims, %d released", len(g.claims), g.released)
	}
}

// TestSweepGuardedStopsWhenAClaimFails: nothing of a batch whose claim failed is deleted, and
// no later phase starts.
func TestSweepGuardedStopsWhenAClaimFails(t *testing.T) {
	r := &recorder{}
	g := &guardRecorder{inUse: func(Object) bool { return false }, fail: errors.New("lock lost")}
	sum, err := SweepGuarded(context.Background(), samplePlan(), r, 2, nil, g)
	if err == nil || !strings.Contains(err.Error(), "lock lost") {
		t.Fatalf("err = %v", err)
	}
	if len(r.calls) != 0 || sum.Total() != 0 {
		t.Errorf("deleted %v after a failed claim", r.calls)
	}
}

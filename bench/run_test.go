package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseSummaryCount(t *testing.T) {
	out := "Would delete 1200 blobs\nWould free up 2.835 GiB of disk space\n" +
		"Use -prune=delete to actually delete the data\n"
	if n, err := parseSummaryCount(strings.NewReader(out), wouldDelete); err != nil || n != 1200 {
		t.Errorf("parseSummaryCount = %d, %v; want 1200", n, err)
	}
	// A line that only ends like the summary is not the summary.
	other := strings.NewReader("Would delete 3 blobs later\nDeleted 3 blobs\n")
	if _, err := parseSummaryCount(other, wouldDelete); err == nil {
		t.Error("parseSummaryCount found a count in output without the summary line")
	}
}

// TestAlternate runs three series of different lengths through alternate and checks that each
// round ran every series with runs left, in the given order, and that the figures are kept in
// round order.
func TestAlternate(t *testing.T) {
	dir := t.TempDir()
	order := filepath.Join(dir, "order")
	echo := func(name string, runs int) *series {
		return &series{runs: runs, timed: timed{
			what: name, file: name,
			newCmd: func() *exec.Cmd { return exec.Command("sh", "-c", "echo "+name+" >> "+order) },
		}}
	}
	ours, find, gc := echo("ours", 2), echo("find", 2), echo("gc", 3)
	if err := alternate(context.Background(), testRunner(t, dir), ours, nil, find, gc); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(order)
	if err != nil {
		t.Fatal(err)
	}
	if want := "ours\nfind\ngc\nours\nfind\ngc\ngc\n"; string(got) != want {
		t.Errorf("runs in the order\n%s\nwant\n%s", got, want)
	}
	if m := gc.measure(); m.Runs != 3 || len(m.Walls) != 3 || m.Wall <= 0 || m.PeakRSS <= 0 {
		t.Errorf("garbage-collect's measure: %+v, want 3 runs with wall times and a peak RSS", m)
	}
}

func TestAlternateFailure(t *testing.T) {
	dir := t.TempDir()
	fail := &series{runs: 1, timed: timed{
		what: "failing", file: "failing",
		newCmd: func() *exec.Cmd { return exec.Command("sh", "-c", "echo broken config >&2; exit 3") },
	}}
	err := alternate(context.Background(), testRunner(t, dir), fail)
	if err == nil || !strings.Contains(err.Error(), "broken config") {
		t.Errorf("alternate = %v, want the command's standard error in the error", err)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if got := median([]time.Duration{3 * time.Second, time.Second}); got != 2*time.Second {
		t.Errorf("median of 1 s and 3 s = %s, want 2s", got)
	}
}

func TestRoundRatios(t *testing.T) {
	s := time.Second
	// The third run of ours has no find run in its round: no ratio.
	got := roundRatios([]time.Duration{2 * s, 3 * s, 9 * s}, []time.Duration{1 * s, 2 * s})
	if want := []float64{2, 1.5}; !slices.Equal(got, want) {
		t.Errorf("roundRatios = %v, want %v", got, want)
	}
	for _, c := range []struct {
		in       []float64
		decimals int
		want     string
	}{
		{nil, 2, "-"},
		{[]float64{1.904}, 2, "1.90x"},
		{[]float64{1.85, 2.1, 1.9}, 2, "1.90x (rounds: 1.85, 2.10, 1.90)"},
		{[]float64{2, 3}, 1, "2.5x (rounds: 2.0, 3.0)"},
	} {
		if got := formatRatios(c.in, c.decimals); got != c.want {
			t.Errorf("formatRatios(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

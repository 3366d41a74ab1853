package progress

import (
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/internal/testutil"
)

type syncBuffer = testutil.SyncBuffer

func TestPhaseReports(t *testing.T) {
	Interval = 10 * time.Millisecond
	defer func() { Interval = 5 * time.Second }()
	var out syncBuffer
	log := logrus.New()
	log.SetOutput(&out)
	log.SetLevel(logrus.InfoLevel)
	p := Start(log, "inventory")
	p.Seen(1000)
	p.Candidate(512)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "progress") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.Done()
	line := out.String()
	for _, want := range []string{"phase=inventory", "objects=1000", "candidates=1", "bytes=512", "rate=", "elapsed="} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line lacks %q: %s", want, line)
		}
	}
	var nilPhase *Phase
	nilPhase.Seen(1) // a nil phase counts nothing and does not panic
	nilPhase.Candidate(1)
}

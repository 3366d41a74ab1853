// Package progress logs a line every few seconds while a long phase runs, so that an
// administrator watching a prune of millions of objects sees it move.
package progress

import (
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Interval is how often a running phase reports.
var Interval = 5 * time.Second

// Phase counts the objects a phase has handled and reports them until Done.
type Phase struct {
	name       string
	seen       atomic.Int64
	candidates atomic.Int64
	bytes      atomic.Int64
	start      time.Time
	stop       chan struct{}
	done       chan struct{}
	log        logrus.FieldLogger
}

// Start begins reporting a phase at info level.
func Start(log logrus.FieldLogger, name string) *Phase {
	p := &Phase{name: name, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{}), log: log}
	go p.report()
	return p
}

// Seen counts handled objects. A nil Phase counts nothing.
func (p *Phase) Seen(n int64) {
	if p != nil {
		p.seen.Add(n)
	}
}

// Candidate counts an object chosen for deletion (or deleted), with its size.
func (p *Phase) Candidate(size int64) {
	if p != nil {
		p.candidates.Add(1)
		p.bytes.Add(size)
	}
}

// Done stops the reports and logs the phase's totals at debug level.
func (p *Phase) Done() {
	close(p.stop)
	<-p.done
	p.fields().Debug(p.name + " done")
}

func (p *Phase) fields() *logrus.Entry {
	elapsed := time.Since(p.start)
	seen := p.seen.Load()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(seen) / elapsed.Seconds()
	}
	return p.log.WithFields(logrus.Fields{
		"phase":      p.name,
		"objects":    seen,
		"candidates": p.candidates.Load(),
		"bytes":      p.bytes.Load(),
		"rate":       int64(rate),
		"elapsed":    elapsed.Round(time.Second).String(),
	})
}

func (p *Phase) report() {
	defer close(p.done)
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
			p.fields().Info("progress")
		}
	}
}

// Package cache keeps the registry's blob descriptor cache consistent with a hard prune.
//
// Two caches exist, as in distribution (storage.cache.blobdescriptor):
//
//   - redis: shared by every registry replica. The prune removes, right before and right after
//     each deletion, the entries that describe what it deleted (Invalidation, RedisInvalidator).
//   - inmemory: private to each registry process, which the pruner cannot reach. The prune
//     writes a marker object in storage (storage.PruneMarkerPath) when its sweep starts and
//     again when it ends; every serving registry polls the marker (one Stat every few
//     seconds, MarkerWatcher) and drops its cache (ResettableMemory) when the marker changes.
package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/sirupsen/logrus"

	"github.com/hardprune/image-registry/storage"
)

// The phases a marker records. Their lengths differ, so that the two writes of one run differ
// in size even on storage that keeps modification times to the second (S3).
const (
	MarkerStarted  = "started"
	MarkerFinished = "finished"
)

// markerTimeFormat has a fixed width, so a marker's size depends on its phase only.
const markerTimeFormat = "2006-01-02T15:04:05.000000000Z"

// WriteMarker records that a prune's sweep reached phase (MarkerStarted, MarkerFinished).
func WriteMarker(ctx context.Context, d driver.StorageDriver, phase string, now time.Time) error {
	content := fmt.Sprintf("hard prune %s at %s\n", phase, now.UTC().Format(markerTimeFormat))
	if err := d.PutContent(ctx, storage.PruneMarkerPath(), []byte(content)); err != nil {
		return fmt.Errorf("writing the prune marker %s: %w", storage.PruneMarkerPath(), err)
	}
	return nil
}

// DefaultPollInterval is how often a serving registry looks at the prune marker.
const DefaultPollInterval = 5 * time.Second

// MarkerWatcher polls the prune marker and calls OnChange when it appears or changes.
type MarkerWatcher struct {
	Driver   driver.StorageDriver
	Interval time.Duration
	OnChange func()
	Log      logrus.FieldLogger

	last    markerState
	known   bool // last holds a successful Stat
	polls   int
	lastErr string
}

// markerState is what one Stat says of the marker.
type markerState struct {
	exists  bool
	size    int64
	modTime time.Time
}

func (s markerState) equal(o markerState) bool {
	return s.exists == o.exists && s.size == o.size && s.modTime.Equal(o.modTime)
}

// Run polls until ctx ends. The first poll only records the marker's state: a registry that
// starts has an empty cache.
func (w *MarkerWatcher) Run(ctx context.Context) {
	interval := w.Interval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	w.Poll(ctx)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			w.Poll(ctx)
		}
	}
}

// Poll stats the marker once and calls OnChange if it changed since the last successful Poll.
// It reports whether OnChange was called. A Stat error changes nothing (it is logged once);
// when the very first Poll failed, the first one that succeeds counts as a change, since a
// prune may have run meanwhile.
func (w *MarkerWatcher) Poll(ctx context.Context) bool {
	w.polls++
	cur, err := w.stat(ctx)
	if err != nil {
		if msg := err.Error(); msg != w.lastErr {
			w.log().WithError(err).Warn("cannot read the prune marker; the blob descriptor cache is kept until it can")
			w.lastErr = msg
		}
		return false
	}
	w.lastErr = ""
	changed := w.known && !cur.equal(w.last) || !w.known && w.polls > 1
	w.last, w.known = cur, true
	if !changed {
		return false
	}
	w.log().WithFields(logrus.Fields{"marker": storage.PruneMarkerPath(), "modified": cur.modTime}).
		Info("storage was pruned: dropping the blob descriptor cache")
	w.OnChange()
	return true
}

func (w *MarkerWatcher) stat(ctx context.Context) (markerState, error) {
	fi, err := w.Driver.Stat(ctx, storage.PruneMarkerPath())
	var notFound driver.PathNotFoundError
	switch {
	case errors.As(err, &notFound):
		return markerState{}, nil
	case err != nil:
		return markerState{}, err
	}
	return markerState{exists: true, size: fi.Size(), modTime: fi.ModTime()}, nil
}

func (w *MarkerWatcher) log() logrus.FieldLogger {
	if w.Log == nil {
		return logrus.StandardLogger()
	}
	return w.Log
}

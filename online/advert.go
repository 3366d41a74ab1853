package online

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/hardprune/image-registry/storage"
)

// ProtocolVersion is the version of the online prune protocol this registry speaks. A prune
// runs while registries serve only when every live replica advertises it (or a later one).
//
// 1 is a replica that advertises itself and takes no part: what ProtocolEnv makes of this
// registry, to try a rolling upgrade (or a mixed set of replicas) without a second build.
const ProtocolVersion = 2

// ProtocolEnv, set to 1, makes a serving registry advertise protocol 1 and take no part in
// the protocol.
const ProtocolEnv = "HARDPRUNE_ONLINE_PROTOCOL"

// AdvertisedProtocol is the protocol this process advertises: ProtocolVersion unless
// ProtocolEnv says otherwise.
func AdvertisedProtocol() (int, error) {
	v := os.Getenv(ProtocolEnv)
	if v == "" {
		return ProtocolVersion, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > ProtocolVersion {
		return 0, fmt.Errorf("%s=%q: want a protocol version from 1 to %d", ProtocolEnv, v, ProtocolVersion)
	}
	return n, nil
}

// Timing is the protocol's clock. The prune and the replicas must agree on AdvertTTL; the
// rest is each side's own.
type Timing struct {
	// Poll is how often a replica reads the prune lock.
	Poll time.Duration
	// Renew is how often a replica rewrites its advert.
	Renew time.Duration
	// AdvertTTL: an advert not rewritten for this long (by storage's clock, against the
	// prune's lock) is of a replica that is gone.
	AdvertTTL time.Duration
	// Fence: a replica that has not both read the lock and written its advert for this long
	// refuses manifest puts, and fails those under way, until it has. It is well below
	// AdvertTTL, so that a replica the prune takes for gone writes nothing it could break.
	Fence time.Duration
	// AckTimeout is how long a prune waits for every live replica to acknowledge its run;
	// over AdvertTTL, so that a replica killed just before the run ages out meanwhile.
	AckTimeout time.Duration
	// Drain is how long a replica entering a run waits for the manifest puts begun before
	// it; those still under way after it fail.
	Drain time.Duration
	// ClaimWait is how long a manifest put waits for a batch being deleted that names what it
	// uses.
	ClaimWait time.Duration
	// Flush is how often the uses recorded as hints are written.
	Flush time.Duration
	// Settle is how long after a run the blob descriptor caches stay bypassed (see
	// Replica.Bypass).
	Settle time.Duration
}

// DefaultTiming is the protocol's default clock.
var DefaultTiming = Timing{
	Poll:       2 * time.Second,
	Renew:      10 * time.Second,
	AdvertTTL:  45 * time.Second,
	Fence:      20 * time.Second,
	AckTimeout: 60 * time.Second,
	Drain:      10 * time.Second,
	ClaimWait:  60 * time.Second,
	Flush:      200 * time.Millisecond,
	Settle:     5 * time.Second,
}

// Advert is what a serving registry says of itself in storage (storage.OnlineReplicaPath).
type Advert struct {
	ID       string    `json:"id"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Protocol int       `json:"protocol"`
	Started  time.Time `json:"started"`
	// Run is the prune run (the lock's owner) the replica has entered: it records uses into
	// that run and honours its claims, and every manifest put it began before has ended.
	Run string `json:"run,omitempty"`
}

// Describe names the replica for messages.
func (a Advert) Describe() string {
	return fmt.Sprintf("replica %s (host %s, pid %d)", a.ID, a.Host, a.PID)
}

// AdvertState is an advert as a prune read it.
type AdvertState struct {
	Advert
	// ModTime is when storage last had it written.
	ModTime time.Time
	// Unreadable says the object's content is not an advert (Advert holds only its ID).
	Unreadable bool
}

// Live tells whether the replica counts: its advert was written within ttl of ref, a time
// on storage's clock (the modification time of an object the prune just wrote).
func (a AdvertState) Live(ref time.Time, ttl time.Duration) bool {
	return ref.Sub(a.ModTime) < ttl
}

func writeAdvert(ctx context.Context, d driver.StorageDriver, a Advert) error {
	content, err := json.Marshal(a)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	if err := d.PutContent(ctx, storage.OnlineReplicaPath(a.ID), content); err != nil {
		return fmt.Errorf("writing the replica advert %s: %w", storage.OnlineReplicaPath(a.ID), err)
	}
	return nil
}

// ReadAdverts reads every replica's advert, sorted by ID.
func ReadAdverts(ctx context.Context, d driver.StorageDriver) ([]AdvertState, error) {
	names, err := list(ctx, d, storage.OnlineReplicasPath())
	if err != nil {
		return nil, err
	}
	out := make([]AdvertState, 0, len(names))
	for _, p := range names {
		st, err := readAdvert(ctx, d, p)
		var notFound driver.PathNotFoundError
		switch {
		case errors.As(err, &notFound):
			continue // removed since the listing: a replica that stopped
		case err != nil:
			return nil, err
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func readAdvert(ctx context.Context, d driver.StorageDriver, p string) (AdvertState, error) {
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	fi, err := d.Stat(ctx, p)
	if err != nil {
		return AdvertState{}, err
	}
	content, err := d.GetContent(ctx, p)
	if err != nil {
		return AdvertState{}, err
	}
	st := AdvertState{ModTime: fi.ModTime()}
	if err := json.Unmarshal(content, &st.Advert); err != nil || st.ID == "" || st.Protocol < 1 {
		st = AdvertState{Advert: Advert{ID: path.Base(p)}, ModTime: fi.ModTime(), Unreadable: true}
	}
	return st, nil
}

// ioTimeout bounds each storage request of the protocol.
const ioTimeout = 30 * time.Second

// list is the objects directly below dir (full paths); none when dir does not exist.
func list(ctx context.Context, d driver.StorageDriver, dir string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	names, err := d.List(ctx, dir)
	var notFound driver.PathNotFoundError
	switch {
	case errors.As(err, &notFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	// The filesystem driver writes an object as <path>.<random>.tmp and renames it: what is
	// being written is not there yet.
	names = slices.DeleteFunc(names, func(n string) bool { return strings.HasSuffix(n, ".tmp") })
	sort.Strings(names)
	return names, nil
}

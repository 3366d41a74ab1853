package storage

import (
	"testing"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// WriteRangeStore is writeRangeStore, for the tests outside the package.
func WriteRangeStore(t testing.TB, d driver.StorageDriver) { writeRangeStore(t, d) }

// SplitAfter makes the store's ranged listing split its regions after n keys rather than a
// page of them.
func SplitAfter(s *Store, n int) { s.rangePageKeys = n }

// WalkedRepositories is what the store's last one-listing inventory kept of the repositories.
func WalkedRepositories(s *Store) any { return s.walked.Load() }

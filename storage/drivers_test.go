package storage

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
)

// Every row of driverTraits names a driver that drivers.go registers: a row whose import is
// missing, or whose name is misspelt, would leave its driver with the zero traits.
func TestDriverTraitsNameRegisteredDrivers(t *testing.T) {
	for name := range driverTraits {
		// Rooted in a temporary directory, so a driver that needs no more parameters touches
		// nothing of this machine's; the object stores fail on their missing bucket or account
		// before any request.
		drv, err := factory.Create(context.Background(), name, map[string]any{"rootdirectory": t.TempDir()})
		var unknown factory.InvalidStorageDriverError
		switch {
		case errors.As(err, &unknown):
			t.Errorf("driverTraits has a row for %q, which no imported driver registers", name)
		case err == nil && drv.Name() != name:
			t.Errorf(
				"driverTraits row %q: the driver calls itself %q, the name traitsOf is asked with",
				name,
				drv.Name(),
			)
		}
	}
}

func TestOpenDriverSaysWhichDriverAndWhy(t *testing.T) {
	cfg := configuration.Storage{"floppy": configuration.Parameters{}}
	for purpose, want := range map[string]string{
		"":                    "creating the floppy storage driver: ",
		"to watch for prunes": "creating the floppy storage driver to watch for prunes: ",
	} {
		_, err := OpenDriver(context.Background(), cfg, purpose)
		var unknown factory.InvalidStorageDriverError
		if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.As(err, &unknown) {
			t.Errorf("OpenDriver(floppy, %q): %v, want %q and the factory's error", purpose, err, want+"...")
		}
	}
	drv, err := OpenDriver(
		context.Background(),
		configuration.Storage{"inmemory": nil, "delete": {"enabled": true}},
		"",
	)
	if err != nil || drv.Name() != "inmemory" {
		t.Fatalf("OpenDriver(inmemory): %v, %v", drv, err)
	}
}

// Location names where the configured storage is, as the messages about a wrong root say it.
func TestLocation(t *testing.T) {
	for _, tt := range []struct {
		cfg  configuration.Storage
		want string
	}{
		{configuration.Storage{"filesystem": {}}, "/var/lib/registry"},
		{configuration.Storage{"filesystem": {"rootdirectory": "/data/"}}, "/data"},
		{configuration.Storage{"s3": {"bucket": "images", "rootdirectory": "/registry/"}}, "s3://images/registry"},
		{configuration.Storage{"s3aws": {"bucket": "images"}}, "s3://images"},
		{configuration.Storage{"inmemory": {}}, ""},
	} {
		if got := Location(tt.cfg); got != tt.want {
			t.Errorf("Location(%v) = %q, want %q", tt.cfg, got, tt.want)
		}
	}
}

package registry

import (
	"context"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
)

// Distribution's app panics on a configuration it cannot use; the administrator gets a line.
func TestNewRegistryTurnsPanicsIntoErrors(t *testing.T) {
	dcfg, err := configuration.Parse(strings.NewReader(
		"version: 0.1\nhttp:\n  addr: 127.0.0.1:0\nstorage:\n  inmemory: {}\nauth:\n  nosuchcontroller: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := newRegistry(context.Background(), dcfg)
	if reg != nil || err == nil {
		t.Fatalf("registry %v, err %v", reg, err)
	}
	if !strings.Contains(err.Error(), "nosuchcontroller") || strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %q, want one line naming the controller", err)
	}
}

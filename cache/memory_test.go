package cache

import (
	"context"
	"errors"
	"testing"

	"github.com/distribution/distribution/v3"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestResettableMemoryForgetsEverythingOnReset(t *testing.T) {
	ctx := context.Background()
	c := NewResettableMemory(0)
	dgst := digest.FromString("layer")
	desc := v1.Descriptor{Digest: dgst, Size: 5, MediaType: "application/octet-stream"}

	// A repository-scoped service handed out before the reset, as a request in flight holds.
	scopedSvc, err := c.RepositoryScoped("ns/app")
	if err != nil {
		t.Fatal(err)
	}
	if err := scopedSvc.SetDescriptor(ctx, dgst, desc); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDescriptor(ctx, dgst, desc); err != nil {
		t.Fatal(err)
	}
	if got, err := scopedSvc.Stat(ctx, dgst); err != nil || got.Digest != dgst {
		t.Fatalf("before reset: %v %v", got, err)
	}

	c.Reset()

	if _, err := scopedSvc.Stat(ctx, dgst); !errors.Is(err, distribution.ErrBlobUnknown) {
		t.Errorf("scoped Stat after reset: %v, want ErrBlobUnknown", err)
	}
	if _, err := c.Stat(ctx, dgst); !errors.Is(err, distribution.ErrBlobUnknown) {
		t.Errorf("global Stat after reset: %v, want ErrBlobUnknown", err)
	}
	fresh, _ := c.RepositoryScoped("ns/app")
	if _, err := fresh.Stat(ctx, dgst); !errors.Is(err, distribution.ErrBlobUnknown) {
		t.Errorf("new scoped Stat after reset: %v, want ErrBlobUnknown", err)
	}

	// The old service caches into the new generation after the reset.
	if err := scopedSvc.SetDescriptor(ctx, dgst, desc); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Stat(ctx, dgst); err != nil {
		t.Errorf("descriptor set after the reset: %v", err)
	}
}

func TestResettableMemoryRejectsBadNames(t *testing.T) {
	if _, err := NewResettableMemory(10).RepositoryScoped("bad//name"); err == nil {
		t.Error("an invalid repository name was accepted")
	}
}

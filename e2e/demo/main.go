// Command demo walks through a hard-prune maintenance window on a local setup: a real etcd,
// the image API server, the registry binary, images pushed by a real client, orphans made the
// ways they happen in clusters, then -prune=check and -prune=delete with their real output.
// Run it with `make demo`.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hardprune/image-registry/e2e/harness"
	"github.com/hardprune/image-registry/imageapi"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

type stopper interface{ Stop() error }

func run() error {
	dir, err := os.MkdirTemp("", "registry-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var running []stopper
	defer func() {
		for i := len(running) - 1; i >= 0; i-- {
			_ = running[i].Stop()
		}
	}()
	ctx := context.Background()

	step("Starting etcd and the image API server (image.openshift.io/v1) on loopback")
	etcd, err := harness.StartEtcd(ctx, mkdir(dir, "etcd"), nil)
	if err != nil {
		return err
	}
	running = append(running, etcd)
	api, err := harness.StartImageAPIServer(
		ctx,
		mkdir(dir, "api"),
		nil,
		harness.ImageAPIServerOptions{EtcdEndpoint: etcd.Endpoint},
	)
	if err != nil {
		return err
	}
	running = append(running, api)
	fmt.Printf("    image API at %s\n", api.URL)
	restCfg, err := clientcmd.BuildConfigFromFlags("", api.Kubeconfig)
	if err != nil {
		return err
	}
	images, err := imageapi.NewClient(restCfg)
	if err != nil {
		return err
	}

	storageDir := mkdir(dir, "storage")
	startRegistry := func(env ...string) (*harness.Registry, error) {
		reg, err := harness.StartRegistry(ctx, mkdir(dir, fmt.Sprintf("registry-%d", time.Now().UnixNano())), nil,
			harness.RegistryOptions{Kubeconfig: api.Kubeconfig, StorageDir: storageDir, Env: env})
		if err == nil {
			running = append(running, reg)
		}
		return reg, err
	}
	step("Starting the registry (read-write), filesystem storage in %s", storageDir)
	reg, err := startRegistry()
	if err != nil {
		return err
	}

	step("Pushing images: two streams sharing a base layer, tag histories, a multi-arch index")
	base, _ := random.Layer(2<<20, types.DockerLayer)
	push := func(ref string, layerSizes ...int64) (v1.Image, error) {
		img, err := mutate.AppendLayers(empty.Image, base)
		if err != nil {
			return nil, err
		}
		for _, size := range layerSizes {
			l, _ := random.Layer(size, types.DockerLayer)
			if img, err = mutate.AppendLayers(img, l); err != nil {
				return nil, err
			}
		}
		r, err := name.ParseReference(reg.Host+"/"+ref, name.Insecure)
		if err != nil {
			return nil, err
		}
		if err := remote.Write(r, img); err != nil {
			return nil, err
		}
		d, _ := img.Digest()
		fmt.Printf("    pushed %-28s %s\n", ref, d)
		return img, nil
	}
	v1img, err := push("shop/frontend:v1", 3<<20)
	if err != nil {
		return err
	}
	if _, err := push("shop/frontend:latest", 4<<20); err != nil {
		return err
	}
	if _, err := push("shop/backend:latest", 1<<20); err != nil {
		return err
	}
	oldBatch, err := push("shop/batch:latest", 5<<20)
	if err != nil {
		return err
	}
	amd, _ := random.Image(1<<20, 1)
	arm, _ := random.Image(1<<20, 1)
	idx := harness.PlatformIndex(amd, arm)
	idxRef, _ := name.ParseReference(reg.Host+"/shop/multiarch:latest", name.Insecure)
	if err := remote.WriteIndex(idxRef, idx); err != nil {
		return err
	}
	fmt.Printf("    pushed %-28s (index of 2 images)\n", "shop/multiarch:latest")

	step("Making orphans the ways clusters do")
	d, _ := v1img.Digest()
	if err := images.Images().Delete(ctx, d.String(), metav1.DeleteOptions{}); err != nil {
		return err
	}
	fmt.Printf("    oc delete image %s   (the Image goes, storage keeps its blobs)\n", d)
	if err := images.ImageStreams("shop").Delete(ctx, "batch", metav1.DeleteOptions{}); err != nil {
		return err
	}
	bd, _ := oldBatch.Digest()
	if err := images.Images().Delete(ctx, bd.String(), metav1.DeleteOptions{}); err != nil {
		return err
	}
	fmt.Println("    oc delete is/batch -n shop, and its image   (the repository stays in storage)")
	half, _ := random.Layer(6<<20, types.DockerLayer)
	halfRepo, _ := name.NewRepository(reg.Host+"/shop/frontend", name.Insecure)
	if err := remote.WriteLayer(halfRepo, half); err != nil {
		return err
	}
	fmt.Println("    a push that died after uploading one 6 MiB layer")

	step("Switching the registry to read-only (what spec.readOnly: true does)")
	if err := reg.Stop(); err != nil {
		return err
	}
	roEnv := harness.ReadOnlyEnv
	if reg, err = startRegistry(roEnv); err != nil {
		return err
	}
	fmt.Printf("    %s\n", roEnv)

	prune := func(env []string, args ...string) error {
		fmt.Printf("\n$ %sdockerregistry %s\n", envPrefix(env), strings.Join(args, " "))
		res, err := harness.RunPrune(ctx, append([]string{roEnv}, env...), append(args, reg.ConfigPath)...)
		if err != nil {
			return err
		}
		fmt.Print(indentLogs(res.Stderr))
		fmt.Print(res.Stdout)
		if res.ExitCode != 0 {
			return fmt.Errorf("exit code %d", res.ExitCode)
		}
		return nil
	}
	grace := "-prune-keep-younger-than=0s" // the demo's images are seconds old; the default keeps an hour
	step("Dry run: what would go, and why (REGISTRY_LOG_LEVEL=info lists each candidate)")
	if err := prune([]string{"REGISTRY_LOG_LEVEL=info"}, "-prune=check", grace); err != nil {
		return err
	}
	step("The real run")
	if err := prune(nil, "-prune=delete", grace); err != nil {
		return err
	}
	step("A second dry run finds nothing left")
	if err := prune(nil, "-prune=check", grace); err != nil {
		return err
	}

	step("Back to read-write; everything still referenced pulls")
	if err := reg.Stop(); err != nil {
		return err
	}
	if reg, err = startRegistry(); err != nil {
		return err
	}
	for _, ref := range []string{"shop/frontend:latest", "shop/backend:latest"} {
		r, _ := name.ParseReference(reg.Host+"/"+ref, name.Insecure)
		img, err := remote.Image(r)
		if err != nil {
			return fmt.Errorf("pulling %s: %w", ref, err)
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				return fmt.Errorf("pulling %s: %w", ref, err)
			}
			rc.Close()
		}
		fmt.Printf("    pulled %s (%d layers)\n", ref, len(layers))
	}
	step("Done; stopping everything")
	return nil
}

func mkdir(parent, name string) string {
	p := filepath.Join(parent, name)
	_ = os.MkdirAll(p, 0o755)
	return p
}

func envPrefix(env []string) string {
	if len(env) == 0 {
		return ""
	}
	return strings.Join(env, " ") + " "
}

// indentLogs shortens logrus lines to their message, for reading.
func indentLogs(stderr string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		if line == "" {
			continue
		}
		if i := strings.Index(line, `msg="`); i >= 0 {
			msg := line[i+5:]
			if j := strings.Index(msg, `"`); j >= 0 {
				msg = msg[:j]
			}
			line = msg
		}
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}

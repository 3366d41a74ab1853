package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/hardprune/image-registry/deploy"
)

// DecodeManifests splits data, YAML documents separated by "---" (or JSON), into objects, as
// kubectl apply -f reads a file; empty documents (comments only) are skipped.
func DecodeManifests(data []byte) ([]*unstructured.Unstructured, error) {
	decoder := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objects []*unstructured.Unstructured
	for {
		var object map[string]any
		err := decoder.Decode(&object)
		if errors.Is(err, io.EOF) {
			return objects, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(objects)+1, err)
		}
		if len(object) > 0 {
			objects = append(objects, &unstructured.Unstructured{Object: object})
		}
	}
}

// ImagePrunerClusterRole returns OpenShift's system:image-pruner as deploy/pruner-rbac.yaml
// ships it (read the workloads and builds that name images, read Images and ImageStreams,
// delete Images, update ImageStream status), so that what the tests grant is what
// administrators apply. The file is compiled in; one that does not hold the role is a bug
// TestDeployManifests reports, and here a panic.
func ImagePrunerClusterRole() *rbacv1.ClusterRole {
	role, err := shippedImagePrunerRole()
	if err != nil {
		panic(fmt.Sprintf("deploy/%s: %v", deploy.PrunerRBAC, err))
	}
	return role.DeepCopy()
}

var shippedImagePrunerRole = sync.OnceValues(func() (*rbacv1.ClusterRole, error) {
	data, err := deploy.Manifests.ReadFile(deploy.PrunerRBAC)
	if err != nil {
		return nil, err
	}
	objects, err := DecodeManifests(data)
	if err != nil {
		return nil, err
	}
	for _, o := range objects {
		if o.GetKind() != "ClusterRole" || o.GetName() != ImagePrunerRole {
			continue
		}
		var role rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &role, true); err != nil {
			return nil, err
		}
		return &role, nil
	}
	return nil, fmt.Errorf("no ClusterRole %s", ImagePrunerRole)
})

// ApplyManifests creates every object of data (see DecodeManifests), as `oc apply -f` would new
// ones, each with opts (e.g. a server-side dry run). It returns one error per object refused,
// naming it, and an error when data holds no object.
func (k *KubeAPIServer) ApplyManifests(ctx context.Context, data []byte, opts metav1.CreateOptions) []error {
	objects, err := DecodeManifests(data)
	if err != nil {
		return []error{err}
	}
	if len(objects) == 0 {
		return []error{errors.New("no object")}
	}
	cfg, err := k.RESTConfig()
	if err != nil {
		return []error{err}
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return []error{err}
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return []error{err}
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	var errs []error
	for _, o := range objects {
		if err := createObject(ctx, dyn, mapper, o, opts); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err))
		}
	}
	return errs
}

// createObject creates o where its kind lives: in its namespace, or cluster-wide.
func createObject(
	ctx context.Context,
	dyn dynamic.Interface,
	mapper meta.RESTMapper,
	o *unstructured.Unstructured,
	opts metav1.CreateOptions,
) error {
	gvk := o.GroupVersionKind()
	mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	var resource dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if o.GetNamespace() == "" {
			return errors.New("namespaced, and no metadata.namespace")
		}
		resource = dyn.Resource(mapping.Resource).Namespace(o.GetNamespace())
	}
	_, err = resource.Create(ctx, o, opts)
	return err
}

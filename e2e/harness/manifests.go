package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"

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

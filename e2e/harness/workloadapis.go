package harness

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// openShiftWorkloadAPI is one of the OpenShift workload resources whose objects name images
// (DeploymentConfigs, BuildConfigs, Builds). openshift-apiserver serves them in a real
// cluster; here the kube-apiserver serves them from CustomResourceDefinitions, so OpenShift's
// typed clients create and list them as they would there. The schema keeps every field
// unchecked: the ordinary prune only reads them, and a test may seed what validation would
// refuse (an unparsable image reference).
type openShiftWorkloadAPI struct {
	group, kind, plural, singular string
	shortNames                    []string
}

// The version every openShiftWorkloadAPI is served at.
const openShiftWorkloadVersion = "v1"

var openShiftWorkloadAPIs = []openShiftWorkloadAPI{
	{group: "apps.openshift.io", kind: "DeploymentConfig", plural: "deploymentconfigs", singular: "deploymentconfig",
		shortNames: []string{"dc"}},
	{group: "build.openshift.io", kind: "BuildConfig", plural: "buildconfigs", singular: "buildconfig",
		shortNames: []string{"bc"}},
	{group: "build.openshift.io", kind: "Build", plural: "builds", singular: "build"},
}

var crdResource = schema.GroupVersionResource{
	Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions",
}

func (a openShiftWorkloadAPI) resource() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: a.group, Version: openShiftWorkloadVersion, Resource: a.plural}
}

// crd is a as a CustomResourceDefinition (unstructured: the apiextensions client library
// stays out of the product's go.mod, as the aggregator's does).
func (a openShiftWorkloadAPI) crd() *unstructured.Unstructured {
	names := map[string]any{"kind": a.kind, "listKind": a.kind + "List", "plural": a.plural, "singular": a.singular}
	if len(a.shortNames) > 0 {
		short := make([]any, len(a.shortNames))
		for i, s := range a.shortNames {
			short[i] = s
		}
		names["shortNames"] = short
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": a.plural + "." + a.group},
		"spec": map[string]any{
			"group": a.group,
			"scope": "Namespaced",
			"names": names,
			"versions": []any{map[string]any{
				"name":    openShiftWorkloadVersion,
				"served":  true,
				"storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type":                                 "object",
					"x-kubernetes-preserve-unknown-fields": true,
				}},
			}},
		},
	}}
}

// InstallOpenShiftWorkloadAPIs makes k serve deploymentconfigs.apps.openshift.io,
// buildconfigs.build.openshift.io and builds.build.openshift.io (v1, namespaced) from
// CustomResourceDefinitions, and waits until each is listed by discovery and answers a List
// (DefaultStartTimeout if ctx has no deadline). StartCluster does it unless
// ClusterOptions.NoOpenShiftWorkloadAPIs; an existing definition is kept.
func (k *KubeAPIServer) InstallOpenShiftWorkloadAPIs(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if err := k.createOpenShiftWorkloadCRDs(ctx); err != nil {
		return err
	}
	return k.waitForOpenShiftWorkloadAPIs(ctx)
}

// createOpenShiftWorkloadCRDs only creates the definitions: the kube-apiserver establishes
// them in the background, while StartCluster starts the image API server.
func (k *KubeAPIServer) createOpenShiftWorkloadCRDs(ctx context.Context) error {
	_, dyn, err := k.clients()
	if err != nil {
		return err
	}
	for _, a := range openShiftWorkloadAPIs {
		_, err := dyn.Resource(crdResource).Create(ctx, a.crd(), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating the CustomResourceDefinition of %s.%s: %w", a.plural, a.group, err)
		}
	}
	return nil
}

// waitForOpenShiftWorkloadAPIs polls until discovery lists every openShiftWorkloadAPI and a
// List of each succeeds: a definition is Established a moment before its handler serves, and
// discovery (which typed clients' callers and RESTMappers read) catches up later still.
func (k *KubeAPIServer) waitForOpenShiftWorkloadAPIs(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	client, dyn, err := k.clients()
	if err != nil {
		return err
	}
	for _, a := range openShiftWorkloadAPIs {
		for {
			err := openShiftWorkloadAPIServed(ctx, client, dyn, a)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("kube-apiserver does not serve %s.%s/%s: %w (last: %v)",
					a.plural, a.group, openShiftWorkloadVersion, ctx.Err(), err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func openShiftWorkloadAPIServed(
	ctx context.Context,
	client kubernetes.Interface,
	dyn dynamic.Interface,
	a openShiftWorkloadAPI,
) error {
	gv := a.group + "/" + openShiftWorkloadVersion
	resources, err := client.Discovery().ServerResourcesForGroupVersion(gv)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(resources.APIResources, func(r metav1.APIResource) bool { return r.Name == a.plural }) {
		return fmt.Errorf("discovery of %s does not list %s yet", gv, a.plural)
	}
	_, err = dyn.Resource(a.resource()).List(ctx, metav1.ListOptions{Limit: 1})
	return err
}

// clients are a typed and a dynamic client of the kube-apiserver, as its admin.
func (k *KubeAPIServer) clients() (kubernetes.Interface, dynamic.Interface, error) {
	cfg, err := k.RESTConfig()
	if err != nil {
		return nil, nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	return client, dyn, nil
}

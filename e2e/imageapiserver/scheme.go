package main

import (
	imagev1 "github.com/openshift/api/image/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

var (
	// Scheme holds the image.openshift.io/v1 types this server serves.
	Scheme = runtime.NewScheme()
	// Codecs serializes them (JSON and YAML; openshift/api's types also
	// implement protobuf, but nothing here relies on it).
	Codecs = serializer.NewCodecFactory(Scheme)

	groupVersion    = imagev1.GroupVersion
	internalVersion = schema.GroupVersion{Group: imagev1.GroupName, Version: runtime.APIVersionInternal}
)

func init() {
	// Only the resources served here; imagev1.Install would also pull in
	// core/v1 and the docker10 types, which this server does not serve.
	served := []runtime.Object{
		&imagev1.Image{}, &imagev1.ImageList{},
		&imagev1.ImageStream{}, &imagev1.ImageStreamList{},
	}
	Scheme.AddKnownTypes(groupVersion, served...)
	metav1.AddToGroupVersion(Scheme, groupVersion)

	// The generic registry works on an "internal" version and converts
	// between it and the served versions. Registering the very same Go types
	// as the internal version makes every conversion a no-op (the scheme sees
	// the type already belongs to the target version and just sets the kind),
	// so no conversion functions are needed.
	Scheme.AddKnownTypes(internalVersion,
		&imagev1.Image{}, &imagev1.ImageList{},
		&imagev1.ImageStream{}, &imagev1.ImageStreamList{},
	)

	// Types every API server must know for discovery and errors.
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	unversioned := schema.GroupVersion{Group: "", Version: "v1"}
	Scheme.AddUnversionedTypes(unversioned,
		&metav1.Status{}, &metav1.APIVersions{}, &metav1.APIGroupList{},
		&metav1.APIGroup{}, &metav1.APIResourceList{},
	)
}

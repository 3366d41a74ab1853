package main

import (
	"context"

	imagev1 "github.com/openshift/api/image/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/storage/names"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// Names are validated as path segments, as OpenShift's own API server does:
// an Image is named after its manifest digest ("sha256:<64 hex>"), which is
// not a DNS-1123 name. The same rule is used for ImageStreams (OpenShift is
// slightly stricter there, which does not matter for tests).
var validateName validation.ValidateNameFunc = path.ValidatePathSegmentName

// imageStrategy: Images are stored as given, with metadata validation only.
type imageStrategy struct {
	runtime.ObjectTyper
	names.NameGenerator
}

var images = imageStrategy{Scheme, names.SimpleNameGenerator}

func (imageStrategy) NamespaceScoped() bool                                    { return false }
func (imageStrategy) PrepareForCreate(ctx context.Context, obj runtime.Object) {}
func (imageStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
}
func (imageStrategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	img := obj.(*imagev1.Image)
	return validation.ValidateObjectMeta(&img.ObjectMeta, false, validateName, field.NewPath("metadata"))
}
func (imageStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateObjectMetaUpdate(
		&obj.(*imagev1.Image).ObjectMeta,
		&old.(*imagev1.Image).ObjectMeta,
		field.NewPath("metadata"),
	)
}
func (imageStrategy) WarningsOnCreate(ctx context.Context, obj runtime.Object) []string { return nil }
func (imageStrategy) WarningsOnUpdate(ctx context.Context, obj, old runtime.Object) []string {
	return nil
}
func (imageStrategy) Canonicalize(obj runtime.Object) {}
func (imageStrategy) AllowCreateOnUpdate() bool       { return false }
func (imageStrategy) AllowUnconditionalUpdate() bool  { return true }

// streamStrategy handles the main imagestreams resource.
//
// Unlike OpenShift (which fills status from the registry and tag imports),
// creating a stream KEEPS the status sent in the request, so test generators
// can write a stream with its whole tag history in one call. Updates of the
// main resource keep the stored status; see streamStatusStrategy.
type streamStrategy struct {
	runtime.ObjectTyper
	names.NameGenerator
}

var streams = streamStrategy{Scheme, names.SimpleNameGenerator}

func (streamStrategy) NamespaceScoped() bool { return true }

func (streamStrategy) PrepareForCreate(ctx context.Context, obj runtime.Object) {
	obj.(*imagev1.ImageStream).Generation = 1
}

func (streamStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	newIS, oldIS := obj.(*imagev1.ImageStream), old.(*imagev1.ImageStream)
	newIS.Status = oldIS.Status
	if !equality.Semantic.DeepEqual(newIS.Spec, oldIS.Spec) {
		newIS.Generation = oldIS.Generation + 1
	}
}

func (streamStrategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	is := obj.(*imagev1.ImageStream)
	return validation.ValidateObjectMeta(&is.ObjectMeta, true, validateName, field.NewPath("metadata"))
}

func (streamStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateObjectMetaUpdate(
		&obj.(*imagev1.ImageStream).ObjectMeta,
		&old.(*imagev1.ImageStream).ObjectMeta,
		field.NewPath("metadata"),
	)
}

func (streamStrategy) WarningsOnCreate(ctx context.Context, obj runtime.Object) []string { return nil }
func (streamStrategy) WarningsOnUpdate(ctx context.Context, obj, old runtime.Object) []string {
	return nil
}
func (streamStrategy) Canonicalize(obj runtime.Object) {}
func (streamStrategy) AllowCreateOnUpdate() bool       { return false }
func (streamStrategy) AllowUnconditionalUpdate() bool  { return true }

// GetResetFields tells server-side apply that the main resource never
// changes status.
func (streamStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return map[fieldpath.APIVersion]*fieldpath.Set{
		fieldpath.APIVersion(groupVersion.String()): fieldpath.NewSet(fieldpath.MakePathOrDie("status")),
	}
}

// streamStatusStrategy handles imagestreams/status: only status changes.
type streamStatusStrategy struct{ streamStrategy }

var streamStatus = streamStatusStrategy{streams}

func (streamStatusStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	newIS, oldIS := obj.(*imagev1.ImageStream), old.(*imagev1.ImageStream)
	newIS.Spec = oldIS.Spec
	newIS.Generation = oldIS.Generation
}

func (streamStatusStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return map[fieldpath.APIVersion]*fieldpath.Set{
		fieldpath.APIVersion(groupVersion.String()): fieldpath.NewSet(fieldpath.MakePathOrDie("spec")),
	}
}

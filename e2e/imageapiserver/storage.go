package main

import (
	"context"

	imagev1 "github.com/openshift/api/image/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// newImageStorage returns the store of the cluster-scoped images resource.
func newImageStorage(opts generic.RESTOptionsGetter) (*genericregistry.Store, error) {
	store := &genericregistry.Store{
		NewFunc:                   func() runtime.Object { return &imagev1.Image{} },
		NewListFunc:               func() runtime.Object { return &imagev1.ImageList{} },
		DefaultQualifiedResource:  imagev1.Resource("images"),
		SingularQualifiedResource: imagev1.Resource("image"),
		CreateStrategy:            images,
		UpdateStrategy:            images,
		DeleteStrategy:            images,
		TableConvertor:            rest.NewDefaultTableConvertor(imagev1.Resource("images")),
	}
	if err := store.CompleteWithOptions(&generic.StoreOptions{RESTOptions: opts}); err != nil {
		return nil, err
	}
	return store, nil
}

// newImageStreamStorage returns the stores of imagestreams and
// imagestreams/status; both share the same underlying etcd storage.
func newImageStreamStorage(opts generic.RESTOptionsGetter) (*genericregistry.Store, *statusREST, error) {
	store := &genericregistry.Store{
		NewFunc:                   func() runtime.Object { return &imagev1.ImageStream{} },
		NewListFunc:               func() runtime.Object { return &imagev1.ImageStreamList{} },
		DefaultQualifiedResource:  imagev1.Resource("imagestreams"),
		SingularQualifiedResource: imagev1.Resource("imagestream"),
		CreateStrategy:            streams,
		UpdateStrategy:            streams,
		DeleteStrategy:            streams,
		ResetFieldsStrategy:       streams,
		TableConvertor:            rest.NewDefaultTableConvertor(imagev1.Resource("imagestreams")),
	}
	if err := store.CompleteWithOptions(&generic.StoreOptions{RESTOptions: opts}); err != nil {
		return nil, nil, err
	}
	statusStore := *store
	statusStore.UpdateStrategy = streamStatus
	statusStore.ResetFieldsStrategy = streamStatus
	return store, &statusREST{store: &statusStore}, nil
}

// statusREST serves imagestreams/status: get and update only.
type statusREST struct {
	store *genericregistry.Store
}

var (
	_ rest.Patcher             = &statusREST{}
	_ rest.ResetFieldsStrategy = &statusREST{}
	_ rest.TableConvertor      = &statusREST{}
)

func (r *statusREST) New() runtime.Object { return &imagev1.ImageStream{} }

// Destroy does nothing: the storage belongs to the main store.
func (r *statusREST) Destroy() {}

func (r *statusREST) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	return r.store.Get(ctx, name, options)
}

func (r *statusREST) Update(
	ctx context.Context,
	name string,
	objInfo rest.UpdatedObjectInfo,
	createValidation rest.ValidateObjectFunc,
	updateValidation rest.ValidateObjectUpdateFunc,
	forceAllowCreate bool,
	options *metav1.UpdateOptions,
) (runtime.Object, bool, error) {
	// Never create through /status.
	return r.store.Update(ctx, name, objInfo, createValidation, updateValidation, false, options)
}

func (r *statusREST) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return r.store.GetResetFields()
}

func (r *statusREST) ConvertToTable(
	ctx context.Context,
	object runtime.Object,
	tableOptions runtime.Object,
) (*metav1.Table, error) {
	return r.store.ConvertToTable(ctx, object, tableOptions)
}

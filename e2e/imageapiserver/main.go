// Command imageapiserver serves OpenShift's image.openshift.io/v1 API
// (cluster-scoped images; namespaced imagestreams with a /status
// subresource) on k8s.io/apiserver's generic API server and generic registry
// over real etcd3 storage. It is test infrastructure for the end-to-end tests
// and the demo of the registry's pruner; it is not a reimplementation of
// OpenShift's image API (no tag import, no image stream mappings, no
// signatures). See README.md beside this file.
package main

import (
	goflag "flag"
	"fmt"
	"net"
	"net/http"
	"os"

	imagev1 "github.com/openshift/api/image/v1"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/util/compatibility"
	"k8s.io/klog/v2"
)

// etcdPrefix is the root of this server's keys in etcd.
const etcdPrefix = "/imageapiserver"

type options struct {
	recommended *genericoptions.RecommendedOptions
	// insecureAllowAll replaces delegated authentication, authorization and
	// admission (which all need a kube-apiserver) by "everyone is a cluster
	// admin"; for tests on loopback only.
	insecureAllowAll bool
}

func newOptions() *options {
	o := &options{
		recommended: genericoptions.NewRecommendedOptions(etcdPrefix, Codecs.LegacyCodec(groupVersion)),
	}
	// Store every object as image.openshift.io/v1 (JSON).
	o.recommended.Etcd.StorageConfig.EncodeVersioner = runtime.NewMultiGroupVersioner(
		groupVersion,
		schema.GroupKind{Group: imagev1.GroupName},
	)
	o.recommended.SecureServing.BindPort = 8443
	o.recommended.SecureServing.ServerCert.CertDirectory = "imageapiserver.local.config/certificates"
	return o
}

func (o *options) addFlags(fs *pflag.FlagSet) {
	o.recommended.AddFlags(fs)
	fs.BoolVar(&o.insecureAllowAll, "insecure-allow-all", false,
		"Accept every request (anonymous or any bearer token) as user system:admin in group system:masters, "+
			"authorize everything and run no admission plugins, so no kube-apiserver is needed. For tests on loopback only.")
}

// complete drops the parts that need a kube-apiserver in insecure mode.
func (o *options) complete() {
	if !o.insecureAllowAll {
		return
	}
	o.recommended.Authentication = nil
	o.recommended.Authorization = nil
	o.recommended.CoreAPI = nil
	o.recommended.Admission = nil
	// API priority and fairness reads its configuration from a kube-apiserver.
	o.recommended.Features.EnablePriorityAndFairness = false
}

// allowAll authenticates every request as a cluster admin.
var allowAll = authenticator.RequestFunc(func(req *http.Request) (*authenticator.Response, bool, error) {
	return &authenticator.Response{User: &user.DefaultInfo{
		Name:   "system:admin",
		Groups: []string{user.SystemPrivilegedGroup, user.AllAuthenticated},
	}}, true, nil
})

func (o *options) config() (*genericapiserver.RecommendedConfig, error) {
	// Writes <cert-dir>/apiserver.crt (serving cert followed by its self-signed
	// CA) and apiserver.key unless they exist or --tls-cert-file is given.
	if err := o.recommended.SecureServing.MaybeDefaultWithSelfSignedCerts(
		"localhost", nil, []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback}); err != nil {
		return nil, fmt.Errorf("creating self-signed certificates: %w", err)
	}

	cfg := genericapiserver.NewRecommendedConfig(Codecs)
	namer := openapinamer.NewDefinitionNamer(Scheme)
	cfg.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(getOpenAPIDefinitions, namer)
	cfg.OpenAPIConfig.Info.Title = "imageapiserver"
	cfg.OpenAPIConfig.Info.Version = "v1"
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(getOpenAPIDefinitions, namer)
	cfg.OpenAPIV3Config.Info.Title = "imageapiserver"
	cfg.OpenAPIV3Config.Info.Version = "v1"
	cfg.EffectiveVersion = compatibility.DefaultBuildEffectiveVersion()

	if err := o.recommended.ApplyTo(cfg); err != nil {
		return nil, err
	}
	if o.insecureAllowAll {
		cfg.Authentication.Authenticator = allowAll
		cfg.Authorization.Authorizer = authorizerfactory.NewAlwaysAllowAuthorizer()
	}
	return cfg, nil
}

func run(o *options) error {
	o.complete()
	if errs := o.recommended.Validate(); len(errs) > 0 {
		return fmt.Errorf("invalid flags: %v", errs)
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	server, err := cfg.Complete().New("imageapiserver", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}

	imageStore, err := newImageStorage(cfg.RESTOptionsGetter)
	if err != nil {
		return err
	}
	streamStore, streamStatusStore, err := newImageStreamStorage(cfg.RESTOptionsGetter)
	if err != nil {
		return err
	}
	group := genericapiserver.NewDefaultAPIGroupInfo(imagev1.GroupName, Scheme, metav1.ParameterCodec, Codecs)
	group.VersionedResourcesStorageMap[groupVersion.Version] = map[string]rest.Storage{
		"images":              imageStore,
		"imagestreams":        streamStore,
		"imagestreams/status": streamStatusStore,
	}
	if err := server.InstallAPIGroup(&group); err != nil {
		return err
	}

	ctx := genericapiserver.SetupSignalContext()
	return server.PrepareRun().RunWithContext(ctx)
}

func main() {
	o := newOptions()
	fs := pflag.CommandLine
	o.addFlags(fs)
	klog.InitFlags(nil) // -v, --logtostderr, ...
	fs.AddGoFlagSet(goflag.CommandLine)
	pflag.Parse()

	if err := run(o); err != nil {
		klog.ErrorS(err, "imageapiserver failed")
		klog.Flush()
		os.Exit(1)
	}
}

package harness

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Where OpenShift's APIService v1.image.openshift.io points: the openshift-apiserver
// pods, behind service api in namespace openshift-apiserver.
const (
	ImageAPIServiceNamespace = "openshift-apiserver"
	ImageAPIServiceName      = "api"
	// ImageAPIService is the APIService's name, <version>.<group>.
	ImageAPIService = "v1.image.openshift.io"
)

// imageGroupVersion is what the aggregator serves from the image API server.
const imageGroupVersion = "image.openshift.io/v1"

// apiServicesResource is apiregistration.k8s.io/v1 apiservices, used through the dynamic
// client so the aggregator's client library stays out of the product's go.mod.
var apiServicesResource = schema.GroupVersionResource{
	Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices",
}

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// KubeExtraArgs and ImageAPIExtraArgs are appended to the command lines (e.g. -v=4).
	KubeExtraArgs     []string
	ImageAPIExtraArgs []string
	// NoOpenShiftWorkloadAPIs leaves out the CustomResourceDefinitions of DeploymentConfigs,
	// BuildConfigs and Builds (InstallOpenShiftWorkloadAPIs), for a cluster that does not
	// serve them, as Kubernetes without OpenShift does not.
	NoOpenShiftWorkloadAPIs bool
}

// Cluster is a kube-apiserver that serves image.openshift.io/v1 through API aggregation,
// as OpenShift clusters do: its APIService v1.image.openshift.io sends those requests to the
// image API server, which authenticates them by the aggregator's front-proxy client
// certificate and identity headers and authorizes them with SubjectAccessReviews against
// the kube-apiserver (RBAC). So one URL, one kubeconfig and one token reach pods, RBAC,
// access reviews, Images and ImageStreams.
//
// The embedded KubeAPIServer is the cluster's front door: its URL, Kubeconfig (admin),
// CAFile, AdminToken, Tokens and RBAC helpers (BindImagePruner, CreateServiceAccountToken,
// KubeconfigFor) are the cluster's. ImageAPI is the image API server itself, which also
// answers bearer tokens sent to it directly.
type Cluster struct {
	*KubeAPIServer
	Etcd     *Etcd
	ImageAPI *ImageAPIServer
}

// StartCluster starts etcd, the kube-apiserver and the image API server (both on that
// etcd, under different prefixes), registers the image API with the kube-apiserver's
// aggregator, and waits until the kube-apiserver serves /apis/image.openshift.io/v1 and,
// unless opts.NoOpenShiftWorkloadAPIs, OpenShift's DeploymentConfigs, BuildConfigs and Builds
// (InstallOpenShiftWorkloadAPIs). Data
// and logs go to subdirectories of dir (logs also to log, if not nil). ctx bounds the
// start-up only (each wait is DefaultStartTimeout if it has no deadline); Stop ends all
// three.
func StartCluster(ctx context.Context, dir string, log io.Writer, opts ClusterOptions) (*Cluster, error) {
	c := &Cluster{}
	err := c.start(ctx, dir, log, opts)
	if err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, dir string, log io.Writer, opts ClusterOptions) error {
	sub := func(name string) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.MkdirAll(p, 0o755)
	}
	etcdDir, err := sub("etcd")
	if err != nil {
		return err
	}
	if c.Etcd, err = StartEtcd(ctx, etcdDir, log); err != nil {
		return err
	}
	kubeDir, err := sub("kube")
	if err != nil {
		return err
	}
	c.KubeAPIServer, err = StartKubeAPIServer(ctx, kubeDir, log,
		KubeAPIServerOptions{EtcdEndpoint: c.Etcd.Endpoint, ExtraArgs: opts.KubeExtraArgs})
	if err != nil {
		return err
	}
	apiDir, err := sub("imageapi")
	if err != nil {
		return err
	}
	return c.startImageAPI(ctx, opts, func() error {
		c.ImageAPI, err = StartImageAPIServer(ctx, apiDir, log, c.imageAPIOptions(opts))
		return err
	})
}

// startImageAPI runs startServer (which sets c.ImageAPI) and registers the image API with
// the aggregator, with the OpenShift workload APIs unless opts leaves them out: their
// definitions are created first and awaited last, so the kube-apiserver establishes them
// while the image API server starts, which costs the start-up next to nothing.
func (c *Cluster) startImageAPI(ctx context.Context, opts ClusterOptions, startServer func() error) error {
	if !opts.NoOpenShiftWorkloadAPIs {
		if err := c.createOpenShiftWorkloadCRDs(ctx); err != nil {
			return err
		}
	}
	if err := startServer(); err != nil {
		return err
	}
	if err := RegisterImageAPI(ctx, c.KubeAPIServer, c.ImageAPI); err != nil {
		return err
	}
	if opts.NoOpenShiftWorkloadAPIs {
		return nil
	}
	return c.waitForOpenShiftWorkloadAPIs(ctx)
}

// imageAPIOptions runs the image API server as an aggregated one: delegated authentication
// and authorization, and a serving certificate the aggregator accepts for the service name.
func (c *Cluster) imageAPIOptions(opts ClusterOptions) ImageAPIServerOptions {
	return ImageAPIServerOptions{
		EtcdEndpoint:    c.Etcd.Endpoint,
		Token:           c.AdminToken,
		AuthArgs:        DelegatedAuthArgs(c.KubeAPIServer),
		ExtraArgs:       opts.ImageAPIExtraArgs,
		ServingDNSNames: []string{ImageAPIServiceName + "." + ImageAPIServiceNamespace + ".svc"},
	}
}

// Stop stops the image API server, the kube-apiserver and etcd, in that order (each
// depends on the next), and returns their unexpected exits.
func (c *Cluster) Stop() error {
	var errs []error
	if c.ImageAPI != nil {
		errs = append(errs, c.ImageAPI.Stop())
	}
	if c.KubeAPIServer != nil {
		errs = append(errs, c.KubeAPIServer.Stop())
	}
	if c.Etcd != nil {
		errs = append(errs, c.Etcd.Stop())
	}
	return errors.Join(errs...)
}

// RegisterImageAPI makes kube serve image.openshift.io/v1 from img, the way a cluster does
// but for a process outside it: an ExternalName service ImageAPIServiceName in
// ImageAPIServiceNamespace whose name is img's loopback address (the aggregator resolves it
// with --enable-aggregator-routing=false; Endpoints and EndpointSlices may not hold loopback
// addresses), and the APIService ImageAPIService naming that service, img's port and the
// CA of img's serving certificate, which must be valid for <service>.<namespace>.svc (see
// ImageAPIServerOptions.ServingDNSNames). Then it waits until kube's aggregator finds the
// APIService available and serves /apis/image.openshift.io/v1 (DefaultStartTimeout if ctx
// has no deadline). img must delegate authentication and authorization to kube
// (DelegatedAuthArgs).
func RegisterImageAPI(ctx context.Context, kube *KubeAPIServer, img *ImageAPIServer) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	client, dyn, err := kube.clients()
	if err != nil {
		return err
	}
	host, portText, err := splitHostPort(img.URL)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("image API server URL %s: %w", img.URL, err)
	}
	ca, err := os.ReadFile(img.CAFile)
	if err != nil {
		return fmt.Errorf("reading the image API server's CA: %w", err)
	}

	if err := createNamespace(ctx, client, ImageAPIServiceNamespace); err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: ImageAPIServiceName, Namespace: ImageAPIServiceNamespace},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: host},
	}
	_, err = client.CoreV1().Services(ImageAPIServiceNamespace).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating service %s/%s: %w", ImageAPIServiceNamespace, ImageAPIServiceName, err)
	}
	apiService := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": ImageAPIService},
		"spec": map[string]any{
			"group":   "image.openshift.io",
			"version": "v1",
			"service": map[string]any{
				"namespace": ImageAPIServiceNamespace,
				"name":      ImageAPIServiceName,
				"port":      int64(port),
			},
			"caBundle": base64.StdEncoding.EncodeToString(ca),
			// OpenShift's values for its API groups.
			"groupPriorityMinimum": int64(9900),
			"versionPriority":      int64(15),
		},
	}}
	apiServices := dyn.Resource(apiServicesResource)
	_, err = apiServices.Create(ctx, apiService, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Registered before, e.g. for an image API server since restarted on another port.
		var have *unstructured.Unstructured
		if have, err = apiServices.Get(ctx, ImageAPIService, metav1.GetOptions{}); err == nil {
			have.Object["spec"] = apiService.Object["spec"]
			_, err = apiServices.Update(ctx, have, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("registering APIService %s: %w", ImageAPIService, err)
	}
	return waitForAggregatedAPI(ctx, client, dyn)
}

// waitForAggregatedAPI polls kube's discovery of image.openshift.io/v1, which the
// aggregator proxies to the image API server once its availability check passed; on
// timeout it says why the APIService is not available.
func waitForAggregatedAPI(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface) error {
	for {
		_, err := client.Discovery().ServerResourcesForGroupVersion(imageGroupVersion)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver does not serve %s: %w (last: %v; APIService %s: %s)",
				imageGroupVersion, ctx.Err(), err, ImageAPIService, apiServiceAvailability(dyn))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// apiServiceAvailability describes the APIService's Available condition, for errors.
func apiServiceAvailability(dyn dynamic.Interface) string {
	// The caller's context has ended; this one read is bounded on its own.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	obj, err := dyn.Resource(apiServicesResource).Get(ctx, ImageAPIService, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	conditions, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conditions {
		if m, ok := c.(map[string]any); ok && m["type"] == "Available" {
			return fmt.Sprintf("Available=%v, %v: %v", m["status"], m["reason"], m["message"])
		}
	}
	return "no Available condition yet"
}

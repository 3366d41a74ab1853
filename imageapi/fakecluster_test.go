package imageapi

import (
	"io"
	"time"

	appsv1 "github.com/openshift/api/apps/v1"
	buildv1 "github.com/openshift/api/build/v1"
	imagev1 "github.com/openshift/api/image/v1"
	appsfake "github.com/openshift/client-go/apps/clientset/versioned/fake"
	buildfake "github.com/openshift/client-go/build/clientset/versioned/fake"
	imagefake "github.com/openshift/client-go/image/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/sirupsen/logrus"
)

// fakeCluster is a Connection to fake clientsets, and the fakes, for their reactors.
type fakeCluster struct {
	*Connection
	kube   *kubefake.Clientset
	apps   *appsfake.Clientset
	builds *buildfake.Clientset
	images *imagefake.Clientset
}

// newFakeCluster serves objects, each from the fake clientset of its API group.
func newFakeCluster(objects ...runtime.Object) *fakeCluster {
	var kube, apps, builds, images []runtime.Object
	for _, o := range objects {
		switch o.(type) {
		case *appsv1.DeploymentConfig:
			apps = append(apps, o)
		case *buildv1.Build, *buildv1.BuildConfig:
			builds = append(builds, o)
		case *imagev1.Image, *imagev1.ImageStream:
			images = append(images, o)
		default:
			kube = append(kube, o)
		}
	}
	f := &fakeCluster{
		kube:   kubefake.NewSimpleClientset(kube...),
		apps:   appsfake.NewSimpleClientset(apps...),
		builds: buildfake.NewSimpleClientset(builds...),
		images: imagefake.NewSimpleClientset(images...),
	}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	f.Connection = &Connection{
		Lister: &Lister{Client: f.images.ImageV1(), PageSize: 2, Log: quiet},
		Kube:   f.kube,
		Apps:   f.apps.AppsV1(),
		Builds: f.builds.BuildV1(),
	}
	return f
}

// objectMeta names an object created longAgo.
func objectMeta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(longAgo)}
}

// The tests' clock: the run starts at now, with -keep-younger-than=1h.
var (
	now     = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	cutoff  = now.Add(-time.Hour)
	longAgo = now.Add(-24 * time.Hour)
)

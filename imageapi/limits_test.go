package imageapi

import (
	"context"
	"reflect"
	"testing"

	imagev1 "github.com/openshift/api/image/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func limitRange(ns, name string, limits ...corev1.LimitRangeItem) *corev1.LimitRange {
	return &corev1.LimitRange{ObjectMeta: objectMeta(ns, name), Spec: corev1.LimitRangeSpec{Limits: limits}}
}

func limit(t corev1.LimitType, max corev1.ResourceList) corev1.LimitRangeItem {
	return corev1.LimitRangeItem{Type: t, Max: max}
}

func storage(q string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(q)}
}

// TestLimits: per namespace, the smallest max storage of the openshift.io/Image limits of its
// LimitRanges; other types and limits without a max storage bound nothing.
func TestLimits(t *testing.T) {
	f := newFakeCluster(
		limitRange("shop", "images", limit(imagev1.LimitTypeImage, storage("1Gi"))),
		limitRange("shop", "smaller",
			limit(corev1.LimitTypeContainer, storage("1Mi")),
			limit(imagev1.LimitTypeImage, storage("500Mi")),
			limit(imagev1.LimitTypeImage, storage("600M")),
		),
		limitRange("shop", "no-storage", limit(imagev1.LimitTypeImage, corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("1"),
		})),
		limitRange("dev", "decimal", limit(imagev1.LimitTypeImage, storage("2G"))),
		limitRange("ops", "containers-only", limit(corev1.LimitTypePod, storage("1Ki"))),
		limitRange("ops", "image-streams", limit(imagev1.LimitTypeImageStream, corev1.ResourceList{
			imagev1.ResourceImageStreamImages: resource.MustParse("10"),
		})),
	)
	got, err := f.Limits(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"shop": 500 << 20, "dev": 2_000_000_000}
	if !reflect.DeepEqual(map[string]int64(got), want) {
		t.Errorf("got %v, want %v", got, want)
	}

	got, err = f.Limits(context.Background(), "dev")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(map[string]int64(got), map[string]int64{"dev": 2_000_000_000}) {
		t.Errorf("namespace dev: got %v", got)
	}
}

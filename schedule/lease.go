package schedule

import (
	"context"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// maxResultLength bounds the recorded result: annotations share 256 KiB per object, and a
// summary or an error of a prune could list much.
const maxResultLength = 4096

func metaFor(name, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace}
}

// recordResult writes a run's result into the Lease's annotations. Read-modify-write, retried
// on conflict: leader election renews the same object (its spec) every retry period, and its
// fields stay as read.
func recordResult(ctx context.Context, client kubernetes.Interface, namespace, name string, res result) error {
	leases := client.CoordinationV1().Leases(namespace)
	text := res.summary
	if res.err != nil {
		text = res.err.Error()
	}
	if len(text) > maxResultLength {
		text = text[:maxResultLength-len("...")] + "..."
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		lease, err := leases.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if lease.Annotations == nil {
			lease.Annotations = map[string]string{}
		}
		lease.Annotations[AnnotationLastTime] = res.started.UTC().Format(time.RFC3339)
		lease.Annotations[AnnotationLastResult] = text
		lease.Annotations[AnnotationLastDuration] = res.took.Round(time.Millisecond).String()
		lease.Annotations[AnnotationLastSucceeded] = strconv.FormatBool(res.err == nil)
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		return err
	})
}

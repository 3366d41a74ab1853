// Command kube-apiserver is the upstream Kubernetes API server
// (k8s.io/kubernetes/cmd/kube-apiserver, v1.34), built as a nested module so
// the end-to-end tests can delegate the image API server's authentication
// and authorization (TokenReview, SubjectAccessReview, RBAC) to a real one.
// Its dependencies never enter the product's go.mod.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register" // for JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version" // for version metric registration
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	command := app.NewAPIServerCommand()
	code := cli.Run(command)
	os.Exit(code)
}

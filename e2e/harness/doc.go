// Package harness starts the real processes the end-to-end tests and the
// demo run against: etcd, the image.openshift.io API server built from
// e2e/imageapiserver, a real kube-apiserver built from e2e/kubeapiserver for
// authentication and RBAC (see e2e/tools/build.sh), and the registry binary
// itself, serving or pruning.
//
// Two ways to serve the image API:
//   - StartImageAPIServer alone (StartImageAPIT in tests): insecure, everyone
//     is a cluster admin, no kube-apiserver; starts in about a second and a
//     half. Most tests use it.
//   - StartCluster (StartClusterT): the proving ground, as OpenShift serves
//     it. The kube-apiserver serves image.openshift.io/v1 through API
//     aggregation (APIService v1.image.openshift.io, an ExternalName service
//     naming the image API server's loopback address, since Endpoints and
//     EndpointSlices refuse loopback addresses); the image API server trusts
//     the aggregator's front-proxy certificate and asks the kube-apiserver
//     (TokenReview, SubjectAccessReview) who a request is and what it may do.
//     One URL, one kubeconfig and one token reach pods, RBAC, access reviews,
//     Images and ImageStreams. It also serves OpenShift's DeploymentConfigs,
//     BuildConfigs and Builds from CustomResourceDefinitions (workloadapis.go),
//     so that CreateReferrer (referrers.go) seeds every kind of object whose
//     images the ordinary prune keeps. It starts in about five seconds (the
//     kube-apiserver's own start-up); the RBAC and access tests use it, with
//     OpenShift's image roles (rbac.go: system:image-puller, -pusher; the
//     pruner's, system:image-pruner, is read from deploy/pruner-rbac.yaml)
//     and the registry's own ClusterRole (RegistryClusterRole).
//
// The registry counts as started when /healthz answers: under auth:
// openshift, /v2/ asks for credentials.
//
// The Start functions take a context (which bounds the start-up only), a
// directory for data and logs, and return a handle whose Stop kills the
// process group and waits. They work from any program; the ...T wrappers in
// testing.go tie them to a testing.TB (t.TempDir, t.Cleanup, logs printed on
// failure).
//
// Binaries: E2E_BIN_DIR (default <repo root>/_output/bin) holds
// imageapiserver and kube-apiserver; etcd is E2E_ETCD, else <bin dir>/etcd,
// else etcd on PATH.
package harness

// Package harness starts the real processes the end-to-end tests and the
// demo run against: etcd, the image.openshift.io API server built from
// e2e/imageapiserver, a real kube-apiserver built from e2e/kubeapiserver for
// authentication and RBAC (see e2e/tools/build.sh), and the registry binary
// itself, serving or pruning.
//
// The Start functions take a context (which bounds the start-up only), a
// directory for data and logs, and return a handle whose Stop kills the
// process group and waits. They work from any program; the ...T wrappers in
// testing.go tie them to a testing.TB (t.TempDir, t.Cleanup, logs printed on
// failure).
//
// Binaries: E2E_BIN_DIR (default <repo root>/_output/bin) holds
// imageapiserver; etcd is E2E_ETCD, else <bin dir>/etcd, else etcd on PATH.
package harness

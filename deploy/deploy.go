// Package deploy holds the manifests an administrator applies (README.md), embedded so that
// the tests apply the very files shipped, and the test harness grants the image pruner role
// from this one copy of it.
package deploy

import "embed"

// Manifests are the *.yaml files of this directory.
//
//go:embed *.yaml
var Manifests embed.FS

// PrunerRBAC is the file of the pruner's ServiceAccount, the system:image-pruner ClusterRole
// and its binding.
const PrunerRBAC = "pruner-rbac.yaml"

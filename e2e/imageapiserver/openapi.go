package main

import (
	openshiftopenapi "github.com/openshift/api/openapi/generated_openapi"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// getOpenAPIDefinitions returns openshift/api's generated definitions (they
// include the k8s.io/apimachinery meta types) plus the few the generic server
// needs that are not in there. The generic server refuses to start without
// OpenAPI v2 and v3 configs, and builds server-side apply's type converter
// from them.
func getOpenAPIDefinitions(ref common.ReferenceCallback) map[string]common.OpenAPIDefinition {
	defs := openshiftopenapi.GetOpenAPIDefinitions(ref)
	if _, ok := defs[versionInfoName]; !ok {
		defs[versionInfoName] = versionInfoDefinition()
	}
	return defs
}

const versionInfoName = "k8s.io/apimachinery/pkg/version.Info"

// versionInfoDefinition describes what /version returns.
func versionInfoDefinition() common.OpenAPIDefinition {
	props := map[string]spec.Schema{}
	for _, name := range []string{
		"major", "minor", "emulationMajor", "emulationMinor", "minCompatibilityMajor",
		"minCompatibilityMinor", "gitVersion", "gitCommit", "gitTreeState", "buildDate",
		"goVersion", "compiler", "platform",
	} {
		props[name] = spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"string"}, Default: ""}}
	}
	return common.OpenAPIDefinition{
		Schema: spec.Schema{
			SchemaProps: spec.SchemaProps{
				Description: "Info contains versioning information.",
				Type:        []string{"object"},
				Properties:  props,
				Required: []string{
					"major",
					"minor",
					"gitVersion",
					"gitCommit",
					"gitTreeState",
					"buildDate",
					"goVersion",
					"compiler",
					"platform",
				},
			},
		},
	}
}

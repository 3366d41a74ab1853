package imageapi

import (
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RESTConfig finds the credentials for the image API, in this order:
//  1. the KUBECONFIG environment variable, when set (an administrator's explicit choice for
//     this process);
//  2. the kubeconfig named by the configuration's openshift.kubeconfig (or
//     REGISTRY_OPENSHIFT_KUBECONFIG);
//  3. the pod's service account, inside a cluster;
//  4. ~/.kube/config.
//
// It returns the config and a short description of where it came from, for the log.
func RESTConfig(configKubeconfig string) (*rest.Config, string, error) {
	if env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar); env != "" {
		cfg, err := fromKubeconfig(clientcmd.NewDefaultClientConfigLoadingRules())
		if err != nil {
			return nil, "", fmt.Errorf("loading KUBECONFIG=%s: %w", env, err)
		}
		return cfg, "KUBECONFIG=" + env, nil
	}
	if configKubeconfig != "" {
		cfg, err := fromKubeconfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: configKubeconfig})
		if err != nil {
			return nil, "", fmt.Errorf("loading openshift.kubeconfig %s: %w", configKubeconfig, err)
		}
		return cfg, "openshift.kubeconfig " + configKubeconfig, nil
	}
	if cfg, err := rest.InClusterConfig(); err == nil {
		return cfg, "in-cluster service account", nil
	} else if err != rest.ErrNotInCluster {
		return nil, "", fmt.Errorf("loading the in-cluster service account: %w", err)
	}
	if _, err := os.Stat(clientcmd.RecommendedHomeFile); err == nil {
		cfg, err := fromKubeconfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: clientcmd.RecommendedHomeFile})
		if err != nil {
			return nil, "", fmt.Errorf("loading %s: %w", clientcmd.RecommendedHomeFile, err)
		}
		return cfg, clientcmd.RecommendedHomeFile, nil
	}
	return nil, "", fmt.Errorf(
		"no credentials for the image API: not in a cluster, no KUBECONFIG, no openshift.kubeconfig in the configuration, no %s",
		clientcmd.RecommendedHomeFile,
	)
}

func fromKubeconfig(rules *clientcmd.ClientConfigLoadingRules) (*rest.Config, error) {
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
}

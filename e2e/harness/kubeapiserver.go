package harness

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Users of the kube-apiserver's static token file (--token-auth-file); their
// tokens are in KubeAPIServer.Tokens.
const (
	// KubeAdminUser is in group system:masters (all permissions, RBAC
	// bypassed); its token is DefaultToken, so an image API server started
	// with the default ImageAPIServerOptions.Token and DelegatedAuthArgs
	// writes an admin kubeconfig.
	KubeAdminUser = "admin"
	// KubePrunerUser has no permissions until bound, e.g. by BindImagePruner.
	KubePrunerUser = "pruner"
	// KubeNobodyUser has no permissions (only system:authenticated's).
	KubeNobodyUser = "nobody"
)

// ImagePrunerRole is the name of the ClusterRole created by
// CreateImagePrunerRole, as in OpenShift.
const ImagePrunerRole = "system:image-pruner"

// kubeEtcdPrefix is the default --etcd-prefix: the image API server uses
// /imageapiserver, so both can share one etcd.
const kubeEtcdPrefix = "/kubeapiserver"

// KubeAPIServerOptions configures StartKubeAPIServer.
type KubeAPIServerOptions struct {
	// EtcdEndpoint is the etcd client URL (required).
	EtcdEndpoint string
	// EtcdPrefix is --etcd-prefix; "/kubeapiserver" if empty.
	EtcdPrefix string
	// ExtraArgs are appended to the command line (e.g. -v=4).
	ExtraArgs []string
}

// KubeAPIServer is a running kube-apiserver with RBAC authorization and
// static bearer tokens.
type KubeAPIServer struct {
	*Process
	// URL is https://127.0.0.1:<port>.
	URL string
	// Kubeconfig is the path of the admin kubeconfig (CA pinned, admin token).
	Kubeconfig string
	// CAFile holds the self-signed serving certificate and its CA.
	CAFile string
	// AdminToken is the token of KubeAdminUser (system:masters).
	AdminToken string
	// Tokens maps the users of the token file (KubeAdminUser, KubePrunerUser,
	// KubeNobodyUser) to their bearer tokens.
	Tokens map[string]string
	// ServiceAccountKeyFile is the key that signs service account tokens (PEM, PKCS #1), for
	// tests that forge tokens the cluster must refuse (expired ones).
	ServiceAccountKeyFile string
	// FrontProxyCAFile is the CA of the client certificate the aggregator presents when it
	// proxies a request to an aggregated API server (--requestheader-client-ca-file). That
	// server learns it from the extension-apiserver-authentication ConfigMap in kube-system.
	FrontProxyCAFile string
}

// FrontProxyClientName is the common name of the aggregator's client certificate, the one
// name --requestheader-allowed-names lets set the identity headers (as kubeadm names it).
const FrontProxyClientName = "front-proxy-client"

// KubeAPIServerBinary returns the path of the built kube-apiserver.
func KubeAPIServerBinary() (string, error) {
	dir, err := BinDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kube-apiserver")
	if !isExecutable(path) {
		return "", fmt.Errorf("%s: %w", path, ErrBinaryMissing)
	}
	return path, nil
}

// StartKubeAPIServer starts <bin dir>/kube-apiserver against
// opts.EtcdEndpoint on a free loopback port, with its service-account keys,
// token file, self-signed serving certificate and admin kubeconfig in
// <dir>/kube-apiserver and its log in <dir>/kube-apiserver.log (also copied
// to log, if not nil), and waits for /readyz. Authorization is RBAC only;
// the users are those of the constants above. ctx bounds the start-up only
// (DefaultStartTimeout if it has no deadline); call Stop to end it.
func StartKubeAPIServer(
	ctx context.Context,
	dir string,
	log io.Writer,
	opts KubeAPIServerOptions,
) (*KubeAPIServer, error) {
	if opts.EtcdEndpoint == "" {
		return nil, errors.New("kube-apiserver: no etcd endpoint")
	}
	binary, err := KubeAPIServerBinary()
	if err != nil {
		return nil, err
	}
	if opts.EtcdPrefix == "" {
		opts.EtcdPrefix = kubeEtcdPrefix
	}
	confDir := filepath.Join(dir, "kube-apiserver")
	certDir := filepath.Join(confDir, "certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	saKey, saPub := filepath.Join(confDir, "sa.key"), filepath.Join(confDir, "sa.pub")
	if err := writeServiceAccountKeys(saKey, saPub); err != nil {
		return nil, fmt.Errorf("kube-apiserver: %w", err)
	}
	tokens := map[string]string{
		KubeAdminUser:  DefaultToken,
		KubePrunerUser: "e2e-pruner-token",
		KubeNobodyUser: "e2e-nobody-token",
	}
	tokenFile := filepath.Join(confDir, "tokens.csv")
	// token,user,uid,"group1,group2"
	tokenCSV := fmt.Sprintf(
		"%s,%s,uid-admin,\"system:masters\"\n%s,%s,uid-pruner\n%s,%s,uid-nobody\n",
		tokens[KubeAdminUser],
		KubeAdminUser,
		tokens[KubePrunerUser],
		KubePrunerUser,
		tokens[KubeNobodyUser],
		KubeNobodyUser,
	)
	if err := os.WriteFile(tokenFile, []byte(tokenCSV), 0o600); err != nil {
		return nil, err
	}
	frontProxy, err := writeFrontProxyPKI(confDir)
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver: %w", err)
	}

	var url string
	p, err := startOnFreePorts(1, func(ports []int) (*Process, error) {
		url = "https://127.0.0.1:" + strconv.Itoa(ports[0])
		args := []string{
			"--etcd-servers=" + opts.EtcdEndpoint,
			"--etcd-prefix=" + opts.EtcdPrefix,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(ports[0]),
			// Self-signed CA and serving certificate (for 127.0.0.1, the
			// advertise address) written here on first start.
			"--cert-dir=" + certDir,
			"--authorization-mode=RBAC",
			"--token-auth-file=" + tokenFile,
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + saPub,
			"--service-account-signing-key-file=" + saKey,
			"--service-cluster-ip-range=10.0.0.0/24",
			// The "kubernetes" service's endpoints would be 127.0.0.1, which
			// endpoint validation rejects; nothing here needs them.
			"--endpoint-reconciler-type=none",
		}
		args = append(args, frontProxy.args()...)
		args = append(args, opts.ExtraArgs...)
		return startProcess(dir, "kube-apiserver", log, binary, args...)
	}, func(p *Process) error {
		// /readyz needs RBAC's bootstrap roles for anonymous users; the admin
		// token (system:masters) is allowed from the start.
		if err := p.waitReadyToken(ctx, url+"/readyz", tokens[KubeAdminUser]); err != nil {
			return fmt.Errorf("kube-apiserver: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s := &KubeAPIServer{Process: p, URL: url, CAFile: filepath.Join(certDir, "apiserver.crt"),
		AdminToken: tokens[KubeAdminUser], Tokens: tokens,
		Kubeconfig:       filepath.Join(confDir, "admin.kubeconfig"),
		FrontProxyCAFile: frontProxy.caFile, ServiceAccountKeyFile: saKey}
	if err := writeKubeKubeconfig(s.Kubeconfig, s.URL, s.CAFile, KubeAdminUser, s.AdminToken); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return s, nil
}

// frontProxyPKI is the aggregator's side of request-header authentication: the CA an
// aggregated server trusts, and the client certificate and key kube-apiserver presents.
type frontProxyPKI struct {
	caFile, certFile, keyFile string
}

// writeFrontProxyPKI writes a front-proxy CA and the aggregator's client certificate into dir.
func writeFrontProxyPKI(dir string) (*frontProxyPKI, error) {
	ca, err := newCertAuthority("e2e-front-proxy-ca")
	if err != nil {
		return nil, err
	}
	pki := &frontProxyPKI{
		caFile:   filepath.Join(dir, "front-proxy-ca.crt"),
		certFile: filepath.Join(dir, "front-proxy-client.crt"),
		keyFile:  filepath.Join(dir, "front-proxy-client.key"),
	}
	if err := os.WriteFile(pki.caFile, ca.pem, 0o644); err != nil {
		return nil, err
	}
	if err := ca.writeIssued(pki.certFile, pki.keyFile, FrontProxyClientName, x509.ExtKeyUsageClientAuth,
		nil, nil); err != nil {
		return nil, err
	}
	return pki, nil
}

// args are kube-apiserver's aggregator flags, with the header names every cluster uses.
func (f *frontProxyPKI) args() []string {
	return []string{
		"--requestheader-client-ca-file=" + f.caFile,
		"--requestheader-allowed-names=" + FrontProxyClientName,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + f.certFile,
		"--proxy-client-key-file=" + f.keyFile,
		// Route to an APIService's service by its cluster IP or, for an ExternalName service,
		// its external name; aggregator routing would pick an EndpointSlice address instead,
		// and EndpointSlice validation refuses loopback addresses, where the test servers
		// listen. StartCluster registers the image API with an ExternalName service.
		"--enable-aggregator-routing=false",
	}
}

// DelegatedAuthArgs returns the imageapiserver flags (ImageAPIServerOptions.AuthArgs)
// that delegate authentication (TokenReview) and authorization
// (SubjectAccessReview, i.e. RBAC) to kube, and give its admission plugins
// (NamespaceLifecycle, the admission webhooks and policies) and API priority
// and fairness the core API, all with the admin kubeconfig. The server also
// reads kube's extension-apiserver-authentication ConfigMap, as every aggregated
// API server does, so it trusts the identity headers of requests the aggregator
// proxies (front-proxy client certificate) besides bearer tokens sent to it
// directly. Health checks need no authorization. Note that NamespaceLifecycle
// makes creating an image stream need its namespace in kube (CreateNamespace).
func DelegatedAuthArgs(kube *KubeAPIServer) []string {
	return []string{
		"--authentication-kubeconfig=" + kube.Kubeconfig,
		"--authorization-kubeconfig=" + kube.Kubeconfig,
		"--kubeconfig=" + kube.Kubeconfig,
		"--authorization-always-allow-paths=/healthz,/readyz,/livez",
	}
}

// RESTConfig returns an admin client configuration for kube.
func (k *KubeAPIServer) RESTConfig() (*rest.Config, error) {
	return clientcmd.BuildConfigFromFlags("", k.Kubeconfig)
}

// Client returns an admin clientset for kube.
func (k *KubeAPIServer) Client() (kubernetes.Interface, error) {
	cfg, err := k.RESTConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// CreateNamespace creates namespace name unless it exists.
func (k *KubeAPIServer) CreateNamespace(ctx context.Context, name string) error {
	c, err := k.Client()
	if err != nil {
		return err
	}
	return createNamespace(ctx, c, name)
}

func createNamespace(ctx context.Context, c kubernetes.Interface, name string) error {
	_, err := c.CoreV1().
		Namespaces().
		Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

// CreateImagePrunerRole creates (or updates) the ImagePrunerClusterRole.
func (k *KubeAPIServer) CreateImagePrunerRole(ctx context.Context) error {
	c, err := k.Client()
	if err != nil {
		return err
	}
	return createImagePrunerRole(ctx, c)
}

func createImagePrunerRole(ctx context.Context, c kubernetes.Interface) error {
	return createClusterRole(ctx, c, ImagePrunerClusterRole())
}

// KubeUser is an RBAC subject for a user (e.g. KubePrunerUser).
func KubeUser(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

// KubeServiceAccount is an RBAC subject for a service account.
func KubeServiceAccount(namespace, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}
}

// BindImagePruner creates the image pruner ClusterRole if needed, binds it
// to subject with a ClusterRoleBinding, and waits until kube's RBAC
// authorizer lets subject list images.image.openshift.io (so a delegating
// server does not cache a denial made before the binding took effect).
func (k *KubeAPIServer) BindImagePruner(ctx context.Context, subject rbacv1.Subject) error {
	c, err := k.Client()
	if err != nil {
		return err
	}
	if err := createImagePrunerRole(ctx, c); err != nil {
		return err
	}
	if err := bindClusterRole(ctx, c, ImagePrunerRole, subject); err != nil {
		return err
	}
	return waitForAccess(ctx, c, subjectUser(subject), authorizationv1.ResourceAttributes{
		Verb: "list", Group: "image.openshift.io", Resource: "images",
	})
}

// BindClusterRole binds the ClusterRole role to subject with a
// ClusterRoleBinding (named after both; an existing one is kept).
func (k *KubeAPIServer) BindClusterRole(ctx context.Context, role string, subject rbacv1.Subject) error {
	c, err := k.Client()
	if err != nil {
		return err
	}
	return bindClusterRole(ctx, c, role, subject)
}

func bindClusterRole(ctx context.Context, c kubernetes.Interface, role string, subject rbacv1.Subject) error {
	name := strings.NewReplacer(":", "-", "/", "-").
		Replace(role + "-" + strings.ToLower(subject.Kind) + "-" + subject.Namespace + "-" + subject.Name)
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{subject},
	}
	_, err := c.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding cluster role %s to %s %s: %w", role, subject.Kind, subject.Name, err)
	}
	return nil
}

// subjectUser is the user name a subject authenticates as.
func subjectUser(s rbacv1.Subject) string {
	if s.Kind == rbacv1.ServiceAccountKind {
		return "system:serviceaccount:" + s.Namespace + ":" + s.Name
	}
	return s.Name
}

// waitForAccess polls SubjectAccessReviews until user may do attrs (RBAC
// applies bindings from an informer, a moment after they are created).
func waitForAccess(
	ctx context.Context,
	c kubernetes.Interface,
	user string,
	attrs authorizationv1.ResourceAttributes,
) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	for {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, ResourceAttributes: &attrs,
		}}
		res, err := c.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err == nil && res.Status.Allowed {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf(
				"%s still may not %s %s.%s: %w (last: %v)",
				user,
				attrs.Verb,
				attrs.Resource,
				attrs.Group,
				ctx.Err(),
				err,
			)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// CreateServiceAccountToken creates namespace and service account name in
// it unless they exist, and returns a token for it from the TokenRequest API
// (valid for an hour, for kube's default audience, which delegated
// authentication accepts).
func (k *KubeAPIServer) CreateServiceAccountToken(ctx context.Context, namespace, name string) (string, error) {
	c, err := k.Client()
	if err != nil {
		return "", err
	}
	if err := createNamespace(ctx, c, namespace); err != nil {
		return "", err
	}
	sas := c.CoreV1().ServiceAccounts(namespace)
	_, err = sas.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating service account %s/%s: %w", namespace, name, err)
	}
	expiration := int64(3600)
	tr, err := sas.CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiration},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token for service account %s/%s: %w", namespace, name, err)
	}
	return tr.Status.Token, nil
}

// writeServiceAccountKeys writes an RSA key pair for signing (private) and
// verifying (public) service account tokens.
func writeServiceAccountKeys(keyPath, pubPath string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

// KubeconfigFor writes a kubeconfig for kube that authenticates with token, to act as
// another identity (a user without rights, a bad token, a service account).
func (k *KubeAPIServer) KubeconfigFor(path, token string) error {
	return writeKubeKubeconfig(path, k.URL, k.CAFile, "user", token)
}

// writeKubeKubeconfig writes a kubeconfig for server with the CA inlined.
func writeKubeKubeconfig(path, server, caFile, user, token string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("reading the serving CA: %w", err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kube-apiserver"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["kube-apiserver"] = &clientcmdapi.Context{Cluster: "kube-apiserver", AuthInfo: user}
	cfg.CurrentContext = "kube-apiserver"
	return clientcmd.WriteToFile(*cfg, path)
}

// splitHostPort returns the host and port of an https://host:port URL.
func splitHostPort(rawURL string) (host, port string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", "", err
	}
	if host, port, err = net.SplitHostPort(u.Host); err != nil {
		return "", "", fmt.Errorf("URL %s: %w", rawURL, err)
	}
	return host, port, nil
}

// waitReadyToken is waitReady with a bearer token.
func (p *Process) waitReadyToken(ctx context.Context, url, token string) error {
	return p.waitReadyAs(ctx, url, "", token)
}

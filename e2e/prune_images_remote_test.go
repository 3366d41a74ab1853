package e2e

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hardprune/image-registry/e2e/harness"
)

// remoteWorld is the ordinary prune run away from the registry (a CronJob): the cluster, a
// registry served over TLS under auth: openshift, and the pruner's kubeconfig; the prune
// deletes through -registry-url with the pruner's token, without the registry's
// configuration.
type remoteWorld struct {
	*imagesWorld
	ca *harness.TestCA
	// tlsPort is the TLS registry's port; name is a name of this machine that is neither an IP
	// address nor localhost, which the certificate names too.
	tlsPort, name string
	// plain is a registry without TLS, over storage of its own (only pinged).
	plain *harness.Registry
}

// machineName is the machine's host name, which the prune takes as a public name (it resolves
// no name): it must resolve to addresses of this machine, for the registry to be reached by
// it. allAddresses says the registry must listen beyond 127.0.0.1 for that.
func machineName(t *testing.T) (name string, allAddresses bool) {
	t.Helper()
	name, err := os.Hostname()
	if err != nil || name == "" || name == "localhost" || net.ParseIP(name) != nil {
		t.Skipf("the host name (%q, %v) is not a name the prune takes as public", name, err)
	}
	addrs, err := net.LookupHost(name)
	if err != nil {
		t.Skipf("the host name %s does not resolve (%v): no public-looking name reaches the registry", name, err)
	}
	local := map[string]bool{}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range ifaddrs {
		if ipnet, ok := a.(*net.IPNet); ok {
			local[ipnet.IP.String()] = true
		}
	}
	for _, a := range addrs {
		ip := net.ParseIP(a)
		if ip == nil || !(ip.IsLoopback() || local[ip.String()]) {
			t.Skipf("the host name %s resolves to %v, not all addresses of this machine", name, addrs)
		}
		allAddresses = allAddresses || a != "127.0.0.1"
	}
	return name, allAddresses
}

func newRemoteWorld(t *testing.T) *remoteWorld {
	t.Helper()
	name, allAddresses := machineName(t)
	w := &remoteWorld{imagesWorld: newImagesCluster(t), name: name}
	ctx := context.Background()

	ca, err := harness.NewTestCA(t.TempDir(), "e2e-registry-ca")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.Issue(t.TempDir(), []string{name}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	w.ca = ca
	reg, err := harness.StartRegistry(ctx, t.TempDir(), nil, harness.RegistryOptions{
		Kubeconfig: w.kubeconfig, StorageDir: w.storageDir, Config: authConfig,
		TLS:          &harness.TLSFiles{CertFile: certFile, KeyFile: keyFile, CAFile: ca.CertPath},
		AllAddresses: allAddresses,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("TLS registry log (%s):\n%s", reg.LogPath, harness.LogTail(reg.LogPath, 60))
		}
		_ = reg.Stop()
	})
	w.reg = reg
	_, w.tlsPort, _ = net.SplitHostPort(reg.Host)
	// The test pushes and pulls as the cluster's admin, trusting the registry's CA only.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: ca.CertPool(), MinVersion: tls.VersionTLS12}
	w.transport = transport
	w.auth = &authn.Basic{Username: "admin", Password: w.cluster.AdminToken}

	w.plain, err = harness.StartRegistry(ctx, t.TempDir(), nil, harness.RegistryOptions{
		Kubeconfig: w.kubeconfig, StorageDir: t.TempDir(), Config: authConfig, AllAddresses: allAddresses,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.plain.Stop() })
	return w
}

// pruneRemote runs `dockerregistry -prune-images --confirm --keep-tag-revisions=1
// --keep-younger-than=0s args...` as the pruner's CronJob would: no registry configuration
// (neither the argument nor REGISTRY_CONFIGURATION_PATH), the pruner's kubeconfig.
func (w *remoteWorld) pruneRemote(args ...string) harness.PruneResult {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := []string{"KUBECONFIG=" + w.prunerKubeconfig, "REGISTRY_CONFIGURATION_PATH=", "REGISTRY_LOG_LEVEL=info"}
	args = append([]string{"-prune-images", "--confirm", "--keep-tag-revisions=1", "--keep-younger-than=0s"}, args...)
	res, err := harness.RunPrune(ctx, env, args...)
	if err != nil {
		w.t.Fatal(err)
	}
	return res
}

// twoRevisions pushes two images to <ns>/app:latest, the older of which the prune removes.
func (w *remoteWorld) twoRevisions(ns string) *scenario {
	w.t.Helper()
	s := w.scenario(ns)
	s.push("app:latest", "old")
	s.push("app:latest", "new")
	return s
}

// pruned checks a confirmed run that deleted the old revision through the registry: the
// summary, the history item and the Image gone, exactly the old image's links and blobs gone
// from storage, the new image still pulling and the old one no longer.
func (w *remoteWorld) pruned(s *scenario, res harness.PruneResult, filesBefore map[string]bool) {
	t := w.t
	t.Helper()
	if res.ExitCode != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	const summary = "Summary: deleted 1 image object(s), deleted 1 image stream tag item(s), " +
		"updated 1 image stream(s), deleted 2 layer link(s), deleted 1 manifest link(s), deleted 3 blob(s)"
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if got := lines[len(lines)-1]; got != summary {
		t.Errorf("summary:\n got %s\nwant %s\nstdout:\n%s", got, summary, res.Stdout)
	}
	if got := s.history("app", "latest"); !slices.Equal(got, []string{"new"}) {
		t.Errorf("history %v, want [new]", got)
	}
	if s.imageExists("old") || !s.imageExists("new") {
		t.Errorf(
			"Images: old kept = %v (want false), new kept = %v (want true)",
			s.imageExists("old"),
			s.imageExists("new"),
		)
	}
	want := uniqueSorted(append(s.linkFiles("app", "old"), s.blobFiles("old")...))
	if got := removedFiles(filesBefore, w.files()); !slices.Equal(got, want) {
		t.Errorf("removed files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The registry deleted as the pruner, whose token it checked: the blob of the old manifest.
	blob := s.images["old"].digest.String()
	log, err := os.ReadFile(w.reg.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, `http.request.uri="/admin/blobs/`+blob+`"`) {
			calls = append(calls, l)
		}
	}
	if len(calls) != 1 ||
		!strings.Contains(calls[0], `auth.user.name="system:serviceaccount:openshift-image-registry:pruner"`) ||
		!strings.Contains(calls[0], "http.response.status=204") {
		t.Errorf(
			"the registry's log of DELETE /admin/blobs/%s, want one call by the pruner answered 204:\n%s",
			blob,
			strings.Join(calls, "\n"),
		)
	}
	if err := w.pullsIdentical(s.ns+"/app:latest", s.images["new"].img); err != nil {
		t.Error(err)
	}
	if _, err := remote.Image(w.ref(s.ns+"/app@"+s.images["old"].digest.String()), w.remoteOptions()...); err == nil {
		t.Error("the pruned image still pulls")
	}
}

// TestPruneImagesRemoteTLS runs the ordinary prune away from the registry, deleting through
// -registry-url a registry served over TLS, under oc's rules: certificates verified against
// --certificate-authority; a name that is not a private address verified by default; plain
// http and unverified certificates with --force-insecure. Every refused run stops at the
// registry's ping, before any change, and says what to pass; each confirmed run deletes what
// it pruned (the history item, the Image, the links and the blobs) with the pruner's token,
// which the registry checks (auth: openshift).
func TestPruneImagesRemoteTLS(t *testing.T) {
	w := newRemoteWorld(t)
	other, err := harness.NewTestCA(t.TempDir(), "e2e-other-ca")
	if err != nil {
		t.Fatal(err)
	}
	byIP := w.reg.URL // https://127.0.0.1:<port>
	byName := net.JoinHostPort(w.name, w.tlsPort)
	_, plainPort, _ := net.SplitHostPort(w.plain.Host)
	plainByIP, plainByName := "127.0.0.1:"+plainPort, net.JoinHostPort(w.name, plainPort)
	// The start of the error line: the address asked and the rule that applied.
	cannotReach := func(url, rule string) string {
		return "error: cannot reach the registry at " + url + " (" + rule + "): "
	}
	const (
		verifiedByCA     = "certificates verified against -certificate-authority"
		secureByDefault  = "https with verified certificates"
		unknownAuthority = "tls: failed to verify certificate: x509: certificate signed by unknown authority"
		plainResponse    = "http: server gave HTTP response to HTTPS client"
		unchanged        = "(nothing was changed)"
	)

	s := w.twoRevisions("remote-refused")
	filesBefore, apiBefore := w.files(), w.apiState()
	for _, c := range []struct {
		name string
		args []string
		exit int
		// want are the key phrases of stderr's error line.
		want []string
	}{
		{
			name: "another CA",
			args: []string{"--registry-url=" + byIP, "--certificate-authority=" + other.CertPath},
			exit: 1,
			want: []string{
				cannotReach(byIP, verifiedByCA) + byIP + `: Get "` + byIP + `/": ` + unknownAuthority,
				"(the registry's certificate is not signed by the CA in " +
					"--certificate-authority=" + other.CertPath + ")",
				unchanged,
			},
		},
		{
			name: "no CA, by name",
			args: []string{"--registry-url=" + byName},
			exit: 1,
			want: []string{
				cannotReach(byName, secureByDefault) + "https://" + byName + `: Get "https://` + byName + `/": ` +
					unknownAuthority,
				"(pass --certificate-authority with the CA that signed the registry's certificate)",
				unchanged,
			},
		},
		{
			name: "a plain HTTP registry asked as https",
			args: []string{"--registry-url=https://" + plainByIP},
			exit: 1,
			want: []string{
				cannotReach("https://"+plainByIP, "a loopback or private address"),
				plainResponse,
				"(the registry speaks plain HTTP: use an http:// --registry-url)",
				unchanged,
			},
		},
		{
			name: "a plain HTTP registry by name",
			args: []string{"--registry-url=" + plainByName},
			exit: 1,
			want: []string{
				cannotReach(plainByName, secureByDefault),
				plainResponse,
				"(the registry speaks plain HTTP: pass --registry-url=http://" + plainByName +
					" or --force-insecure if you really want an insecure connection)",
				unchanged,
			},
		},
		{
			name: "the TLS registry asked as http",
			args: []string{"--registry-url=http://127.0.0.1:" + w.tlsPort},
			exit: 1,
			want: []string{
				cannotReach("http://127.0.0.1:"+w.tlsPort, "an http:// URL"),
				"GET /: 400 Bad Request: client sent an HTTP request to an HTTPS server",
				"(the registry speaks TLS: use an https:// --registry-url)",
				unchanged,
			},
		},
		{
			name: "a name the certificate does not hold",
			args: []string{"--registry-url=localhost:" + w.tlsPort, "--certificate-authority=" + w.ca.CertPath},
			exit: 1,
			want: []string{
				cannotReach("localhost:"+w.tlsPort, verifiedByCA),
				"x509: certificate is valid for " + w.name + ", not localhost",
				"(the registry's certificate does not name this host: " +
					"use the name it was issued for in --registry-url)",
				unchanged,
			},
		},
		{
			name: "a plain HTTP registry asked as https, with a CA",
			args: []string{"--registry-url=https://" + plainByIP, "--certificate-authority=" + w.ca.CertPath},
			exit: 1,
			want: []string{
				cannotReach("https://"+plainByIP, verifiedByCA),
				plainResponse,
				"(the registry speaks plain HTTP: pass --registry-url=http://" + plainByIP +
					" without --certificate-authority, which is for https only, or serve the registry over TLS)",
				unchanged,
			},
		},
		{
			name: "--certificate-authority with --force-insecure",
			args: []string{"--registry-url=" + byName, "--certificate-authority=" + w.ca.CertPath, "--force-insecure"},
			exit: exitUsageCode,
			want: []string{"error: --certificate-authority cannot be specified with --force-insecure"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			w.t = t
			res := w.pruneRemote(c.args...)
			if res.ExitCode != c.exit {
				t.Errorf("exit %d, want %d", res.ExitCode, c.exit)
			}
			for _, want := range c.want {
				if !strings.Contains(res.Stderr, want) {
					t.Errorf("stderr lacks %q", want)
				}
			}
			if strings.Contains(res.Stdout, "Deleting") || strings.Contains(res.Stdout, "Summary") {
				t.Errorf("a refused run printed its deletions:\n%s", res.Stdout)
			}
			if got := removedFiles(filesBefore, w.files()); len(got) > 0 || w.apiState() != apiBefore {
				t.Errorf("a refused run changed something: removed %q", got)
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
			}
		})
	}

	t.Run("the registry's CA", func(t *testing.T) {
		w.t = t
		filesBefore := w.files()
		res := w.pruneRemote("--registry-url="+byIP, "--certificate-authority="+w.ca.CertPath)
		reaching := `msg="reaching the registry" registry="` + byIP + `" rule="` + verifiedByCA + `"`
		if !strings.Contains(res.Stderr, reaching) {
			t.Errorf("stderr lacks %q:\n%s", reaching, res.Stderr)
		}
		w.pruned(s, res, filesBefore)
	})

	t.Run("--force-insecure by name", func(t *testing.T) {
		w.t = t
		s := w.twoRevisions("remote-insecure")
		filesBefore := w.files()
		res := w.pruneRemote("--registry-url="+byName, "--force-insecure")
		reaching := `msg="reaching the registry" registry="https://` + byName + `" rule=-force-insecure`
		if !strings.Contains(res.Stderr, reaching) {
			t.Errorf("stderr lacks %q:\n%s", reaching, res.Stderr)
		}
		w.pruned(s, res, filesBefore)
	})
	w.t = t
}

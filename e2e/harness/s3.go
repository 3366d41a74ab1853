package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// S3 bucket and credentials of the servers StartS3 starts. The keys are the root user's; the
// server listens on loopback only.
const (
	S3Bucket    = "registry"
	S3AccessKey = "e2eaccesskey"
	S3SecretKey = "e2esecretkey0123456789"
	S3Region    = "us-east-1"
)

// S3 is a running versitygw serving a posix directory over the S3 API.
type S3 struct {
	*Process
	// Endpoint is http://127.0.0.1:<port>.
	Endpoint string
	Bucket   string
	// AccessKey and SecretKey are the root user's credentials.
	AccessKey, SecretKey string
	// Root is the posix backend's directory; the bucket is the directory Root/Bucket and each
	// object the file Root/Bucket/<key>.
	Root string
}

// VersityGWBinary returns the path of versitygw, installed by e2e/tools/build.sh.
func VersityGWBinary() (string, error) {
	dir, err := BinDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "versitygw")
	if !isExecutable(path) {
		return "", fmt.Errorf("%s (run make tools): %w", path, ErrBinaryMissing)
	}
	return path, nil
}

// StartS3 starts versitygw on a free loopback port with a posix backend in dir/s3, creates
// the bucket (a directory of the backend) and waits until the server answers. Its log is
// dir/versitygw.log (also copied to log, if not nil). ctx bounds the start-up only; call Stop
// to end it.
func StartS3(ctx context.Context, dir string, log io.Writer) (*S3, error) {
	binary, err := VersityGWBinary()
	if err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "s3")
	if err := os.MkdirAll(filepath.Join(root, S3Bucket), 0o755); err != nil {
		return nil, err
	}
	env := []string{"ROOT_ACCESS_KEY=" + S3AccessKey, "ROOT_SECRET_KEY=" + S3SecretKey}
	var addr string
	p, err := startOnFreePorts(1, func(ports []int) (*Process, error) {
		addr = "127.0.0.1:" + strconv.Itoa(ports[0])
		// --default-etag: objects written straight into the backend directory (the benchmark's
		// generator does that for speed) have no stored ETag.
		return startProcessEnv(dir, "versitygw", log, env, binary,
			"--port", addr, "--region", S3Region, "--health", "/health", "--quiet",
			"posix", "--default-etag", "00000000000000000000000000000000", root)
	}, func(p *Process) error {
		return p.waitReady(ctx, "http://"+addr+"/health", "")
	})
	if err != nil {
		return nil, err
	}
	return &S3{
		Process:   p,
		Endpoint:  "http://" + addr,
		Bucket:    S3Bucket,
		AccessKey: S3AccessKey,
		SecretKey: S3SecretKey,
		Root:      root,
	}, nil
}

// BucketDir is the posix directory holding the bucket's objects.
func (s *S3) BucketDir() string { return filepath.Join(s.Root, s.Bucket) }

// DriverParameters are distribution's s3 driver parameters reaching this server at endpoint
// (s.Endpoint, or a proxy in front of it).
func (s *S3) DriverParameters(endpoint string) map[string]any {
	if endpoint == "" {
		endpoint = s.Endpoint
	}
	return map[string]any{
		"regionendpoint": endpoint,
		"forcepathstyle": true,
		"region":         S3Region,
		"bucket":         s.Bucket,
		"accesskey":      s.AccessKey,
		"secretkey":      s.SecretKey,
		"secure":         strings.HasPrefix(endpoint, "https://"),
		"v4auth":         true,
	}
}

// StorageYAML is the body of a registry configuration's storage section (without the
// `storage:` key, not indented) for this server at endpoint (s.Endpoint, or a proxy in front
// of it). Redirects are off so that every read goes through the registry.
func (s *S3) StorageYAML(endpoint string) string {
	p := s.DriverParameters(endpoint)
	return fmt.Sprintf(`s3:
  regionendpoint: %s
  forcepathstyle: true
  region: %s
  bucket: %s
  accesskey: %s
  secretkey: %s
  secure: %t
  v4auth: true
redirect:
  disable: true
`, p["regionendpoint"], S3Region, s.Bucket, s.AccessKey, s.SecretKey, p["secure"])
}

// FilesystemStorageYAML is the storage section body for the filesystem driver at dir.
func FilesystemStorageYAML(dir string) string {
	return fmt.Sprintf("filesystem:\n  rootdirectory: %s\n", dir)
}

// indent prefixes every non-empty line of s with prefix.
func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

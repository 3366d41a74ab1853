package harness

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultStartTimeout bounds a start-up when the context has no deadline.
const DefaultStartTimeout = 90 * time.Second

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 10 * time.Second

// Process is a child process started by this package, in a process group of
// its own, with its output in LogPath.
type Process struct {
	Name    string
	LogPath string

	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
}

// startProcess starts binary with args; stdout and stderr are appended to
// <dir>/<name>.log and also copied to extraLog when it is not nil.
func startProcess(dir, name string, extraLog io.Writer, binary string, args ...string) (*Process, error) {
	return startProcessEnv(dir, name, extraLog, nil, binary, args...)
}

// startProcessEnv is startProcess with extra environment variables (KEY=value) on top of
// this process's environment.
func startProcessEnv(
	dir, name string,
	extraLog io.Writer,
	env []string,
	binary string,
	args ...string,
) (*Process, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logFile, "### %s %s\n", binary, strings.Join(args, " "))
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	var out io.Writer = logFile
	if extraLog != nil {
		out = io.MultiWriter(logFile, &prefixWriter{prefix: "[" + name + "] ", w: extraLog})
	}
	cmd.Stdout, cmd.Stderr = out, out
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id (also the id of its process group).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop sends SIGTERM to the process group, then SIGKILL after a grace period,
// and waits for the process. It returns an error only if the process had
// already exited unexpectedly (with a non-zero status). Safe to call twice.
func (p *Process) Stop() error {
	var err error
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			// Exited on its own before Stop.
			err = p.exitError()
			return
		default:
		}
		signalGroup(p.cmd, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			signalGroup(p.cmd, syscall.SIGKILL)
			<-p.done
		}
		// Anything the process left behind in its group.
		signalGroup(p.cmd, syscall.SIGKILL)
	})
	return err
}

// Kill ends the process group with SIGKILL at once, as a node failure or the OOM killer
// would: the process cleans nothing up (releases no lock or lease). It waits for the exit;
// Stop afterwards does nothing.
func (p *Process) Kill() {
	p.stopOnce.Do(func() {
		signalGroup(p.cmd, syscall.SIGKILL)
		<-p.done
	})
}

// exitError describes an exit that Stop did not cause; nil for status 0.
func (p *Process) exitError() error {
	if p.waitErr == nil {
		return nil
	}
	return fmt.Errorf("%s exited: %v; log %s:\n%s", p.Name, p.waitErr, p.LogPath, LogTail(p.LogPath, 40))
}

// LogTail returns the last n lines of the log file at path.
func LogTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// logMentions reports whether the log file contains s.
func (p *Process) logMentions(s string) bool {
	data, _ := os.ReadFile(p.LogPath)
	return bytes.Contains(data, []byte(s))
}

// errAddressInUse marks a start-up that lost a race for its free port;
// startOnFreePorts retries with new ports.
var errAddressInUse = errors.New("address already in use")

// waitReady polls url until it answers 200 (and the body contains want, if
// set), the process exits, or ctx ends.
func (p *Process) waitReady(ctx context.Context, url, want string) error {
	return p.waitReadyAs(ctx, url, want, "")
}

// waitReadyAs is waitReady sending a bearer token, if set.
func (p *Process) waitReadyAs(ctx context.Context, url, want, token string) error {
	// Only readiness is checked here; the kubeconfig pins the CA.
	return p.waitReadyTLS(ctx, url, want, token, &tls.Config{InsecureSkipVerify: true})
}

// waitReadyTLS is waitReadyAs connecting with tlsConfig: one that verifies the server's
// certificate makes readiness prove it too.
func (p *Process) waitReadyTLS(ctx context.Context, url, want, token string, tlsConfig *tls.Config) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsConfig},
	}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), want) {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			err := fmt.Errorf(
				"%s exited before %s was ready (%v); log %s:\n%s",
				p.Name,
				url,
				p.waitErr,
				p.LogPath,
				LogTail(p.LogPath, 40),
			)
			if p.logMentions("address already in use") {
				err = fmt.Errorf("%w: %w", errAddressInUse, err)
			}
			return err
		case <-ctx.Done():
			return fmt.Errorf(
				"%s not ready at %s: %w (last answer: %s); log %s:\n%s",
				p.Name,
				url,
				ctx.Err(),
				last,
				p.LogPath,
				LogTail(p.LogPath, 40),
			)
		case <-tick.C:
		}
	}
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultStartTimeout)
}

// startAttempts is how many times startOnFreePorts starts a child.
const startAttempts = 3

// startOnFreePorts starts a child on n free loopback ports and waits until it serves: start
// starts it on the ports, ready waits for it. A port free when chosen may still be taken
// before the child binds it; when ready says so (errAddressInUse), the child is started again
// on new ports, startAttempts times in all. A child that is not ready is stopped, and the
// error of start or ready is returned as it is.
func startOnFreePorts(n int, start func(ports []int) (*Process, error), ready func(*Process) error) (*Process, error) {
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(n)
		if err != nil {
			return nil, err
		}
		p, err := start(ports)
		if err != nil {
			return nil, err
		}
		err = ready(p)
		if err == nil {
			return p, nil
		}
		_ = p.Stop()
		if !errors.Is(err, errAddressInUse) || attempt == startAttempts {
			return nil, err
		}
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. They are free
// when this returns; another process may still take one before the child
// binds it, hence startOnFreePorts.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// prefixWriter prefixes each line with prefix (for a shared log writer).
type prefixWriter struct {
	mu     sync.Mutex
	prefix string
	w      io.Writer
	midway bool // the last write did not end a line
}

func (pw *prefixWriter) Write(b []byte) (int, error) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	n := len(b)
	var buf bytes.Buffer
	for len(b) > 0 {
		if !pw.midway {
			buf.WriteString(pw.prefix)
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			buf.Write(b)
			pw.midway = true
			break
		}
		buf.Write(b[:i+1])
		b = b[i+1:]
		pw.midway = false
	}
	if _, err := pw.w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return n, nil
}

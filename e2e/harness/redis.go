package harness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis is a redis-server on loopback, without persistence.
type Redis struct {
	*Process
	// Addr is 127.0.0.1:<port>.
	Addr string
}

// RedisBinary returns E2E_REDIS, or redis-server from PATH (Debian's redis-server package,
// which e2e/tools/build.sh installs).
func RedisBinary() (string, error) {
	if path := os.Getenv("E2E_REDIS"); path != "" {
		if !isExecutable(path) {
			return "", fmt.Errorf("E2E_REDIS=%s: %w", path, ErrBinaryMissing)
		}
		return path, nil
	}
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf(
			"redis-server not on PATH (apt-get install redis-server, or make tools): %w",
			ErrBinaryMissing,
		)
	}
	return path, nil
}

// StartRedis starts redis-server in dir (its log in <dir>/redis.log, also copied to log if
// not nil) on a free loopback port and waits until it answers PING. ctx bounds the start-up
// only; call Stop to end it.
func StartRedis(ctx context.Context, dir string, log io.Writer) (*Redis, error) {
	binary, err := RedisBinary()
	if err != nil {
		return nil, err
	}
	var addr string
	p, err := startOnFreePorts(1, func(ports []int) (*Process, error) {
		addr = "127.0.0.1:" + strconv.Itoa(ports[0])
		return startProcess(dir, "redis", log, binary,
			"--port", strconv.Itoa(ports[0]),
			"--bind", "127.0.0.1",
			"--dir", dir,
			"--save", "",
			"--appendonly", "no",
			"--daemonize", "no",
			"--protected-mode", "yes",
		)
	}, func(p *Process) error {
		if err := waitRedis(ctx, p, addr); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Redis{Process: p, Addr: addr}, nil
}

// waitRedis sends PING until the answer is +PONG, the process exits, or ctx ends.
func waitRedis(ctx context.Context, p *Process, addr string) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	var last error
	for {
		if last = Ping(addr); last == nil {
			return nil
		}
		select {
		case <-p.done:
			err := fmt.Errorf(
				"%s exited before answering at %s (%v); log %s:\n%s",
				p.Name,
				addr,
				p.waitErr,
				p.LogPath,
				LogTail(p.LogPath, 40),
			)
			if p.logMentions("Address already in use") || p.logMentions("address already in use") {
				err = fmt.Errorf("%w: %w", errAddressInUse, err)
			}
			return err
		case <-ctx.Done():
			return fmt.Errorf("%s not answering at %s: %w (last: %v)", p.Name, addr, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Ping sends one PING in the Redis protocol.
func Ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// ConfigYAML is the registry's top-level redis: section for this server.
func (r *Redis) ConfigYAML() string {
	return fmt.Sprintf("redis:\n  addrs: [%s]\n  dialtimeout: 2s\n  readtimeout: 2s\n  writetimeout: 2s\n", r.Addr)
}

// StartRedisT starts redis-server in a fresh t.TempDir and stops it in t.Cleanup. Without
// redis-server the test is skipped, or fails with E2E_REQUIRED=1.
func StartRedisT(t testing.TB) *Redis {
	t.Helper()
	if _, err := RedisBinary(); err != nil {
		skipOrFail(t, err)
	}
	r, err := StartRedis(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cleanupProcess(t, r.Process)
	return r
}

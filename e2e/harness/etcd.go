package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// Etcd is a single-member etcd on loopback.
type Etcd struct {
	*Process
	// Endpoint is the client URL, http://127.0.0.1:<port>.
	Endpoint string
	DataDir  string
}

// StartEtcd starts etcd with its data in <dir>/etcd-data and its log in
// <dir>/etcd.log (also copied to log, if not nil), on free loopback ports,
// and waits until /health says so. ctx bounds the start-up only
// (DefaultStartTimeout if it has no deadline); call Stop to end it.
func StartEtcd(ctx context.Context, dir string, log io.Writer) (*Etcd, error) {
	binary, err := EtcdBinary()
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, "etcd-data")
	var client string
	p, err := startOnFreePorts(2, func(ports []int) (*Process, error) {
		client = "http://127.0.0.1:" + strconv.Itoa(ports[0])
		peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		// A failed attempt may have initialized the data dir for other ports.
		if err := os.RemoveAll(dataDir); err != nil {
			return nil, err
		}
		return startProcess(dir, "etcd", log, binary,
			"--name=e2e",
			"--data-dir="+dataDir,
			"--listen-client-urls="+client,
			"--advertise-client-urls="+client,
			"--listen-peer-urls="+peer,
			"--initial-advertise-peer-urls="+peer,
			"--initial-cluster=e2e="+peer,
			"--initial-cluster-state=new",
			"--logger=zap",
			"--log-outputs=stderr",
		)
	}, func(p *Process) error {
		if err := p.waitReady(ctx, client+"/health", `"health":"true"`); err != nil {
			return fmt.Errorf("etcd: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Etcd{Process: p, Endpoint: client, DataDir: dataDir}, nil
}

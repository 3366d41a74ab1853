package harness

import (
	"errors"
	"fmt"
	"os/exec"
	"testing"
)

// A child that lost its port is started again on new ports, up to startAttempts times; any
// other failure is final. Either way the error is ready's, and no child is left running.
func TestStartOnFreePortsRetriesOnlyALostPort(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	lost := fmt.Errorf("child: %w", errAddressInUse)
	crashed := errors.New("child: crashed")
	for _, tt := range []struct {
		name       string
		readyErrs  []error // what ready says at each attempt; nil once ready
		wantStarts int
		wantErr    error
	}{
		{"ready at once", []error{nil}, 1, nil},
		{"port lost once", []error{lost, nil}, 2, nil},
		{"port lost every time", []error{lost, lost, lost, nil}, startAttempts, lost},
		{"crashed", []error{crashed, nil}, 1, crashed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var started []*Process
			p, err := startOnFreePorts(2, func(ports []int) (*Process, error) {
				if len(ports) != 2 || ports[0] == ports[1] {
					t.Errorf("ports %v, want two distinct ones", ports)
				}
				p, err := startProcess(dir, "sleep", nil, sleep, "60")
				if err == nil {
					started = append(started, p)
				}
				return p, err
			}, func(*Process) error {
				return tt.readyErrs[len(started)-1]
			})
			if len(started) != tt.wantStarts || err != tt.wantErr {
				t.Fatalf("%d starts, error %v; want %d, %v", len(started), err, tt.wantStarts, tt.wantErr)
			}
			last := len(started) - 1
			for i, c := range started {
				select {
				case <-c.Done():
					if i == last && err == nil {
						t.Error("the ready child was stopped")
					}
				default:
					if i != last || err != nil {
						t.Errorf("child %d of %d is still running", i+1, len(started))
					}
				}
			}
			if p != nil {
				_ = p.Stop()
			}
		})
	}
}

// Kill ends a child with SIGKILL, even one that ignores SIGTERM, and waits for it; Stop then
// does nothing.
func TestKill(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip(err)
	}
	p, err := startProcess(t.TempDir(), "stubborn", nil, sh, "-c", `trap "" TERM; sleep 60 & wait`)
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	select {
	case <-p.Done():
	default:
		t.Fatal("Kill returned before the child exited")
	}
	var exit *exec.ExitError
	if !errors.As(p.waitErr, &exit) || exit.ProcessState.String() != "signal: killed" {
		t.Errorf("exit %v, want signal: killed", p.waitErr)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop after Kill: %v", err)
	}
}

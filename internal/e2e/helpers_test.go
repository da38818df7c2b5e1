//go:build linux

package e2e

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/internal/testbed"
)

// docker runs the docker CLI on an ECS and fails the test on error.
func docker(t *testing.T, e *testbed.ECS, args ...string) string {
	t.Helper()
	out, err := e.Docker(ctxT(t), args...)
	if err != nil {
		t.Fatalf("docker %s on %s: %v\n%s", strings.Join(args, " "), e.Name, err, out)
	}
	return out
}

// dockerErr runs the docker CLI and returns its error (with standard error) for tests
// that expect a failure.
func dockerErr(t *testing.T, e *testbed.ECS, args ...string) (string, error) {
	t.Helper()
	return e.Docker(ctxT(t), args...)
}

// run starts a throwaway container on network netName and returns its output.
func run(t *testing.T, e *testbed.ECS, netName string, cmd ...string) string {
	t.Helper()
	args := append([]string{"run", "--rm", "--net", netName, testbed.ImageName}, cmd...)
	return docker(t, e, args...)
}

// subnetOf returns the IPv4 subnet of a Docker network.
func subnetOf(t *testing.T, e *testbed.ECS, netName string) netip.Prefix {
	t.Helper()
	s := docker(t, e, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", netName)
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatalf("network %s has subnet %q: %v", netName, s, err)
	}
	return p
}

// containerIP returns a container's address on a network.
func containerIP(t *testing.T, e *testbed.ECS, name, netName string) netip.Addr {
	t.Helper()
	s := docker(t, e, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+netName+"\").IPAddress}}", name)
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("container %s on %s has address %q", name, netName, s)
	}
	return a
}

// whoami serves, in netns, on port, a TCP service that answers each connection with the
// source address it sees: the test reads whether traffic was masqueraded.
func whoami(t *testing.T, netns string, port string) {
	t.Helper()
	var l net.Listener
	err := testbed.InNetns(netns, func() error {
		var err error
		l, err = net.Listen("tcp4", ":"+port)
		return err
	})
	if err != nil {
		t.Fatalf("whoami server in %s: %v", netns, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			_, _ = c.Write([]byte(host + "\n"))
			c.Close()
		}
	}()
}

// tcpGet connects from netns to addr and returns the first line it reads. A refused
// connection is tried again for up to 5 s: right after `docker run -d` the
// container's server may not listen yet (the path is there: a refusal is its answer).
func tcpGet(t *testing.T, netns, addr, send string) string {
	t.Helper()
	var line string
	err := testbed.InNetns(netns, func() error {
		c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
		for deadline := time.Now().Add(5 * time.Second); errors.Is(err, syscall.ECONNREFUSED) && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			c, err = net.DialTimeout("tcp4", addr, 5*time.Second)
		}
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if send != "" {
			if _, err := c.Write([]byte(send)); err != nil {
				return err
			}
		}
		r := bufio.NewReader(c)
		var b strings.Builder
		for {
			l, err := r.ReadString('\n')
			b.WriteString(l)
			if err != nil {
				break
			}
		}
		line = b.String()
		return nil
	})
	if err != nil {
		t.Fatalf("connect from %s to %s: %v", netns, addr, err)
	}
	return line
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return cond()
}

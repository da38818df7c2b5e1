//go:build linux

package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/internal/testbed"
)

// inContainer runs fn on a locked thread in the network namespace of container c
// on e (busybox's nc has no UDP); sockets fn opens stay there.
func inContainer(t *testing.T, e *testbed.ECS, c string, fn func() error) error {
	t.Helper()
	pid := strings.TrimSpace(docker(t, e, "inspect", "-f", "{{.State.Pid}}", c))
	return testbed.InNetnsPath("/proc/"+pid+"/ns/net", fn)
}

// udpEcho serves UDP echo on port 53 inside container c.
func udpEcho(t *testing.T, e *testbed.ECS, c string) {
	t.Helper()
	var pc net.PacketConn
	if err := inContainer(t, e, c, func() (err error) {
		pc, err = net.ListenPacket("udp4", ":53")
		return err
	}); err != nil {
		t.Fatalf("UDP echo in %s: %v", c, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
}

// udpFrom sends a datagram from container c to ip:53 and says whether it came back.
func udpFrom(t *testing.T, e *testbed.ECS, c, ip string) bool {
	t.Helper()
	err := inContainer(t, e, c, func() error {
		conn, err := net.Dial("udp4", ip+":53")
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write([]byte("vpcroute")); err != nil {
			return err
		}
		buf := make([]byte, 16)
		n, err := conn.Read(buf)
		if err == nil && string(buf[:n]) != "vpcroute" {
			err = fmt.Errorf("echo %q", buf[:n])
		}
		return err
	})
	return err == nil
}

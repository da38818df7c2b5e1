//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// TestSecurityModel checks the README's security model on the two-ECS bed with real
// dockerds, both ways: Docker's own networks and vpcroute's never meet through the
// host; the VPC and other vpcroute networks reach a network unless it is isolated,
// allows only some sources, or has icc off; --internal keeps everything in;
// published ports work whatever the policy; a spoofed source is dropped and counted.
func TestSecurityModel(t *testing.T) {
	env := startCloud(t, "vrp", cloudbed.Options{})
	ecs1, ecs2 := ecsOf(t, env, "ecs1"), ecsOf(t, env, "ecs2")
	nets := []struct{ name, subnet string }{
		{"open", "10.0.2.0/24"}, {"iso", "10.0.4.0/24"}, {"allow", "10.0.5.0/24"}, {"noicc", "10.0.6.0/24"}, {"int", "10.0.7.0/24"},
	}
	opts := map[string][]string{
		"iso":   {"-o", "vpcroute.isolate=true"},
		"allow": {"-o", "vpcroute.allow=" + ecs2.IP.String() + ":tcp/80"},
		"noicc": {"-o", "com.docker.network.bridge.enable_icc=false"},
		"int":   {"--internal"},
	}
	for _, n := range nets {
		docker(t, ecs1, append(append([]string{"network", "create", "-d", "vpcroute", "--subnet", n.subnet}, opts[n.name]...), n.name)...)
		// web at .2 answers HTTP on 80; peer at .3 is a client on the same network.
		ip := strings.TrimSuffix(n.subnet, "0/24")
		docker(t, ecs1, "run", "-d", "--name", "web-"+n.name, "--net", n.name, "--ip", ip+"2", testbed.ImageName)
		docker(t, ecs1, "run", "-d", "--name", "peer-"+n.name, "--cap-add", "NET_ADMIN", "--net", n.name, "--ip", ip+"3", testbed.ImageName)
	}
	docker(t, ecs1, "run", "-d", "--name", "pub", "--net", "iso", "-p", "8080:80", testbed.ImageName)
	docker(t, ecs1, "run", "-d", "--name", "d1", "--net", "bridge", testbed.ImageName)
	d1 := containerIP(t, ecs1, "d1", "bridge").String()
	docker(t, ecs2, "network", "create", "-d", "vpcroute", "--subnet", "10.0.3.0/24", "far")
	docker(t, ecs2, "run", "-d", "--name", "far", "--net", "far", testbed.ImageName)

	for _, c := range []string{"web-open", "web-iso", "web-noicc"} {
		udpEcho(t, ecs1, c)
	}
	udpEcho(t, ecs1, "d1")
	httpFrom := func(e *testbed.ECS, c, ip string, port int) bool {
		out, _ := dockerErr(t, e, append([]string{"exec", c}, httpGet(ip, port)...)...)
		return strings.Contains(out, "200 OK")
	}
	pingFrom := func(e *testbed.ECS, c, ip string) bool {
		out, _ := dockerErr(t, e, "exec", c, "ping", "-c", "1", "-W", "2", ip)
		return strings.Contains(out, "1 packets received")
	}
	hostHTTP := func(netns, addr string) bool { return tcpReach(netns, addr) }
	cases := []struct {
		name string
		got  func() bool
		want bool
	}{
		{"VPC container to open", func() bool { return httpFrom(ecs2, "far", "10.0.2.2", 80) }, true},
		{"VPC container pings open", func() bool { return pingFrom(ecs2, "far", "10.0.2.2") }, true},
		{"open to the VPC container", func() bool { return pingFrom(ecs1, "peer-open", "10.0.3.2") }, true},
		{"other vpcroute network to open", func() bool { return httpFrom(ecs1, "peer-noicc", "10.0.2.2", 80) }, true},
		{"docker0 to open", func() bool { return httpFrom(ecs1, "d1", "10.0.2.2", 80) }, false},
		{"docker0 pings open", func() bool { return pingFrom(ecs1, "d1", "10.0.2.2") }, false},
		{"open to docker0", func() bool { return httpFrom(ecs1, "peer-open", d1, 80) }, false},
		{"open pings docker0", func() bool { return pingFrom(ecs1, "peer-open", d1) }, false},
		{"docker0 to a published port", func() bool { return httpFrom(ecs1, "d1", ecs1.IP.String(), 8080) }, true},
		{"VPC container to open, udp", func() bool { return udpFrom(t, ecs2, "far", "10.0.2.2") }, true},
		{"docker0 to open, udp", func() bool { return udpFrom(t, ecs1, "d1", "10.0.2.2") }, false},
		{"open to docker0, udp", func() bool { return udpFrom(t, ecs1, "peer-open", d1) }, false},
		{"VPC container to iso, udp", func() bool { return udpFrom(t, ecs2, "far", "10.0.4.2") }, false},
		{"within noicc, udp", func() bool { return udpFrom(t, ecs1, "peer-noicc", "10.0.6.2") }, false},
		{"VPC container to noicc, udp", func() bool { return udpFrom(t, ecs2, "far", "10.0.6.2") }, true},
		{"VPC container to iso", func() bool { return httpFrom(ecs2, "far", "10.0.4.2", 80) }, false},
		{"VPC container pings iso", func() bool { return pingFrom(ecs2, "far", "10.0.4.2") }, false},
		{"other vpcroute network to iso", func() bool { return httpFrom(ecs1, "peer-open", "10.0.4.2", 80) }, false},
		{"within iso", func() bool { return httpFrom(ecs1, "peer-iso", "10.0.4.2", 80) }, true},
		{"VPC host to iso's published port", func() bool { return hostHTTP(ecs2.Netns, ecs1.IP.String()+":8080") }, true},
		{"iso out to the VPC", func() bool { return pingFrom(ecs1, "peer-iso", "10.0.3.2") }, true},
		{"allowed VPC host to allow, tcp/80", func() bool { return hostHTTP(ecs2.Netns, "10.0.5.2:80") }, true},
		{"allowed VPC host to allow, another port", func() bool { return hostHTTP(ecs2.Netns, "10.0.5.2:81") }, false},
		{"VPC container to allow (not listed)", func() bool { return httpFrom(ecs2, "far", "10.0.5.2", 80) }, false},
		{"within noicc", func() bool { return httpFrom(ecs1, "peer-noicc", "10.0.6.2", 80) }, false},
		{"within noicc, ping", func() bool { return pingFrom(ecs1, "peer-noicc", "10.0.6.2") }, false},
		{"VPC container to noicc", func() bool { return httpFrom(ecs2, "far", "10.0.6.2", 80) }, true},
		{"VPC container to internal", func() bool { return pingFrom(ecs2, "far", "10.0.7.2") }, false},
		{"internal out to the VPC", func() bool { return pingFrom(ecs1, "peer-int", "10.0.3.2") }, false},
		{"within internal", func() bool { return httpFrom(ecs1, "peer-int", "10.0.7.2", 80) }, true},
	}
	for _, c := range cases {
		if got := c.got(); got != c.want {
			t.Errorf("%s: reached = %v, want %v", c.name, got, c.want)
		}
	}

	// Spoofing: peer-open takes another network's address and pings from it.
	docker(t, ecs1, "exec", "peer-open", "ip", "addr", "add", "10.0.3.99/32", "dev", "eth0")
	if pingOut, _ := dockerErr(t, ecs1, "exec", "peer-open", "ping", "-c", "2", "-W", "2", "-I", "10.0.3.99", "10.0.3.2"); strings.Contains(pingOut, "bytes from") {
		t.Errorf("a ping with a spoofed source got an answer:\n%s", pingOut)
	}
	id := networkID(t, ecs1, "open")
	save, err := ecs1.Exec(ctxT(t), "iptables-save", "-c", "-t", "filter")
	if err != nil {
		t.Fatal(err)
	}
	dropped := 0
	for _, l := range strings.Split(save, "\n") {
		if strings.Contains(l, "-A VPCROUTE-E-"+id[:16]) && strings.Contains(l, "! -s 10.0.2.0/24") && strings.HasSuffix(l, "-j DROP") {
			n, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(l, ":", 2)[0], "["))
			dropped = n
		}
	}
	if dropped < 2 {
		t.Errorf("spoofed packets counted: %d; want at least 2", dropped)
	}
}

// httpGet is an HTTP/1.0 GET of ip:port with busybox nc, for docker exec.
func httpGet(ip string, port int) []string {
	return []string{"sh", "-c", fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 %s %d`, ip, port)}
}

// tcpReach says whether a TCP connection from netns to addr reaches its host within
// 3 s: it opens, or the host refuses it (nothing listens); a drop on the way times
// out.
func tcpReach(netns, addr string) bool {
	err := testbed.InNetns(netns, func() error {
		c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	return err == nil || errors.Is(err, syscall.ECONNREFUSED)
}

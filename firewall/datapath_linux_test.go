//go:build linux

package firewall

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vpcroute/vpcroute/internal/netnstest"
	"github.com/vpcroute/vpcroute/link"
	"github.com/vpcroute/vpcroute/sysctl"
)

// bed is a host (the test's own namespace) with one vpcroute network, two
// "containers" c1 (10.0.2.2) and c2 (10.0.2.3) in namespaces of their own,
// and a second VPC host, remote (192.168.0.3, also answering as the outside
// address 203.0.113.1), on an uplink to the host (192.168.0.2). The remote
// routes 10.0.2.0/24 via the host, as the VPC route table would.
type bed struct {
	f              *Firewall
	c1, c2, remote netns.NsHandle
}

const (
	hostIP    = "192.168.0.2"
	remoteIP  = "192.168.0.3"
	outsideIP = "203.0.113.1"
	c1IP      = "10.0.2.2"
	c2IP      = "10.0.2.3"
	gwIP      = "10.0.2.1"
)

func newBed(t *testing.T, backend string, internal bool) *bed {
	t.Helper()
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("needs busybox for ping")
	}
	b := &bed{f: testFirewall(t, backend), c1: netnstest.New(t), c2: netnstest.New(t), remote: netnstest.New(t)}
	mustDo(t, host.EnsureForwarding())
	mustDo(t, host.EnsureBridge(link.BridgeSpec{Name: "vr-br", NetworkID: "net1", Gateway: netip.MustParsePrefix(gwIP + "/24"), MTU: 1500}))
	for _, c := range []struct {
		host, peer, ip string
		ns             netns.NsHandle
	}{{"vr-h1", "vr-p1", c1IP, b.c1}, {"vr-h2", "vr-p2", c2IP, b.c2}} {
		mustDo(t, host.EnsureVeth(c.host, c.peer, "vr-br", 1500))
		moveInto(t, c.peer, c.ns, c.ip+"/24", gwIP)
	}
	// The uplink to the rest of the VPC.
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "up0"
	mustDo(t, netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "up0p"}))
	netnstest.AddAddr(t, "up0", hostIP+"/24")
	mustDo(t, netnstest.LinkUp("up0"))
	mustDo(t, netlink.RouteAdd(&netlink.Route{Gw: net.ParseIP(remoteIP), LinkIndex: netnstest.Link(t, "up0").Attrs().Index}))
	moveInto(t, "up0p", b.remote, remoteIP+"/24", "")
	mustDo(t, netnstest.Do(b.remote, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(outsideIP), Mask: net.CIDRMask(32, 32)}}); err != nil {
			return err
		}
		_, dst, _ := net.ParseCIDR("10.0.2.0/24")
		return netlink.RouteAdd(&netlink.Route{Dst: dst, Gw: net.ParseIP(hostIP)})
	}))
	return b
}

// moveInto moves link into ns, names it eth0, addresses and raises it, and
// adds a default route via gw when gw is set: what Docker does with the
// peer end of a veth.
func moveInto(t *testing.T, link string, ns netns.NsHandle, cidr, gw string) {
	t.Helper()
	mustDo(t, netlink.LinkSetNsFd(netnstest.Link(t, link), int(ns)))
	mustDo(t, netnstest.Do(ns, func() error {
		l, err := netlink.LinkByName(link)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetName(l, "eth0"); err != nil {
			return err
		}
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, a); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		if gw == "" {
			return nil
		}
		return netlink.RouteAdd(&netlink.Route{Gw: net.ParseIP(gw), LinkIndex: l.Attrs().Index})
	}))
}

func ping(ns netns.NsHandle, ip string) error {
	return netnstest.Do(ns, func() error {
		out, err := exec.Command("busybox", "ping", "-c", "1", "-W", "1", ip).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ping %s: %v: %s", ip, err, out)
		}
		return nil
	})
}

// serve listens on TCP port in ns (0 = this thread's) and answers every connection with the
// source address it sees, so clients can check what NAT did.
func serve(t *testing.T, ns netns.NsHandle, port int) {
	t.Helper()
	var ln net.Listener
	listen := func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
		return err
	}
	if ns == 0 {
		mustDo(t, listen())
	} else {
		mustDo(t, netnstest.Do(ns, listen))
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s\n", c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}
	}()
}

// seenFrom connects to addr from ns (0 = the host, i.e. this thread's
// namespace) and returns the source address the server saw.
func seenFrom(ns netns.NsHandle, addr string) (string, error) {
	var seen string
	dial := func() error {
		c, err := net.DialTimeout("tcp4", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		seen = strings.TrimSpace(line)
		return err
	}
	var err error
	if ns == 0 {
		err = dial()
	} else {
		err = netnstest.Do(ns, dial)
	}
	return seen, err
}

func TestDatapath(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			b := newBed(t, backend, false)
			serve(t, b.c2, 80)
			serve(t, b.remote, 9000)

			// Docker's FORWARD DROP policy blocks routed traffic until the
			// network's rules are in: the test can tell the difference.
			if _, err := seenFrom(b.remote, c2IP+":80"); err == nil {
				t.Fatal("remote reached a container before EnsureNetwork: FORWARD policy not in effect")
			}
			mustDo(t, b.f.EnsureNetwork(NetworkRules{
				NetworkID: "net1", Bridge: "vr-br", Subnet: netip.MustParsePrefix("10.0.2.0/24"), Masquerade: true,
				NoNAT:  []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24"), netip.MustParsePrefix("10.0.0.0/16")},
				Uplink: "up0",
			}))

			for _, p := range []struct {
				from netns.NsHandle
				to   string
			}{{b.c1, c2IP}, {b.c2, c1IP}, {b.c1, gwIP}, {b.c1, remoteIP}, {b.c1, outsideIP}, {b.remote, c1IP}} {
				if err := ping(p.from, p.to); err != nil {
					t.Errorf("ping: %v", err)
				}
			}

			port := PortMap{NetworkID: "net1", Proto: "tcp", HostPort: 8080, ContainerIP: netip.MustParseAddr(c2IP), ContainerPort: 80, Bridge: "vr-br"}
			mustDo(t, b.f.EnsurePort(port))
			tcp := []struct {
				name     string
				from     netns.NsHandle
				to, seen string
			}{
				{"routed in from the VPC keeps the source", b.remote, c2IP + ":80", remoteIP},
				{"out to the VPC is not masqueraded", b.c1, remoteIP + ":9000", c1IP},
				{"out beyond the VPC is masqueraded", b.c1, outsideIP + ":9000", hostIP},
				{"container to container", b.c1, c2IP + ":80", c1IP},
				{"published port from another host", b.remote, hostIP + ":8080", remoteIP},
				{"published port from the host", 0, hostIP + ":8080", gwIP},
				{"published port on 127.0.0.1", 0, "127.0.0.1:8080", gwIP},
				{"published port from a container on the bridge", b.c1, hostIP + ":8080", gwIP},
				{"published port back to the same container", b.c2, gwIP + ":8080", gwIP},
			}
			for _, tc := range tcp {
				seen, err := seenFrom(tc.from, tc.to)
				if err != nil {
					t.Errorf("%s: connect %s: %v", tc.name, tc.to, err)
				} else if seen != tc.seen {
					t.Errorf("%s: server saw source %s, want %s", tc.name, seen, tc.seen)
				}
			}

			mustDo(t, b.f.DeletePort(port))
			if _, err := seenFrom(b.remote, hostIP+":8080"); err == nil {
				t.Error("port still answers after DeletePort")
			}
			// Containers must not reach services bound to the host's
			// loopback, route_localnet notwithstanding.
			serve(t, 0, 7000)
			routeLoopbackViaGateway(t, b.c1)
			// 127.0.0.2: 127.0.0.1 stays local in the container (lo's address).
			if seen, err := seenFrom(b.c1, "127.0.0.2:7000"); err == nil {
				t.Errorf("container reached the host's loopback (seen as %s)", seen)
			}
		})
	}
}

// routeLoopbackViaGateway makes the container send 127.0.0.0/8 to its
// gateway, as a container with CAP_NET_ADMIN (or raw sockets) could: the
// local 127/8 route goes and route_localnet lets the kernel send it out.
func routeLoopbackViaGateway(t *testing.T, ns netns.NsHandle) {
	t.Helper()
	mustDo(t, netnstest.Do(ns, func() error {
		_, dst, _ := net.ParseCIDR("127.0.0.0/8")
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		eth0, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netlink.RouteDel(&netlink.Route{Dst: dst, Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_LOCAL, Scope: netlink.SCOPE_HOST, LinkIndex: lo.Attrs().Index}); err != nil {
			return fmt.Errorf("delete local 127/8 route: %w", err)
		}
		if err := sysctl.Set("net/ipv4/conf/eth0/route_localnet", "1"); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{Dst: dst, Gw: net.ParseIP(gwIP), LinkIndex: eth0.Attrs().Index})
	}))
}

// TestDatapathInternal: an internal network talks only within its bridge.
func TestDatapathInternal(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			b := newBed(t, backend, true)
			// Accept everything else, so only vpcroute's drops can block.
			mustDo(t, b.f.EnsureBase(Base{ForwardAccept: true, Pool: testPool}))
			mustDo(t, b.f.EnsureNetwork(NetworkRules{
				NetworkID: "net1", Bridge: "vr-br", Subnet: netip.MustParsePrefix("10.0.2.0/24"), Internal: true,
			}))
			if err := ping(b.c1, c2IP); err != nil {
				t.Errorf("within the bridge: %v", err)
			}
			for _, p := range []struct {
				from netns.NsHandle
				to   string
			}{{b.c1, remoteIP}, {b.remote, c2IP}} {
				if err := ping(p.from, p.to); err == nil {
					t.Errorf("internal network: ping %s got through", p.to)
				}
			}
		})
	}
}

// TestDatapathPoolShortcut: a connection in from the VPC skips the egress jumps; a
// connection from a container to a container of another
// ECS (10.0.3.2, behind the remote) keeps its source and takes the pool's shortcut,
// while one from a Docker network made inside the pool (a bridge vpcroute does not
// own, 10.0.9.0/24, masqueraded by Docker's rule after vpcroute's jump) keeps
// Docker's masquerade, as long as the host's ranges reach the base: without them
// the shortcut would send it out unmasqueraded, and the VPC has no way back.
func TestDatapathPoolShortcut(t *testing.T) {
	const remoteCt, dockerGw, dockerCt = "10.0.3.2", "10.0.9.1", "10.0.9.2"
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			b := newBed(t, backend, false)
			mustDo(t, netnstest.Do(b.remote, func() error {
				lo, err := netlink.LinkByName("lo")
				if err != nil {
					return err
				}
				return netlink.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(remoteCt), Mask: net.CIDRMask(32, 32)}})
			}))
			serve(t, b.remote, 9000)
			_, remoteNet, _ := net.ParseCIDR("10.0.3.0/24")
			mustDo(t, netlink.RouteAdd(&netlink.Route{Dst: remoteNet, Gw: net.ParseIP(remoteIP)}))

			// Docker's network: its bridge, a container, its accepts and its masquerade.
			dk := netns.NsHandle(netnstest.New(t))
			attrs := netlink.NewLinkAttrs()
			attrs.Name = "dk-br"
			mustDo(t, netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}))
			netnstest.AddAddr(t, "dk-br", dockerGw+"/24")
			mustDo(t, netnstest.LinkUp("dk-br"))
			veth := netlink.NewLinkAttrs()
			veth.Name, veth.MasterIndex = "dk-h", netnstest.Link(t, "dk-br").Attrs().Index
			mustDo(t, netlink.LinkAdd(&netlink.Veth{LinkAttrs: veth, PeerName: "dk-p"}))
			mustDo(t, netnstest.LinkUp("dk-h"))
			moveInto(t, "dk-p", dk, dockerCt+"/24", dockerGw)
			ipt(t, b.f, "-A", "FORWARD", "-i", "dk-br", "-j", "ACCEPT")
			ipt(t, b.f, "-A", "FORWARD", "-o", "dk-br", "-j", "ACCEPT")
			ipt(t, b.f, "-t", "nat", "-A", "POSTROUTING", "-s", "10.0.9.0/24", "!", "-o", "dk-br", "-j", "MASQUERADE")

			network := NetworkRules{NetworkID: "net1", Bridge: "vr-br", Subnet: netip.MustParsePrefix("10.0.2.0/24"), Masquerade: true,
				NoNAT: testBase.NoNAT, Pool: testPool, Uplink: "up0"}
			others, err := host.OthersIn(testPool)
			mustDo(t, err)
			if want := []netip.Prefix{netip.MustParsePrefix("10.0.9.0/24")}; !slices.Equal(others, want) {
				t.Fatalf("OthersIn(%v) = %v, want %v (Docker's bridge, not vpcroute's vr-br)", testPool, others, want)
			}
			shortcut := "-s 10.0.0.0/16 -d 10.0.0.0/16 -j ACCEPT"

			// Without the host's ranges: the shortcut skips Docker's masquerade.
			_, err = b.f.Sync(Want{Base: testBase, Networks: []NetworkRules{network}})
			mustDo(t, err)
			if seen, err := seenFrom(dk, remoteCt+":9000"); err == nil {
				t.Fatalf("Docker's container reached the other ECS as %s without the host's ranges: the test cannot tell", seen)
			}

			base := testBase
			base.PoolOthers, base.Uplink = others, "up0"
			_, err = b.f.Sync(Want{Base: base, Networks: []NetworkRules{network}})
			mustDo(t, err)
			before := ruleCounters(t, b.f, tableNAT, chainPostrouting)[shortcut]
			// A connection in from the VPC skips the networks' egress jumps;
			// one out of a container walks them.
			serve(t, b.c2, 80)
			egress := "! -i up0 -j " + chainEgress
			for _, tc := range []struct {
				name string
				from netns.NsHandle
				to   string
				want int
			}{{"in from the VPC", b.remote, c2IP + ":80", 0}, {"out of a container", b.c1, remoteCt + ":9000", 1}} {
				n0 := ruleCounters(t, b.f, tableFilter, chainForward)[egress]
				if _, err := seenFrom(tc.from, tc.to); err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if n := ruleCounters(t, b.f, tableFilter, chainForward)[egress] - n0; n != tc.want {
					t.Errorf("%s: %d packets took the jump into %s, want %d", tc.name, n, chainEgress, tc.want)
				}
			}
			before++ // the container's connection just made
			for _, tc := range []struct {
				name     string
				from     netns.NsHandle
				to, seen string
			}{
				{"a container to another ECS's container keeps its source", b.c1, remoteCt + ":9000", c1IP},
				{"Docker's network inside the pool keeps Docker's masquerade", dk, remoteCt + ":9000", hostIP},
				{"out to the VPC is not masqueraded", b.c1, remoteIP + ":9000", c1IP},
				{"out beyond the VPC is masqueraded", b.c1, outsideIP + ":9000", hostIP},
			} {
				seen, err := seenFrom(tc.from, tc.to)
				if err != nil {
					t.Errorf("%s: connect %s: %v", tc.name, tc.to, err)
				} else if seen != tc.seen {
					t.Errorf("%s: server saw source %s, want %s", tc.name, seen, tc.seen)
				}
			}
			if got := ruleCounters(t, b.f, tableNAT, chainPostrouting)[shortcut]; got != before+1 {
				t.Errorf("the shortcut counted %d new connections, want 1 (the container's to the other ECS)", got-before)
			}
		})
	}
}

//go:build linux

package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vpcroute/vpcroute/internal/netnstest"
	"github.com/vpcroute/vpcroute/link"
)

// policyBed is the datapath bed with a second vpcroute network (vr-b2,
// 10.0.3.0/24, container c3 at 10.0.3.2) and one of Docker's own networks
// (docker0, 172.17.0.0/16, container d1 at 172.17.0.2), all behind the same host.
type policyBed struct {
	*bed
	c3, d1 netns.NsHandle
}

const (
	c3IP = "10.0.3.2"
	d1IP = "172.17.0.2"
)

func newPolicyBed(t *testing.T, backend string) *policyBed {
	t.Helper()
	b := &policyBed{bed: newBed(t, backend, false), c3: netnstest.New(t), d1: netnstest.New(t)}
	mustDo(t, host.EnsureBridge(link.BridgeSpec{Name: "vr-b2", NetworkID: "net2", Gateway: netip.MustParsePrefix("10.0.3.1/24"), MTU: 1500}))
	mustDo(t, host.EnsureVeth("vr-h3", "vr-p3", "vr-b2", 1500))
	moveInto(t, "vr-p3", b.c3, c3IP+"/24", "10.0.3.1")
	// Docker's default bridge, made as Docker makes it (no vpcroute mark).
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "docker0"
	mustDo(t, netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}))
	netnstest.AddAddr(t, "docker0", "172.17.0.1/16")
	mustDo(t, netnstest.LinkUp("docker0"))
	va := netlink.NewLinkAttrs()
	va.Name, va.MasterIndex = "vethd1", netnstest.Link(t, "docker0").Attrs().Index
	mustDo(t, netlink.LinkAdd(&netlink.Veth{LinkAttrs: va, PeerName: "vethd1p"}))
	mustDo(t, netnstest.LinkUp("vethd1"))
	moveInto(t, "vethd1p", b.d1, d1IP+"/16", "172.17.0.1")
	mustDo(t, netnstest.Do(b.remote, func() error {
		_, dst, _ := net.ParseCIDR("10.0.3.0/24")
		return netlink.RouteAdd(&netlink.Route{Dst: dst, Gw: net.ParseIP(hostIP)})
	}))
	return b
}

// policyNetworks are the two vpcroute networks with the policy under test on
// net1 (vr-br, c1 and c2).
func policyNetworks(net1 NetworkRules) []NetworkRules {
	nonat := []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24"), testPool}
	net1.NetworkID, net1.Bridge, net1.Subnet, net1.Masquerade, net1.NoNAT, net1.Pool = "net1", "vr-br", netip.MustParsePrefix("10.0.2.0/24"), true, nonat, testPool
	return []NetworkRules{net1, {NetworkID: "net2", Bridge: "vr-b2", Subnet: netip.MustParsePrefix("10.0.3.0/24"), Masquerade: true, NoNAT: nonat, Pool: testPool}}
}

// udpReach sends one datagram from ns to addr and says whether the server there
// (serveUDP) echoed it within a second.
func udpReach(from netns.NsHandle, addr string) error {
	return netnstest.Do(from, func() error {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("hi")); err != nil {
			return err
		}
		buf := make([]byte, 16)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "hi" {
			return fmt.Errorf("udp %s: no echo: %v", addr, err)
		}
		return nil
	})
}

// serveUDP echoes datagrams on port in ns.
func serveUDP(t *testing.T, ns netns.NsHandle, port int) {
	t.Helper()
	var pc net.PacketConn
	mustDo(t, netnstest.Do(ns, func() (err error) {
		pc, err = net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", port))
		return err
	}))
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

// TestDatapathPolicy proves the traffic model both ways, with FORWARD's policy
// DROP (Docker's) and ACCEPT (the guide's), so that neither vpcroute's accepts nor
// its drops lean on the policy: Docker's networks and vpcroute's never reach each
// other through the host; vpcroute networks reach each other and the VPC unless
// net1 is isolated, allows only some sources, or has icc off; published ports work
// whatever the policy; spoofed sources are dropped and counted.
func TestDatapathPolicy(t *testing.T) {
	type reach struct {
		name string
		from func(b *policyBed) netns.NsHandle
		to   string // ip:port (tcp), "ping ip", or "udp ip:port"
		ok   bool
	}
	c1 := func(b *policyBed) netns.NsHandle { return b.c1 }
	c3 := func(b *policyBed) netns.NsHandle { return b.c3 }
	d1 := func(b *policyBed) netns.NsHandle { return b.d1 }
	remote := func(b *policyBed) netns.NsHandle { return b.remote }
	common := []reach{
		{"docker0 to net1", d1, "ping " + c2IP, false},
		{"docker0 to net1, tcp", d1, c2IP + ":80", false},
		{"net1 to docker0", c1, "ping " + d1IP, false},
		{"net1 to docker0, tcp", c1, d1IP + ":80", false},
		{"net2 to docker0, udp", c3, "udp " + d1IP + ":53", false},
		{"docker0 to a published port of net1", d1, hostIP + ":8080", true},
		{"net1 to the VPC", c1, "ping " + remoteIP, true},
		{"net1 out beyond the VPC", c1, outsideIP + ":9000", true},
		{"net1 to net2", c1, c3IP + ":80", true},
	}
	tests := []struct {
		name   string
		policy NetworkRules
		cases  []reach
	}{
		{"default", NetworkRules{}, []reach{
			{"VPC to net1", remote, c2IP + ":80", true},
			{"VPC to net1, udp", remote, "udp " + c2IP + ":53", true},
			{"net2 to net1", c3, c2IP + ":80", true},
			{"within net1", c1, c2IP + ":80", true},
		}},
		{"isolate", NetworkRules{Isolate: true}, []reach{
			{"VPC to net1", remote, c2IP + ":80", false},
			{"VPC to net1, ping", remote, "ping " + c2IP, false},
			{"net2 to net1", c3, c2IP + ":80", false},
			{"within net1", c1, c2IP + ":80", true},
			{"VPC to a published port of net1", remote, hostIP + ":8080", true},
			{"net1 answers what it opened", c1, remoteIP + ":9000", true},
		}},
		{"allow", NetworkRules{Allow: []Allow{{Source: netip.MustParsePrefix(remoteIP + "/32"), Ports: []AllowPort{{"tcp", 80}, {"icmp", 0}}}}}, []reach{
			{"allowed source, allowed port", remote, c2IP + ":80", true},
			{"allowed source, ping", remote, "ping " + c2IP, true},
			{"allowed source, other port", remote, c2IP + ":81", false},
			{"allowed source, udp", remote, "udp " + c2IP + ":53", false},
			{"other source", c3, c2IP + ":80", false},
			{"within net1", c1, c2IP + ":80", true},
		}},
		{"icc off", NetworkRules{NoICC: true}, []reach{
			{"within net1", c1, c2IP + ":80", false},
			{"within net1, ping", c1, "ping " + c2IP, false},
			{"VPC to net1", remote, c2IP + ":80", true},
			{"within net1 through a published port", c1, hostIP + ":8080", true},
		}},
	}
	for _, backend := range backends(t) {
		for _, tt := range tests {
			for _, accept := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/forward-accept=%v", backend, tt.name, accept), func(t *testing.T) {
					b := newPolicyBed(t, backend)
					for _, ns := range []netns.NsHandle{b.c2, b.c3, b.d1} {
						serve(t, ns, 80)
						serve(t, ns, 81)
						serveUDP(t, ns, 53)
					}
					serve(t, b.remote, 9000)
					port := PortMap{NetworkID: "net1", Proto: "tcp", HostPort: 8080, ContainerIP: netip.MustParseAddr(c2IP), ContainerPort: 80, Bridge: "vr-br"}
					// With FORWARD's DROP policy, as on a real host, the networks
					// know the host's uplink and send connections through it past
					// the checks of local bridges (NetworkRules.Uplink); every
					// case must come out the same.
					nets := policyNetworks(tt.policy)
					if !accept {
						for i := range nets {
							nets[i].Uplink = "up0"
						}
					}
					if _, err := b.f.Sync(Want{Base: Base{ForwardAccept: accept, Pool: testPool}, Networks: nets, Ports: []PortMap{port}}); err != nil {
						t.Fatal(err)
					}
					for _, c := range append(append([]reach{}, common...), tt.cases...) {
						var err error
						from := c.from(b)
						switch {
						case strings.HasPrefix(c.to, "ping "):
							err = ping(from, strings.TrimPrefix(c.to, "ping "))
						case strings.HasPrefix(c.to, "udp "):
							err = udpReach(from, strings.TrimPrefix(c.to, "udp "))
						default:
							_, err = seenFrom(from, c.to)
						}
						if (err == nil) != c.ok {
							t.Errorf("%s (%s): reached = %v, want %v (%v)", c.name, c.to, err == nil, c.ok, err)
						}
					}
				})
			}
		}
	}
}

// A container that sends with a source outside its network's subnet (here
// another network's address) is dropped, and the drop is counted on the network's
// rule; its own address still works.
func TestDatapathSpoofing(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			b := newPolicyBed(t, backend)
			serve(t, b.remote, 9000)
			if _, err := b.f.Sync(Want{Base: Base{Pool: testPool}, Networks: policyNetworks(NetworkRules{})}); err != nil {
				t.Fatal(err)
			}
			// c1 takes net2's address 10.0.3.99 as a second one and pings from it.
			mustDo(t, netnstest.Do(b.c1, func() error {
				l, err := netlink.LinkByName("eth0")
				if err != nil {
					return err
				}
				return netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.0.3.99"), Mask: net.CIDRMask(32, 32)}})
			}))
			// Routed (to the VPC) and masqueraded (beyond it) alike.
			for _, to := range []string{remoteIP, outsideIP} {
				spoofed := netnstest.Do(b.c1, func() error {
					return exec.Command("busybox", "ping", "-c", "2", "-W", "1", "-I", "10.0.3.99", to).Run()
				})
				if spoofed == nil {
					t.Fatalf("a ping to %s with another network's source address got through", to)
				}
			}
			if err := ping(b.c1, remoteIP); err != nil {
				t.Fatalf("its own address no longer works: %v", err)
			}
			chain := netChainName(kindEgress, "net1")
			var dropped int
			for rule, n := range ruleCounters(t, b.f, tableFilter, chain) {
				if strings.Contains(rule, "! -s 10.0.2.0/24") && strings.HasSuffix(rule, "-j DROP") {
					dropped = n
				}
			}
			if dropped < 4 {
				t.Errorf("spoofed packets counted on %s: %d; want 4", chain, dropped)
			}
		})
	}
}

// A container on two networks answers on the network its default route does not
// use: the reply to a connection made to its address on net2 leaves through net1's
// bridge with net2's source. The egress chain of net1 lets it out as the reply it is,
// whether net2's subnet is inside the pool (the fast path takes it) or outside it
// (net1's own conntrack accept for other sources does), while a new connection from
// that source is still dropped as spoofed.
func TestDatapathMultihomed(t *testing.T) {
	for _, backend := range backends(t) {
		for _, net2Subnet := range []string{"10.0.3.0/24", "172.20.0.0/24"} {
			t.Run(backend+"/"+net2Subnet, func(t *testing.T) {
				b := newBed(t, backend, false)
				pfx := netip.MustParsePrefix(net2Subnet)
				gw, m2 := pfx.Addr().Next(), pfx.Addr().Next().Next().Next().Next()
				mustDo(t, host.EnsureBridge(link.BridgeSpec{Name: "vr-b2", NetworkID: "net2", Gateway: netip.PrefixFrom(gw, 24), MTU: 1500}))
				m := netnstest.New(t)
				mustDo(t, host.EnsureVeth("vr-hm1", "vr-pm1", "vr-br", 1500))
				moveInto(t, "vr-pm1", m, "10.0.2.5/24", gwIP)
				mustDo(t, host.EnsureVeth("vr-hm2", "vr-pm2", "vr-b2", 1500))
				mustDo(t, netlink.LinkSetNsFd(netnstest.Link(t, "vr-pm2"), int(m)))
				mustDo(t, netnstest.Do(m, func() error {
					l, err := netlink.LinkByName("vr-pm2")
					if err != nil {
						return err
					}
					if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: m2.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
						return err
					}
					return netlink.LinkSetUp(l)
				}))
				mustDo(t, netnstest.Do(b.remote, func() error {
					return netlink.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(24, 32)}, Gw: net.ParseIP(hostIP)})
				}))
				serve(t, m, 80)
				serve(t, b.remote, 9000)
				nonat := []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24"), testPool}
				want := Want{Base: Base{Pool: testPool}, Networks: []NetworkRules{
					{NetworkID: "net1", Bridge: "vr-br", Subnet: netip.MustParsePrefix("10.0.2.0/24"), Masquerade: true, NoNAT: nonat, Pool: testPool},
					{NetworkID: "net2", Bridge: "vr-b2", Subnet: pfx, Masquerade: true, NoNAT: nonat, Pool: testPool},
				}}
				if _, err := b.f.Sync(want); err != nil {
					t.Fatal(err)
				}
				// The reply leaves through vr-br, which the host's reverse path
				// check must let in (as on a Docker host, rp_filter loose or off).
				for _, dev := range []string{"all", "vr-br"} {
					mustDo(t, os.WriteFile("/proc/sys/net/ipv4/conf/"+dev+"/rp_filter", []byte("0"), 0o644))
				}
				addr := netip.AddrPortFrom(m2, 80).String()
				if seen, err := seenFrom(b.remote, addr); err != nil || seen != remoteIP {
					t.Fatalf("the VPC reaching the container at its second address %s: saw %q, %v", addr, seen, err)
				}
				spoofed := netnstest.Do(m, func() error {
					d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: m2.AsSlice()}}
					c, err := d.Dial("tcp4", remoteIP+":9000")
					if err == nil {
						c.Close()
					}
					return err
				})
				if spoofed == nil {
					t.Errorf("a new connection from %s out through net1's bridge got through", m2)
				}
			})
		}
	}
}

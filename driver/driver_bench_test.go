//go:build linux

package driver_test

// Benchmarks that hold the driver to the budgets of docs/benchmarks.md, on the real
// kernel (packages link and firewall) inside a throwaway network namespace:
//
//   - the container path (Join, Leave, and ProgramExternalConnectivity with one port)
//     makes no cloud call and no firewall call beyond the port's own rule, and costs
//     the same with 10 or 200 containers already on the network;
//   - a network create (IPAM RequestPool + gateway RequestAddress + CreateNetwork)
//     costs one cloud read and one cloud write, and under 20 ms of the plugin's own
//     time. The cloud is the real Huawei client against the in-process emulator on
//     loopback, and its time is measured apart so that "own" excludes it.
//
// They skip when not root. scripts/bench.sh runs them and records the figures.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	dnet "github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vpcroute/vpcroute/check"
	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/cloud/huawei"
	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/driver"
	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/internal/netnstest"
	"github.com/vpcroute/vpcroute/internal/sim"
	"github.com/vpcroute/vpcroute/ipam"
	"github.com/vpcroute/vpcroute/link"
	"github.com/vpcroute/vpcroute/state"
)

// kernelLinks is the host's link layer with a fixed uplink MTU.
type kernelLinks struct{ link.Host }

func (kernelLinks) UplinkMTU() int { return 1500 }

// timedLinks measures the time spent creating and deleting links.
type timedLinks struct {
	kernelLinks
	mu    sync.Mutex
	spent time.Duration
}

func (l *timedLinks) track(start time.Time) {
	l.mu.Lock()
	l.spent += time.Since(start)
	l.mu.Unlock()
}

func (l *timedLinks) time() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spent
}

func (l *timedLinks) EnsureBridge(s link.BridgeSpec) error {
	defer l.track(time.Now())
	return l.kernelLinks.EnsureBridge(s)
}

func (l *timedLinks) EnsureVeth(h, p, br string, mtu int) error {
	defer l.track(time.Now())
	return l.kernelLinks.EnsureVeth(h, p, br, mtu)
}

func (l *timedLinks) DeleteVeth(h string) error {
	defer l.track(time.Now())
	return l.kernelLinks.DeleteVeth(h)
}

// countingFirewall counts the driver's firewall calls by kind: "scans" are the calls
// whose cost grows with the whole rule set (Prune lists every rule; EnsureBase and
// EnsureNetwork re-check a network's rules), which the container path must not make.
type countingFirewall struct {
	controller.Firewall
	mu    sync.Mutex
	ports int           // EnsurePort + DeletePort
	scans int           // Prune, EnsureBase, EnsureNetwork, DeleteNetwork
	spent time.Duration // inside the firewall
}

// count records one call that started at start; use it as defer f.count(scan, time.Now()).
func (f *countingFirewall) count(scan bool, start time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.spent += time.Since(start)
	if scan {
		f.scans++
	} else {
		f.ports++
	}
}

func (f *countingFirewall) time() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.spent
}

func (f *countingFirewall) snapshot() (ports, scans int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ports, f.scans
}

func (f *countingFirewall) Check(w firewall.Want) (firewall.Drift, error) {
	defer f.count(true, time.Now())
	return f.Firewall.Check(w)
}
func (f *countingFirewall) Sync(w firewall.Want) (firewall.Drift, error) {
	defer f.count(true, time.Now())
	return f.Firewall.Sync(w)
}
func (f *countingFirewall) EnsureNetwork(r firewall.NetworkRules) error {
	defer f.count(true, time.Now())
	return f.Firewall.EnsureNetwork(r)
}
func (f *countingFirewall) DeleteNetwork(r firewall.NetworkRules) error {
	defer f.count(true, time.Now())
	return f.Firewall.DeleteNetwork(r)
}
func (f *countingFirewall) Prune(keep map[string]bool) error {
	defer f.count(true, time.Now())
	return f.Firewall.Prune(keep)
}
func (f *countingFirewall) EnsurePort(p firewall.PortMap) error {
	defer f.count(false, time.Now())
	return f.Firewall.EnsurePort(p)
}
func (f *countingFirewall) DeletePort(p firewall.PortMap) error {
	defer f.count(false, time.Now())
	return f.Firewall.DeletePort(p)
}

// countingCloud is a cloud.VPC that counts and times calls.
// With a nil inner VPC it answers like cloud.None.
type countingCloud struct {
	inner cloud.VPC
	mu    sync.Mutex
	calls int
	spent time.Duration
}

func (c *countingCloud) track(start time.Time) {
	c.mu.Lock()
	c.calls++
	c.spent += time.Since(start)
	c.mu.Unlock()
}

func (c *countingCloud) snapshot() (int, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, c.spent
}

func (c *countingCloud) vpc() cloud.VPC {
	if c.inner == nil {
		return cloud.None{}
	}
	return c.inner
}

func (c *countingCloud) Identity() cloud.Identity { return c.vpc().Identity() }
func (c *countingCloud) Claim(ctx context.Context, r cloud.ClaimRequest) (netip.Prefix, error) {
	defer c.track(time.Now())
	return c.vpc().Claim(ctx, r)
}
func (c *countingCloud) Release(ctx context.Context, p netip.Prefix, owner string) error {
	defer c.track(time.Now())
	return c.vpc().Release(ctx, p, owner)
}
func (c *countingCloud) Table(ctx context.Context) (cloud.Table, error) {
	defer c.track(time.Now())
	return c.vpc().Table(ctx)
}
func (c *countingCloud) Checks(ctx context.Context, pool netip.Prefix) []check.Result {
	return c.vpc().Checks(ctx, pool)
}
func (c *countingCloud) ReleaseGone(ctx context.Context, r cloud.TableRoute) error {
	return c.vpc().ReleaseGone(ctx, r)
}
func (c *countingCloud) Unsettled() time.Time { return c.vpc().Unsettled() }

func (c *countingCloud) Owned(ctx context.Context) ([]cloud.Route, error) {
	defer c.track(time.Now())
	return c.vpc().Owned(ctx)
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var discard = slog.New(slog.DiscardHandler)

// benchHost is a driver on the real kernel of the current (bench) namespace.
type benchHost struct {
	d     *driver.Driver
	links *timedLinks
	fw    *countingFirewall
	cloud *countingCloud
	db    *state.DB
}

func newBenchHost(b *testing.B, vpc *countingCloud) *benchHost {
	b.Helper()
	ctl, links, fw, db := newBenchController(b, vpc, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/24")})
	return &benchHost{d: driver.New(ctl), links: links, fw: fw, cloud: vpc, db: db}
}

// newBenchController is the plugin on the real kernel of the current namespace: the
// controller over timed links, a counting firewall and the given cloud, started as
// main starts it (without Docker's list, which the benchmarks do not need).
func newBenchController(b *testing.B, vpc *countingCloud, noNAT []netip.Prefix, changes ...interface{ Gen() uint64 }) (*controller.Controller, *timedLinks, *countingFirewall, *state.DB) {
	b.Helper()
	db, err := state.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	real, err := firewall.NewFirewall()
	if err != nil {
		b.Fatal(err)
	}
	fw := &countingFirewall{Firewall: real}
	if err := (link.Host{}).EnsureForwarding(); err != nil {
		b.Fatal(err)
	}
	links := &timedLinks{}
	cfg := controller.Config{Pool: netip.MustParsePrefix("10.0.0.0/8"), SubnetSize: 24, Masquerade: true, NoNAT: noNAT, Log: discard}
	if len(changes) > 0 {
		cfg.LinkChanges = changes[0]
	}
	ctl := controller.New(cfg, db, links, fw, vpc, nil)
	if err := ctl.Start(); err != nil {
		b.Fatal(err)
	}
	return ctl, links, fw, db
}

// portOption is Docker's port map for `-p hostPort:80`.
func portOption(hostPort int) map[string]interface{} {
	return map[string]interface{}{"com.docker.network.portmap": []interface{}{
		map[string]interface{}{"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": hostPort, "HostPortEnd": hostPort},
	}}
}

// endpoint is one container's attachment as Docker describes it to the driver.
type endpoint struct {
	netID, id, addr string
}

func (h *benchHost) create(b *testing.B, ep endpoint) {
	b.Helper()
	_, err := h.d.CreateEndpoint(&dnet.CreateEndpointRequest{NetworkID: ep.netID, EndpointID: ep.id,
		Interface: &dnet.EndpointInterface{Address: ep.addr}})
	if err != nil {
		b.Fatal(err)
	}
}

func (h *benchHost) join(b *testing.B, ep endpoint) {
	if _, err := h.d.Join(&dnet.JoinRequest{NetworkID: ep.netID, EndpointID: ep.id, SandboxKey: "/var/run/docker/netns/bench"}); err != nil {
		b.Fatal(err)
	}
}

func (h *benchHost) leave(b *testing.B, ep endpoint) {
	if err := h.d.Leave(&dnet.LeaveRequest{NetworkID: ep.netID, EndpointID: ep.id}); err != nil {
		b.Fatal(err)
	}
}

func (h *benchHost) publish(b *testing.B, ep endpoint, hostPort int) {
	err := h.d.ProgramExternalConnectivity(&dnet.ProgramExternalConnectivityRequest{NetworkID: ep.netID, EndpointID: ep.id, Options: portOption(hostPort)})
	if err != nil {
		b.Fatal(err)
	}
}

func (h *benchHost) unpublish(b *testing.B, ep endpoint) {
	if err := h.d.RevokeExternalConnectivity(&dnet.RevokeExternalConnectivityRequest{NetworkID: ep.netID, EndpointID: ep.id}); err != nil {
		b.Fatal(err)
	}
}

// setupNetwork creates one network on 10.0.2.0/22 (room for 1000 containers) with
// existing containers joined, each with a published port when withPorts.
func (h *benchHost) setupNetwork(b *testing.B, existing int, withPorts bool) string {
	b.Helper()
	netID := randomID()
	err := h.d.CreateNetwork(&dnet.CreateNetworkRequest{NetworkID: netID,
		IPv4Data: []*dnet.IPAMData{{AddressSpace: "default", Pool: "10.0.0.0/22", Gateway: "10.0.0.1/22"}}})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < existing; i++ {
		ep := endpoint{netID, randomID(), addrAt(10+i) + "/22"}
		h.create(b, ep)
		h.join(b, ep)
		if withPorts {
			h.publish(b, ep, 20000+i)
		}
	}
	return netID
}

// addrAt is the i-th address of 10.0.0.0/22.
func addrAt(i int) string {
	return netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i % 256)}).String()
}

// pathSide is one host of BenchmarkContainerPath: its own network namespace, driver
// and state, with a number of containers already on the network.
type pathSide struct {
	containers int
	ns         netns.NsHandle
	h          *benchHost
	ep         endpoint

	total, join            time.Duration
	mallocs                uint64
	cloud0, ports0, scans0 int
	veth0, iptables0       time.Duration
}

// newPathSide enters a new network namespace (the thread stays there) and sets up
// a host in it with existing containers joined, each with a published port when
// withPorts.
func newPathSide(b *testing.B, existing int, withPorts bool) *pathSide {
	b.Helper()
	ns, err := netns.New()
	if err != nil {
		b.Fatalf("create netns: %v", err)
	}
	b.Cleanup(func() { ns.Close() })
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		b.Fatal(err)
	}
	h := newBenchHost(b, &countingCloud{})
	netID := h.setupNetwork(b, existing, withPorts)
	s := &pathSide{containers: existing, ns: ns, h: h, ep: endpoint{netID, randomID(), addrAt(1000) + "/22"}}
	h.create(b, s.ep)
	s.cloud0, _ = h.cloud.snapshot()
	s.ports0, s.scans0 = h.fw.snapshot()
	s.veth0, s.iptables0 = h.links.time(), h.fw.time()
	return s
}

// op runs one container's path on this side: Join (and publish), then (unpublish
// and) Leave.
func (s *pathSide) op(b *testing.B, ports bool) {
	if err := netns.Set(s.ns); err != nil {
		b.Fatalf("enter netns of the %d-container host: %v", s.containers, err)
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	s.h.join(b, s.ep)
	if ports {
		s.h.publish(b, s.ep, 30000)
	}
	t1 := time.Now()
	if ports {
		s.h.unpublish(b, s.ep)
	}
	s.h.leave(b, s.ep)
	t2 := time.Now()
	runtime.ReadMemStats(&m1)
	s.join += t1.Sub(t0)
	s.total += t2.Sub(t0)
	s.mallocs += m1.Mallocs - m0.Mallocs
}

// BenchmarkContainerPath measures Join+Leave (a container without ports) and
// Join+ProgramExternalConnectivity(one port)+Revoke+Leave on two hosts at once, one
// with 10 containers already on the network and one with 200 (each with a published
// port of its own in the port case, the worst case for the firewall). Each host is a
// network namespace of its own; iterations alternate between them, so drift in the
// machine's load hits both alike and the growth figure compares like with like. It
// fails if the path calls the cloud or makes a firewall call other than its own port's.
func BenchmarkContainerPath(b *testing.B) {
	for _, ports := range []bool{false, true} {
		name := "join-leave"
		if ports {
			name = "join-port-leave"
		}
		b.Run(name, func(b *testing.B) {
			netnstest.Enter(b)
			sides := []*pathSide{newPathSide(b, 10, ports), newPathSide(b, 200, ports)}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%2 == 0 {
					sides[0].op(b, ports)
					sides[1].op(b, ports)
				} else {
					sides[1].op(b, ports)
					sides[0].op(b, ports)
				}
			}
			b.StopTimer()
			for _, s := range sides {
				if err := netns.Set(s.ns); err != nil {
					b.Fatal(err)
				}
				cloudCalls, _ := s.h.cloud.snapshot()
				portCalls, scans := s.h.fw.snapshot()
				cloudCalls, portCalls, scans = cloudCalls-s.cloud0, portCalls-s.ports0, scans-s.scans0
				veth, ipt := s.h.links.time()-s.veth0, s.h.fw.time()-s.iptables0
				if cloudCalls != 0 {
					b.Errorf("%d containers: the container path made %d cloud calls in %d iterations; want none", s.containers, cloudCalls, b.N)
				}
				if scans != 0 {
					b.Errorf("%d containers: the container path made %d whole-network firewall calls in %d iterations; want none", s.containers, scans, b.N)
				}
				want := 0
				if ports {
					want = 2 * b.N // one EnsurePort, one DeletePort
				}
				if portCalls != want {
					b.Errorf("%d containers: the container path made %d port rule calls in %d iterations; want %d", s.containers, portCalls, b.N, want)
				}
				n, at := float64(b.N), fmt.Sprintf("@%d", s.containers)
				b.ReportMetric(float64(s.total.Microseconds())/n, "µs"+at+"/op")
				b.ReportMetric(float64(s.join.Microseconds())/n, "join-µs"+at+"/op")
				b.ReportMetric(float64((s.total-s.join).Microseconds())/n, "leave-µs"+at+"/op")
				b.ReportMetric(float64(veth.Microseconds())/n, "veth-µs"+at+"/op")
				b.ReportMetric(float64(ipt.Microseconds())/n, "iptables-µs"+at+"/op")
				b.ReportMetric(float64((s.total-veth-ipt).Microseconds())/n, "own-µs"+at+"/op")
				b.ReportMetric(float64(s.mallocs)/n, "allocs"+at+"/op")
				b.ReportMetric(float64(cloudCalls)/n, "cloud-calls"+at+"/op")
				b.ReportMetric(float64(scans)/n, "fw-scans"+at+"/op")
				b.ReportMetric(float64(portCalls)/n, "fw-port-calls"+at+"/op")
			}
			b.ReportMetric(float64(sides[1].total)/float64(sides[0].total), "growth-x")
		})
	}
}

// Emulated VPC of Huawei's guide: one ECS in 192.168.0.0/24.
const (
	benchAK      = "VPCROUTEBENCHAK00001"
	benchSK      = "vpcroute-bench-secret-key-0000000000001"
	benchProject = "0b6c5e8f4a1d4c2e9f3a7b8c9d0e1f2a"
	benchVPC     = "3f1e2d4c-5b6a-4798-8a9b-0c1d2e3f4a5b"
	benchSubnet  = "7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0d"
)

// startEmulator serves the emulated cloud on the root namespace's loopback (the Huawei
// client's connections are made by transport goroutines, which run there) and returns
// it with a Huawei client for ECS 1.
func startEmulator(b *testing.B) (*sim.Sim, *huawei.Client) {
	b.Helper()
	s, err := sim.New(sim.Config{
		Region: "ap-southeast-1", ProjectID: benchProject, VPCID: benchVPC, VPCCIDR: "192.168.0.0/16",
		Subnets: []sim.Subnet{{ID: benchSubnet, Name: "subnet-ecs", CIDR: "192.168.0.0/24", GatewayIP: "192.168.0.1"}},
		ECSs:    []sim.ECS{{ID: "8c5e0f12-1a2b-4c3d-8e4f-5a6b7c8d9e01", Name: "ecs1", IP: "192.168.0.2", PortID: "d1e2f3a4-b5c6-4d7e-8f9a-0b1c2d3e4f01", SubnetID: benchSubnet}},
		AK:      benchAK, SK: benchSK,
	})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	b.Cleanup(srv.Close)
	c, err := huawei.New(context.Background(), huawei.Config{
		MetadataURL: srv.URL + "/ecs/ecs1", VPCEndpoint: srv.URL, ECSEndpoint: srv.URL, AK: benchAK, SK: benchSK,
		Hostname: "ecs1", Logger: discard,
	})
	if err != nil {
		b.Fatal(err)
	}
	return s, c
}

// routeTableCalls counts the route table reads (GET) and writes (PUT) in a request log.
func routeTableCalls(log []sim.RequestLog) (reads, writes int) {
	for _, r := range log {
		if !strings.Contains(r.Path, "/routetables") {
			continue
		}
		switch r.Method {
		case http.MethodGet:
			reads++
		case http.MethodPut, http.MethodPost, http.MethodDelete:
			writes++
		}
	}
	return reads, writes
}

// BenchmarkNetworkCreate is `docker network create -d vpcroute --ipam-driver vpcroute`
// as the plugin sees it: RequestPool, RequestAddress (the gateway) and CreateNetwork,
// on the real kernel and the real Huawei client against the emulator. It reports the
// cloud's reads and writes per create and the plugin's own time (the total minus the
// time spent inside the cloud client), and fails above one read and one write.
func BenchmarkNetworkCreate(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: creates a network namespace, bridges and iptables rules")
	}
	s, client := startEmulator(b)
	netnstest.Enter(b)
	vpc := &countingCloud{inner: client}
	ctl, links, fw, _ := newBenchController(b, vpc, append([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, client.Identity().VPCCIDRs...))
	d, ip := driver.New(ctl), ipam.New(ctl)

	var own, cloudT, pool, addr, create, fwT, linkT time.Duration
	reads, writes, maxReads, maxWrites := 0, 0, 0, 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		logBefore := len(s.Requests())
		_, cloudBefore := vpc.snapshot()
		fwBefore, linkBefore := fw.time(), links.time()
		t0 := time.Now()
		p, err := ip.RequestPool(&dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		gw, err := ip.RequestAddress(&dipam.RequestAddressRequest{PoolID: p.PoolID,
			Options: map[string]string{"RequestAddressType": "com.docker.network.gateway"}})
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		netID := randomID()
		err = d.CreateNetwork(&dnet.CreateNetworkRequest{NetworkID: netID,
			IPv4Data: []*dnet.IPAMData{{AddressSpace: ipam.LocalSpace, Pool: p.Pool, Gateway: gw.Address}}})
		if err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		_, cloudAfter := vpc.snapshot()
		r, w := routeTableCalls(s.Requests()[logBefore:])
		reads, writes = reads+r, writes+w
		maxReads, maxWrites = max(maxReads, r), max(maxWrites, w)
		pool, addr, create = pool+t1.Sub(t0), addr+t2.Sub(t1), create+t3.Sub(t2)
		cloudT += cloudAfter - cloudBefore
		fwT += fw.time() - fwBefore
		linkT += links.time() - linkBefore
		own += t3.Sub(t0) - (cloudAfter - cloudBefore)

		b.StopTimer()
		if err := d.DeleteNetwork(&dnet.DeleteNetworkRequest{NetworkID: netID}); err != nil {
			b.Fatal(err)
		}
		gwAddr, _, _ := strings.Cut(gw.Address, "/")
		if err := ip.ReleaseAddress(&dipam.ReleaseAddressRequest{PoolID: p.PoolID, Address: gwAddr}); err != nil {
			b.Fatal(err)
		}
		if err := ip.ReleasePool(&dipam.ReleasePoolRequest{PoolID: p.PoolID}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	if maxReads > 1 || maxWrites > 1 {
		b.Errorf("a network create made up to %d route table reads and %d writes; the budget is 1 and 1", maxReads, maxWrites)
	}
	n := float64(b.N)
	b.ReportMetric(float64(reads)/n, "cloud-reads/op")
	b.ReportMetric(float64(writes)/n, "cloud-writes/op")
	b.ReportMetric(float64(own.Microseconds())/n/1000, "own-ms/op")
	b.ReportMetric(float64(cloudT.Microseconds())/n/1000, "cloud-ms/op")
	b.ReportMetric(float64(pool.Microseconds())/n/1000, "RequestPool-ms/op")
	b.ReportMetric(float64(addr.Microseconds())/n/1000, "RequestAddress-ms/op")
	b.ReportMetric(float64(create.Microseconds())/n/1000, "CreateNetwork-ms/op")
	b.ReportMetric(float64(fwT.Microseconds())/n/1000, "iptables-ms/op")
	b.ReportMetric(float64(linkT.Microseconds())/n/1000, "bridge-ms/op")
}

// BenchmarkKernelPass is one pass of the loop's kernel check (what runs every
// VPCROUTE_KERNEL_INTERVAL) with 1, 100 and 200 networks in place and nothing out of
// line: its cost must not grow with the networks. iptables-saves/op counts the reads
// of the rules (on nft, none while the ruleset's generation stays the same).
func BenchmarkKernelPass(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: creates a network namespace, bridges and iptables rules")
	}
	for _, n := range []int{1, 100, 200} {
		b.Run(fmt.Sprintf("networks=%d", n), func(b *testing.B) {
			netnstest.Enter(b)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			watcher, err := link.Watch(ctx) // as main does
			if err != nil {
				b.Fatal(err)
			}
			vpc := &countingCloud{}
			ctl, _, fw, _ := newBenchController(b, vpc, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, watcher)
			d, ip := driver.New(ctl), ipam.New(ctl)
			for range n {
				p, err := ip.RequestPool(&dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace})
				if err != nil {
					b.Fatal(err)
				}
				gw, err := ip.RequestAddress(&dipam.RequestAddressRequest{PoolID: p.PoolID,
					Options: map[string]string{"RequestAddressType": "com.docker.network.gateway"}})
				if err != nil {
					b.Fatal(err)
				}
				err = d.CreateNetwork(&dnet.CreateNetworkRequest{NetworkID: randomID(),
					IPv4Data: []*dnet.IPAMData{{AddressSpace: ipam.LocalSpace, Pool: p.Pool, Gateway: gw.Address}}})
				if err != nil {
					b.Fatal(err)
				}
			}
			if _, err := ctl.RepairKernel(); err != nil { // the first pass after the creates reads
				b.Fatal(err)
			}
			_, scansBefore := fw.snapshot()
			saves := fw.Firewall.(*firewall.Firewall).Saves
			savesBefore := saves()
			b.ResetTimer()
			for range b.N {
				r, err := ctl.RepairKernel()
				if err != nil || !r.Empty() {
					b.Fatalf("pass: %v %v", r, err)
				}
			}
			b.StopTimer()
			_, scans := fw.snapshot()
			b.ReportMetric(float64(saves()-savesBefore)/float64(b.N), "iptables-saves/op")
			b.ReportMetric(float64(scans-scansBefore)/float64(b.N), "fw-checks/op")
		})
	}
}

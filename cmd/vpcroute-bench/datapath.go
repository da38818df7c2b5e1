//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// The data path budget asks what vpcroute adds to a hand-built veth + bridge + route
// path. A Docker container on a vpcroute network differs from a hand-made namespace in
// two ways at once: vpcroute's host side (its bridge, its FORWARD and NAT chains, the VPC
// route it claimed) and Docker's container (whose namespace holds the engine's embedded
// DNS NAT rules, so conntrack runs in it). The benchmark measures one TCP stream from
// ECS 1 to ECS 2 over several paths that separate the two, all through the same VPC
// router, interleaved round by round.
const (
	// pathContainer: Docker containers on vpcroute networks (what a user runs).
	pathContainer = "container"
	// pathHost: plain namespaces on vpcroute's bridges: vpcroute's host side alone, on
	// the network created last on ECS 1.
	pathHost = "host"
	// pathHostFirst: the same on the network created first on ECS 1 (bn1 of the host
	// measurements), whose FORWARD rules come first.
	pathHostFirst = "host-first"
	// pathHand: plain namespaces on hand-made bridges with hand routes.
	pathHand = "hand"
	// pathHandNAT: pathHand with the iptables rules Docker puts in a container's
	// namespace copied into both endpoint namespaces.
	pathHandNAT = "hand-nat"
	// pathGuide: Docker containers on Docker's own bridge driver with hand routes, as
	// Huawei's guide sets it up.
	pathGuide = "guide"
	// pathAllow: Docker containers on vpcroute, the server's network with a 20-entry
	// vpcroute.allow list (the client's subnet last): what an edge policy costs.
	pathAllow = "allow20"
	// pathRelease: Docker containers on vpcroute as an earlier revision (-baseline)
	// sets them up, on a bed of its own: what this release's rules cost a network
	// without a policy against that one's.
	pathRelease = "release"
)

// pathInfo says what one path is, for the report.
type pathInfo struct {
	Key   string
	Label string // short name in tables
	What  string // what it measures
}

// pathInfos lists every path the benchmark knows, in report order.
var pathInfos = []pathInfo{
	{pathContainer, "Docker containers on vpcroute", "what a user runs: `docker run --net` a vpcroute network on each ECS; vpcroute's host side plus Docker's container (its namespace carries the engine's embedded-DNS NAT rules, so conntrack runs there too)"},
	{pathHost, "namespaces on vpcroute's bridges", "vpcroute's own data path: a plain network namespace per ECS attached by a veth to the bridge vpcroute made for the containers' networks, an address of their subnets, so packets cross vpcroute's bridge, its FORWARD chains and the VPC routes it claimed; no Docker container. On ECS 1 the network is the newest, so its FORWARD rules come after every other network's"},
	{pathHostFirst, "namespaces on vpcroute's bridges, oldest network", "the same on ECS 1's oldest vpcroute network (the first of the host measurements, whose FORWARD rules come first); the difference from the row above is what the other networks' rules cost"},
	{pathHand, "hand-built", "the baseline: a plain network namespace per ECS on a bridge made by hand, FORWARD accepted by a first rule, a hand route per subnet in the VPC router"},
	{pathHandNAT, "hand-built + Docker's NAT rules", "the hand-built path with the iptables rules Docker puts in a container's namespace (`iptables-save` of the container, restored into both endpoint namespaces): what those rules cost on their own"},
	{pathAllow, "Docker containers on vpcroute, 20-entry allow list", "the container path with the server's network admitting 20 source ranges (`-o vpcroute.allow=`, the client's subnet the last of them): every new connection walks the list on ECS 2"},
	{pathRelease, "Docker containers on an earlier vpcroute", "the container path of the revision given with `-baseline`, built from git, on a bed of its own built the same way (prefix `vrbr`, as many vpcroute networks on its ECS 1): the same network without a policy, that release's rules"},
	{pathGuide, "Docker's bridge driver (guide)", "Huawei's guide, on a bed of its own running Docker alone: Docker containers on a `docker network create -d bridge` network per ECS (the guide's 10.0.2.0/24 and 10.0.3.0/24, no masquerade), hand routes in the VPC router, `iptables -P FORWARD ACCEPT` as the guide says"},
}

// comparison is one paired ratio the report shows: Num's run over Den's run of the
// same round.
type comparison struct {
	Num, Den string
	Label    string
	Shows    string
	Verdict  bool // the budget's verdict rests on this one
}

// comparisons are the ratios that answer "what does vpcroute add", in report order.
var comparisons = []comparison{
	{pathHost, pathHand, "vpcroute's host side vs hand-built", "what vpcroute adds to veth + bridge + route: the budget's verdict", true},
	{pathContainer, pathHand, "Docker containers on vpcroute vs hand-built", "the end-to-end figure a user sees, Docker's container included (the row of earlier reports)", false},
	{pathContainer, pathHost, "Docker containers vs namespaces, both on vpcroute's bridges", "what Docker's container adds on top of vpcroute", false},
	{pathHostFirst, pathHand, "vpcroute's host side, oldest network, vs hand-built", "vpcroute's data path when its FORWARD rules come first", false},
	{pathHost, pathHostFirst, "newest vs oldest network, both on vpcroute's bridges", "what walking the other networks' FORWARD rules costs", false},
	{pathHandNAT, pathHand, "hand-built with vs without Docker's container rules", "what Docker's in-container NAT rules (and the conntrack they switch on) cost on a path without vpcroute", false},
	{pathContainer, pathGuide, "Docker containers: vpcroute vs Docker's bridge driver (guide)", "vpcroute against the setup it replaces, containers on both sides", false},
	{pathAllow, pathContainer, "Docker containers: 20-entry allow list vs none", "what an edge policy costs", false},
	{pathContainer, pathRelease, "Docker containers: this release vs the earlier one", "what this release's rules cost a network without a policy against the earlier release's", false},
}

// runSample is one iperf3 run with the machine's state around it.
type runSample struct {
	Round, Slot int // round, and place in the round's order (0 first)
	Path        string
	Bps         float64
	// ConnPerSec is the rate of TCP connections one client opened and closed, one
	// after the other, in the round's turns of every path after the iperf3 runs.
	ConnPerSec float64
	LoadBefore loadAvg
	LoadAfter  loadAvg
	// Steal is the share of CPU time the hypervisor gave others during the run, over
	// all CPUs; Busy the share the machine spent working (iperf3 included).
	Steal, Busy float64
}

// loadAvg is /proc/loadavg: the 1-minute average and the runnable tasks at that moment.
type loadAvg struct {
	One      float64
	Runnable int
}

func (l loadAvg) String() string { return fmt.Sprintf("%.2f (%d running)", l.One, l.Runnable) }

func readLoadAvg() loadAvg {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return loadAvg{}
	}
	f := strings.Fields(string(b))
	var l loadAvg
	if len(f) >= 4 {
		l.One, _ = strconv.ParseFloat(f[0], 64)
		if run, _, ok := strings.Cut(f[3], "/"); ok {
			l.Runnable, _ = strconv.Atoi(run)
		}
	}
	return l
}

// cpuTimes is the first line of /proc/stat: total and steal and idle jiffies.
type cpuTimes struct{ total, idle, steal uint64 }

func readCPUTimes() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	var c cpuTimes
	for i, s := range f[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		c.total += v
		switch i {
		case 3, 4: // idle, iowait
			c.idle += v
		case 7:
			c.steal = v
		}
	}
	return c
}

// datapathFigures are the iperf3 results of every path, run by run.
type datapathFigures struct {
	Seconds int
	// Turns is how many runs of Seconds/Turns each path's run in a round is made
	// of, the paths taking turns (see measureDatapath); 1 for one run.
	Turns   int
	Paths   []string // measured, in each round's base order
	Rounds  int
	Samples []runSample
	From    map[string]string // path -> client address
	To      map[string]string // path -> server address
	// Baseline is the earlier revision the release path runs (-baseline).
	Baseline string
	// NetworksECS1 is the number of vpcroute networks on ECS 1 while measuring: its
	// FORWARD chain walks one jump per network, the data path's network last.
	NetworksECS1 int
	// DockerRules are the iptables rules Docker put in the client container's namespace.
	DockerRules string
	// Walk is, per path, how many filter rules a packet from its client evaluates in
	// ECS 1's FORWARD hook until one accepts it (jumps and returns included), and XT
	// how many xtables matches it calls on the way (see walkCost).
	Walk, XT map[string]int
	// FirstPacket is, per path whose connection rate is compared (container, guide,
	// release), what the first packet of a connection costs in the rules of both
	// ECSs (see firstPacketCost).
	FirstPacket map[string]walkFigure
	// Profile is, per path, the share of CPU samples spent evaluating nftables rules
	// during one extra run under perf (empty without perf).
	Profile        map[string]profileShare
	ProfileSeconds int
	ProfileNote    string // why there is no profile
}

// profileShare is what perf saw during one run: the share of all samples (idle
// included) in nftables rule evaluation, the idle share, and the run's bit/s (lower
// than unprofiled runs: sampling costs).
type profileShare struct {
	Rules, Idle, Bps float64
}

// runs returns the bit/s of one path, round by round.
func (d *datapathFigures) runs(path string) []float64 {
	return d.series(path, func(s runSample) float64 { return s.Bps })
}

// series returns one figure of one path's samples, round by round.
func (d *datapathFigures) series(path string, figure func(runSample) float64) []float64 {
	return seriesOf(d.Samples, d.Rounds, path, figure)
}

// seriesOf returns one figure of one path's samples, round by round.
func seriesOf(samples []runSample, rounds int, path string, figure func(runSample) float64) []float64 {
	out := make([]float64, rounds)
	for _, s := range samples {
		if s.Path == path && s.Round < rounds {
			out[s.Round] = figure(s)
		}
	}
	return out
}

func (d *datapathFigures) has(path string) bool {
	for _, p := range d.Paths {
		if p == path {
			return true
		}
	}
	return false
}

// connRuns returns the connection rates of one path, round by round.
func (d *datapathFigures) connRuns(path string) []float64 {
	return d.series(path, func(s runSample) float64 { return s.ConnPerSec })
}

// connRatios are the connection rate ratios num / den for each round where both ran.
func (d *datapathFigures) connRatios(num, den string) []float64 {
	return pairRatios(d.connRuns(num), d.connRuns(den))
}

// ratios are num / den for each round where both ran.
func (d *datapathFigures) ratios(num, den string) []float64 {
	return pairRatios(d.runs(num), d.runs(den))
}

func pairRatios(a, b []float64) []float64 {
	var out []float64
	for i := range a {
		if a[i] > 0 && b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

// Names of the benchmark's own objects on the bed. Namespaces are "<prefix>-<name>";
// link names are namespace-local.
const (
	handBridge = "vrbhand" // hand-made bridge on each ECS
	handVeth   = "vrbhv"   // hand path's veth, ECS side
	handNATVth = "vrbhnv"  // hand+NAT path's veth, ECS side
	hostVeth   = "vrbvv"   // veth on vpcroute's bridge, ECS side
	firstVeth  = "vrbvf"   // veth on the oldest network's bridge, ECS 1 side
	handCIDR   = "100.64.0.0/16"
	guideNet   = "vrbguide"
	dpNet      = "bdp"  // vpcroute network of the data path on both ECSs
	dpAllowNet = "bdpa" // vpcroute network with a 20-entry allow list on ECS 2
	// firstNetwork is the first network measureHost creates on ECS 1.
	firstNetwork = "bn1"
	iperfPort    = "5201"
	connPort     = 5202 // the connection-rate server's
)

func benchNetns(prefix, name string, i int) string { return fmt.Sprintf("%s-%s%d", prefix, name, i) }

// handAddr is an address of the hand-built subnet of the i-th ECS: 100.64.i.host,
// outside the container pool: a range of another owner inside the pool would put a
// return of its own before the pool's shortcut (firewall.Base.PoolOthers), which
// vpcroute's path would walk for the benchmark's sake alone.
func handAddr(i, host int) string { return fmt.Sprintf("100.64.%d.%d", i, host) }

// endpoint is one end of a path: the namespace iperf3 runs in and its address.
type endpoint struct {
	ns   string // file of the network namespace (/run/netns/X or /proc/PID/ns/net)
	addr string
}

// setup collects teardown steps, run in reverse.
type setup struct {
	undo []func()
	// hand are the ECSs (of every bed) that got the hand-built path's accepts.
	hand []*testbed.ECS
}

func (s *setup) add(f func()) { s.undo = append(s.undo, f) }

func (s *setup) teardown() {
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i]()
	}
	s.undo = nil
}

type step struct {
	netns string
	argv  []string
}

func runSteps(ctx context.Context, steps []step) error {
	for _, s := range steps {
		if _, err := testbed.Exec(ctx, s.netns, s.argv...); err != nil {
			return err
		}
	}
	return nil
}

// plainNetns makes a network namespace named ns (removing a crashed run's) with a veth
// whose far end, vethName, sits in the ECS's namespace on bridge br; inside, eth0 has
// addr/bits and a default route via gw.
func plainNetns(ctx context.Context, s *setup, ecs *testbed.ECS, ns, vethName, br, addr string, bits int, gw string, mtu int) error {
	_, _ = exec.CommandContext(ctx, "ip", "netns", "del", ns).CombinedOutput()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %w %s", ns, err, out)
	}
	s.add(func() { _, _ = exec.Command("ip", "netns", "del", ns).CombinedOutput() })
	add := []string{"ip", "link", "add", vethName}
	if mtu > 0 {
		add = append(add, "mtu", strconv.Itoa(mtu))
	}
	add = append(add, "type", "veth", "peer", "name", "eth0", "netns", ns)
	s.add(func() { _, _ = testbed.Exec(context.Background(), ecs.Netns, "ip", "link", "del", vethName) })
	return runSteps(ctx, []step{
		{ecs.Netns, add},
		{ecs.Netns, []string{"ip", "link", "set", vethName, "master", br, "up"}},
		{ns, []string{"ip", "link", "set", "lo", "up"}},
		{ns, []string{"ip", "addr", "add", fmt.Sprintf("%s/%d", addr, bits), "dev", "eth0"}},
		{ns, []string{"ip", "link", "set", "eth0", "up"}},
		{ns, []string{"ip", "route", "add", "default", "via", gw}},
	})
}

// buildHandPaths makes the hand-built path on every ECS (a bridge, a route in the VPC
// router, FORWARD accepted first) with two namespaces on it: <prefix>-handN (.2) and,
// when withNAT, <prefix>-hnatN (.3), which gets natRules restored into it.
func buildHandPaths(ctx context.Context, s *setup, env *cloudbed.Env, prefix string, natRules []string) error {
	for i, ecs := range env.Bed.ECSs {
		n := i + 1
		_, _ = testbed.Exec(ctx, ecs.Netns, "ip", "link", "del", handBridge) // a crashed run's
		if err := runSteps(ctx, []step{
			{ecs.Netns, []string{"ip", "link", "add", handBridge, "type", "bridge"}},
			{ecs.Netns, []string{"ip", "addr", "add", handAddr(n, 1) + "/24", "dev", handBridge}},
			{ecs.Netns, []string{"ip", "link", "set", handBridge, "up"}},
		}); err != nil {
			return err
		}
		s.add(func() { _, _ = testbed.Exec(context.Background(), ecs.Netns, "ip", "link", "del", handBridge) })
		if err := plainNetns(ctx, s, ecs, benchNetns(prefix, "hand", n), handVeth, handBridge, handAddr(n, 2), 24, handAddr(n, 1), 0); err != nil {
			return err
		}
		if natRules != nil {
			ns := benchNetns(prefix, "hnat", n)
			if err := plainNetns(ctx, s, ecs, ns, handNATVth, handBridge, handAddr(n, 3), 24, handAddr(n, 1), 0); err != nil {
				return err
			}
			if _, err := testbed.ExecStdin(ctx, ns, []byte(natRules[i]), "iptables-restore"); err != nil {
				return fmt.Errorf("put Docker's container rules into %s: %w", ns, err)
			}
		}
		if _, err := testbed.Exec(ctx, env.Bed.RouterNetns, "ip", "route", "replace", handAddr(n, 0)+"/24", "via", ecs.IP.String()); err != nil {
			return err
		}
		s.add(func() {
			_, _ = testbed.Exec(context.Background(), env.Bed.RouterNetns, "ip", "route", "del", handAddr(n, 0)+"/24")
		})
		if err := handAccepts(ctx, s, ecs); err != nil {
			return err
		}
	}
	return nil
}

// handAccepts puts the hand-built path's FORWARD accepts first on ecs: as the guide's
// `iptables -P FORWARD ACCEPT`, for the hand-built subnets only; in the ECS's mount
// namespace, so that the engine's xtables lock is honoured. Every packet of every
// other path walks them before anything else, so the beds of the paths compared with
// vpcroute's (the guide's, an earlier release's) get them too, without a hand-built
// path: until 2026-12-02 only vpcroute's bed had them, two rules more per packet on
// each ECS than the guide's.
//
// dockerd puts its DOCKER-USER jump back on top whenever it creates a network, and
// vpcroute's follows it, so a bed that makes networks after this pushes the accepts
// down; handAcceptsFirst checks, before measuring, that they are first everywhere.
func handAccepts(ctx context.Context, s *setup, ecs *testbed.ECS) error {
	s.hand = append(s.hand, ecs)
	for _, dir := range []string{"-s", "-d"} {
		if _, err := ecs.Exec(ctx, "iptables", "-w", "-I", "FORWARD", "1", dir, handCIDR, "-j", "ACCEPT"); err != nil {
			return err
		}
		s.add(func() {
			_, _ = ecs.Exec(context.Background(), "iptables", "-w", "-D", "FORWARD", dir, handCIDR, "-j", "ACCEPT")
		})
	}
	return nil
}

// handAcceptsFirst makes sure every bed's FORWARD starts with the hand-built path's
// accepts, where handAccepts put them: until 2026-12-02 the earlier release's bed made
// its networks after them, and its packets skipped the two rules every other bed's
// walked first.
func handAcceptsFirst(ctx context.Context, s *setup) error {
	for _, ecs := range s.hand {
		save, err := ecs.Exec(ctx, "iptables-save", "-t", "filter")
		if err != nil {
			return err
		}
		var first []string
		for _, line := range strings.Split(save, "\n") {
			if strings.HasPrefix(line, "-A FORWARD ") && len(first) < 2 {
				first = append(first, line)
			}
		}
		want := []string{"-A FORWARD -d " + handCIDR + " -j ACCEPT", "-A FORWARD -s " + handCIDR + " -j ACCEPT"}
		if !slices.Equal(first, want) {
			return fmt.Errorf("%s: FORWARD starts with %q, not the hand-built path's accepts: the beds would not be compared on the same rules", ecs.Name, first)
		}
	}
	return nil
}

// vpcrouteBridge finds the bridge vpcroute made for a network on an ECS: the link
// holding the network's gateway address.
func vpcrouteBridge(ctx context.Context, ecs *testbed.ECS, gateway string) (name string, mtu int, err error) {
	out, err := testbed.Exec(ctx, ecs.Netns, "ip", "-o", "-4", "addr", "show", "to", gateway+"/32")
	if err != nil {
		return "", 0, err
	}
	f := strings.Fields(out)
	if len(f) < 2 {
		return "", 0, fmt.Errorf("no link holds %s on %s: is the network's bridge up?", gateway, ecs.Name)
	}
	name = f[1]
	// The namespace's own /sys is not mounted here; ip tells the MTU.
	link, err := testbed.Exec(ctx, ecs.Netns, "ip", "-o", "link", "show", "dev", name)
	if err != nil {
		return "", 0, err
	}
	lf := strings.Fields(link)
	for i := 0; i+1 < len(lf); i++ {
		if lf[i] == "mtu" {
			mtu, _ = strconv.Atoi(lf[i+1])
		}
	}
	return name, mtu, nil
}

// netOnECS is a vpcroute network as seen on one ECS.
type netOnECS struct {
	subnet  netip.Prefix
	gateway string
}

func inspectNet(ctx context.Context, ecs *testbed.ECS, name string) (netOnECS, error) {
	out, err := ecs.Docker(ctx, "network", "inspect", "-f", `{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}}`, name)
	if err != nil {
		return netOnECS{}, err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return netOnECS{}, fmt.Errorf("network %s on %s: subnet and gateway %q", name, ecs.Name, out)
	}
	p, err := netip.ParsePrefix(f[0])
	if err != nil {
		return netOnECS{}, fmt.Errorf("network %s on %s: %w", name, ecs.Name, err)
	}
	return netOnECS{subnet: p, gateway: strings.TrimSuffix(f[1], "/"+strconv.Itoa(p.Bits()))}, nil
}

// lastHost is the highest usable address of an IPv4 prefix: the plain namespace on a
// vpcroute bridge takes it, as IPAM hands out addresses from the bottom.
func lastHost(p netip.Prefix) string {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= (1 << (32 - p.Bits())) - 1
	v-- // not the broadcast address
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
}

// guideBed is Huawei's guide on a bed of its own: two ECSs running Docker alone,
// without vpcroute, its rules or its emulator, so that the guide's packets walk
// Docker's rules and nothing of vpcroute's (on vpcroute's bed they would meet
// vpcroute's FORWARD chains before Docker's, which a host following the guide does
// not have).
type guideBed struct {
	eps   [2]endpoint // the guide's containers, ECS 1's first
	walk  int         // FORWARD rules an ECS 1 packet of the stream walks (0: not accepted by a rule)
	xt    int         // xtables matches it calls on the way
	first walkFigure  // a connection's first packet, both ECSs (firstPacketCost)
}

// buildGuideBed brings up the bed prefix (torn down by s) and sets it up as the guide
// does: on each ECS a Docker bridge network (the guide's 10.0.2.0/24 and
// 10.0.3.0/24, no masquerade) with a container, a hand route per subnet in the VPC
// router, and `iptables -P FORWARD ACCEPT`. ECS 1 first gets networks-1 more Docker
// bridge networks, so that its FORWARD chain holds as many networks as vpcroute's
// ECS 1 does, the guide's created last as vpcroute's network of the data path is.
func buildGuideBed(ctx context.Context, s *setup, prefix string, networks int) (guideBed, error) {
	var g guideBed
	say("guide: bringing up the bed " + prefix + " (Docker alone, as the guide)")
	bed, err := testbed.Up(ctx, testbed.Config{Prefix: prefix, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return g, fmt.Errorf("guide bed: %w", err)
	}
	s.add(func() {
		if err := bed.Down(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "vrbench: tear down the guide bed:", err)
		}
	})
	for k := 1; k < networks; k++ {
		if out, err := bed.ECSs[0].Docker(ctx, "network", "create", "-d", "bridge", "--subnet", fmt.Sprintf("10.1.%d.0/24", k), fmt.Sprintf("bg%d", k)); err != nil {
			return g, fmt.Errorf("docker network create on the guide's ecs1: %w %s", err, out)
		}
	}
	for i, ecs := range bed.ECSs[:2] {
		subnet := fmt.Sprintf("10.0.%d.0/24", i+2)
		addr := fmt.Sprintf("10.0.%d.2", i+2)
		if out, err := ecs.Docker(ctx, "network", "create", "-d", "bridge", "--subnet", subnet, "--gateway", fmt.Sprintf("10.0.%d.1", i+2),
			"-o", "com.docker.network.bridge.enable_ip_masquerade=false", "-o", "com.docker.network.bridge.name="+guideNet, guideNet); err != nil {
			return g, fmt.Errorf("docker network create -d bridge on the guide's %s: %w %s", ecs.Name, err, out)
		}
		if out, err := ecs.Docker(ctx, "run", "-d", "--name", "bguide", "--net", guideNet, "--ip", addr, testbed.ImageName); err != nil {
			return g, fmt.Errorf("docker run on the guide's %s: %w %s", ecs.Name, err, out)
		}
		pid, err := containerPID(ctx, ecs, "bguide")
		if err != nil {
			return g, err
		}
		g.eps[i] = endpoint{ns: "/proc/" + pid + "/ns/net", addr: addr}
		if _, err := testbed.Exec(ctx, bed.RouterNetns, "ip", "route", "replace", subnet, "via", ecs.IP.String()); err != nil {
			return g, err
		}
		if _, err := ecs.Exec(ctx, "iptables", "-w", "-P", "FORWARD", "ACCEPT"); err != nil {
			return g, err
		}
		if err := handAccepts(ctx, s, ecs); err != nil {
			return g, err
		}
	}
	save, err := bed.ECSs[0].Exec(ctx, "iptables-save", "-t", "filter")
	if err != nil {
		return g, err
	}
	if n, xt, ok := parseFilter(save).walkCost("FORWARD", packet{src: g.eps[0].addr, dst: g.eps[1].addr, in: guideNet, out: "eth0"}); ok {
		g.walk, g.xt = n, xt
	}
	g.first, err = firstPacketCost(ctx, [2]*testbed.ECS{bed.ECSs[0], bed.ECSs[1]}, [2]string{guideNet, guideNet}, g.eps[0].addr, g.eps[1].addr)
	return g, err
}

// iperfServer runs iperf3 -s in a network namespace (a file such as /proc/PID/ns/net)
// and returns its stop function.
func iperfServer(nsPath string) (func(), error) {
	cmd := exec.Command("nsenter", "--net="+nsPath, "--", "iperf3", "-s", "-p", iperfPort)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start iperf3 -s in %s: %w", nsPath, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	time.Sleep(300 * time.Millisecond)
	select {
	case <-done:
		return nil, fmt.Errorf("iperf3 -s in %s exited at once", nsPath)
	default:
	}
	return func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}, nil
}

// iperfAffinity pins iperf3's client to the first CPU and its server to the second
// when the machine has two or more: left to the scheduler, the two (and the softirq
// work that follows the client) change CPUs from run to run, which on a 2-CPU machine
// scattered single runs by ±10%; pinned, the same path repeats within a few percent.
// Every path is pinned alike.
func iperfAffinity() []string {
	if runtime.NumCPU() < 2 {
		return nil
	}
	return []string{"-A", "0,1"}
}

// iperfRun runs one iperf3 client from a network namespace and returns bit/s received.
func iperfRun(ctx context.Context, nsPath, server string, secs int) (float64, error) {
	argv := append([]string{"--net=" + nsPath, "--", "iperf3", "-c", server, "-p", iperfPort, "-t", fmt.Sprint(secs), "-J"}, iperfAffinity()...)
	out, err := exec.CommandContext(ctx, "nsenter", argv...).Output()
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return 0, fmt.Errorf("iperf3 -c %s from %s: %v (output %q)", server, nsPath, errors.Join(err, jerr), tail(string(out), 5))
	}
	if res.Error != "" || err != nil {
		return 0, fmt.Errorf("iperf3 -c %s from %s: %v %s", server, nsPath, err, res.Error)
	}
	return res.End.SumReceived.BitsPerSecond, nil
}

func containerPID(ctx context.Context, ecs *testbed.ECS, name string) (string, error) {
	pid, err := ecs.Docker(ctx, "inspect", "-f", "{{.State.Pid}}", name)
	if err != nil || pid == "" || pid == "0" {
		return "", fmt.Errorf("pid of container %s on %s: %v %q", name, ecs.Name, err, pid)
	}
	return pid, nil
}

// dpPath is one measured path: client on ECS 1, server on ECS 2.
type dpPath struct {
	key            string
	client, server endpoint
	bridge         string // the client's bridge on ECS 1
}

// vpcrouteContainers makes the data path's vpcroute network on each ECS with a
// container on it, and returns the containers' endpoints and the networks.
func vpcrouteContainers(ctx context.Context, ecs1, ecs2 *testbed.ECS) (cont [2]endpoint, nets [2]netOnECS, err error) {
	for i, ecs := range []*testbed.ECS{ecs1, ecs2} {
		if out, err := ecs.Docker(ctx, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", dpNet); err != nil {
			return cont, nets, fmt.Errorf("network create %s on %s: %w %s", dpNet, ecs.Name, err, out)
		}
		name := "bdp"
		if out, err := ecs.Docker(ctx, "run", "-d", "--name", name, "--net", dpNet, testbed.ImageName); err != nil {
			return cont, nets, fmt.Errorf("docker run on %s: %w %s", ecs.Name, err, out)
		}
		if nets[i], err = inspectNet(ctx, ecs, dpNet); err != nil {
			return cont, nets, err
		}
		ip, err := ecs.Docker(ctx, "inspect", "-f", `{{(index .NetworkSettings.Networks "`+dpNet+`").IPAddress}}`, name)
		if err != nil {
			return cont, nets, err
		}
		pid, err := containerPID(ctx, ecs, name)
		if err != nil {
			return cont, nets, err
		}
		cont[i] = endpoint{ns: "/proc/" + pid + "/ns/net", addr: strings.TrimSpace(ip)}
	}
	return cont, nets, nil
}

// buildRevision builds the vpcroute binary of a git revision of this checkout into
// work, from a worktree of its own that it removes again.
func buildRevision(ctx context.Context, work, rev string) (string, error) {
	src := filepath.Join(work, "baseline-src")
	if out, err := exec.CommandContext(ctx, "git", "worktree", "add", "--detach", src, rev).CombinedOutput(); err != nil {
		return "", fmt.Errorf("-baseline %s: git worktree add: %w %s", rev, err, out)
	}
	defer func() { _, _ = exec.Command("git", "worktree", "remove", "--force", src).CombinedOutput() }()
	bin := filepath.Join(work, "vpcroute-baseline")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, ".")
	build.Dir, build.Env = src, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("-baseline %s: build: %w\n%s", rev, err, out)
	}
	return bin, nil
}

// releaseBed is the earlier release's container path on a bed of its own.
type releaseBed struct {
	eps      [2]endpoint
	walk, xt int
	first    walkFigure // a connection's first packet, both ECSs (firstPacketCost)
}

// buildReleaseBed brings up the bed prefix with its own emulated cloud, starts the
// vpcroute binary bin on both ECSs, gives its ECS 1 networks-1 more vpcroute networks
// (so that its FORWARD chain holds as many as this release's ECS 1), and makes the
// data path's network and containers as on the main bed.
func buildReleaseBed(ctx context.Context, s *setup, o options, prefix, bin string, networks int) (releaseBed, error) {
	var rb releaseBed
	say("earlier release: bringing up the bed " + prefix + " with vpcroute " + o.baseline)
	env, err := cloudbed.Start(ctx, cloudbed.Options{Bed: testbed.Config{Prefix: prefix, Logger: slog.New(slog.DiscardHandler)}, RouteQuota: 1000})
	if err != nil {
		return rb, fmt.Errorf("release bed: %w", err)
	}
	s.add(func() {
		if err := env.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "vrbench: tear down the release bed:", err)
		}
	})
	po := o
	po.plugin = bin
	if err := startPlugins(ctx, po, env); err != nil {
		return rb, err
	}
	ecs1, ecs2 := env.Bed.ECSs[0], env.Bed.ECSs[1]
	for k := 1; k < networks; k++ {
		if out, err := ecs1.Docker(ctx, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", fmt.Sprintf("br%d", k)); err != nil {
			return rb, fmt.Errorf("network create on the release bed's ecs1: %w %s", err, out)
		}
	}
	cont, nets, err := vpcrouteContainers(ctx, ecs1, ecs2)
	if err != nil {
		return rb, err
	}
	// After the networks, which move Docker's jump (and vpcroute's) to the top.
	for _, ecs := range []*testbed.ECS{ecs1, ecs2} {
		if err := handAccepts(ctx, s, ecs); err != nil {
			return rb, err
		}
	}
	rb.eps = cont
	br, _, err := vpcrouteBridge(ctx, ecs1, nets[0].gateway)
	if err != nil {
		return rb, err
	}
	br2, _, err := vpcrouteBridge(ctx, ecs2, nets[1].gateway)
	if err != nil {
		return rb, err
	}
	save, err := ecs1.Exec(ctx, "iptables-save", "-t", "filter")
	if err != nil {
		return rb, err
	}
	if n, xt, ok := parseFilter(save).walkCost("FORWARD", packet{src: cont[0].addr, dst: cont[1].addr, in: br, out: "eth0"}); ok {
		rb.walk, rb.xt = n, xt
	}
	rb.first, err = firstPacketCost(ctx, [2]*testbed.ECS{ecs1, ecs2}, [2]string{br, br2}, cont[0].addr, cont[1].addr)
	return rb, err
}

// measureDatapath builds every path and runs iperf3 over them in rounds: each round
// runs every path once, the order rotating from round to round, so that the drift of a
// shared machine's load hits all paths alike and each round gives one ratio per pair.
func measureDatapath(ctx context.Context, o options, env *cloudbed.Env, r *report) error {
	ecs1, err := env.Bed.ECS("ecs1")
	if err != nil {
		return err
	}
	ecs2, err := env.Bed.ECS("ecs2")
	if err != nil {
		return err
	}
	var s setup
	defer s.teardown()

	// Docker containers on a vpcroute network of each ECS.
	cont, nets, err := vpcrouteContainers(ctx, ecs1, ecs2)
	if err != nil {
		return err
	}
	// A server on ECS 2 behind a 20-entry allow list, the client's subnet last.
	var allowSrv endpoint
	if o.paths[pathAllow] {
		var allow []string
		for i := 0; i < 19; i++ {
			allow = append(allow, fmt.Sprintf("172.%d.0.0/16", 16+i%16+i/16))
		}
		allow = append(allow, nets[0].subnet.String())
		if out, err := ecs2.Docker(ctx, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute",
			"-o", "vpcroute.allow="+strings.Join(allow, ";"), dpAllowNet); err != nil {
			return fmt.Errorf("network create %s on ecs2: %w %s", dpAllowNet, err, out)
		}
		s.add(func() { _, _ = ecs2.Docker(context.Background(), "network", "rm", dpAllowNet) })
		if out, err := ecs2.Docker(ctx, "run", "-d", "--name", "bdpa", "--net", dpAllowNet, testbed.ImageName); err != nil {
			return fmt.Errorf("docker run on ecs2: %w %s", err, out)
		}
		s.add(func() { _, _ = ecs2.Docker(context.Background(), "rm", "-f", "bdpa") })
		ip, err := ecs2.Docker(ctx, "inspect", "-f", `{{(index .NetworkSettings.Networks "`+dpAllowNet+`").IPAddress}}`, "bdpa")
		if err != nil {
			return err
		}
		pid, err := containerPID(ctx, ecs2, "bdpa")
		if err != nil {
			return err
		}
		allowSrv = endpoint{ns: "/proc/" + pid + "/ns/net", addr: strings.TrimSpace(ip)}
	}
	// What Docker put in the containers' namespaces, for the hand-built path with them.
	var natRules []string
	for i := range cont {
		out, err := exec.CommandContext(ctx, "nsenter", "--net="+cont[i].ns, "--", "iptables-save").Output()
		if err != nil {
			return fmt.Errorf("iptables-save in container bdp: %w", err)
		}
		natRules = append(natRules, string(out))
	}
	if r.Datapath == nil {
		r.Datapath = &datapathFigures{}
	}
	d := r.Datapath
	d.DockerRules = strings.TrimSpace(filterRules(natRules[0]))
	if nw, err := ecs1.Docker(ctx, "network", "ls", "-q", "--filter", "driver=vpcroute"); err == nil {
		d.NetworksECS1 = len(strings.Fields(nw))
	}

	// Plain namespaces on vpcroute's bridges of the same networks.
	var host [2]endpoint
	var bridges [2]string // vpcroute's bridges of the data path's network, on ECS 1 and 2
	for i, ecs := range []*testbed.ECS{ecs1, ecs2} {
		br, mtu, err := vpcrouteBridge(ctx, ecs, nets[i].gateway)
		if err != nil {
			return err
		}
		bridges[i] = br
		addr := lastHost(nets[i].subnet)
		ns := benchNetns(o.prefix, "vr", i+1)
		if err := plainNetns(ctx, &s, ecs, ns, hostVeth, br, addr, nets[i].subnet.Bits(), nets[i].gateway, mtu); err != nil {
			return err
		}
		host[i] = endpoint{ns: testbed.NetnsPath(ns), addr: addr}
	}
	bridge1 := bridges[0]
	paths := map[string]*dpPath{
		pathContainer: {key: pathContainer, client: cont[0], server: cont[1], bridge: bridge1},
		pathHost:      {key: pathHost, client: host[0], server: host[1], bridge: bridge1},
	}
	if o.paths[pathAllow] {
		paths[pathAllow] = &dpPath{key: pathAllow, client: cont[0], server: allowSrv, bridge: bridge1}
	}
	// The same on ECS 1's oldest network, when the host measurements made one; the
	// server stays on ECS 2's network of the data path.
	var first netOnECS
	if o.paths[pathHostFirst] {
		if first, err = inspectNet(ctx, ecs1, firstNetwork); err != nil {
			say(fmt.Sprintf("no network %s on ecs1 (run the host measurements first): path %s left out", firstNetwork, pathHostFirst))
		} else {
			br, mtu, err := vpcrouteBridge(ctx, ecs1, first.gateway)
			if err != nil {
				return err
			}
			addr := lastHost(first.subnet)
			ns := benchNetns(o.prefix, "vf", 1)
			if err := plainNetns(ctx, &s, ecs1, ns, firstVeth, br, addr, first.subnet.Bits(), first.gateway, mtu); err != nil {
				return err
			}
			paths[pathHostFirst] = &dpPath{key: pathHostFirst, client: endpoint{ns: testbed.NetnsPath(ns), addr: addr}, server: host[1], bridge: br}
		}
	}

	var release releaseBed
	if o.paths[pathRelease] {
		bin, err := buildRevision(ctx, o.work, o.baseline)
		if err != nil {
			return err
		}
		if release, err = buildReleaseBed(ctx, &s, o, o.prefix+"r", bin, max(d.NetworksECS1, 1)); err != nil {
			return err
		}
		paths[pathRelease] = &dpPath{key: pathRelease, client: release.eps[0], server: release.eps[1]}
		d.Baseline = o.baseline
	}
	var guide guideBed
	if o.paths[pathGuide] {
		if guide, err = buildGuideBed(ctx, &s, o.prefix+"g", max(d.NetworksECS1, 1)); err != nil {
			return err
		}
		paths[pathGuide] = &dpPath{key: pathGuide, client: guide.eps[0], server: guide.eps[1], bridge: guideNet}
	}
	withNAT := o.paths[pathHandNAT]
	var rules []string
	if withNAT {
		rules = natRules
	}
	if err := buildHandPaths(ctx, &s, env, o.prefix, rules); err != nil {
		return err
	}
	paths[pathHand] = &dpPath{key: pathHand,
		client: endpoint{testbed.NetnsPath(benchNetns(o.prefix, "hand", 1)), handAddr(1, 2)},
		server: endpoint{testbed.NetnsPath(benchNetns(o.prefix, "hand", 2)), handAddr(2, 2)}, bridge: handBridge}
	if withNAT {
		paths[pathHandNAT] = &dpPath{key: pathHandNAT,
			client: endpoint{testbed.NetnsPath(benchNetns(o.prefix, "hnat", 1)), handAddr(1, 3)},
			server: endpoint{testbed.NetnsPath(benchNetns(o.prefix, "hnat", 2)), handAddr(2, 3)}, bridge: handBridge}
	}

	d.Seconds, d.Rounds, d.Turns = o.iperfSecs, o.iperfRuns, max(1, min(o.iperfTurns, o.iperfSecs))
	d.From, d.To = map[string]string{}, map[string]string{}
	servers := map[string]bool{} // one iperf3 -s per namespace
	for _, info := range pathInfos {
		p, ok := paths[info.Key]
		if !ok || !o.paths[info.Key] {
			continue
		}
		if out, err := exec.CommandContext(ctx, "nsenter", "--net="+p.client.ns, "--", "busybox", "ping", "-c", "1", "-W", "2", p.server.addr).CombinedOutput(); err != nil {
			return fmt.Errorf("path %q does not carry traffic (%s → %s): %w %s", info.Label, p.client.addr, p.server.addr, err, out)
		}
		if !servers[p.server.ns] {
			stop, err := iperfServer(p.server.ns)
			if err != nil {
				return err
			}
			s.add(stop)
			stopConn, err := connServer(p.server.ns)
			if err != nil {
				return err
			}
			s.add(stopConn)
			servers[p.server.ns] = true
		}
		d.Paths = append(d.Paths, info.Key)
		d.From[info.Key], d.To[info.Key] = p.client.addr, p.server.addr
	}

	// What each packet from ECS 1 evaluates in its FORWARD hook, from the rules as they
	// stand: the figure behind any difference between the vpcroute and hand-built rows.
	if err := handAcceptsFirst(ctx, &s); err != nil {
		return err
	}
	if save, err := ecs1.Exec(ctx, "iptables-save", "-t", "filter"); err != nil {
		return err
	} else {
		fw := parseFilter(save)
		d.Walk, d.XT = map[string]int{}, map[string]int{}
		for key, p := range paths {
			if n, xt, ok := fw.walkCost("FORWARD", packet{src: p.client.addr, dst: p.server.addr, in: p.bridge, out: "eth0"}); ok && key != pathGuide && key != pathRelease {
				d.Walk[key], d.XT[key] = n, xt
			}
		}
		if guide.walk > 0 {
			d.Walk[pathGuide], d.XT[pathGuide] = guide.walk, guide.xt
		}
		if release.walk > 0 {
			d.Walk[pathRelease], d.XT[pathRelease] = release.walk, release.xt
		}
	}
	d.FirstPacket = map[string]walkFigure{}
	if first, err := firstPacketCost(ctx, [2]*testbed.ECS{ecs1, ecs2}, bridges, cont[0].addr, cont[1].addr); err != nil {
		return err
	} else {
		d.FirstPacket[pathContainer] = first
	}
	if guide.first.Rules > 0 {
		d.FirstPacket[pathGuide] = guide.first
	}
	if release.first.Rules > 0 {
		d.FirstPacket[pathRelease] = release.first
	}

	// One unrecorded pass over every path first: the first runs after the beds come up
	// (neighbour and conntrack tables empty, the engines and plugins still settling) were
	// the slowest of each report, and they fell on whichever path opened round 1.
	say("warming up every path (not recorded)")
	for _, key := range d.Paths {
		p := paths[key]
		if _, err := iperfRun(ctx, p.client.ns, p.server.addr, 1); err != nil {
			return err
		}
		if _, err := connRate(p.client.ns, p.server.addr, connWindow/4); err != nil {
			return err
		}
	}
	// Connection rates are measured after each round's iperf3 runs, the paths' clients
	// taking turns (interleavedRates).
	clients := make([]*sliceClient, len(d.Paths))
	for i, key := range d.Paths {
		c, err := startSliceClient(paths[key].client.ns, paths[key].server.addr)
		if err != nil {
			return err
		}
		s.add(c.stop)
		clients[i] = c
	}
	// A path's run in a round is made of d.Turns shorter runs, the paths taking
	// turns in an order rotated by one at every turn, and its figure is their mean:
	// this machine's speed switches between levels for seconds at a time, and a
	// run of several seconds per path one after the other puts a switch between
	// two paths' runs as often as not (paired ratios scattered ±10 % a round).
	turnSecs := max(1, o.iperfSecs/d.Turns)
	for round := 0; round < o.iperfRuns; round++ {
		var line []string
		first := len(d.Samples)
		for slot, key := range rotate(d.Paths, round) {
			d.Samples = append(d.Samples, runSample{Round: round, Slot: slot, Path: key, LoadBefore: readLoadAvg()})
		}
		runs := d.Samples[first:]
		steal, idle, total := make([]uint64, len(runs)), make([]uint64, len(runs)), make([]uint64, len(runs))
		for turn := 0; turn < d.Turns; turn++ {
			for k := range runs {
				smp := &runs[(k+turn)%len(runs)]
				p := paths[smp.Path]
				c0 := readCPUTimes()
				bps, err := iperfRun(ctx, p.client.ns, p.server.addr, turnSecs)
				if err != nil {
					return err
				}
				c1 := readCPUTimes()
				smp.Bps += bps / float64(d.Turns)
				i := (k + turn) % len(runs)
				steal[i] += c1.steal - c0.steal
				idle[i] += c1.idle - c0.idle
				total[i] += c1.total - c0.total
			}
		}
		for i := range runs {
			runs[i].LoadAfter = readLoadAvg()
			if dt := float64(total[i]); dt > 0 {
				runs[i].Steal = float64(steal[i]) / dt
				runs[i].Busy = 1 - float64(idle[i])/dt
			}
		}
		rates, err := interleavedRates(clients, int(connWindow/connSlice), connSlice)
		if err != nil {
			return err
		}
		for i := first; i < len(d.Samples); i++ {
			smp := &d.Samples[i]
			smp.ConnPerSec = rates[slices.Index(d.Paths, smp.Path)]
			line = append(line, fmt.Sprintf("%s %.2f %.0f/s", smp.Path, smp.Bps/1e9, smp.ConnPerSec))
		}
		say(fmt.Sprintf("iperf3 round %d/%d (Gbit/s, connections/s): %s; load %s", round+1, o.iperfRuns, strings.Join(line, ", "), readLoadAvg()))
	}
	if o.profileSecs > 0 {
		d.ProfileSeconds = o.profileSecs
		d.Profile, d.ProfileNote = profilePaths(ctx, o, d, paths)
	}
	if o.hold {
		// Before the paths are torn down, so that they can be looked at (perf, counters).
		for _, key := range d.Paths {
			p := paths[key]
			say(fmt.Sprintf("path %s: nsenter --net=%s iperf3 -c %s -p %s", key, p.client.ns, p.server.addr, iperfPort))
		}
		say("holding the test bed and the data paths up until Ctrl-C (DOCKER_HOST=" + ecs1.DockerHost + ")")
		<-ctx.Done()
	}
	return nil
}

// filterRules keeps the rule lines of an iptables-save output (no counters, comments,
// or empty tables), for the report.
func filterRules(save string) string {
	var out []string
	for _, l := range strings.Split(save, "\n") {
		if strings.HasPrefix(l, "-A ") || strings.HasPrefix(l, "*") {
			out = append(out, l)
		}
	}
	// Drop table headers without rules.
	var kept []string
	for i, l := range out {
		if strings.HasPrefix(l, "*") && (i+1 == len(out) || strings.HasPrefix(out[i+1], "*")) {
			continue
		}
		kept = append(kept, l)
	}
	return strings.Join(kept, "\n")
}

// filterTable is the filter table of an iptables-save, rule by rule, enough to follow a
// packet through it.
type filterTable map[string][][]string // chain -> rules, each split into words

func parseFilter(save string) filterTable {
	t := filterTable{}
	for _, line := range strings.Split(save, "\n") {
		if rest, ok := strings.CutPrefix(line, "-A "); ok {
			w := splitWords(rest)
			if len(w) > 0 {
				t[w[0]] = append(t[w[0]], w[1:])
			}
		}
	}
	return t
}

// splitWords splits an iptables-save rule into words, keeping "quoted text" whole.
func splitWords(s string) []string {
	var out []string
	var cur strings.Builder
	quoted, in := false, false
	for _, c := range s {
		switch {
		case c == '"':
			quoted, in = !quoted, true
		case c == ' ' && !quoted:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// packet is a TCP packet forwarded from in to out: of an established connection, or
// the first of a new one (not to a published port).
type packet struct {
	src, dst, in, out string
	dport             string // "" for a port no rule names
	new               bool
}

// walkFigure is what following a packet through rules found: rules evaluated and
// xtables matches called.
type walkFigure struct{ Rules, XT int }

// firstPacketCost follows the first packet of a TCP connection from client to server
// through the rules as they stand on both ECSs: on the client's ECS from its bridge
// to the uplink (nat PREROUTING, filter FORWARD, nat POSTROUTING), on the server's
// from the uplink into the server's bridge (the same hooks). The nat table sees only
// a connection's first packet, the FORWARD rules of new connections only it: this is
// what a connection costs beyond its other packets, the figure behind the connection
// rate. Rules and xtables matches of both ECSs are summed.
func firstPacketCost(ctx context.Context, ecs [2]*testbed.ECS, bridges [2]string, client, server string) (walkFigure, error) {
	var w walkFigure
	for i, e := range ecs {
		var tables [2]filterTable
		for j, t := range []string{"nat", "filter"} {
			save, err := e.Exec(ctx, "iptables-save", "-t", t)
			if err != nil {
				return w, fmt.Errorf("iptables-save -t %s on %s: %w", t, e.Name, err)
			}
			tables[j] = parseFilter(save)
		}
		in, out := bridges[0], "eth0"
		if i == 1 {
			in, out = "eth0", bridges[1]
		}
		p := packet{src: client, dst: server, in: in, out: out, new: true}
		pre := p
		pre.out = "" // not routed yet
		for _, step := range []struct {
			t     filterTable
			chain string
			p     packet
		}{{tables[0], "PREROUTING", pre}, {tables[1], "FORWARD", p}, {tables[0], "POSTROUTING", p}} {
			n, xt, _ := step.t.walkCost(step.chain, step.p)
			w.Rules, w.XT = w.Rules+n, w.XT+xt
		}
	}
	return w, nil
}

// walkCost follows p from chain and returns how many rules it evaluated, how many
// xtables matches it called on the way, and whether a rule accepted it. Matches it
// does not know count as not matching. The xtables matches:
// iptables-nft evaluates a rule's addresses, interfaces and protocol natively and
// first, then calls each match module (-m conntrack, -m comment, -m addrtype, ...)
// through nftables' compat layer, until one fails; those calls cost more than the
// native comparisons.
func (t filterTable) walkCost(chain string, p packet) (rules, xt int, ok bool) {
	rules, xt, verdict := t.walkChain(chain, p, 0)
	return rules, xt, verdict == "ACCEPT"
}

func (t filterTable) walkChain(chain string, p packet, depth int) (int, int, string) {
	n, xt := 0, 0
	if depth > 16 {
		return n, xt, ""
	}
	for _, r := range t[chain] {
		n++
		target, calls, ok := ruleMatches(r, p)
		xt += calls
		if !ok {
			continue
		}
		switch target {
		case "ACCEPT", "DROP", "REJECT", "MASQUERADE", "SNAT", "DNAT":
			return n, xt, target
		case "RETURN":
			return n, xt, ""
		case "":
		default:
			m, mx, verdict := t.walkChain(target, p, depth+1)
			n, xt = n+m, xt+mx
			if verdict != "" || slices.Contains(r, "-g") {
				// A goto's chain returns to this chain's caller.
				return n, xt, verdict
			}
		}
	}
	return n, xt, ""
}

// nativeModules are the match modules iptables-nft turns into native expressions.
var nativeModules = map[string]bool{"tcp": true, "udp": true, "icmp": true}

// ruleMatches reports whether every match of rule r holds for p, its target, and how
// many xtables matches were called to find out.
func ruleMatches(r []string, p packet) (target string, xt int, ok bool) {
	neg := false
	for i := 0; i < len(r); i++ {
		w := r[i]
		if w == "!" {
			neg = true
			continue
		}
		arg := ""
		if i+1 < len(r) {
			arg = r[i+1]
		}
		holds := true
		switch w {
		case "-j", "-g":
			target = arg
			i++
			continue
		case "-i":
			holds, i = ifaceMatch(arg, p.in), i+1
		case "-o":
			holds, i = ifaceMatch(arg, p.out), i+1
		case "-s":
			holds, i = addrIn(p.src, arg), i+1
		case "-d":
			holds, i = addrIn(p.dst, arg), i+1
		case "-p":
			holds, i = arg == "tcp" || arg == "6", i+1
		case "--dport":
			holds, i = arg == p.dport, i+1
		case "--ctstate", "--state":
			state := "ESTABLISHED"
			if p.new {
				state = "NEW"
			}
			holds, i = slices.Contains(strings.Split(arg, ","), state), i+1
		case "-m":
			if !nativeModules[arg] {
				xt++
			}
			i++
			continue
		case "--comment":
			i++ // no condition of its own
			continue
		default:
			return "", xt, false // a match this walk does not model
		}
		if holds == neg {
			return "", xt, false
		}
		neg = false
	}
	return target, xt, true
}

func ifaceMatch(pattern, name string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "+"); ok {
		return strings.HasPrefix(name, prefix)
	}
	return pattern == name
}

func addrIn(addr, cidr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	if !strings.Contains(cidr, "/") {
		cidr += "/32"
	}
	pfx, err := netip.ParsePrefix(cidr)
	return err == nil && pfx.Contains(a)
}

// profiledPaths are the paths profiled after the rounds: vpcroute's own, with the
// oldest network when measured, and the baseline.
var profiledPaths = []string{pathHost, pathHostFirst, pathHand}

// profilePaths runs iperf3 once more over each profiled path under `perf record -a`
// and returns the share of CPU samples in nftables rule evaluation: unlike
// throughput, that share hardly moves with the load of a shared machine, so it shows
// what vpcroute's rules cost per packet even when the runs are too noisy to.
func profilePaths(ctx context.Context, o options, d *datapathFigures, paths map[string]*dpPath) (map[string]profileShare, string) {
	if _, err := exec.LookPath("perf"); err != nil {
		return nil, "perf is not installed (Debian: linux-perf)"
	}
	dir, err := os.MkdirTemp("", "vrbench-perf-")
	if err != nil {
		return nil, err.Error()
	}
	defer os.RemoveAll(dir)
	out := map[string]profileShare{}
	for _, key := range profiledPaths {
		p, ok := paths[key]
		if !ok || !d.has(key) {
			continue
		}
		data := dir + "/" + key + ".data"
		rec := exec.CommandContext(ctx, "perf", "record", "-q", "-a", "-o", data, "--",
			"nsenter", "--net="+p.client.ns, "--", "iperf3", "-c", p.server.addr, "-p", iperfPort, "-t", strconv.Itoa(o.profileSecs), "-J")
		stdout, err := rec.Output()
		if err != nil {
			return nil, fmt.Sprintf("perf record over path %s: %v", key, err)
		}
		var res struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		_ = json.Unmarshal(stdout, &res)
		rep, err := exec.CommandContext(ctx, "perf", "report", "-i", data, "--no-children", "--sort", "sym", "--stdio").Output()
		if err != nil {
			return nil, fmt.Sprintf("perf report over path %s: %v", key, err)
		}
		sh := parseProfile(string(rep))
		sh.Bps = res.End.SumReceived.BitsPerSecond
		out[key] = sh
		say(fmt.Sprintf("profile %s: %.2f Gbit/s, %.1f%% of samples in nftables rules", key, sh.Bps/1e9, sh.Rules))
	}
	return out, ""
}

// parseProfile sums `perf report --sort sym` lines: the kernel's nftables evaluation
// (nft_*, the xtables matches it calls, and the interface-name copies of its meta
// loads) and the idle loop.
func parseProfile(report string) profileShare {
	var sh profileShare
	for _, line := range strings.Split(report, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasSuffix(f[0], "%") || f[1] != "[k]" {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
		if err != nil {
			continue
		}
		sym := f[2]
		switch {
		case strings.HasPrefix(sym, "nft_"), strings.HasPrefix(sym, "xt_"), strings.HasPrefix(sym, "ipt_"),
			strings.HasPrefix(sym, "comment_mt"), strings.HasPrefix(sym, "conntrack_mt"):
			sh.Rules += v
		case strings.Contains(sym, "idle") || strings.Contains(sym, "safe_halt") || sym == "poll_idle":
			sh.Idle += v
		}
	}
	return sh
}

// rotate returns paths in the order of a round: rotated left by n.
func rotate(paths []string, n int) []string {
	out := make([]string, 0, len(paths))
	for i := range paths {
		out = append(out, paths[(n+i)%len(paths)])
	}
	return out
}

// Package chaos is vpcroute's standing fault campaign, in process: two ECSs, each a
// whole plugin (the controller, both plugin APIs served over HTTP, the Huawei client
// through the real SDK) over an in-memory kernel (internal/fakehost), against the
// emulated VPC (internal/sim) with its faults: latency past Docker's deadline, writes
// that land late or are answered 5xx after landing, storms of 429 and 5xx. Docker is
// played by Docker, a client that calls the plugin as libnetwork does, with its
// deadline, and keeps the list of networks the plugin reads back.
//
// After each run Inventory compares the four truths: the routes in the emulator, the
// marked kernel objects, vpcroute's records, Docker's list. Any difference is a leak
// or a lost network.
//
// Every duration is Docker's scaled down by ten (Docker gives up after 3 s, not 30 s),
// so that a hundred cycles take seconds. Kills (kill -9 inside a call) need a real
// process and are in internal/e2e (TestKillAtEveryStep).
package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vpcroute/vpcroute/cloud/huawei"
	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/driver"
	"github.com/vpcroute/vpcroute/internal/fakehost"
	"github.com/vpcroute/vpcroute/internal/sim"
	"github.com/vpcroute/vpcroute/ipam"
	"github.com/vpcroute/vpcroute/server"
	"github.com/vpcroute/vpcroute/state"
)

// Scaled timings: Docker's plugin client gives up after DockerDeadline (30 s in
// Docker); vpcroute bounds a call's cloud work by CallTimeout (20 s); the Huawei
// client an operation by 0.8 s (8 s) and a request by 0.3 s (3 s).
const (
	DockerDeadline = 3 * time.Second
	CallTimeout    = 2 * time.Second
	opTimeout      = 800 * time.Millisecond
	attemptTimeout = 300 * time.Millisecond
	// Settle is how long a write the API did not answer may land.
	Settle = 3 * time.Second
)

// Fixed identities of the emulated cloud.
const (
	project = "0b6c5e8f4a1d4c2e9f3a7b8c9d0e1f2a"
	vpcID   = "3f1e2d4c-5b6a-4798-8a9b-0c1d2e3f4a5b"
	subnet  = "7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0d"
	ak      = "VPCROUTECHAOSAK000001"
	sk      = "vpcroute-chaos-secret-key-not-a-real-one-01"
)

// Pool is VPCROUTE_POOL on every ECS.
var Pool = netip.MustParsePrefix("10.0.0.0/16")

// Bed is the emulated cloud and its ECSs.
type Bed struct {
	Sim *sim.Sim
	srv *httptest.Server
	ECS []*ECS
}

// ECS is one host: its plugin and what the plugin acts on.
type ECS struct {
	Name, Instance string
	Ctl            *controller.Controller
	Client         *huawei.Client
	Host           *fakehost.Host
	DB             *state.DB
	Docker         *Docker
	cancel         context.CancelFunc
	plugin         *httptest.Server
}

// Options shape a bed.
type Options struct {
	// ECSs is how many hosts (default 2).
	ECSs int
	// CloudInterval is how often each loop reads the route table unasked (default
	// 1 s); OrphanGrace how long an unowned route stays (default 2 s). A test
	// that must show a fault put right by something else sets them long.
	CloudInterval, OrphanGrace time.Duration
	// KernelInterval is each loop's kernel pass (default 1 s); a bed of hundreds
	// of ECSs sets it long.
	KernelInterval time.Duration
	// HostBlock is VPCROUTE_HOST_BLOCK (0: a route per network); BlockGrace
	// VPCROUTE_BLOCK_GRACE (default 2 s).
	HostBlock  int
	BlockGrace time.Duration
	// Pool is VPCROUTE_POOL (default Pool); RouteQuota the route table's quota
	// (default 200).
	Pool       netip.Prefix
	RouteQuota int
	// Unscaled gives the plugins and Docker their real deadlines (Docker 30 s, a
	// call's cloud work 20 s, a cloud operation 8 s): a bed of many ECSs racing
	// for the same table needs them.
	Unscaled bool
}

// New starts the emulator and the ECSs, each with its plugin and its loop, keeping
// their state under dir.
func New(o Options, dir string) (*Bed, error) {
	if o.ECSs == 0 {
		o.ECSs = 2
	}
	if o.CloudInterval == 0 {
		o.CloudInterval = time.Second
	}
	if o.OrphanGrace == 0 {
		o.OrphanGrace = 2 * time.Second
	}
	if o.KernelInterval == 0 {
		o.KernelInterval = time.Second
	}
	if o.BlockGrace == 0 {
		o.BlockGrace = 2 * time.Second
	}
	if !o.Pool.IsValid() {
		o.Pool = Pool
	}
	if o.RouteQuota == 0 {
		o.RouteQuota = 200
	}
	n := o.ECSs
	cfg := sim.Config{
		Region: "sa-brazil-1", ProjectID: project, VPCID: vpcID, VPCCIDR: "192.168.0.0/16",
		Subnets:    []sim.Subnet{{ID: subnet, Name: "subnet-1", CIDR: "192.168.0.0/24"}},
		AK:         ak,
		SK:         sk,
		RouteQuota: o.RouteQuota,
	}
	for i := 1; i <= n; i++ {
		cfg.ECSs = append(cfg.ECSs, sim.ECS{ID: instanceID(i), Name: fmt.Sprintf("ecs%d", i), IP: fmt.Sprintf("192.168.0.%d", i+1)})
	}
	s, err := sim.New(cfg)
	if err != nil {
		return nil, err
	}
	b := &Bed{Sim: s, srv: httptest.NewServer(s.Handler())}
	for i := 1; i <= n; i++ {
		e, err := b.startECS(i, fmt.Sprintf("%s/ecs%d", dir, i), o)
		if err != nil {
			b.Close()
			return nil, err
		}
		b.ECS = append(b.ECS, e)
	}
	return b, nil
}

func instanceID(i int) string { return fmt.Sprintf("c4a05000-0000-4000-8000-%012d", i) }

func (b *Bed) startECS(i int, dir string, o Options) (*ECS, error) {
	name := fmt.Sprintf("ecs%d", i)
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("VPCROUTE_CHAOS_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("ecs", name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	client, err := huawei.New(ctx, huawei.Config{
		MetadataURL: b.srv.URL + "/ecs/" + name, VPCEndpoint: b.srv.URL, ECSEndpoint: b.srv.URL, AK: ak, SK: sk, Logger: log,
		Timeouts: timeouts(o),
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		cancel()
		return nil, err
	}
	db, err := state.Open(dir)
	if err != nil {
		cancel()
		return nil, err
	}
	e := &ECS{Name: name, Instance: instanceID(i), Client: client, Host: fakehost.New(), DB: db, cancel: cancel}
	e.Docker = newDocker()
	if o.Unscaled {
		e.Docker.hc.Timeout = 10 * DockerDeadline
	}
	id := client.Identity()
	e.Ctl = controller.New(controller.Config{
		Pool: o.Pool, SubnetSize: 24, HostBlock: o.HostBlock, BlockGrace: o.BlockGrace, Masquerade: true, Routed: true,
		NoNAT:   append([]netip.Prefix{o.Pool}, id.VPCCIDRs...),
		Timeout: callTimeout(o), KernelInterval: o.KernelInterval, CloudInterval: o.CloudInterval,
		Grace: grace(o), OrphanGrace: o.OrphanGrace,
		Log: log,
	}, db, e.Host, e.Host, client, e.Docker)
	if err := e.Ctl.Start(); err != nil {
		cancel()
		db.Close()
		return nil, err
	}
	gate := server.NewGate()
	gate.Open(server.Drivers{Network: driver.New(e.Ctl), IPAM: ipam.New(e.Ctl)})
	e.plugin = httptest.NewServer(server.Handler(server.Capabilities{}, gate, log))
	e.Docker.plugin = e.plugin.URL
	go e.Ctl.Run(ctx)
	return e, nil
}

func timeouts(o Options) huawei.Timeouts {
	if o.Unscaled {
		return huawei.Timeouts{Operation: 10 * opTimeout, Attempt: 10 * attemptTimeout, Settle: Settle}
	}
	return huawei.Timeouts{Operation: opTimeout, Attempt: attemptTimeout, Settle: Settle}
}

// grace is how old a record must be before its absence from Docker's list counts
// (30 s in the plugin): a bed with real deadlines has the real grace too, since under
// load Docker's list may lag a create by more than the scaled half second.
func grace(o Options) time.Duration {
	if o.Unscaled {
		return 30 * time.Second
	}
	return 500 * time.Millisecond
}

func callTimeout(o Options) time.Duration {
	if o.Unscaled {
		return 10 * CallTimeout
	}
	return CallTimeout
}

// Close stops every plugin and the emulator.
func (b *Bed) Close() {
	for _, e := range b.ECS {
		e.cancel()
		e.plugin.Close()
		e.DB.Close()
	}
	b.srv.Close()
}

// Settle waits for the late writes to land and for each ECS's loop to put right what
// they did, then returns the inventory's differences (none when everything agrees).
func (b *Bed) Settle(within time.Duration) []string {
	b.Sim.WaitLate()
	deadline := time.Now().Add(within)
	for {
		for _, e := range b.ECS {
			e.Ctl.ReconcileNow(context.Background())
		}
		diffs := b.Inventory()
		if len(diffs) == 0 || time.Now().After(deadline) {
			return diffs
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Wait waits for the late writes to land and for the inventory to agree, without
// asking the loops for anything: what puts things right must do so by itself.
func (b *Bed) Wait(within time.Duration) []string {
	b.Sim.WaitLate()
	deadline := time.Now().Add(within)
	for {
		diffs := b.Inventory()
		if len(diffs) == 0 || time.Now().After(deadline) {
			return diffs
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Inventory compares, for every ECS, Docker's networks with vpcroute's records, the
// marked bridges and rules, and the ECS's vpcroute routes in the route table.
func (b *Bed) Inventory() []string {
	routes, _ := b.Sim.RouteTable(b.Sim.DefaultRouteTableID())
	var diffs []string
	for _, e := range b.ECS {
		diffs = append(diffs, e.inventory(routes)...)
	}
	seen := map[string]string{}
	for _, r := range routes {
		if prev, ok := seen[r.Destination]; ok {
			diffs = append(diffs, fmt.Sprintf("two routes to %s (%s, %s)", r.Destination, prev, r.NextHop))
		}
		seen[r.Destination] = r.NextHop
	}
	return diffs
}

func (e *ECS) inventory(routes []sim.Route) []string {
	var diffs []string
	add := func(format string, args ...any) { diffs = append(diffs, e.Name+": "+fmt.Sprintf(format, args...)) }
	docker := e.Docker.list()
	want := map[string]DockerNet{}
	for _, n := range docker {
		want[n.ID] = n
	}

	nets, _ := e.DB.Networks()
	pools, _ := e.DB.Pools()
	recorded := map[string]bool{}
	for _, n := range nets {
		recorded[n.ID] = true
		switch d, ok := want[n.ID]; {
		case !ok:
			add("record of network %s that Docker does not have (leak)", short(n.ID))
		case n.Creating || n.Deleting:
			add("network %s still in flux (creating %v, deleting %v)", d.Name, n.Creating, n.Deleting)
		case n.Subnet != d.Subnet:
			add("network %s recorded with %s, Docker has %s", d.Name, n.Subnet, d.Subnet)
		}
	}
	pooled := map[netip.Prefix]bool{}
	var blocks []netip.Prefix
	for _, p := range pools {
		if p.IsBlock() {
			blocks = append(blocks, p.Subnet)
			continue
		}
		pooled[p.Subnet] = true
		if !slices.ContainsFunc(docker, func(d DockerNet) bool { return d.VpcrouteIPAM && d.Subnet == p.Subnet }) {
			add("pool %s (%s) that no network of Docker's draws from (leak; claiming %v releasing %v)", p.ID, p.Subnet, p.Claiming, p.Releasing)
		}
	}

	bridges, rules := e.Host.ByNetwork()

	mine := map[string]sim.Route{}
	for _, r := range routes {
		if r.NextHop == e.Instance {
			if !strings.HasPrefix(r.Description, "vpcroute") {
				add("route %s to this ECS is not marked as vpcroute's", r.Destination)
			}
			mine[r.Destination] = r
		}
	}
	for _, d := range docker {
		if !recorded[d.ID] {
			add("network %s of Docker's has no record (lost)", d.Name)
		}
		if d.VpcrouteIPAM && !pooled[d.Subnet] {
			add("network %s (%s) has no pool (lost)", d.Name, d.Subnet)
		}
		if _, ok := bridges[d.ID]; !ok {
			add("network %s has no bridge (lost)", d.Name)
		}
		if !rules[d.ID] {
			add("network %s has no rules (lost)", d.Name)
		}
		if _, ok := mine[d.Subnet.String()]; !ok && !slices.ContainsFunc(blocks, func(b netip.Prefix) bool {
			_, routed := mine[b.String()]
			return routed && b.Contains(d.Subnet.Addr())
		}) {
			add("network %s (%s) has no route to this ECS, nor a host block covering it (lost)", d.Name, d.Subnet)
		}
		delete(mine, d.Subnet.String())
		delete(bridges, d.ID)
		delete(rules, d.ID)
	}
	for _, b := range blocks {
		// A held block stays for VPCROUTE_BLOCK_GRACE after its last network.
		delete(mine, b.String())
	}
	for dest, r := range mine {
		add("route %s (%s) that no network of Docker's has (leak)", dest, r.Description)
	}
	for id, br := range bridges {
		add("bridge %s of network %s that Docker does not have (leak)", br, short(id))
	}
	for id := range rules {
		add("rules of network %s that Docker does not have (leak)", short(id))
	}
	return diffs
}

func short(id string) string { return id[:min(12, len(id))] }

package controller_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/dockerapi"
	"github.com/vpcroute/vpcroute/internal/fakecloud"
)

// A network Docker removed while vpcroute was not serving (plugin disabled, Docker
// gave up on it and forgot the network) goes within one cycle: bridge, rules, ports,
// route, pool, records. Its subnet can be had again.
func TestNetworkRemovedWhileNotServing(t *testing.T) {
	h := newHarness(t)
	p, _ := h.network(netID, "o3", "10.0.3.0/24")
	h.container(netID, controller.PoolRef(p), "ep1", controller.PortRequest{Proto: "tcp", ContainerPort: 80, HostPort: 8080})
	h.defaultIPAMNetwork("n4", "o4", "10.0.4.0/24")
	h.clock.advance(time.Hour)

	// Docker removed both while the plugin was disabled: no call reached vpcroute.
	h.docker.remove(netID)
	h.docker.remove("n4")
	h.open() // the plugin comes back
	h.reconcile()
	h.empty("one cycle after enable")
	if _, err := h.c.RequestPool(ctx0, controller.PoolRequest{Subnet: netip.MustParsePrefix("10.0.3.0/24")}); err != nil {
		t.Fatalf("the subnet of the removed network cannot be had again: %v", err)
	}
}

// A network Docker is still storing (its record is younger than the grace period
// when Docker's list was read) is not taken for a removed one.
func TestYoungNetworkIsNotRemoved(t *testing.T) {
	h := newHarness(t)
	p, _ := h.network(netID, "web", "")
	h.docker.remove(netID) // not in Docker's store yet
	h.reconcile()
	if _, err := h.db.Network(netID); err != nil {
		t.Fatalf("a network created a moment ago was removed: %v", err)
	}
	if _, err := h.db.Pool(p.ID); err != nil {
		t.Fatalf("the pool of a network created a moment ago was released: %v", err)
	}
}

// The state file is lost while containers run (disk replaced, directory wiped):
// after a restart, Docker's networks are rebuilt, with their routes, pools, running
// containers and published ports; new containers join; removal cleans up.
func TestLostStateIsRebuiltFromDocker(t *testing.T) {
	h := newHarness(t)
	p, gw := h.network(netID, "my-net", "10.0.2.0/24")
	ref := controller.PoolRef(p)
	a1 := h.container(netID, ref, "ep1", controller.PortRequest{Proto: "tcp", ContainerPort: 80, HostPort: 8080})
	h.defaultIPAMNetwork("n4", "guide", "10.0.4.0/24")
	h.attach("n4", "ep4", netip.MustParsePrefix("10.0.4.2/24")) // Docker's default IPAM gave it
	routesBefore := h.vpc.Len()

	h.loseState()
	h.reconcile()

	n, err := h.db.Network(netID)
	if err != nil || n.Name != "my-net" || n.Subnet.String() != "10.0.2.0/24" || n.Gateway != gw || n.Bridge != "vr-0123456789ab" {
		t.Fatalf("rebuilt network = %+v, %v", n, err)
	}
	ep, err := h.db.Endpoint(netID, "ep1")
	if err != nil || ep.Addr != a1.Addr() || len(ep.Ports) != 1 || ep.Ports[0].HostPort != 8080 {
		t.Fatalf("rebuilt endpoint = %+v, %v; want its address and port 8080", ep, err)
	}
	if h.host.Attached["vrhep1"] != "vr-0123456789ab" {
		t.Fatalf("the running container's veth is not on the bridge: %v", h.host.Attached)
	}
	if h.vpc.Len() != routesBefore {
		t.Fatalf("routes changed from %d to %d: %v", routesBefore, h.vpc.Len(), h.vpc.Routes)
	}
	if r, _ := h.vpc.Get("10.0.2.0/24"); r.Owner != p.ID {
		t.Fatalf("route of my-net = %+v; want it kept with its owner %s", r, p.ID)
	}
	if _, err := h.db.Network("n4"); err != nil {
		t.Fatalf("network on Docker's default IPAM not rebuilt: %v", err)
	}

	// A new container joins with the pool ID Docker holds, and gets a free address.
	a2 := h.container(netID, ref, "ep2")
	if a2 == a1 || a2.Addr() == gw.Addr() {
		t.Fatalf("new container got %s, in use already", a2)
	}
	// Removal cleans everything up.
	if err := h.c.Leave(netID, "ep1"); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"ep1", "ep2"} {
		if err := h.c.DeleteEndpoint(netID, e); err != nil {
			t.Fatal(err)
		}
	}
	h.removeNetwork(netID, p)
	_ = h.c.DeleteEndpoint("n4", "ep4")
	if err := h.c.DeleteNetwork(ctx0, "n4"); err != nil {
		t.Fatal(err)
	}
	h.docker.remove("n4")
	h.empty("after removing the rebuilt networks")
}

// Without a cloud route to say which pool ID Docker holds (none mode), a rebuilt pool
// takes its ID from Docker's first request naming its subnet.
func TestLostStateWithoutRoutes(t *testing.T) {
	h := newHarness(t)
	h.cfg.Routed = false
	h.open()
	p, _ := h.network(netID, "app", "")
	h.container(netID, controller.PoolRef(p), "ep1")
	h.vpc.Routes = map[netip.Prefix]fakecloud.Route{} // none mode has no route table
	h.loseState()
	h.reconcile()
	pools, _ := h.db.Pools()
	if len(pools) != 1 || !pools[0].Adopted {
		t.Fatalf("rebuilt pools = %+v; want one whose ID is still unknown", pools)
	}
	if _, err := h.c.RequestAddress(controller.PoolRef(p), netip.Addr{}, false); err != nil {
		t.Fatalf("Docker's pool ID does not find the rebuilt pool: %v", err)
	}
	got, err := h.db.Pool(p.ID)
	if err != nil || got.Adopted {
		t.Fatalf("rebuilt pool after Docker named it = %+v, %v; want it under Docker's ID", got, err)
	}
	if n, _ := h.db.Network(netID); n.PoolID != p.ID {
		t.Fatalf("network draws from pool %q; want %q", n.PoolID, p.ID)
	}
}

// Without Docker's list, a lost state file is never an order to tear down: the
// bridges, rules and routes of the networks it held all stay.
func TestLostStateWithoutDockerTearsNothingDown(t *testing.T) {
	h := newHarness(t)
	p, _ := h.network(netID, "web", "")
	h.container(netID, controller.PoolRef(p), "ep1", controller.PortRequest{Proto: "tcp", ContainerPort: 80, HostPort: 8080})
	h.docker.fail = errors.New("dial unix /run/docker.sock: connect: permission denied")
	h.loseState()
	h.clock.advance(24 * time.Hour)
	h.reconcile()
	h.reconcile()
	if h.host.Marked["vr-0123456789ab"] != netID || len(h.host.Rules) != 1 || len(h.host.Ports) != 1 || h.vpc.Len() != 1 {
		t.Fatalf("something was torn down: bridges %v rules %v ports %v routes %v", h.host.Marked, h.host.Rules, h.host.Ports, h.vpc.Routes)
	}
	if logs := h.logs.String(); strings.Count(logs, "cannot read Docker's networks") != 1 || !strings.Contains(logs, "kept, since Docker's networks cannot be read") {
		t.Fatalf("want the lack of Docker's list said once, and what is kept said:\n%s", logs)
	}
	// Docker's list comes back: the network is rebuilt, not removed.
	h.docker.fail = nil
	h.reconcile()
	if _, err := h.db.Network(netID); err != nil {
		t.Fatalf("network not rebuilt once Docker's list is back: %v", err)
	}
	if h.host.Marked["vr-0123456789ab"] != netID || h.vpc.Len() != 1 {
		t.Fatalf("after the rebuild: bridges %v routes %v", h.host.Marked, h.vpc.Routes)
	}
}

// Routes: one deleted in the console comes back; one of this ECS that nothing owns
// goes after the grace period; other hosts' routes and routes that are not
// vpcroute's are never touched.
func TestRoutes(t *testing.T) {
	h := newHarness(t)
	p, _ := h.network(netID, "web", "10.0.2.0/24")
	h.vpc.Add("10.0.7.0/24", fakecloud.Route{Instance: "ecs-2", Owner: "vr-other"})   // another host's
	h.vpc.Add("10.0.8.0/24", fakecloud.Route{Instance: instance})                     // someone's own, unmarked
	h.vpc.Add("10.0.9.0/24", fakecloud.Route{Instance: instance, Owner: "vr-orphan"}) // vpcroute's, of nothing
	h.vpc.Delete("10.0.2.0/24")                                                       // in the console

	h.reconcile()
	r, ok := h.vpc.Get("10.0.2.0/24")
	if !ok || r.Owner != p.ID || r.Name != "web" {
		t.Fatalf("deleted route = %+v, %v; want it claimed again by %s, with the network's name", r, ok, p.ID)
	}
	if _, ok := h.vpc.Get("10.0.9.0/24"); !ok {
		t.Fatal("the unowned route went at once, without a grace period")
	}
	h.clock.advance(9 * time.Minute)
	h.reconcile()
	if _, ok := h.vpc.Get("10.0.9.0/24"); !ok {
		t.Fatal("the unowned route went before the grace period ended")
	}
	h.clock.advance(time.Minute)
	h.reconcile()
	if _, ok := h.vpc.Get("10.0.9.0/24"); ok {
		t.Fatal("the unowned route is still there after the grace period")
	}
	for _, s := range []string{"10.0.7.0/24", "10.0.8.0/24", "10.0.2.0/24"} {
		if _, ok := h.vpc.Get(s); !ok {
			t.Errorf("route %s was touched", s)
		}
	}
}

// A lost state file, and meanwhile another ECS's vpcroute took the subnet: the
// network is rebuilt for its local traffic, reported as moved there, and the other
// ECS's route stays.
func TestRebuildWithConflict(t *testing.T) {
	h := newHarness(t)
	h.network(netID, "web", "10.0.2.0/24")
	h.loseState()
	h.vpc.Delete("10.0.2.0/24")
	h.vpc.Add("10.0.2.0/24", fakecloud.Route{Instance: "ecs-2", Owner: "vr-theirs"})
	h.reconcile()
	if _, err := h.db.Network(netID); err != nil {
		t.Fatalf("network not rebuilt: %v", err)
	}
	if r, _ := h.vpc.Get("10.0.2.0/24"); r.Instance != "ecs-2" {
		t.Fatalf("the other ECS's route was taken: %+v", r)
	}
	if logs := h.logs.String(); !strings.Contains(logs, "another ECS took this network's subnet over") || !strings.Contains(logs, "moved_to=ecs-2") {
		t.Fatalf("the move is not reported:\n%s", logs)
	}
}

// A route of the network's subnet that is not vpcroute's (made by hand in the
// console) is a conflict, reported each cycle, never a move.
func TestRouteTakenByHand(t *testing.T) {
	h := newHarness(t)
	h.network(netID, "web", "10.0.2.0/24")
	h.vpc.Add("10.0.2.0/24", fakecloud.Route{Instance: "ecs-2"})
	h.reconcile()
	if logs := h.logs.String(); !strings.Contains(logs, "cannot have its route back") || strings.Contains(logs, "took this network's subnet over") {
		t.Fatalf("the conflict is not reported as one:\n%s", logs)
	}
	st, err := h.c.Status(ctx0)
	if err != nil || st.Networks[0].Route.State != controller.RouteOther {
		t.Fatalf("status %+v, %v; want the route held by another", st.Networks, err)
	}
}

// Docker's list names networks: records, logs and route descriptions speak of them.
func TestNamesFromDocker(t *testing.T) {
	h := newHarness(t)
	h.network(netID, "web", "")
	h.docker.mu.Lock()
	n := h.docker.nets[netID]
	n.Name = "shop_web"
	h.docker.nets[netID] = n
	h.docker.mu.Unlock()
	h.reconcile()
	if got, _ := h.db.Network(netID); got.Name != "shop_web" {
		t.Fatalf("network name = %q; want Docker's", got.Name)
	}
}

// Unmarked and other plugins' objects are never touched, and bridges and rules of
// networks no one has go.
func TestKernelOrphans(t *testing.T) {
	h := newHarness(t)
	h.network(netID, "web", "")
	h.host.Foreign["br-mine"] = true
	h.host.Marked["vr-gone"] = "gone0123456789ab"
	h.reconcile()
	if _, ok := h.host.Marked["vr-gone"]; ok {
		t.Fatal("bridge of a network neither vpcroute nor Docker has is still there")
	}
	if !h.host.Foreign["br-mine"] || h.host.Marked["vr-0123456789ab"] != netID {
		t.Fatalf("bridges touched: %v foreign %v", h.host.Marked, h.host.Foreign)
	}
}

// Docker's list arrives with names the plugin knows itself by.
func TestDriverNames(t *testing.T) {
	for _, tt := range []struct {
		driver string
		ours   bool
	}{
		{"vpcroute", true}, {"vpcroute:latest", true}, {"vpcroute/vpcroute:1.2", true}, {"registry:5000/vpcroute", true},
		{"bridge", false}, {"vpcroute-fork:latest", false}, {"other/plugin:vpcroute", false},
	} {
		h := newHarness(t)
		h.loseState()
		h.docker.put(dockerapi.Network{ID: netID, Name: "x", Driver: tt.driver,
			IPAM: dockerapi.IPAM{Driver: "default", Config: []dockerapi.IPAMConfig{{Subnet: "10.0.2.0/24"}}}})
		h.reconcile()
		_, err := h.db.Network(netID)
		if (err == nil) != tt.ours {
			t.Errorf("driver %q: rebuilt = %v; want %v", tt.driver, err == nil, tt.ours)
		}
	}
}

// linkGen is a link.Watcher moved by the test.
type linkGen struct{ atomic.Uint64 }

func (g *linkGen) Gen() uint64 { return g.Load() }

// With a watcher, kernel passes read no links until the kernel announces a change;
// then the next pass reads them and repairs what drifted.
func TestKernelPassReadsLinksOnlyAfterAChange(t *testing.T) {
	h := newHarness(t)
	gen := &linkGen{}
	h.cfg.LinkChanges = gen
	h.open()
	h.network(netID, "web", "")
	for range 2 { // the first pass reads what the create changed
		if _, err := h.c.RepairKernel(); err != nil {
			t.Fatal(err)
		}
		h.reconcile()
	}
	h.host.Lock()
	h.host.LinkReads = 0
	h.host.Unlock()
	for range 3 {
		if _, err := h.c.RepairKernel(); err != nil {
			t.Fatal(err)
		}
		h.reconcile()
	}
	h.host.Lock()
	reads := h.host.LinkReads
	delete(h.host.Marked, "vr-0123456789ab") // someone deletes the bridge
	h.host.Unlock()
	if reads != 0 {
		t.Fatalf("%d link reads with no change announced; want 0", reads)
	}
	gen.Add(1)
	if _, err := h.c.RepairKernel(); err != nil {
		t.Fatal(err)
	}
	h.host.Lock()
	defer h.host.Unlock()
	if h.host.LinkReads == 0 || h.host.Marked["vr-0123456789ab"] != netID {
		t.Fatalf("after a change: %d link reads, bridges %v; want the bridge back", h.host.LinkReads, h.host.Marked)
	}
	// vpcroute's own edit counts as a change at once, before the kernel announces it.
	h.host.LinkReads = 0
	h.host.Unlock()
	h.network("fedcba9876543210", "db", "")
	h.reconcile()
	h.host.Lock()
	if h.host.LinkReads == 0 {
		t.Fatal("no link read after vpcroute made a bridge")
	}
}

// When nothing a kernel pass reads has changed (records, links, rules), the periodic
// pass does nothing at all; a change of any of them brings the next one back.
func TestIdleKernelPassIsSkipped(t *testing.T) {
	h := newHarness(t)
	gen := &linkGen{}
	h.cfg.LinkChanges = gen
	h.cfg.KernelInterval = 10 * time.Millisecond
	h.cfg.CloudInterval = time.Hour
	h.host.HasGen = true
	h.open()
	h.network(netID, "web", "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	checks := func() int {
		h.host.Lock()
		defer h.host.Unlock()
		return h.host.Checks
	}
	time.Sleep(300 * time.Millisecond) // the first passes, then idle
	settled := checks()
	time.Sleep(300 * time.Millisecond) // some 30 ticks
	if n := checks() - settled; n != 0 {
		t.Fatalf("%d checks in 300 ms with nothing changed; want 0", n)
	}
	for _, change := range []struct {
		name string
		do   func()
	}{
		{"a rule", func() { h.host.Lock(); h.host.RuleGen++; h.host.Unlock() }},
		{"a link", func() { gen.Add(1) }},
		{"a record", func() { _ = h.db.PutMeta("test", 1) }},
	} {
		before := checks()
		change.do()
		deadline := time.Now().Add(2 * time.Second)
		for checks() == before {
			if time.Now().After(deadline) {
				t.Fatalf("after a change of %s no pass ran", change.name)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// The networks' rules know the host's uplink (for the skip of local checks, see
// firewall.NetworkRules.Uplink) from the start, and a kernel pass brings them in
// line when the default route moves to another device.
func TestRulesFollowTheUplink(t *testing.T) {
	h := newHarness(t)
	uplinkOf := func() string {
		h.host.Lock()
		defer h.host.Unlock()
		return h.host.Rules[netID].Uplink
	}
	h.host.Lock()
	h.host.UplinkName = "eth0"
	h.host.Unlock()
	h.open() // a plugin start on a host with a default route through eth0
	h.network(netID, "web", "")
	if got := uplinkOf(); got != "eth0" {
		t.Fatalf("a new network's rules have uplink %q, want eth0", got)
	}
	h.host.Lock()
	h.host.UplinkName = "ens5"
	h.host.Unlock()
	report, err := h.c.RepairKernel()
	if err != nil {
		t.Fatal(err)
	}
	if got := uplinkOf(); got != "ens5" {
		t.Fatalf("after the default route moved and a kernel pass: uplink %q, want ens5 (pass: %v)", got, report)
	}
	if report.Rules.Empty() {
		t.Error("the pass rewrote the rules but reported no drift")
	}
}

// The base's ranges of other owners inside the pool (for the pool's shortcut, see
// firewall.Base.PoolOthers) are the host's from the start, follow it at each kernel
// pass, and are read at once when the link watcher says one appeared, not a
// KernelInterval later.
func TestPoolOthersFollowTheHost(t *testing.T) {
	p := netip.MustParsePrefix
	h := newHarness(t)
	others := func() []netip.Prefix {
		h.host.Lock()
		defer h.host.Unlock()
		return h.host.PoolOthers
	}
	setOthers := func(ps ...netip.Prefix) {
		h.host.Lock()
		defer h.host.Unlock()
		h.host.Others = ps
	}
	setOthers(p("10.0.9.0/24"))
	h.open()
	h.network(netID, "web", "")
	if got := others(); !slices.Equal(got, []netip.Prefix{p("10.0.9.0/24")}) {
		t.Fatalf("after a start with a Docker network inside the pool: %v", got)
	}
	setOthers()
	report, err := h.c.RepairKernel()
	if err != nil {
		t.Fatal(err)
	}
	if got := others(); len(got) != 0 || report.Rules.Empty() {
		t.Fatalf("after the range went and a kernel pass: %v (pass: %v)", got, report)
	}

	wake := make(chan struct{}, 1)
	h.cfg.OthersInPool, h.cfg.KernelInterval, h.cfg.CloudInterval = wake, time.Hour, time.Hour
	h.open()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st, err := h.c.Status(ctx)
		if err == nil && !st.Cycle.At.IsZero() {
			break // the loop's first cycle is done: only the wake-up reads again
		}
		if time.Now().After(deadline) {
			t.Fatalf("the loop's first cycle did not end: %v", err)
		}
	}
	setOthers(p("10.0.7.0/24"))
	wake <- struct{}{}
	for deadline := time.Now().Add(10 * time.Second); !slices.Equal(others(), []netip.Prefix{p("10.0.7.0/24")}); {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher said a range appeared in the pool; the loop has not written it: %v", others())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

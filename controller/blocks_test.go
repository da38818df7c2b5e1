package controller_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/state"
)

// blockHarness is a host with VPCROUTE_HOST_BLOCK=20.
func blockHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.cfg.HostBlock, h.cfg.BlockGrace = 20, 10*time.Minute
	h.open()
	return h
}

// The first automatic network claims one /20 for this ECS; the next fifteen are
// carved from it with no cloud call; the seventeenth claims a second block. Removing
// every network keeps the blocks for the grace period, then gives them back.
func TestHostBlocks(t *testing.T) {
	h := blockHarness(t)
	var pools []state.Pool
	subnets := map[netip.Prefix]bool{}
	for i := range 17 {
		p, _ := h.network(fmt.Sprintf("net%02d", i), fmt.Sprintf("n%d", i), "")
		pools = append(pools, p)
		if subnets[p.Subnet] {
			t.Fatalf("subnet %s handed out twice", p.Subnet)
		}
		subnets[p.Subnet] = true
		if p.Subnet.Bits() != 24 {
			t.Errorf("network %d got %s, want a /24 (VPCROUTE_SUBNET_SIZE)", i, p.Subnet)
		}
		switch {
		case i == 0 && (h.vpc.Claims != 1 || h.vpc.Len() != 1):
			t.Fatalf("first network: %d claims, %d routes; want one block claimed", h.vpc.Claims, h.vpc.Len())
		case i > 0 && i < 16 && h.vpc.Claims != 1:
			t.Fatalf("network %d cost a cloud call (%d claims in all); want none while the block has room", i, h.vpc.Claims)
		case i == 16 && (h.vpc.Claims != 2 || h.vpc.Len() != 2):
			t.Fatalf("17th network: %d claims, %d routes; want a second block", h.vpc.Claims, h.vpc.Len())
		}
	}
	owned, _ := h.vpc.Owned(ctx0)
	for _, r := range owned {
		if r.Destination.Bits() != 20 || !strings.HasPrefix(r.Owner, state.BlockPrefix) {
			t.Errorf("route %s owner %s: want only /20 blocks", r.Destination, r.Owner)
		}
		n := 0
		for s := range subnets {
			if r.Destination.Contains(s.Addr()) {
				n++
			}
		}
		if n != 16 && n != 1 {
			t.Errorf("block %s holds %d networks", r.Destination, n)
		}
	}
	st, err := h.c.Status(ctx0)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Blocks) != 2 || len(st.Blocks[0].Networks) != 16 || st.Blocks[0].Route.State != controller.RouteOK {
		t.Errorf("status blocks = %+v; want 2, the first with 16 networks and its route ok", st.Blocks)
	}
	for _, n := range st.Networks {
		if !n.Block.IsValid() || n.Route.State != controller.RouteOK {
			t.Errorf("status of %s: block %s, route %s; want carved, routed by its block", n.Name, n.Block, n.Route.State)
		}
	}
	// The loop wants no route per network.
	h.clock.advance(time.Minute)
	h.reconcile()
	if h.vpc.Len() != 2 || h.vpc.Claims != 2 {
		t.Errorf("after a cycle: %d routes, %d claims; want the 2 blocks only", h.vpc.Len(), h.vpc.Claims)
	}

	releases := h.vpc.Releases
	for i, p := range pools {
		h.removeNetwork(fmt.Sprintf("net%02d", i), p)
	}
	if h.vpc.Releases != releases || h.vpc.Len() != 2 {
		t.Fatalf("removing the networks: %d releases, %d routes; want the blocks kept for the grace", h.vpc.Releases-releases, h.vpc.Len())
	}
	// A network made within the grace reuses the block: no cloud call.
	h.clock.advance(5 * time.Minute)
	h.reconcile()
	p, _ := h.network("again", "again", "")
	if h.vpc.Claims != 2 || !routedBy(h, p.Subnet) {
		t.Fatalf("a network within the grace: %d claims; want it carved from a kept block", h.vpc.Claims)
	}
	h.removeNetwork("again", p)
	h.reconcile()
	h.clock.advance(9 * time.Minute)
	h.reconcile()
	if h.vpc.Len() != 2 {
		t.Fatalf("blocks released before VPCROUTE_BLOCK_GRACE")
	}
	h.clock.advance(2 * time.Minute)
	h.reconcile()
	h.empty("10 minutes after the last network went")
}

func routedBy(h *harness, subnet netip.Prefix) bool {
	owned, _ := h.vpc.Owned(ctx0)
	for _, r := range owned {
		if r.Destination.Contains(subnet.Addr()) {
			return true
		}
	}
	return false
}

// An explicit --subnet inside this ECS's block is carved (no cloud call), with
// either IPAM; one elsewhere gets its own route as before; one around the block,
// or over a carved network, is refused with the reason.
func TestHostBlockExplicit(t *testing.T) {
	h := blockHarness(t)
	first, _ := h.network("auto", "auto", "")
	block := netip.PrefixFrom(first.Subnet.Addr(), 20).Masked()
	inside := netip.PrefixFrom(block.Addr(), 26)
	for !block.Contains(inside.Addr()) || inside.Overlaps(first.Subnet) {
		inside = netip.PrefixFrom(nextAddr(inside), 26)
	}
	h.network("in", "in", inside.String())
	if h.vpc.Claims != 1 {
		t.Errorf("explicit --subnet %s inside the block cost %d claims; want none beyond the block's", inside, h.vpc.Claims-1)
	}
	defIn := netip.PrefixFrom(nextAddr(netip.PrefixFrom(inside.Addr(), 24).Masked()), 24)
	for defIn.Overlaps(first.Subnet) || defIn.Overlaps(inside) {
		defIn = netip.PrefixFrom(nextAddr(defIn), 24)
	}
	h.defaultIPAMNetwork("def", "def", defIn.String())
	if h.vpc.Claims != 1 {
		t.Errorf("default IPAM --subnet %s inside the block cost a claim", defIn)
	}
	h.network("out", "out", "10.200.0.0/24")
	if h.vpc.Claims != 2 {
		t.Errorf("explicit --subnet outside the block: %d claims; want its own route", h.vpc.Claims)
	}
	if _, err := h.c.RequestPool(ctx0, controller.PoolRequest{Subnet: netip.PrefixFrom(block.Addr(), 16).Masked()}); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("a /16 around the block = %v; want a refusal", err)
	}
	if _, err := h.c.RequestPool(ctx0, controller.PoolRequest{Subnet: first.Subnet}); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("a carved network's subnet again = %v; want a refusal", err)
	}
	// Turning the mode off keeps the block for the networks carved from it, and
	// new automatic networks get a route each.
	h.cfg.HostBlock = 0
	h.open()
	p, _ := h.network("perNet", "perNet", "")
	if block.Contains(p.Subnet.Addr()) || h.vpc.Claims != 3 {
		t.Errorf("with the mode off: %s, %d claims; want a route of its own outside the block", p.Subnet, h.vpc.Claims)
	}
	h.clock.advance(time.Hour)
	h.reconcile()
	if _, ok := h.vpc.Get(block.String()); !ok {
		t.Errorf("the block went while networks use it")
	}
}

func nextAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	for range 1 << (32 - p.Bits()) {
		a = a.Next()
	}
	return a
}

// A `compose up` of several networks at once claims one block, not one each.
func TestHostBlockConcurrentCreates(t *testing.T) {
	h := blockHarness(t)
	h.vpc.Hook = func() { time.Sleep(50 * time.Millisecond) }
	errs := make(chan error, 5)
	for range 5 {
		go func() {
			_, err := h.c.RequestPool(ctx0, controller.PoolRequest{})
			errs <- err
		}()
	}
	for range 5 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if h.vpc.Claims != 1 || h.vpc.Len() != 1 {
		t.Errorf("5 networks at once: %d claims, %d routes; want one block", h.vpc.Claims, h.vpc.Len())
	}
}

// The cloud down: networks are still carved while the block has room; the first
// one that needs a new block fails naming the cloud, and leaves nothing behind.
func TestHostBlockCloudDown(t *testing.T) {
	h := blockHarness(t)
	h.network("first", "first", "")
	h.vpc.Fail = errors.New("VPC.0001: service unavailable (503)")
	for i := range 15 {
		h.network(fmt.Sprintf("n%d", i), "n", "")
	}
	pools, _ := h.db.Pools()
	if _, err := h.c.RequestPool(ctx0, controller.PoolRequest{}); err == nil || !strings.Contains(err.Error(), "host block") {
		t.Fatalf("a network beyond the block with the cloud down = %v; want an error naming the block's claim", err)
	}
	after, _ := h.db.Pools()
	if len(after) != len(pools) {
		// A failed claim that may land later is kept marked for release.
		for _, p := range after {
			if !p.Releasing && !contains(pools, p.ID) {
				t.Errorf("left behind: %+v", p)
			}
		}
	}
}

func contains(ps []state.Pool, id string) bool {
	for _, p := range ps {
		if p.ID == id {
			return true
		}
	}
	return false
}

// Lost state in block mode: the networks carved from a block are rebuilt from
// Docker's list with the block (from its route): no per-network route is claimed,
// and the block's route is kept.
func TestHostBlockLostState(t *testing.T) {
	h := blockHarness(t)
	p1, _ := h.network("a", "a", "")
	p2, _ := h.network("b", "b", "")
	h.loseState()
	h.clock.advance(time.Minute)
	h.reconcile()
	h.reconcile()
	if h.vpc.Len() != 1 || h.vpc.Claims != 1 {
		t.Fatalf("after lost state: %d routes, %d claims; want the block's route only", h.vpc.Len(), h.vpc.Claims)
	}
	st, _ := h.c.Status(ctx0)
	if len(st.Blocks) != 1 || len(st.Blocks[0].Networks) != 2 {
		t.Fatalf("status after lost state: blocks %+v; want the block rebuilt with both networks", st.Blocks)
	}
	h.clock.advance(time.Hour)
	h.reconcile()
	if h.vpc.Len() != 1 {
		t.Errorf("the block's route went while its networks live")
	}
	// The rebuilt pools are carved from the block: no route of their own.
	pools, _ := h.db.Pools()
	carved := 0
	for _, p := range pools {
		if (p.Subnet == p1.Subnet || p.Subnet == p2.Subnet) && strings.HasPrefix(p.Block, state.BlockPrefix) {
			carved++
		}
	}
	if carved != 2 {
		t.Errorf("rebuilt pools %+v; want the 2 networks' pools, each naming the block", pools)
	}
}

// Turning host blocks on where networks have routes of their own keeps those
// routes; new automatic networks are carved from a block that avoids them.
func TestHostBlockSwitchOn(t *testing.T) {
	h := newHarness(t)
	a, _ := h.network("a", "a", "")
	b, _ := h.network("b", "b", "")
	h.cfg.HostBlock, h.cfg.BlockGrace = 20, 10*time.Minute
	h.open()
	c, _ := h.network("c", "c", "")
	h.clock.advance(time.Hour)
	h.reconcile()
	for _, p := range []state.Pool{a, b} {
		if r, ok := h.vpc.Get(p.Subnet.String()); !ok || r.Owner != p.ID {
			t.Errorf("route of %s (made before the switch) = %+v, %v; want it kept", p.Subnet, r, ok)
		}
	}
	owned, _ := h.vpc.Owned(ctx0)
	var block netip.Prefix
	for _, r := range owned {
		if strings.HasPrefix(r.Owner, state.BlockPrefix) {
			block = r.Destination
		}
	}
	if !block.IsValid() || !block.Contains(c.Subnet.Addr()) || block.Overlaps(a.Subnet) || block.Overlaps(b.Subnet) || len(owned) != 3 {
		t.Errorf("after the switch: routes %v, new network %s; want the 2 old routes and one block holding the new network, apart from them", owned, c.Subnet)
	}
}

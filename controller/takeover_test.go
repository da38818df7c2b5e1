package controller_test

import (
	"net/netip"
	"testing"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/internal/fakecloud"
)

// A network whose subnet vpcroute routes to another ECS is created here only with a
// takeover, which moves the route; without one, or from a running ECS without
// force, the error says what to do and nothing is left behind.
func TestTakeoverCreates(t *testing.T) {
	const subnet = "10.0.2.0/24"
	other := fakecloud.Route{Instance: "ecs-2", Owner: "vr-0a0b0c0d0e0f", Name: "my-net"}
	tests := []struct {
		name     string
		ipam     bool // --ipam-driver vpcroute (the pool claims) rather than Docker's default IPAM
		stopped  bool // the other ECS is not running
		takeover cloud.Takeover
		errHas   string // "" when the route moves
	}{
		{name: "default IPAM, no takeover", stopped: true, errHas: "add -o vpcroute.takeover=true"},
		{name: "vpcroute IPAM, no takeover", ipam: true, stopped: true, errHas: "add --ipam-opt vpcroute.takeover=true"},
		{name: "holder running", takeover: cloud.TakeoverStopped, errHas: "which is running (ACTIVE)"},
		{name: "holder stopped", stopped: true, takeover: cloud.TakeoverStopped},
		{name: "holder running, forced", takeover: cloud.TakeoverForce},
		{name: "vpcroute IPAM, holder stopped", ipam: true, stopped: true, takeover: cloud.TakeoverStopped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.vpc.Add(subnet, other)
			h.vpc.Stopped = map[string]bool{"ecs-2": tt.stopped}
			s := netip.MustParsePrefix(subnet)
			gw := netip.PrefixFrom(s.Addr().Next(), s.Bits())
			var err error
			if tt.ipam {
				_, err = h.c.RequestPool(ctx0, controller.PoolRequest{Subnet: s, Takeover: tt.takeover})
			} else {
				err = h.c.CreateNetwork(ctx0, controller.NetworkSpec{ID: netID, Subnet: s, Gateway: gw, Masquerade: true, Takeover: tt.takeover})
			}
			r, _ := h.vpc.Get(subnet)
			if tt.errHas != "" {
				wantErr(t, err, tt.errHas)
				if r != other || h.vpc.Len() != 1 {
					t.Errorf("a refused takeover changed the table: %+v", r)
				}
				h.empty("after a refused takeover")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Instance != instance || h.vpc.Len() != 1 {
				t.Errorf("route of %s = %+v (%d routes); want one, to this ECS", subnet, r, h.vpc.Len())
			}
		})
	}
}

// The ECS that lost its subnet to a takeover notices in its next cycle: it stops
// claiming the route, says "moved" in status, keeps its containers' local traffic,
// and docker network rm removes the local parts without touching the route.
func TestTakenOverNetwork(t *testing.T) {
	h := newHarness(t)
	p, _ := h.network(netID, "my-net", "10.0.2.0/24")
	h.container(netID, controller.PoolRef(p), "ep1")
	taker := fakecloud.Route{Instance: "ecs-2", Owner: "net-0123456789ab", Name: "my-net"}
	h.vpc.Add("10.0.2.0/24", taker) // ECS 2's takeover replaced the route
	h.reconcile()
	claims := h.vpc.Claims
	h.reconcile()
	if h.vpc.Claims != claims {
		t.Errorf("the loop claimed a moved subnet again (%d claims)", h.vpc.Claims-claims)
	}
	st, err := h.c.Status(ctx0)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Networks) != 1 || st.Networks[0].Route.State != controller.RouteMoved || st.Networks[0].Route.NextHop != "ecs-2" {
		t.Fatalf("status: %+v; want the network moved to ecs-2", st.Networks)
	}
	h.host.Lock()
	bridge, veths := h.host.Marked["vr-0123456789ab"], len(h.host.Attached)
	h.host.Unlock()
	if bridge != netID || veths != 1 {
		t.Errorf("the moved network lost its local parts: bridge %q, %d veths", bridge, veths)
	}
	if err := h.c.DeleteEndpoint(netID, "ep1"); err != nil {
		t.Fatal(err)
	}
	releases := h.vpc.Releases
	h.removeNetwork(netID, p)
	if r, _ := h.vpc.Get("10.0.2.0/24"); r != taker || h.vpc.Releases != releases {
		t.Errorf("network rm touched the route that moved: %+v, %d releases", r, h.vpc.Releases-releases)
	}
	h.vpc.Delete("10.0.2.0/24")
	h.empty("after network rm")
}

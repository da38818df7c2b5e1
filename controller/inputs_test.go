package controller_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/vpcroute/vpcroute/controller"
)

// Requests Docker's own checks usually stop, sent through the raw API: each is
// refused with what to do, and leaves nothing.
func TestRequestsThatMustFail(t *testing.T) {
	tests := []struct {
		name    string
		run     func(h *harness) error
		wantErr string
	}{
		{name: "gateway outside the subnet", run: func(h *harness) error {
			s := spec("10.0.2.0/24", false)
			s.Gateway = netip.MustParsePrefix("192.168.0.2/24")
			return h.c.CreateNetwork(ctx0, s)
		}, wantErr: "outside the subnet"},
		{name: "gateway with another length", run: func(h *harness) error {
			s := spec("10.0.58.0/24", false)
			s.Gateway = netip.MustParsePrefix("10.0.58.1/8")
			return h.c.CreateNetwork(ctx0, s)
		}, wantErr: "/8 length"},
		{name: "gateway is the network address", run: func(h *harness) error {
			s := spec("10.0.2.0/24", false)
			s.Gateway = netip.MustParsePrefix("10.0.2.0/24")
			return h.c.CreateNetwork(ctx0, s)
		}, wantErr: "network or broadcast"},
		{name: "two networks on one subnet", run: func(h *harness) error {
			_, gw := h.network(netID, "web", "10.0.2.0/24")
			s := controller.NetworkSpec{ID: "fedcba9876543210", Subnet: netip.MustParsePrefix("10.0.2.0/24"), Gateway: gw, FromVpcroute: true}
			return h.c.CreateNetwork(ctx0, s)
		}, wantErr: "overlaps subnet 10.0.2.0/24 of network 0123456789ab"},
		{name: "multicast pool", run: func(h *harness) error {
			_, err := h.c.RequestPool(ctx0, controller.PoolRequest{Subnet: netip.MustParsePrefix("224.0.0.0/24")})
			return err
		}, wantErr: "not a unicast range"},
		{name: "broadcast pool", run: func(h *harness) error {
			_, err := h.c.RequestPool(ctx0, controller.PoolRequest{Subnet: netip.MustParsePrefix("255.255.255.248/29")})
			return err
		}, wantErr: "not a unicast range"},
		{name: "--subnet outside the pool", run: func(h *harness) error {
			_, err := h.c.RequestPool(ctx0, controller.PoolRequest{Subnet: netip.MustParsePrefix("172.20.0.0/24")})
			return err
		}, wantErr: "--ipam-opt vpcroute.outside-pool=true"},
		{name: "Docker's default IPAM outside the pool", run: func(h *harness) error {
			return h.c.CreateNetwork(ctx0, spec("172.18.0.0/16", false))
		}, wantErr: "-o vpcroute.outside-pool=true"},
		{name: "endpoint on the gateway's address", run: func(h *harness) error {
			h.network(netID, "web", "10.0.2.0/24")
			return h.c.CreateEndpoint(netID, "ep1", netip.MustParsePrefix("10.0.2.1/24"))
		}, wantErr: "the network's gateway"},
		{name: "endpoint on another's address", run: func(h *harness) error {
			p, _ := h.network(netID, "web", "10.0.2.0/24")
			a := h.container(netID, controller.PoolRef(p), "ep1")
			return h.c.CreateEndpoint(netID, "ep2", a)
		}, wantErr: "in use by container endpoint ep1"},
		{name: "--ip held by an --aux-address", run: func(h *harness) error {
			p, _ := h.network(netID, "web", "10.0.2.0/24")
			if _, err := h.c.RequestAddress(controller.PoolRef(p), netip.MustParseAddr("10.0.2.5"), false); err != nil {
				return err
			}
			_, err := h.c.RequestAddress(controller.PoolRef(p), netip.MustParseAddr("10.0.2.5"), false)
			return err
		}, wantErr: "--aux-address"},
		{name: "--ip held by a container", run: func(h *harness) error {
			p, _ := h.network(netID, "web", "10.0.2.0/24")
			a := h.container(netID, controller.PoolRef(p), "ep1")
			_, err := h.c.RequestAddress(controller.PoolRef(p), a.Addr(), false)
			return err
		}, wantErr: "container endpoint ep1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			routes := h.vpc.Len()
			bridges := len(h.host.Marked)
			err := tt.run(h)
			wantErr(t, err, tt.wantErr)
			// Nothing was made for the refused request itself.
			if strings.Contains(tt.name, "pool") && h.vpc.Len() != routes {
				t.Errorf("a refused pool changed the route table: %v", h.vpc.Routes)
			}
			if strings.Contains(tt.name, "gateway") && !strings.Contains(tt.name, "endpoint") && len(h.host.Marked) != bridges {
				t.Errorf("a refused network made a bridge: %v", h.host.Marked)
			}
		})
	}
}

// The user means it: a subnet outside the pool with the option.
func TestOutsidePoolWhenAsked(t *testing.T) {
	h := newHarness(t)
	if _, err := h.c.RequestPool(ctx0, controller.PoolRequest{Subnet: netip.MustParsePrefix("172.20.0.0/24"), OutsidePool: true}); err != nil {
		t.Fatal(err)
	}
	s := spec("172.18.0.0/16", false)
	s.OutsidePool = true
	if err := h.c.CreateNetwork(ctx0, s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.logs.String(), "outside VPCROUTE_POOL") {
		t.Error("no warning for a subnet outside the pool")
	}
}

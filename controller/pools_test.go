package controller_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/internal/fakecloud"
	"github.com/vpcroute/vpcroute/state"
)

func TestRequestPool(t *testing.T) {
	tests := []struct {
		name    string
		cloud   []string // other hosts' routes
		host    []string // this host's routes
		subnet  string
		want    string // subnet, or "" when wantErr
		wantErr string
	}{
		{name: "automatic first", want: "10.0.0.0/24"},
		{name: "automatic skips other hosts", cloud: []string{"10.0.0.0/24", "10.0.1.0/24"}, want: "10.0.2.0/24"},
		{name: "automatic skips host routes", host: []string{"10.0.0.0/16"}, want: "10.1.0.0/24"},
		{name: "explicit free", subnet: "10.0.3.0/24", want: "10.0.3.0/24"},
		{name: "explicit small", subnet: "10.0.3.0/29", want: "10.0.3.0/29"},
		{name: "explicit held by another host", cloud: []string{"10.0.3.0/24"}, subnet: "10.0.3.0/24", wantErr: "ecs-2"},
		{name: "explicit overlaps host", host: []string{"192.168.0.0/24"}, subnet: "192.168.0.0/16", wantErr: "on this host"},
		{name: "explicit reserved", subnet: "100.64.1.0/24", wantErr: "VPC reserves"},
		{name: "explicit too big", subnet: "10.0.0.0/15", wantErr: "/16 to /29"},
		{name: "explicit too small", subnet: "10.0.0.0/30", wantErr: "/16 to /29"},
		{name: "explicit not network address", subnet: "10.0.3.7/24", wantErr: "use --subnet 10.0.3.0/24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			for _, c := range tt.cloud {
				h.vpc.Add(c, fakecloud.Route{Instance: "ecs-2", Owner: "vr-other"})
			}
			for _, r := range tt.host {
				h.host.Routes = append(h.host.Routes, netip.MustParsePrefix(r))
			}
			var req controller.PoolRequest
			if tt.subnet != "" {
				req.Subnet = netip.MustParsePrefix(tt.subnet)
			}
			p, err := h.c.RequestPool(ctx0, req)
			pools, _ := h.db.Pools()
			if tt.wantErr != "" {
				wantErr(t, err, tt.wantErr)
				if len(pools) != 0 {
					t.Fatalf("failed RequestPool left pools %+v", pools)
				}
				return
			}
			if err != nil || p.Subnet.String() != tt.want {
				t.Fatalf("RequestPool = %+v, %v; want %s", p, err, tt.want)
			}
			if r, _ := h.vpc.Get(tt.want); r.Owner != p.ID || r.Instance != instance {
				t.Fatalf("VPC route of %s = %+v; want this host's, owned by the pool %s", tt.want, r, p.ID)
			}
			if len(pools) != 1 || pools[0].Claiming {
				t.Fatalf("saved pools = %+v; want one finished pool", pools)
			}
			if ref := controller.PoolRef(p); ref != p.ID+"/"+tt.want {
				t.Fatalf("PoolRef = %s; want the ID and the subnet", ref)
			}
		})
	}
}

// Pools requested at the same moment on one host never get the same subnet, and the
// cloud's slowness does not serialise them behind one lock.
func TestRequestPoolConcurrent(t *testing.T) {
	h := newHarness(t)
	const n = 8
	var wg sync.WaitGroup
	got := make([]netip.Prefix, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := h.c.RequestPool(ctx0, controller.PoolRequest{})
			got[i], errs[i] = p.Subnet, err
		}()
	}
	wg.Wait()
	seen := map[netip.Prefix]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[got[i]] {
			t.Fatalf("subnet %s handed out twice: %v", got[i], got)
		}
		seen[got[i]] = true
	}
	if h.vpc.Len() != n {
		t.Fatalf("route table holds %d routes; want %d", h.vpc.Len(), n)
	}
}

// A claim the cloud refused changed nothing: nothing is left. Any other failure may
// be a write that lands later: the pool is kept for the loop to give back whatever
// route it finds.
func TestFailedClaims(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		h := newHarness(t)
		h.vpc.Fail = fmt.Errorf("route table rtb-1 holds 200 routes: %w", cloud.ErrQuotaFull)
		_, err := h.c.RequestPool(ctx0, controller.PoolRequest{})
		wantErr(t, err, "200 routes")
		h.empty("after a refused claim")
	})
	t.Run("timed out but landed", func(t *testing.T) {
		h := newHarness(t)
		// The write reaches the table, the answer does not.
		h.vpc.Hook = func() { h.vpc.Fail = errors.New("context deadline exceeded") }
		var landed netip.Prefix
		_, err := h.c.RequestPool(ctx0, controller.PoolRequest{Subnet: netip.MustParsePrefix("10.0.5.0/24")})
		wantErr(t, err, "deadline")
		pools, _ := h.db.Pools()
		if len(pools) != 1 || !pools[0].Releasing {
			t.Fatalf("pools after an uncertain failure = %+v; want the pool kept, Releasing", pools)
		}
		landed = pools[0].Subnet
		h.vpc.Hook = nil
		h.vpc.Fail = nil
		h.vpc.Add(landed.String(), fakecloud.Route{Instance: instance, Owner: pools[0].ID})
		h.reconcile()
		h.empty("after the loop gave back a late claim")
	})
}

func TestAddresses(t *testing.T) {
	h := newHarness(t)
	p, err := h.c.RequestPool(ctx0, controller.PoolRequest{Subnet: netip.MustParsePrefix("10.0.2.0/24"), Range: netip.MustParsePrefix("10.0.2.128/25")})
	if err != nil {
		t.Fatal(err)
	}
	ref := controller.PoolRef(p)
	steps := []struct {
		name    string
		addr    string
		gateway bool
		want    string
		wantErr string
	}{
		{name: "gateway defaults to the first address", gateway: true, want: "10.0.2.1/24"},
		{name: "--aux-address outside the --ip-range is reserved", addr: "10.0.2.5", want: "10.0.2.5/24"},
		{name: "the aux address is not handed out twice", addr: "10.0.2.5", wantErr: "already in use"},
		{name: "first from the ip-range", want: "10.0.2.128/24"},
		{name: "next", want: "10.0.2.129/24"},
		{name: "--ip", addr: "10.0.2.200", want: "10.0.2.200/24"},
		{name: "--ip in use", addr: "10.0.2.200", wantErr: "already in use"},
		{name: "--ip of the gateway", addr: "10.0.2.1", wantErr: "gateway"},
		{name: "--ip outside", addr: "10.0.9.1", wantErr: "outside"},
		{name: "--ip broadcast", addr: "10.0.2.255", wantErr: "broadcast"},
	}
	for _, s := range steps {
		var asked netip.Addr
		if s.addr != "" {
			asked = netip.MustParseAddr(s.addr)
		}
		got, err := h.c.RequestAddress(ref, asked, s.gateway)
		if s.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), s.wantErr) {
				t.Errorf("%s: RequestAddress = %v, %v; want error containing %q", s.name, got, err, s.wantErr)
			}
			continue
		}
		if err != nil || got.String() != s.want {
			t.Errorf("%s: RequestAddress = %v, %v; want %s", s.name, got, err, s.want)
		}
	}
	// Releases are idempotent and an address is not handed out again at once.
	for range 2 {
		if err := h.c.ReleaseAddress(ref, netip.MustParseAddr("10.0.2.128")); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := h.c.RequestAddress(ref, netip.Addr{}, false); err != nil || got.String() != "10.0.2.201/24" {
		t.Fatalf("after release, next = %v, %v; want 10.0.2.201/24 (no immediate reuse)", got, err)
	}
	_, err = h.c.RequestAddress("vr-missing/10.9.9.0/24", netip.Addr{}, false)
	wantErr(t, err, "re-create")
	// A pool of an older vpcroute is named by its ID alone.
	if _, err := h.c.RequestAddress(p.ID, netip.Addr{}, false); err != nil {
		t.Fatalf("pool named by its bare ID: %v", err)
	}
}

func TestGatewayOption(t *testing.T) {
	h := newHarness(t)
	p, _ := h.c.RequestPool(ctx0, controller.PoolRequest{Subnet: netip.MustParsePrefix("10.0.2.0/24")})
	ref := controller.PoolRef(p)
	if got, err := h.c.RequestAddress(ref, netip.MustParseAddr("10.0.2.254"), true); err != nil || got.String() != "10.0.2.254/24" {
		t.Fatalf("--gateway = %v, %v", got, err)
	}
	if saved, _ := h.db.Pool(p.ID); saved.Gateway.String() != "10.0.2.254" {
		t.Fatalf("pool gateway = %v", saved.Gateway)
	}
	if got, _ := h.c.RequestAddress(ref, netip.Addr{}, false); got.String() != "10.0.2.1/24" {
		t.Fatalf("with --gateway .254 the first container gets %s; want 10.0.2.1/24", got)
	}
}

// Docker ignores ReleasePool's errors and never asks again: the loop finishes it.
func TestReleasePool(t *testing.T) {
	h := newHarness(t)
	p, _ := h.c.RequestPool(ctx0, controller.PoolRequest{})
	h.vpc.Fail = errors.New("503 service unavailable")
	if err := h.c.ReleasePool(ctx0, controller.PoolRef(p)); err == nil {
		t.Fatal("ReleasePool succeeded while the cloud failed")
	}
	if saved, err := h.db.Pool(p.ID); err != nil || !saved.Releasing {
		t.Fatalf("pool after a failed release = %+v, %v; want it kept, Releasing", saved, err)
	}
	h.vpc.Fail = nil
	h.reconcile()
	h.empty("after the loop finished the release")
	if err := h.c.ReleasePool(ctx0, controller.PoolRef(p)); err != nil {
		t.Fatalf("ReleasePool of a released pool: %v", err)
	}
	if _, err := h.db.Pool(p.ID); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("released pool kept: %v", err)
	}
}

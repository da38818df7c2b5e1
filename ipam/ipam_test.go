package ipam

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"

	dipam "github.com/docker/go-plugins-helpers/ipam"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/state"
)

// fakeVPC is a route table in memory: it keeps routes and refuses overlaps the way the
// real one does, so the IPAM's decisions are tested against state, not echoes.
type fakeVPC struct {
	mu     sync.Mutex
	routes map[netip.Prefix]string // destination -> owner ("other:..." for other hosts)
	fail   error
	claims int
}

func newFakeVPC(other ...string) *fakeVPC {
	f := &fakeVPC{routes: map[netip.Prefix]string{}}
	for _, o := range other {
		f.routes[netip.MustParsePrefix(o)] = "other:ecs-2"
	}
	return f
}

func (f *fakeVPC) Identity() cloud.Identity { return cloud.Identity{InstanceID: "ecs-1"} }

func (f *fakeVPC) Taken(context.Context) ([]netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netip.Prefix
	for p := range f.routes {
		out = append(out, p)
	}
	return out, nil
}

func (f *fakeVPC) Claim(ctx context.Context, req cloud.ClaimRequest) (netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claims++
	if f.fail != nil {
		return netip.Prefix{}, f.fail
	}
	want := req.Want
	if !want.IsValid() {
		var taken []netip.Prefix
		for p := range f.routes {
			taken = append(taken, p)
		}
		p, err := req.Pick(taken)
		if err != nil {
			return netip.Prefix{}, err
		}
		want = p
	}
	for p, owner := range f.routes {
		if p.Overlaps(want) && !(p == want && owner == req.Owner) {
			return netip.Prefix{}, &cloud.ConflictError{Want: want, Existing: p, NextHop: strings.TrimPrefix(owner, "other:")}
		}
	}
	f.routes[want] = req.Owner
	return want, nil
}

func (f *fakeVPC) Release(_ context.Context, p netip.Prefix, owner string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if f.routes[p] == owner {
		delete(f.routes, p)
	}
	return nil
}

func (f *fakeVPC) Owned(context.Context) ([]cloud.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []cloud.Route
	for p, o := range f.routes {
		if !strings.HasPrefix(o, "other:") {
			out = append(out, cloud.Route{Destination: p, Owner: o})
		}
	}
	return out, nil
}

func newTestIPAM(t *testing.T, vpc cloud.VPC, host ...string) (*Driver, *state.DB) {
	t.Helper()
	db, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var hp []netip.Prefix
	for _, h := range host {
		hp = append(hp, netip.MustParsePrefix(h))
	}
	return New(Config{
		Pool:         netip.MustParsePrefix("10.0.0.0/8"),
		SubnetSize:   24,
		HostPrefixes: func() ([]netip.Prefix, error) { return hp, nil },
	}, db, vpc), db
}

func TestRequestPool(t *testing.T) {
	tests := []struct {
		name    string
		cloud   []string // other hosts' routes
		host    []string // this host's routes
		pool    string
		subPool string
		v6      bool
		want    string // subnet, or "" when wantErr
		wantErr string
	}{
		{name: "automatic first", want: "10.0.0.0/24"},
		{name: "automatic skips other hosts", cloud: []string{"10.0.0.0/24", "10.0.1.0/24"}, want: "10.0.2.0/24"},
		{name: "automatic skips host routes", host: []string{"10.0.0.0/16"}, want: "10.1.0.0/24"},
		{name: "explicit free", pool: "10.0.3.0/24", want: "10.0.3.0/24"},
		{name: "explicit small", pool: "10.0.3.0/29", want: "10.0.3.0/29"},
		{name: "explicit held by another host", cloud: []string{"10.0.3.0/24"}, pool: "10.0.3.0/24", wantErr: "ecs-2"},
		{name: "explicit overlaps host", host: []string{"192.168.0.0/24"}, pool: "192.168.0.0/16", wantErr: "on this host"},
		{name: "explicit reserved", pool: "100.64.1.0/24", wantErr: "VPC reserves"},
		{name: "explicit too big", pool: "10.0.0.0/15", wantErr: "/16 to /29"},
		{name: "explicit too small", pool: "10.0.0.0/30", wantErr: "/16 to /29"},
		{name: "explicit not network address", pool: "10.0.3.7/24", wantErr: "use --subnet 10.0.3.0/24"},
		{name: "explicit garbage", pool: "ten", wantErr: "not an IPv4 CIDR"},
		{name: "ip-range", pool: "10.0.3.0/24", subPool: "10.0.3.128/25", want: "10.0.3.0/24"},
		{name: "ip-range outside", pool: "10.0.3.0/24", subPool: "10.0.4.0/25", wantErr: "inside subnet"},
		{name: "ip-range without subnet", subPool: "10.0.4.0/25", wantErr: "needs --subnet"},
		{name: "ipv6", v6: true, wantErr: "IPv4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vpc := newFakeVPC(tt.cloud...)
			d, db := newTestIPAM(t, vpc, tt.host...)
			res, err := d.RequestPool(&dipam.RequestPoolRequest{Pool: tt.pool, SubPool: tt.subPool, V6: tt.v6})
			pools, _ := db.Pools()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("RequestPool = %+v, %v; want error containing %q", res, err, tt.wantErr)
				}
				if len(pools) != 0 {
					t.Fatalf("failed RequestPool left pools %+v", pools)
				}
				return
			}
			if err != nil || res.Pool != tt.want {
				t.Fatalf("RequestPool = %+v, %v; want %s", res, err, tt.want)
			}
			if owner := vpc.routes[netip.MustParsePrefix(tt.want)]; owner != res.PoolID {
				t.Fatalf("VPC route of %s owned by %q; want the pool %s", tt.want, owner, res.PoolID)
			}
			if len(pools) != 1 || pools[0].Claiming {
				t.Fatalf("saved pools = %+v; want one finished pool", pools)
			}
		})
	}
}

func TestRequestPoolNeverOverlapsAcrossCalls(t *testing.T) {
	d, _ := newTestIPAM(t, newFakeVPC("10.0.1.0/24"))
	seen := map[string]bool{}
	for i := 0; i < 5; i++ {
		res, err := d.RequestPool(&dipam.RequestPoolRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if seen[res.Pool] || res.Pool == "10.0.1.0/24" {
			t.Fatalf("pool %s handed out twice or taken by another host", res.Pool)
		}
		seen[res.Pool] = true
	}
}

func TestClaimFailureLeavesNothing(t *testing.T) {
	vpc := newFakeVPC()
	vpc.fail = errors.New("route table is full")
	d, db := newTestIPAM(t, vpc)
	if _, err := d.RequestPool(&dipam.RequestPoolRequest{}); err == nil || !strings.Contains(err.Error(), "full") {
		t.Fatalf("RequestPool with a failing cloud = %v", err)
	}
	if pools, _ := db.Pools(); len(pools) != 0 {
		t.Fatalf("pools left behind: %+v", pools)
	}
}

func TestAddresses(t *testing.T) {
	d, _ := newTestIPAM(t, newFakeVPC())
	pool, err := d.RequestPool(&dipam.RequestPoolRequest{Pool: "10.0.2.0/24", SubPool: "10.0.2.128/25"})
	if err != nil {
		t.Fatal(err)
	}
	gwOpt := map[string]string{"RequestAddressType": "com.docker.network.gateway"}
	steps := []struct {
		name    string
		addr    string
		opts    map[string]string
		want    string
		wantErr string
	}{
		{name: "gateway defaults to the first address", opts: gwOpt, want: "10.0.2.1/24"},
		{name: "--aux-address outside the --ip-range is reserved", addr: "10.0.2.5", want: "10.0.2.5/24"},
		{name: "the aux address is not handed out twice", addr: "10.0.2.5", wantErr: "already in use"},
		{name: "first from the ip-range", want: "10.0.2.128/24"},
		{name: "next", want: "10.0.2.129/24"},
		{name: "--ip", addr: "10.0.2.200", want: "10.0.2.200/24"},
		{name: "--ip in use", addr: "10.0.2.200", wantErr: "already in use"},
		{name: "--ip of the gateway", addr: "10.0.2.1", wantErr: "gateway"},
		{name: "--ip outside", addr: "10.0.9.1", wantErr: "outside"},
		{name: "--ip broadcast", addr: "10.0.2.255", wantErr: "broadcast"},
		{name: "not an address", addr: "x", wantErr: "not an IPv4 address"},
	}
	for _, s := range steps {
		res, err := d.RequestAddress(&dipam.RequestAddressRequest{PoolID: pool.PoolID, Address: s.addr, Options: s.opts})
		if s.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), s.wantErr) {
				t.Errorf("%s: RequestAddress = %+v, %v; want error containing %q", s.name, res, err, s.wantErr)
			}
			continue
		}
		if err != nil || res.Address != s.want {
			t.Errorf("%s: RequestAddress = %+v, %v; want %s", s.name, res, err, s.want)
		}
	}
	// Released addresses are idempotent and not reused at once.
	for i := 0; i < 2; i++ {
		if err := d.ReleaseAddress(&dipam.ReleaseAddressRequest{PoolID: pool.PoolID, Address: "10.0.2.128"}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := d.RequestAddress(&dipam.RequestAddressRequest{PoolID: pool.PoolID})
	if err != nil || res.Address != "10.0.2.201/24" {
		t.Fatalf("after release, next = %+v, %v; want 10.0.2.201/24 (no immediate reuse)", res, err)
	}
	if _, err := d.RequestAddress(&dipam.RequestAddressRequest{PoolID: "vr-missing"}); err == nil || !strings.Contains(err.Error(), "re-create") {
		t.Fatalf("unknown pool: %v", err)
	}
}

func TestGatewayOption(t *testing.T) {
	d, db := newTestIPAM(t, newFakeVPC())
	pool, _ := d.RequestPool(&dipam.RequestPoolRequest{Pool: "10.0.2.0/24"})
	res, err := d.RequestAddress(&dipam.RequestAddressRequest{PoolID: pool.PoolID, Address: "10.0.2.254",
		Options: map[string]string{"RequestAddressType": "com.docker.network.gateway"}})
	if err != nil || res.Address != "10.0.2.254/24" {
		t.Fatalf("--gateway = %+v, %v", res, err)
	}
	p, _ := db.Pool(pool.PoolID)
	if p.Gateway.String() != "10.0.2.254" {
		t.Fatalf("pool gateway = %v", p.Gateway)
	}
	res, _ = d.RequestAddress(&dipam.RequestAddressRequest{PoolID: pool.PoolID})
	if res.Address != "10.0.2.1/24" {
		t.Fatalf("with --gateway .254 the first container gets %s; want 10.0.2.1/24", res.Address)
	}
}

func TestReleasePool(t *testing.T) {
	vpc := newFakeVPC()
	d, db := newTestIPAM(t, vpc)
	pool, _ := d.RequestPool(&dipam.RequestPoolRequest{})
	vpc.fail = errors.New("503 service unavailable")
	if err := d.ReleasePool(&dipam.ReleasePoolRequest{PoolID: pool.PoolID}); err == nil {
		t.Fatal("ReleasePool succeeded while the cloud failed")
	}
	if p, err := db.Pool(pool.PoolID); err != nil || !p.Releasing {
		t.Fatalf("pool after a failed release = %+v, %v; want it kept, marked Releasing", p, err)
	}
	// Docker never asks again: the reconcile loop finishes the release.
	vpc.fail = nil
	if err := d.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(vpc.routes) != 0 {
		t.Fatalf("routes left: %v", vpc.routes)
	}
	if _, err := db.Pool(pool.PoolID); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("released pool kept: %v", err)
	}
	if err := d.ReleasePool(&dipam.ReleasePoolRequest{PoolID: pool.PoolID}); err != nil {
		t.Fatalf("ReleasePool of a released pool: %v", err)
	}
}

func TestReconcile(t *testing.T) {
	vpc := newFakeVPC("10.9.0.0/24")
	d, db := newTestIPAM(t, vpc)
	kept, _ := d.RequestPool(&dipam.RequestPoolRequest{})       // 10.0.0.0/24, normal
	deleted, _ := d.RequestPool(&dipam.RequestPoolRequest{})    // 10.0.1.0/24, someone deletes its route
	delete(vpc.routes, netip.MustParsePrefix(deleted.Pool))     // in the console
	vpc.routes[netip.MustParsePrefix("10.0.7.0/24")] = "vr-old" // orphan of an earlier run
	// A claim the plugin died in the middle of: saved as Claiming, route made.
	_ = db.PutPool(state.Pool{ID: "vr-crash", Subnet: netip.MustParsePrefix("10.0.8.0/24"), Claiming: true})
	vpc.routes[netip.MustParsePrefix("10.0.8.0/24")] = "vr-crash"

	if err := d.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"10.9.0.0/24": "other:ecs-2",
		kept.Pool:     kept.PoolID,
		deleted.Pool:  deleted.PoolID,
	}
	if len(vpc.routes) != len(want) {
		t.Fatalf("after reconcile routes = %v; want %v", vpc.routes, want)
	}
	for p, o := range want {
		if vpc.routes[netip.MustParsePrefix(p)] != o {
			t.Errorf("route %s owned by %q; want %q", p, vpc.routes[netip.MustParsePrefix(p)], o)
		}
	}
	if _, err := db.Pool("vr-crash"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("unfinished pool kept: %v", err)
	}
}

func TestClaimForNetwork(t *testing.T) {
	vpc := newFakeVPC("10.0.3.0/24")
	d, _ := newTestIPAM(t, vpc, "172.17.0.0/16")
	const owner = "net-abcdef012345"
	if err := d.ClaimForNetwork(context.Background(), owner, netip.MustParsePrefix("10.0.2.0/24")); err != nil {
		t.Fatalf("ClaimForNetwork: %v", err)
	}
	if vpc.routes[netip.MustParsePrefix("10.0.2.0/24")] != owner {
		t.Fatalf("routes = %v", vpc.routes)
	}
	for _, bad := range []string{"10.0.3.0/24", "172.17.0.0/16"} {
		err := d.ClaimForNetwork(context.Background(), "net-n2", netip.MustParsePrefix(bad))
		if err == nil || !strings.Contains(err.Error(), "--ipam-driver vpcroute") {
			t.Errorf("ClaimForNetwork(%s) = %v; want an error suggesting --ipam-driver vpcroute", bad, err)
		}
	}
	if err := d.ReleaseForNetwork(context.Background(), netip.MustParsePrefix("10.0.2.0/24"), owner); err != nil {
		t.Fatal(err)
	}
	if _, ok := vpc.routes[netip.MustParsePrefix("10.0.2.0/24")]; ok {
		t.Fatal("route not released")
	}
}

package huawei

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/internal/sim"
)

// closedURL is an address where nothing listens: a host without a metadata service.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestIdentityFromMetadata(t *testing.T) {
	b := newBed(t, nil)
	c, _ := b.client(t, "ecs1", nil)
	id := c.Identity()
	want := cloud.Identity{
		InstanceID: ecs1ID, Hostname: "ecs1", VPCID: testVPC,
		VPCCIDRs: []netip.Prefix{mustPrefix("192.168.0.0/24"), mustPrefix("192.168.1.0/24")},
	}
	if id.InstanceID != want.InstanceID || id.Hostname != want.Hostname || id.VPCID != want.VPCID || !slices.Equal(id.VPCCIDRs, want.VPCCIDRs) {
		t.Errorf("Identity() = %+v, want %+v (system ranges 100.64.0.0/10 and 198.19.128.0/20 are not the VPC's)", id, want)
	}
	if c.region != "sa-brazil-1" || c.project != testProject || c.portID != port1ID || c.subnet != subnetA {
		t.Errorf("region, project, port, subnet = %s %s %s %s", c.region, c.project, c.portID, c.subnet)
	}
	// Identity returns a copy: callers cannot change the client's.
	id.VPCCIDRs[0] = mustPrefix("10.0.0.0/8")
	if c.Identity().VPCCIDRs[0] != want.VPCCIDRs[0] {
		t.Error("Identity() shares its VPCCIDRs slice with the client")
	}
}

func TestIdentityOverridesWithoutMetadata(t *testing.T) {
	b := newBed(t, nil)
	c, _ := b.client(t, "ecs2", func(cfg *Config) {
		cfg.MetadataURL = closedURL(t)
		cfg.InstanceID, cfg.ProjectID, cfg.Region, cfg.VPCID, cfg.PortID = ecs1ID, testProject, "sa-brazil-1", testVPC, port1ID
		cfg.Hostname = "docker-host-1"
		cfg.VPCCIDRs = []netip.Prefix{mustPrefix("192.168.0.0/16")}
	})
	id := c.Identity()
	if id.InstanceID != ecs1ID || id.Hostname != "docker-host-1" || !slices.Equal(id.VPCCIDRs, []netip.Prefix{mustPrefix("192.168.0.0/16")}) {
		t.Errorf("Identity() = %+v, want the overrides", id)
	}
	got, err := c.Claim(context.Background(), cloud.ClaimRequest{Owner: "pool1", Want: mustPrefix("10.0.2.0/24")})
	if err != nil {
		t.Fatalf("Claim with overridden identity: %v", err)
	}
	rs := customRoutes(b.routes(t, ""))
	if len(rs) != 1 || rs[0].Destination != got.String() || rs[0].NextHop != ecs1ID || rs[0].Description != "vpcroute owner=pool1 host=docker-host-1" {
		t.Errorf("routes after claim:\n%s", describeRoutes(rs))
	}
}

func TestIdentityOverridesMetadata(t *testing.T) {
	b := newBed(t, nil)
	// Metadata says ecs2; the settings say the instance is ecs3's.
	c, _ := b.client(t, "ecs2", func(cfg *Config) { cfg.InstanceID = ecs3ID })
	if got := c.Identity().InstanceID; got != ecs3ID {
		t.Errorf("InstanceID = %s, want the override %s", got, ecs3ID)
	}
	if c.Identity().Hostname != "ecs2" {
		t.Errorf("Hostname = %s, want ecs2 from the metadata", c.Identity().Hostname)
	}
}

func TestStartupErrorWithoutMetadata(t *testing.T) {
	b := newBed(t, nil)
	tests := []struct {
		name        string
		mutate      func(*Config)
		wantMissing []string
		notMissing  []string
	}{
		{
			name:        "nothing given",
			mutate:      func(*Config) {},
			wantMissing: []string{"VPCROUTE_INSTANCE_ID", "VPCROUTE_PROJECT_ID", "VPCROUTE_REGION", "VPCROUTE_VPC_ID", "VPCROUTE_PORT_ID"},
		},
		{
			name: "only the port missing",
			mutate: func(c *Config) {
				c.InstanceID, c.ProjectID, c.Region, c.VPCID = ecs1ID, testProject, "sa-brazil-1", testVPC
			},
			wantMissing: []string{"VPCROUTE_PORT_ID"},
			notMissing:  []string{"VPCROUTE_INSTANCE_ID", "VPCROUTE_REGION"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := b.config(t, "ecs1", nil)
			cfg.MetadataURL = closedURL(t)
			tt.mutate(&cfg)
			_, err := newClient(context.Background(), cfg, testTiming(), http.DefaultTransport)
			if err == nil {
				t.Fatal("New succeeded without metadata and without the settings")
			}
			msg := err.Error()
			for _, s := range append(tt.wantMissing, "VPCROUTE_CLOUD=none", cfg.MetadataURL) {
				if !strings.Contains(msg, s) {
					t.Errorf("error does not mention %s: %v", s, err)
				}
			}
			for _, s := range tt.notMissing {
				if strings.Contains(msg, s) {
					t.Errorf("error asks for %s, which was given: %v", s, err)
				}
			}
		})
	}
}

func TestRouteTableDiscovery(t *testing.T) {
	tests := []struct {
		name string
		// setup adds tables and returns the settings' table and the expected one
		setup   func(b *bed) (configured, want string)
		wantErr string
	}{
		{
			name:  "default table",
			setup: func(b *bed) (string, string) { return "", b.sim.DefaultRouteTableID() },
		},
		{
			name: "table associated with the ECS's subnet",
			setup: func(b *bed) (string, string) {
				b.sim.AddRouteTable("rtb-other", subnetB)
				return "", b.sim.AddRouteTable("rtb-ecs1", subnetA)
			},
		},
		{
			name: "explicit table",
			setup: func(b *bed) (string, string) {
				b.sim.AddRouteTable("rtb-ecs1", subnetA)
				id := b.sim.AddRouteTable("rtb-chosen")
				return id, id
			},
		},
		{
			name:    "explicit table not in the VPC",
			setup:   func(b *bed) (string, string) { return "0000dead-0000-4000-8000-000000000000", "" },
			wantErr: "VPCROUTE_ROUTE_TABLE_ID",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBed(t, nil)
			configured, want := tt.setup(b)
			cfg := b.config(t, "ecs1", nil)
			cfg.RouteTableID = configured
			c, err := newClient(context.Background(), cfg, testTiming(), http.DefaultTransport)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New: err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if c.RouteTableID() != want {
				t.Fatalf("RouteTableID() = %s, want %s", c.RouteTableID(), want)
			}
			p, err := c.Claim(context.Background(), cloud.ClaimRequest{Owner: "p1", Want: mustPrefix("10.0.2.0/24")})
			if err != nil {
				t.Fatalf("Claim: %v", err)
			}
			if rs := customRoutes(b.routes(t, want)); len(rs) != 1 || rs[0].Destination != p.String() {
				t.Errorf("route not in table %s:\n%s", want, describeRoutes(rs))
			}
		})
	}
}

func TestClaimReleaseOwned(t *testing.T) {
	b := newBed(t, nil)
	c1, _ := b.client(t, "ecs1", nil)
	c2, _ := b.client(t, "ecs2", nil)
	ctx := context.Background()
	pool := mustPrefix("10.0.0.0/16")

	p1, err := c1.Claim(ctx, cloud.ClaimRequest{Owner: "pool-a", Pick: firstFree(pool)})
	if err != nil || p1 != mustPrefix("10.0.0.0/24") {
		t.Fatalf("first automatic claim = %v, %v; want 10.0.0.0/24", p1, err)
	}
	p2, err := c2.Claim(ctx, cloud.ClaimRequest{Owner: "pool-b", Pick: firstFree(pool)})
	if err != nil || p2 != mustPrefix("10.0.1.0/24") {
		t.Fatalf("ecs2's automatic claim = %v, %v; want 10.0.1.0/24 (10.0.0.0/24 is ecs1's)", p2, err)
	}
	rs := customRoutes(b.routes(t, ""))
	wantRoutes := []sim.Route{
		{Type: "ecs", Destination: "10.0.0.0/24", NextHop: ecs1ID, Description: "vpcroute owner=pool-a host=ecs1"},
		{Type: "ecs", Destination: "10.0.1.0/24", NextHop: ecs2ID, Description: "vpcroute owner=pool-b host=ecs2"},
	}
	if !slices.Equal(rs, wantRoutes) {
		t.Fatalf("routes:\n%swant:\n%s", describeRoutes(rs), describeRoutes(wantRoutes))
	}

	owned, err := c1.Owned(ctx)
	if err != nil || !slices.Equal(owned, []cloud.Route{{Destination: p1, Owner: "pool-a"}}) {
		t.Errorf("ecs1 Owned() = %v, %v; want only its own route", owned, err)
	}
	// What a claim's Pick is told is taken: every table's routes and the VPC's subnets.
	var taken []netip.Prefix
	_, err = c2.Claim(ctx, cloud.ClaimRequest{Owner: "pool-c", Pick: func(tk []netip.Prefix) (netip.Prefix, error) {
		taken = tk
		return netip.Prefix{}, errors.New("only looking")
	}})
	if err == nil {
		t.Fatal("a claim whose Pick failed succeeded")
	}
	for _, p := range []netip.Prefix{p1, p2, mustPrefix("192.168.0.0/24"), mustPrefix("192.168.1.0/24")} {
		if !slices.Contains(taken, p) {
			t.Errorf("Pick was told taken = %v, which lacks %s", taken, p)
		}
	}

	// Releasing ecs2's route from ecs1, or with the wrong owner, leaves it alone.
	if err := c1.Release(ctx, p2, "pool-b"); err != nil {
		t.Errorf("Release of another host's route: %v", err)
	}
	if err := c2.Release(ctx, p2, "pool-other"); err != nil {
		t.Errorf("Release with another owner: %v", err)
	}
	if n := len(customRoutes(b.routes(t, ""))); n != 2 {
		t.Fatalf("a release removed a route that was not the caller's: %d routes left", n)
	}
	if err := c1.Release(ctx, p1, "pool-a"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if rs := customRoutes(b.routes(t, "")); !slices.Equal(rs, wantRoutes[1:]) {
		t.Fatalf("after release:\n%s", describeRoutes(rs))
	}
	if err := c1.Release(ctx, p1, "pool-a"); err != nil {
		t.Errorf("releasing a route that is gone: %v, want nil", err)
	}
	if owned, _ := c1.Owned(ctx); len(owned) != 0 {
		t.Errorf("Owned() after release = %v", owned)
	}
}

func TestClaimIdempotent(t *testing.T) {
	b := newBed(t, nil)
	c, _ := b.client(t, "ecs1", nil)
	ctx := context.Background()
	want := mustPrefix("10.0.2.0/24")
	for i := 0; i < 2; i++ {
		got, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "pool-a", Want: want})
		if err != nil || got != want {
			t.Fatalf("explicit claim #%d = %v, %v", i+1, got, err)
		}
	}
	// An automatic claim retried after a crash gets the same subnet back.
	auto1, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "pool-b", Pick: firstFree(mustPrefix("10.0.0.0/16"))})
	if err != nil {
		t.Fatal(err)
	}
	auto2, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "pool-b", Pick: firstFree(mustPrefix("10.0.0.0/16"))})
	if err != nil || auto2 != auto1 {
		t.Fatalf("repeated automatic claim = %v, %v; want %v again", auto2, err, auto1)
	}
	if rs := customRoutes(b.routes(t, "")); len(rs) != 2 {
		t.Fatalf("repeated claims made duplicate routes:\n%s", describeRoutes(rs))
	}
	// The same subnet for another owner of this host is a conflict.
	_, err = c.Claim(ctx, cloud.ClaimRequest{Owner: "pool-c", Want: want})
	var ce *cloud.ConflictError
	if !errors.As(err, &ce) || ce.NextHop != ecs1ID || !strings.Contains(ce.Description, "owner=pool-a") {
		t.Fatalf("claim of this host's subnet for another owner: %v, want ConflictError naming pool-a", err)
	}
}

func TestClaimConflicts(t *testing.T) {
	b := newBed(t, func(c *sim.Config) {
		c.Routes = []sim.Route{{Type: "ecs", Destination: "10.8.0.0/16", NextHop: ecs3ID, Description: "peering to office"}}
	})
	c1, _ := b.client(t, "ecs1", nil)
	c2, _ := b.client(t, "ecs2", nil)
	ctx := context.Background()
	if _, err := c2.Claim(ctx, cloud.ClaimRequest{Owner: "pool-b", Want: mustPrefix("10.0.3.0/24")}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		want         string
		wantExisting string
		wantNextHop  string
		wantDesc     string
	}{
		{"10.0.3.0/24", "10.0.3.0/24", ecs2ID, "vpcroute owner=pool-b host=ecs2"},
		{"10.0.0.0/16", "10.0.3.0/24", ecs2ID, "vpcroute owner=pool-b host=ecs2"},
		{"10.8.1.0/24", "10.8.0.0/16", ecs3ID, "peering to office"},
		{"192.168.0.0/25", "192.168.0.0/24", "-", ""},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			before := len(b.sim.Requests())
			_, err := c1.Claim(ctx, cloud.ClaimRequest{Owner: "pool-a", Want: mustPrefix(tt.want)})
			var ce *cloud.ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("Claim(%s) = %v, want *cloud.ConflictError", tt.want, err)
			}
			if ce.Existing.String() != tt.wantExisting || ce.NextHop != tt.wantNextHop || ce.Description != tt.wantDesc {
				t.Errorf("conflict = %+v, want existing %s next hop %s description %q", ce, tt.wantExisting, tt.wantNextHop, tt.wantDesc)
			}
			if !strings.Contains(err.Error(), tt.wantExisting) {
				t.Errorf("message %q does not name %s", err, tt.wantExisting)
			}
			for _, r := range b.sim.Requests()[before:] {
				if r.Method == http.MethodPut {
					t.Errorf("a conflicting claim wrote to the API: %s %s", r.Method, r.Path)
				}
			}
		})
	}
}

func TestQuotaFull(t *testing.T) {
	b := newBed(t, func(c *sim.Config) {
		c.RouteQuota = 3
		c.Routes = []sim.Route{
			{Type: "ecs", Destination: "10.8.0.0/16", NextHop: ecs3ID, Description: "office"},
			{Type: "ecs", Destination: "10.9.0.0/16", NextHop: ecs3ID, Description: "lab"},
		}
	})
	c, logs := b.client(t, "ecs1", nil)
	ctx := context.Background()
	pick := firstFree(mustPrefix("10.0.0.0/16"))
	if _, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "pool-a", Pick: pick}); err != nil {
		t.Fatalf("claim of the last free route: %v", err)
	}
	if !strings.Contains(logs.String(), "nearly full") {
		t.Errorf("no warning at 3 of 3 routes; logs:\n%s", logs)
	}
	b.sim.ResetRequests()
	_, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "pool-b", Pick: pick})
	if !errors.Is(err, ErrQuotaFull) {
		t.Fatalf("claim on a full table = %v, want ErrQuotaFull", err)
	}
	for _, s := range []string{b.sim.DefaultRouteTableID(), "3 routes", "quota of 3", "VPCROUTE_ROUTE_TABLE_ID", "raise the quota"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not say %q: %v", s, err)
		}
	}
	if n := countMatching(b.requests(), "PUT "); n != 0 {
		t.Errorf("the client wrote %d times to a table it knew was full", n)
	}
	// The user raises the quota, as the error says: the next claim works without a restart.
	b.sim.SetRouteQuota(4)
	if _, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "pool-c", Pick: pick}); err != nil {
		t.Fatalf("claim after the quota was raised: %v", err)
	}
	// The existing claim is still idempotent on a full table.
	if _, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "pool-a", Pick: pick}); err != nil {
		t.Errorf("re-claim on a full table: %v", err)
	}
}

func TestQuotaRefusedByAPI(t *testing.T) {
	// The client could not read the quota (no permission): the API's refusal
	// still gives the user the quota message.
	b := newBed(t, func(c *sim.Config) { c.RouteQuota = 1 })
	b.sim.InjectFault(sim.Fault{Status: http.StatusForbidden, Code: "VPC.0003", PathContains: "/quotas"})
	c, logs := b.client(t, "ecs1", nil)
	if !strings.Contains(logs.String(), "could not read the route quota") {
		t.Errorf("no warning about the unreadable quota:\n%s", logs)
	}
	ctx := context.Background()
	if _, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "a", Want: mustPrefix("10.0.1.0/24")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "b", Want: mustPrefix("10.0.2.0/24")})
	if !errors.Is(err, ErrQuotaFull) || !strings.Contains(err.Error(), "raise the quota") {
		t.Fatalf("claim beyond the quota = %v, want ErrQuotaFull", err)
	}
}

func TestOneReadOneWrite(t *testing.T) {
	b := newBed(t, nil)
	c, _ := b.client(t, "ecs1", nil)
	ctx := context.Background()
	table := "/v1/" + testProject + "/routetables/" + b.sim.DefaultRouteTableID()

	b.sim.ResetRequests()
	p, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "pool-a", Pick: firstFree(mustPrefix("10.0.0.0/16"))})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.requests(), []string{"GET " + table, "PUT " + table}; !slices.Equal(got, want) {
		t.Errorf("claim made requests %q, want %q", got, want)
	}

	b.sim.ResetRequests()
	if err := c.Release(ctx, p, "pool-a"); err != nil {
		t.Fatal(err)
	}
	if got, want := b.requests(), []string{"GET " + table, "PUT " + table}; !slices.Equal(got, want) {
		t.Errorf("release made requests %q, want %q", got, want)
	}

	// A claim reads afresh even with a fresh cache: another host's route is seen.
	c2, _ := b.client(t, "ecs2", nil)
	if _, err := c2.Claim(ctx, cloud.ClaimRequest{Owner: "pool-b", Want: mustPrefix("10.0.5.0/24")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Claim(ctx, cloud.ClaimRequest{Owner: "pool-a", Want: mustPrefix("10.0.5.0/24")})
	var ce *cloud.ConflictError
	if !errors.As(err, &ce) || ce.NextHop != ecs2ID {
		t.Errorf("claim of a subnet another host just took = %v, want a conflict naming %s", err, ecs2ID)
	}
}

func TestSrcDstCheck(t *testing.T) {
	t.Run("on, warn", func(t *testing.T) {
		b := newBed(t, func(c *sim.Config) { c.ECSs[0].SrcDstCheck = true })
		c, logs := b.client(t, "ecs1", nil)
		if !c.Identity().SrcDstCheckOn {
			t.Error("SrcDstCheckOn() = false for a port without 1.1.1.1/0")
		}
		if !strings.Contains(logs.String(), "source/destination check is ON") || !strings.Contains(logs.String(), "other hosts") {
			t.Errorf("no clear warning; logs:\n%s", logs)
		}
		if !b.sim.SrcDstCheck(ecs1ID) {
			t.Error("warn mode changed the port")
		}
	})
	t.Run("off", func(t *testing.T) {
		b := newBed(t, nil)
		c, logs := b.client(t, "ecs1", nil)
		if c.Identity().SrcDstCheckOn || strings.Contains(logs.String(), "check is ON") {
			t.Errorf("SrcDstCheckOn() = %v for a port with 1.1.1.1/0; logs:\n%s", c.Identity().SrcDstCheckOn, logs)
		}
	})
	t.Run("on, disable", func(t *testing.T) {
		b := newBed(t, func(c *sim.Config) { c.ECSs[0].SrcDstCheck = true })
		// A pair someone configured for a virtual IP must survive.
		warn, _ := b.client(t, "ecs1", nil)
		ctx := context.Background()
		if _, err := warn.api.updatePortPairs(ctx, port1ID, []portPair{{IpAddress: "192.168.0.100"}}); err != nil {
			t.Fatal(err)
		}
		c, _ := b.client(t, "ecs1", func(cfg *Config) { cfg.SrcDstCheck = SrcDstCheckDisable })
		if c.Identity().SrcDstCheckOn || b.sim.SrcDstCheck(ecs1ID) {
			t.Fatalf("check still on after disable: client %v, sim %v", c.Identity().SrcDstCheckOn, b.sim.SrcDstCheck(ecs1ID))
		}
		p, err := c.api.showPort(ctx, port1ID)
		if err != nil {
			t.Fatal(err)
		}
		var ips []string
		for _, pr := range p.Pairs {
			ips = append(ips, pr.IpAddress)
		}
		slices.Sort(ips)
		if !slices.Equal(ips, []string{"1.1.1.1/0", "192.168.0.100"}) {
			t.Errorf("allowed address pairs = %v, want the existing one kept and 1.1.1.1/0 added", ips)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{SrcDstCheck: "off"}, "VPCROUTE_SRC_DST_CHECK"},
		{Config{AK: "x"}, "HUAWEICLOUD_SDK_SK"},
		{Config{VPCCIDRs: []netip.Prefix{mustPrefix("fd00::/64")}}, "VPCROUTE_VPC_CIDRS"},
	}
	for _, tt := range tests {
		_, err := New(context.Background(), tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tt.cfg, err, tt.want)
		}
	}
}

package huawei

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/check"
	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/internal/sim"
)

var pool = netip.MustParsePrefix("10.0.0.0/8")

func resultsByName(rs []check.Result) map[string]check.Result {
	out := map[string]check.Result{}
	for _, r := range rs {
		out[r.Name] = r
	}
	return out
}

func TestChecks(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*sim.Config)
		client func(*Config)
		after  func(*testing.T, *bed, *Client)
		want   map[string]string // check name -> status
		detail map[string]string // check name -> substring of detail or fix
	}{
		{name: "healthy ECS with an agency", mutate: func(c *sim.Config) {
			c.ECSs[0].Agency = true
			c.SecurityGroups = []sim.SecurityGroup{{ID: "sg-1", Rules: []sim.SecurityGroupRule{
				{Direction: "ingress", RemoteIPPrefix: "10.0.0.0/8"}, {Direction: "egress"}}}}
		}, client: func(c *Config) { c.AK, c.SK = "", "" },
			want: map[string]string{"metadata service": check.Pass, "credentials": check.Pass, "permission vpc:routeTables:get": check.Pass,
				"permission vpc:quotas:list": check.Pass, "permission vpc:routeTables:update": check.Skip, "source/destination check": check.Pass,
				"security groups": check.Pass, "route quota": check.Pass, "routes to instances that are gone": check.Pass, "clock": check.Pass},
			detail: map[string]string{"credentials": "agency"}},
		{name: "default security group, check on, a missing permission", mutate: func(c *sim.Config) {
			c.ECSs[0].SrcDstCheck = true
			c.Deny = []string{"vpc:quotas:list"}
		}, want: map[string]string{"security groups": check.Warn, "source/destination check": check.Fail, "permission vpc:quotas:list": check.Fail, "permission vpc:subnets:get": check.Pass},
			detail: map[string]string{"security groups": "10.0.0.0/8", "permission vpc:quotas:list": "grant vpc:quotas:list", "source/destination check": "VPCROUTE_SRC_DST_CHECK=disable"}},
		{name: "only web ports from the pool", mutate: func(c *sim.Config) {
			c.SecurityGroups = []sim.SecurityGroup{{ID: "sg-1", Rules: []sim.SecurityGroupRule{
				{Direction: "ingress", Protocol: "tcp", PortRangeMin: 80, PortRangeMax: 443, RemoteIPPrefix: "10.0.0.0/8"}}}}
		}, want: map[string]string{"security groups": check.Warn}, detail: map[string]string{"security groups": "tcp 80-443 from 10.0.0.0/8"}},
		{name: "identity and AK/SK from the settings", client: func(c *Config) {
			c.InstanceID, c.ProjectID, c.Region, c.VPCID, c.PortID = ecs1ID, testProject, "sa-brazil-1", testVPC, port1ID
			c.MetadataURL = "http://127.0.0.1:1"
		}, want: map[string]string{"metadata service": check.Skip, "credentials": check.Pass}},
		{name: "a route to a deleted instance, a nearly full table", mutate: func(c *sim.Config) {
			c.RouteQuota = 3
			c.Routes = []sim.Route{{Type: "ecs", Destination: "10.0.7.0/24", NextHop: ecs2ID, Description: "vpcroute owner=vr-aaaaaaaaaaaa host=ecs2"}}
		}, after: func(t *testing.T, b *bed, c *Client) {
			// ECS 2 is deleted: its port goes (the emulator drops it from the config).
			if _, err := c.Claim(context.Background(), cloud.ClaimRequest{Owner: "vr-b", Want: netip.MustParsePrefix("10.0.8.0/24")}); err != nil {
				t.Fatal(err)
			}
			b.sim.DeleteECS(ecs2ID)
		}, want: map[string]string{"routes to instances that are gone": check.Warn, "route quota": check.Pass},
			detail: map[string]string{"routes to instances that are gone": "10.0.7.0/24 to " + ecs2ID}},
		{name: "clock off by 20 minutes", after: func(t *testing.T, b *bed, c *Client) { b.clock.Advance(20 * time.Minute) },
			want: map[string]string{"credentials": check.Fail, "clock": check.Fail}, detail: map[string]string{"clock": "signatures are refused past 15 minutes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBed(t, tt.mutate)
			c, _ := b.client(t, "ecs1", tt.client)
			if tt.after != nil {
				tt.after(t, b, c)
			}
			got := resultsByName(c.Checks(context.Background(), pool))
			for name, status := range tt.want {
				if got[name].Status != status {
					t.Errorf("%s = %s (%s); want %s", name, got[name].Status, got[name].Detail, status)
				}
			}
			for name, sub := range tt.detail {
				if r := got[name]; !strings.Contains(r.Detail+" "+r.Fix, sub) {
					t.Errorf("%s says %q / %q; want %q in it", name, r.Detail, r.Fix, sub)
				}
			}
			for _, r := range got {
				if (r.Status == check.Fail || r.Status == check.Warn) && r.Fix == "" {
					t.Errorf("%s is %s without a fix", r.Name, r.Status)
				}
			}
		})
	}
}

func TestTableAndReleaseGone(t *testing.T) {
	b := newBed(t, func(c *sim.Config) {
		c.Routes = []sim.Route{{Type: "ecs", Destination: "10.0.7.0/24", NextHop: ecs2ID, Description: "vpcroute owner=vr-aaaaaaaaaaaa host=ecs2"},
			{Type: "ecs", Destination: "10.0.6.0/24", NextHop: ecs3ID, Description: "vpcroute owner=vr-cccccccccccc host=ecs3"}}
	})
	c, _ := b.client(t, "ecs1", nil)
	if _, err := c.Claim(context.Background(), cloud.ClaimRequest{Owner: "vr-mine", Want: netip.MustParsePrefix("10.0.8.0/24"), Name: "web"}); err != nil {
		t.Fatal(err)
	}
	b.sim.DeleteECS(ecs2ID)
	table, err := c.Table(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byDest := map[string]cloud.TableRoute{}
	for _, r := range table.Routes {
		byDest[r.Destination.String()] = r
	}
	if r := byDest["10.0.8.0/24"]; !r.Mine || r.Owner != "vr-mine" || r.Gone || !strings.Contains(r.Description, "net=web") {
		t.Errorf("own route = %+v", r)
	}
	if r := byDest["10.0.7.0/24"]; r.Mine || !r.Gone {
		t.Errorf("route to the deleted ECS 2 = %+v; want it Gone", r)
	}
	if r := byDest["10.0.6.0/24"]; r.Gone {
		t.Errorf("route to the running ECS 3 = %+v; want it not Gone", r)
	}
	if table.Used != 3 || table.Quota != 200 {
		t.Errorf("table used %d of %d", table.Used, table.Quota)
	}
	if err := c.ReleaseGone(context.Background(), byDest["10.0.6.0/24"]); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("ReleaseGone of a running instance's route = %v; want a refusal", err)
	}
	if err := c.ReleaseGone(context.Background(), byDest["10.0.7.0/24"]); err != nil {
		t.Fatal(err)
	}
	after, _ := c.Table(context.Background())
	if len(after.Routes) != len(table.Routes)-1 {
		t.Errorf("after ReleaseGone: %+v", after.Routes)
	}
}

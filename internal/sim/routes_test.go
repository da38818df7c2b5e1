package sim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	vpc "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/vpc/v2"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/vpc/v2/model"
)

const (
	ecs1ID = "ecs00001-0000-4000-8000-000000000001"
	ecs2ID = "ecs00002-0000-4000-8000-000000000002"
)

func add(typ, dest, hop, desc string) model.AddRouteTableRoute {
	r := model.AddRouteTableRoute{Type: typ, Destination: dest, Nexthop: hop}
	if desc != "" {
		r.Description = &desc
	}
	return r
}

func update(c *vpc.VpcClient, table string, a []model.AddRouteTableRoute, m []model.ModRouteTableRoute, d []model.DelRouteTableRoute) (*model.UpdateRouteTableResponse, error) {
	act := &model.RouteTableRouteAction{}
	if a != nil {
		act.Add = &a
	}
	if m != nil {
		act.Mod = &m
	}
	if d != nil {
		act.Del = &d
	}
	return c.UpdateRouteTable(&model.UpdateRouteTableRequest{RoutetableId: table,
		Body: &model.UpdateRoutetableReqBody{Routetable: &model.UpdateRouteTableReq{Routes: act}}})
}

func show(t *testing.T, c *vpc.VpcClient, table string) []model.RouteTableRoute {
	t.Helper()
	r, err := c.ShowRouteTable(&model.ShowRouteTableRequest{RoutetableId: table})
	if err != nil {
		t.Fatalf("show route table %s: %v", table, err)
	}
	return r.Routetable.Routes
}

func routeStrings(rs []model.RouteTableRoute) []string {
	var out []string
	for _, r := range rs {
		d := ""
		if r.Description != nil {
			d = *r.Description
		}
		out = append(out, fmt.Sprintf("%s %s %s %q", r.Type, r.Destination, r.Nexthop, d))
	}
	return out
}

func TestShowRouteTableHasLocalRoutes(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Routes = []Route{{Type: "peering", Destination: "172.16.0.0/16", NextHop: "peer-1", Description: "to the office"}}
	})
	got := routeStrings(show(t, e.sdk(t), e.sim.DefaultRouteTableID()))
	want := []string{
		`local 192.168.0.0/24 - ""`,
		`local 100.64.0.0/10 - ""`,
		`local 198.19.128.0/20 - ""`,
		`peering 172.16.0.0/16 peer-1 "to the office"`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("routes:\n got %q\nwant %q", got, want)
	}
}

func TestUpdateRouteTableDeltas(t *testing.T) {
	e := newEnv(t, nil)
	c := e.sdk(t)
	id := e.sim.DefaultRouteTableID()
	locals := 3

	resp, err := update(c, id, []model.AddRouteTableRoute{
		add("ecs", "10.0.2.0/24", ecs1ID, "vpcroute owner=p1 host=ecs1"),
		add("ecs", "10.0.3.0/24", ecs2ID, "vpcroute owner=p1 host=ecs2"),
	}, nil, nil)
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	if got := routeStrings(resp.Routetable.Routes[locals:]); !slices.Equal(got, []string{
		`ecs 10.0.2.0/24 ` + ecs1ID + ` "vpcroute owner=p1 host=ecs1"`,
		`ecs 10.0.3.0/24 ` + ecs2ID + ` "vpcroute owner=p1 host=ecs2"`,
	}) {
		t.Fatalf("after add: %q", got)
	}

	// mod changes next hop and keeps the description when none is given; del
	// removes by destination alone; both in one request.
	_, err = update(c, id, nil,
		[]model.ModRouteTableRoute{{Type: "ecs", Destination: "10.0.2.0/24", Nexthop: ecs2ID}},
		[]model.DelRouteTableRoute{{Destination: "10.0.3.0/24"}})
	if err != nil {
		t.Fatalf("mod+del: %v", err)
	}
	if got := routeStrings(show(t, c, id)[locals:]); !slices.Equal(got, []string{
		`ecs 10.0.2.0/24 ` + ecs2ID + ` "vpcroute owner=p1 host=ecs1"`,
	}) {
		t.Fatalf("after mod+del: %q", got)
	}

	// del and add of one destination in one request replaces the route.
	_, err = update(c, id, []model.AddRouteTableRoute{add("ecs", "10.0.2.0/24", ecs1ID, "new")}, nil,
		[]model.DelRouteTableRoute{{Destination: "10.0.2.0/24"}})
	if err != nil {
		t.Fatalf("del+add: %v", err)
	}
	routes, _ := e.sim.RouteTable(id)
	if got := routes[locals:]; !slices.Equal(got, []Route{{Type: "ecs", Destination: "10.0.2.0/24", NextHop: ecs1ID, Description: "new"}}) {
		t.Fatalf("Sim.RouteTable after del+add: %+v", got)
	}
}

func TestUpdateRouteTableErrors(t *testing.T) {
	long := strings.Repeat("a", 256)
	tests := []struct {
		name       string
		table      string // default table when empty
		add        []model.AddRouteTableRoute
		mod        []model.ModRouteTableRoute
		del        []model.DelRouteTableRoute
		quota      int
		wantStatus int
		wantCode   string
	}{
		{name: "duplicate of an existing route", add: []model.AddRouteTableRoute{add("ecs", "10.9.0.0/24", ecs2ID, "")},
			wantStatus: 400, wantCode: "VPC.2812"},
		{name: "duplicate within the request", add: []model.AddRouteTableRoute{add("ecs", "10.0.5.0/24", ecs1ID, ""), add("ecs", "10.0.5.0/24", ecs2ID, "")},
			wantStatus: 400, wantCode: "VPC.2812"},
		{name: "duplicate across mod and add", add: []model.AddRouteTableRoute{add("ecs", "10.9.0.0/24", ecs1ID, "")},
			mod: []model.ModRouteTableRoute{{Type: "ecs", Destination: "10.9.0.0/24", Nexthop: ecs2ID}}, wantStatus: 400, wantCode: "VPC.2812"},
		{name: "equal to a subnet", add: []model.AddRouteTableRoute{add("ecs", "192.168.0.0/24", ecs1ID, "")},
			wantStatus: 400, wantCode: "VPC.2809"},
		{name: "inside a subnet", add: []model.AddRouteTableRoute{add("ecs", "192.168.0.128/25", ecs1ID, "")},
			wantStatus: 400, wantCode: "VPC.2809"},
		{name: "inside a system range", add: []model.AddRouteTableRoute{add("ecs", "100.64.3.0/24", ecs1ID, "")},
			wantStatus: 400, wantCode: "VPC.2809"},
		{name: "ecs next hop not in the VPC", add: []model.AddRouteTableRoute{add("ecs", "10.0.6.0/24", "no-such-ecs", "")},
			wantStatus: 400, wantCode: "VPC.2804"},
		{name: "not a network address", add: []model.AddRouteTableRoute{add("ecs", "10.0.6.5/24", ecs1ID, "")},
			wantStatus: 400, wantCode: "VPC.2801"},
		{name: "bad prefix length", add: []model.AddRouteTableRoute{add("ecs", "10.0.6.0/33", ecs1ID, "")},
			wantStatus: 400, wantCode: "VPC.2801"},
		{name: "type local", add: []model.AddRouteTableRoute{add("local", "10.0.6.0/24", "-", "")},
			wantStatus: 400, wantCode: "VPC.2801"},
		{name: "unknown type", add: []model.AddRouteTableRoute{add("teleport", "10.0.6.0/24", "x", "")},
			wantStatus: 400, wantCode: "VPC.2801"},
		{name: "description with angle bracket", add: []model.AddRouteTableRoute{add("ecs", "10.0.6.0/24", ecs1ID, "a<b")},
			wantStatus: 400, wantCode: "VPC.2801"},
		{name: "description of 256 characters", add: []model.AddRouteTableRoute{add("ecs", "10.0.6.0/24", ecs1ID, long)},
			wantStatus: 400, wantCode: "VPC.2801"},
		{name: "delete a missing route", del: []model.DelRouteTableRoute{{Destination: "10.0.7.0/24"}},
			wantStatus: 400, wantCode: "VPC.2810"},
		{name: "delete a local route", del: []model.DelRouteTableRoute{{Destination: "192.168.0.0/24"}},
			wantStatus: 400, wantCode: "VPC.2809"},
		{name: "modify a missing route", mod: []model.ModRouteTableRoute{{Type: "ecs", Destination: "10.0.7.0/24", Nexthop: ecs1ID}},
			wantStatus: 400, wantCode: "VPC.2810"},
		{name: "valid route with an invalid one is all rejected",
			add:        []model.AddRouteTableRoute{add("ecs", "10.0.8.0/24", ecs1ID, ""), add("ecs", "192.168.0.0/24", ecs1ID, "")},
			wantStatus: 400, wantCode: "VPC.2809"},
		{name: "unknown table", table: "00000000-0000-4000-8000-000000000000", add: []model.AddRouteTableRoute{add("ecs", "10.0.8.0/24", ecs1ID, "")},
			wantStatus: 404, wantCode: "VPC.2808"},
		{name: "quota full", quota: 2, add: []model.AddRouteTableRoute{add("ecs", "10.0.8.0/24", ecs1ID, ""), add("ecs", "10.0.9.0/24", ecs1ID, "")},
			wantStatus: 409, wantCode: "VPC.2813"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) {
				c.Routes = []Route{{Type: "ecs", Destination: "10.9.0.0/24", NextHop: ecs1ID, Description: "existing"}}
				c.RouteQuota = tc.quota
			})
			c := e.sdk(t)
			table := tc.table
			if table == "" {
				table = e.sim.DefaultRouteTableID()
			}
			before := e.sim.RouteTables()
			_, err := update(c, table, tc.add, tc.mod, tc.del)
			if err == nil {
				t.Fatalf("update succeeded, want %d %s", tc.wantStatus, tc.wantCode)
			}
			se := serviceError(t, err)
			if se.StatusCode != tc.wantStatus || se.ErrorCode != tc.wantCode {
				t.Fatalf("got %d %s (%s), want %d %s", se.StatusCode, se.ErrorCode, se.ErrorMessage, tc.wantStatus, tc.wantCode)
			}
			if se.RequestId == "" {
				t.Errorf("error without X-Request-Id")
			}
			if after := e.sim.RouteTables(); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("failed update changed the tables:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func TestUpdateRouteTableAccepts(t *testing.T) {
	tests := []struct {
		name string
		add  model.AddRouteTableRoute
	}{
		{"default route to a NAT gateway", add("nat", "0.0.0.0/0", "nat-1", "")},
		{"supernet of the VPC to a VPN", add("vpn", "192.0.0.0/8", "vpn-1", "")},
		{"description of 255 characters", add("ecs", "10.0.6.0/24", ecs1ID, strings.Repeat("x", 255))},
		{"host route", add("ecs", "10.0.6.7/32", ecs2ID, "")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			if _, err := update(e.sdk(t), e.sim.DefaultRouteTableID(), []model.AddRouteTableRoute{tc.add}, nil, nil); err != nil {
				t.Fatalf("update: %v", err)
			}
		})
	}
}

func TestUpdateRouteTableNameAndDescription(t *testing.T) {
	e := newEnv(t, nil)
	c := e.sdk(t)
	id := e.sim.DefaultRouteTableID()
	resp, err := c.UpdateRouteTable(&model.UpdateRouteTableRequest{RoutetableId: id, Body: &model.UpdateRoutetableReqBody{
		Routetable: &model.UpdateRouteTableReq{Name: ptr("main_rtb-1"), Description: ptr("containers")}}})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if resp.Routetable.Name != "main_rtb-1" || resp.Routetable.Description != "containers" {
		t.Fatalf("got name %q description %q", resp.Routetable.Name, resp.Routetable.Description)
	}
	_, err = c.UpdateRouteTable(&model.UpdateRouteTableRequest{RoutetableId: id, Body: &model.UpdateRoutetableReqBody{
		Routetable: &model.UpdateRouteTableReq{Name: ptr("bad name!")}}})
	if se := serviceError(t, err); se.StatusCode != 400 {
		t.Fatalf("bad name: got %d %s", se.StatusCode, se.ErrorCode)
	}
}

func TestListRouteTables(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Subnets = append(c.Subnets, Subnet{ID: "aaaaaaaa-0000-4000-8000-000000000002", Name: "subnet-b", CIDR: "192.168.1.0/24"})
	})
	custom := e.sim.AddRouteTable("rtb-custom", "aaaaaaaa-0000-4000-8000-000000000002")
	def := e.sim.DefaultRouteTableID()
	c := e.sdk(t)
	vpcID := e.sim.Config().VPCID

	tests := []struct {
		name string
		req  model.ListRouteTablesRequest
		want []string
	}{
		{"all of the VPC", model.ListRouteTablesRequest{VpcId: &vpcID}, []string{def, custom}},
		{"another VPC", model.ListRouteTablesRequest{VpcId: ptr("99999999-2222-4333-8444-555555555555")}, nil},
		{"by id", model.ListRouteTablesRequest{Id: &custom}, []string{custom}},
		{"by subnet of the custom table", model.ListRouteTablesRequest{SubnetId: ptr("aaaaaaaa-0000-4000-8000-000000000002")}, []string{custom}},
		{"by subnet of the default table", model.ListRouteTablesRequest{SubnetId: ptr("aaaaaaaa-0000-4000-8000-000000000001")}, []string{def}},
		{"first page", model.ListRouteTablesRequest{Limit: ptr(int32(1))}, []string{def}},
		{"second page", model.ListRouteTablesRequest{Limit: ptr(int32(1)), Marker: &def}, []string{custom}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.ListRouteTables(&tc.req)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			var got []string
			for _, rt := range *resp.Routetables {
				got = append(got, rt.Id)
				if rt.VpcId != vpcID || rt.TenantId != testPID {
					t.Errorf("table %s: vpc_id %q tenant_id %q", rt.Id, rt.VpcId, rt.TenantId)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}

	// The custom table shows every subnet as a local route and lists only its own subnet.
	resp, err := c.ShowRouteTable(&model.ShowRouteTableRequest{RoutetableId: custom})
	if err != nil {
		t.Fatalf("show custom: %v", err)
	}
	if resp.Routetable.Default || len(resp.Routetable.Subnets) != 1 || resp.Routetable.Subnets[0].Id != "aaaaaaaa-0000-4000-8000-000000000002" {
		t.Fatalf("custom table: default %v subnets %+v", resp.Routetable.Default, resp.Routetable.Subnets)
	}
	if got := routeStrings(resp.Routetable.Routes); len(got) != 4 || got[0] != `local 192.168.0.0/24 - ""` || got[1] != `local 192.168.1.0/24 - ""` {
		t.Fatalf("custom table routes: %q", got)
	}
}

func TestQuota(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RouteQuota = 50 })
	c := e.sdk(t)
	custom := e.sim.AddRouteTable("rtb-2")
	if _, err := update(c, e.sim.DefaultRouteTableID(), []model.AddRouteTableRoute{add("ecs", "10.0.2.0/24", ecs1ID, "")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := update(c, custom, []model.AddRouteTableRoute{add("ecs", "10.0.2.0/24", ecs1ID, ""), add("ecs", "10.0.3.0/24", ecs2ID, "")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := c.ShowQuota(&model.ShowQuotaRequest{Type: ptr(model.GetShowQuotaRequestTypeEnum().ROUTETABLE_CONTAIN_ROUTES)})
	if err != nil {
		t.Fatalf("quota: %v", err)
	}
	res := resp.Quotas.Resources
	if len(res) != 1 || res[0].Type.Value() != "routetableContainRoutes" || res[0].Used != 2 || res[0].Quota != 50 {
		t.Fatalf("quota resources: %+v", res)
	}
	all, err := c.ShowQuota(&model.ShowQuotaRequest{})
	if err != nil || len(all.Quotas.Resources) < 2 {
		t.Fatalf("all quotas: %v %+v", err, all)
	}
}

func TestConcurrentUpdates(t *testing.T) {
	e := newEnv(t, nil)
	id := e.sim.DefaultRouteTableID()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = update(e.sdk(t), id, []model.AddRouteTableRoute{add("ecs", fmt.Sprintf("10.1.%d.0/24", i), ecs1ID, "")}, nil, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("distinct route %d: %v", i, err)
		}
	}
	// Racing claims of one destination: exactly one wins, the others see VPC.2812.
	wins := 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = update(e.sdk(t), id, []model.AddRouteTableRoute{add("ecs", "10.2.0.0/24", ecs2ID, "")}, nil, nil)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			wins++
		} else if se := serviceError(t, err); se.ErrorCode != "VPC.2812" {
			t.Errorf("loser got %s", se.ErrorCode)
		}
	}
	routes, _ := e.sim.RouteTable(id)
	if wins != 1 || len(routes) != 3+n+1 {
		t.Fatalf("wins %d, routes %d", wins, len(routes))
	}
}

func TestWatch(t *testing.T) {
	e := newEnv(t, nil)
	var calls [][]Route
	e.sim.Watch(func(rs []Route) { calls = append(calls, rs) })
	if len(calls) != 1 || len(calls[0]) != 3 {
		t.Fatalf("registration call: %+v", calls)
	}
	c := e.sdk(t)
	if _, err := update(c, e.sim.DefaultRouteTableID(), []model.AddRouteTableRoute{add("ecs", "10.0.2.0/24", ecs1ID, "")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := update(c, e.sim.DefaultRouteTableID(), []model.AddRouteTableRoute{add("ecs", "10.0.2.0/24", ecs1ID, "")}, nil, nil); err == nil {
		t.Fatal("duplicate accepted")
	}
	if len(calls) != 2 || !slices.Contains(calls[1], Route{Type: "ecs", Destination: "10.0.2.0/24", NextHop: ecs1ID}) {
		t.Fatalf("after one change and one failure: %d calls, last %+v", len(calls), calls[len(calls)-1])
	}
	e.sim.AddRouteTable("rtb-2")
	if len(calls) != 3 || len(calls[2]) != 3+1+3 {
		t.Fatalf("after AddRouteTable: %d calls, last %+v", len(calls), calls[len(calls)-1])
	}
}

// Changes made "in the console" follow the API's rules, reach watchers (the router),
// and show in the API.
func TestConsoleChanges(t *testing.T) {
	e := newEnv(t, nil)
	var calls int
	e.sim.Watch(func([]Route) { calls++ })
	r := Route{Type: "ecs", Destination: "10.0.9.0/24", NextHop: ecs1ID, Description: "office VPN"}
	if err := e.sim.ConsoleAddRoute(r); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.ConsoleAddRoute(r); err == nil || !strings.Contains(err.Error(), "VPC.2812") {
		t.Fatalf("duplicate in the console = %v; want the API's refusal", err)
	}
	routes, _ := e.sim.RouteTable(e.sim.DefaultRouteTableID())
	if !slices.Contains(routes, r) || calls != 2 {
		t.Fatalf("after a console add: routes %+v, %d watch calls", routes, calls)
	}
	if err := e.sim.ConsoleDeleteRoute("10.0.9.0/24"); err != nil {
		t.Fatal(err)
	}
	routes, _ = e.sim.RouteTable(e.sim.DefaultRouteTableID())
	if slices.Contains(routes, r) || calls != 3 {
		t.Fatalf("after a console delete: routes %+v, %d watch calls", routes, calls)
	}
	if err := e.sim.ConsoleDeleteRoute("10.0.9.0/24"); err == nil {
		t.Fatal("deleting a missing route in the console succeeded")
	}
}

func TestUnknownAPIAndProject(t *testing.T) {
	e := newEnv(t, nil)
	c := e.sdk(t)
	// A wrong project ID in the path, signed correctly.
	cred, err := basic.NewCredentialsBuilder().WithAk(testAK).WithSk(testSK).WithProjectId("ffffffffffffffffffffffffffffffff").SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	hc, err := vpc.VpcClientBuilder().WithEndpoints([]string{e.srv.URL}).WithCredential(cred).SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	other := vpc.NewVpcClient(hc)
	_, err = other.ShowRouteTable(&model.ShowRouteTableRequest{RoutetableId: e.sim.DefaultRouteTableID()})
	if se := serviceError(t, err); se.StatusCode != http.StatusBadRequest || se.ErrorCode != "VPC.0007" {
		t.Fatalf("wrong project: %d %s", se.StatusCode, se.ErrorCode)
	}
	_, err = c.ShowVpc(&model.ShowVpcRequest{VpcId: "nope"})
	if se := serviceError(t, err); se.StatusCode != http.StatusNotFound || se.ErrorCode != "VPC.0003" {
		t.Fatalf("unknown vpc: %d %s", se.StatusCode, se.ErrorCode)
	}
	v, err := c.ShowVpc(&model.ShowVpcRequest{VpcId: e.sim.Config().VPCID})
	if err != nil || v.Vpc.Cidr != "192.168.0.0/16" {
		t.Fatalf("show vpc: %v %+v", err, v)
	}
	sn, err := c.ListSubnets(&model.ListSubnetsRequest{VpcId: ptr(e.sim.Config().VPCID)})
	if err != nil || len(*sn.Subnets) != 1 || (*sn.Subnets)[0].Cidr != "192.168.0.0/24" || (*sn.Subnets)[0].GatewayIp != "192.168.0.1" {
		t.Fatalf("list subnets: %v %+v", err, sn)
	}
}

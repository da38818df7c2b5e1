package sim

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/vpc/v2/model"
)

// Security groups, ports by instance, IAM refusals and the Date header, through the
// real SDK: what `vpcroute doctor` reads.
func TestSecurityGroupsAndPorts(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.SecurityGroups = []SecurityGroup{{ID: "sg-web", Name: "web", Rules: []SecurityGroupRule{
			{Direction: "ingress", Protocol: "tcp", PortRangeMin: 80, PortRangeMax: 80, RemoteIPPrefix: "0.0.0.0/0"},
			{Direction: "ingress", RemoteIPPrefix: "10.0.0.0/8"},
			{Direction: "egress"},
		}}}
	})
	c := e.sdk(t)
	rules, err := c.ListSecurityGroupRules(&model.ListSecurityGroupRulesRequest{SecurityGroupId: ptr("sg-web")})
	if err != nil {
		t.Fatal(err)
	}
	if rules.SecurityGroupRules == nil || len(*rules.SecurityGroupRules) != 3 {
		t.Fatalf("rules = %+v", rules)
	}
	r := (*rules.SecurityGroupRules)[1]
	if r.Direction != "ingress" || r.RemoteIpPrefix != "10.0.0.0/8" || r.Protocol != "" || r.SecurityGroupId != "sg-web" {
		t.Fatalf("rule = %+v", r)
	}
	ports, err := c.ListPorts(&model.ListPortsRequest{DeviceId: ptr("ecs00002-0000-4000-8000-000000000002")})
	if err != nil {
		t.Fatal(err)
	}
	if ports.Ports == nil || len(*ports.Ports) != 1 || (*ports.Ports)[0].DeviceId != "ecs00002-0000-4000-8000-000000000002" ||
		len((*ports.Ports)[0].SecurityGroups) != 1 || (*ports.Ports)[0].SecurityGroups[0] != "sg-web" {
		t.Fatalf("ports of ecs2 = %+v", ports)
	}
	gone, err := c.ListPorts(&model.ListPortsRequest{DeviceId: ptr("deleted-instance")})
	if err != nil || gone.Ports == nil || len(*gone.Ports) != 0 {
		t.Fatalf("ports of a deleted instance = %+v, %v; want none", gone, err)
	}
}

func TestDefaultSecurityGroup(t *testing.T) {
	e := newEnv(t, nil)
	c := e.sdk(t)
	rules, err := c.ListSecurityGroupRules(&model.ListSecurityGroupRulesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rs := *rules.SecurityGroupRules
	if len(rs) != 2 || rs[0].Direction != "ingress" || rs[0].RemoteGroupId != rs[0].SecurityGroupId || rs[0].RemoteIpPrefix != "" {
		t.Fatalf("default rules = %+v; want inbound from the group's members, outbound anywhere", rs)
	}
}

func TestPermissionDenied(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Deny = []string{"vpc:routeTables:update", "vpc:securityGroupRules:get"} })
	c := e.sdk(t)
	_, err := c.ListSecurityGroupRules(&model.ListSecurityGroupRulesRequest{})
	se := serviceError(t, err)
	if se.StatusCode != http.StatusForbidden || se.ErrorCode != "VPC.2201" || !strings.Contains(se.ErrorMessage, "vpc:securityGroupRules:get") {
		t.Fatalf("denied read = %d %s %s", se.StatusCode, se.ErrorCode, se.ErrorMessage)
	}
	if _, err := c.ShowRouteTable(&model.ShowRouteTableRequest{RoutetableId: e.sim.DefaultRouteTableID()}); err != nil {
		t.Fatalf("an allowed read failed: %v", err)
	}
	_, err = update(c, e.sim.DefaultRouteTableID(), []model.AddRouteTableRoute{add("ecs", "10.0.2.0/24", "ecs00001-0000-4000-8000-000000000001", "")}, nil, nil)
	if se := serviceError(t, err); se.StatusCode != http.StatusForbidden || !strings.Contains(se.ErrorMessage, "vpc:routeTables:update") {
		t.Fatalf("denied write = %v", err)
	}
}

// The API's Date header follows the emulator's clock, which tests move.
func TestDateHeader(t *testing.T) {
	e := newEnv(t, nil)
	e.clock.Advance(2 * time.Hour)
	resp, err := http.Get(e.srv.URL + "/v1/" + testPID + "/routetables")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	d, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil || d.Sub(e.clock.Now()).Abs() > time.Second {
		t.Fatalf("Date %q, emulator clock %v", resp.Header.Get("Date"), e.clock.Now())
	}
}

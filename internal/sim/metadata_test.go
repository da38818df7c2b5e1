package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/vpc/v2/model"
)

type metaData struct {
	UUID             string            `json:"uuid"`
	ProjectID        string            `json:"project_id"`
	RegionID         string            `json:"region_id"`
	AvailabilityZone string            `json:"availability_zone"`
	Name             string            `json:"name"`
	Meta             map[string]string `json:"meta"`
}

type networkData struct {
	Links []struct {
		VifID string `json:"vif_id"`
		ID    string `json:"id"`
	} `json:"links"`
	Networks []struct {
		NetworkID string `json:"network_id"`
		Link      string `json:"link"`
	} `json:"networks"`
}

func TestMetadataByPathPrefix(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.sim.Config()
	for _, ecs := range cfg.ECSs {
		t.Run(ecs.Name, func(t *testing.T) {
			base := e.srv.URL + "/ecs/" + ecs.Name + "/openstack/latest/"
			var md metaData
			if code := getJSON(t, base+"meta_data.json", &md); code != 200 {
				t.Fatalf("meta_data.json: %d", code)
			}
			want := metaData{UUID: ecs.ID, ProjectID: testPID, RegionID: "sa-brazil-1", AvailabilityZone: "sa-brazil-1a", Name: ecs.Name}
			if md.UUID != want.UUID || md.ProjectID != want.ProjectID || md.RegionID != want.RegionID ||
				md.AvailabilityZone != want.AvailabilityZone || md.Name != want.Name || md.Meta["vpc_id"] != cfg.VPCID {
				t.Fatalf("meta_data.json %+v, want %+v and vpc_id %s", md, want, cfg.VPCID)
			}
			var nd networkData
			if code := getJSON(t, base+"network_data.json", &nd); code != 200 {
				t.Fatalf("network_data.json: %d", code)
			}
			if len(nd.Links) != 1 || nd.Links[0].VifID != ecs.PortID || len(nd.Networks) != 1 ||
				nd.Networks[0].NetworkID != ecs.SubnetID || nd.Networks[0].Link != nd.Links[0].ID {
				t.Fatalf("network_data.json %+v, want vif_id %s network_id %s", nd, ecs.PortID, ecs.SubnetID)
			}
		})
	}
	for _, path := range []string{"/ecs/nobody/openstack/latest/meta_data.json", "/openstack/latest/meta_data.json", "/ecs/ecs1/openstack/latest/nothing"} {
		if code := getJSON(t, e.srv.URL+path, nil); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404 (unknown ECS, loopback source, unknown file)", path, code)
		}
	}
}

func TestMetadataBySourceIP(t *testing.T) {
	// Loopback addresses stand in for the ECSs' IPs: the VPC is 127.0.0.0/16.
	e := newEnv(t, func(c *Config) {
		c.VPCCIDR = "127.0.0.0/16"
		c.Subnets = []Subnet{{ID: "aaaaaaaa-0000-4000-8000-000000000009", Name: "lo", CIDR: "127.0.0.0/24"}}
		c.ECSs = []ECS{{ID: ecs1ID, Name: "ecs1", IP: "127.0.0.2"}, {ID: ecs2ID, Name: "ecs2", IP: "127.0.0.3"}}
	})
	for _, tc := range []struct{ from, wantUUID string }{{"127.0.0.2", ecs1ID}, {"127.0.0.3", ecs2ID}, {"127.0.0.4", ""}} {
		t.Run(tc.from, func(t *testing.T) {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(tc.from)}}
			c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
			resp, err := c.Get(e.srv.URL + "/openstack/latest/meta_data.json")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if tc.wantUUID == "" {
				if resp.StatusCode != http.StatusNotFound {
					t.Fatalf("unknown source: %d, want 404", resp.StatusCode)
				}
				return
			}
			var md metaData
			if err := json.NewDecoder(resp.Body).Decode(&md); err != nil || md.UUID != tc.wantUUID {
				t.Fatalf("status %d uuid %q (%v), want %s", resp.StatusCode, md.UUID, err, tc.wantUUID)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	e := newEnv(t, nil)
	c := e.sdk(t)
	table := e.sim.DefaultRouteTableID()
	showErr := func() error {
		_, err := c.ShowRouteTable(&model.ShowRouteTableRequest{RoutetableId: table})
		return err
	}

	t.Run("throttled twice", func(t *testing.T) {
		e.sim.InjectFault(Fault{Count: 2, Status: 429})
		for i := range 2 {
			se := serviceError(t, showErr())
			if se.StatusCode != 429 || se.ErrorCode != "APIGW.0308" || se.RequestId == "" {
				t.Fatalf("call %d: %d %s", i, se.StatusCode, se.ErrorCode)
			}
		}
		if err := showErr(); err != nil {
			t.Fatalf("third call: %v", err)
		}
	})
	t.Run("server error on one path only", func(t *testing.T) {
		e.sim.InjectFault(Fault{Status: 503, PathContains: "/quotas"})
		if err := showErr(); err != nil {
			t.Fatalf("route table call hit the quota fault: %v", err)
		}
		_, err := c.ShowQuota(&model.ShowQuotaRequest{})
		if se := serviceError(t, err); se.StatusCode != 503 || se.ErrorCode != "VPC.0001" {
			t.Fatalf("quota: %d %s", se.StatusCode, se.ErrorCode)
		}
	})
	t.Run("dropped connection", func(t *testing.T) {
		// Go's transport retries an idempotent request once when a reused
		// connection closes without an answer, so drop two.
		e.sim.InjectFault(Fault{Drop: true, Count: 2})
		err := showErr()
		var se *sdkerr.ServiceResponseError
		if err == nil || errors.As(err, &se) {
			t.Fatalf("want a transport error, got %v", err)
		}
	})
	t.Run("latency", func(t *testing.T) {
		e.sim.InjectFault(Fault{Latency: 150 * time.Millisecond})
		start := time.Now()
		if err := showErr(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("answered in %s", d)
		}
	})
	t.Run("through the admin API", func(t *testing.T) {
		resp, err := http.Post(e.srv.URL+"/_sim/faults", "application/json", strings.NewReader(`{"count":1,"status":500,"latency":"1ms","path_contains":"/routetables/"}`))
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST /_sim/faults: %v %v", err, resp)
		}
		resp.Body.Close()
		if se := serviceError(t, showErr()); se.StatusCode != 500 {
			t.Fatalf("got %d", se.StatusCode)
		}
	})
	t.Run("a write that times out and lands late", func(t *testing.T) {
		e.sim.InjectFault(Fault{Method: "PUT", Late: 300 * time.Millisecond, Latency: 100 * time.Millisecond})
		_, err := update(c, table, []model.AddRouteTableRoute{add("ecs", "10.0.77.0/24", ecs1ID, "late")}, nil, nil)
		var se *sdkerr.ServiceResponseError
		if err == nil || errors.As(err, &se) {
			t.Fatalf("want no answer (a transport error), got %v", err)
		}
		if slices.ContainsFunc(show(t, c, table), func(r model.RouteTableRoute) bool { return r.Destination == "10.0.77.0/24" }) {
			t.Fatal("the late write was applied at once")
		}
		e.sim.WaitLate()
		if !slices.ContainsFunc(show(t, c, table), func(r model.RouteTableRoute) bool { return r.Destination == "10.0.77.0/24" }) {
			t.Fatal("the late write never landed")
		}
	})
	t.Run("a write applied and answered 500", func(t *testing.T) {
		e.sim.InjectFault(Fault{Method: "PUT", Status: 500, Apply: true})
		_, err := update(c, table, nil, nil, []model.DelRouteTableRoute{{Type: ptr("ecs"), Destination: "10.0.77.0/24", Nexthop: ptr(ecs1ID)}})
		if se := serviceError(t, err); se.StatusCode != 500 {
			t.Fatalf("got %d", se.StatusCode)
		}
		if slices.ContainsFunc(show(t, c, table), func(r model.RouteTableRoute) bool { return r.Destination == "10.0.77.0/24" }) {
			t.Fatal("the write answered 500 was not applied")
		}
	})
	t.Run("a rate hits some requests and stays", func(t *testing.T) {
		e.sim.InjectFault(Fault{Rate: 0.5, Status: 503, PathContains: "/routetables/"})
		failed := 0
		for range 200 {
			if showErr() != nil {
				failed++
			}
		}
		e.sim.ClearFaults()
		if failed < 60 || failed > 140 {
			t.Fatalf("%d of 200 failed at rate 0.5", failed)
		}
		if err := showErr(); err != nil {
			t.Fatalf("after ClearFaults: %v", err)
		}
	})
	t.Run("request log counts calls", func(t *testing.T) {
		e.sim.ResetRequests()
		_ = showErr()
		e.sim.InjectFault(Fault{Status: 429})
		_ = showErr()
		got := e.sim.Requests()
		path := "/v1/" + testPID + "/routetables/" + table
		want := []RequestLog{{Method: "GET", Path: path, Status: 200}, {Method: "GET", Path: path, Status: 429}}
		if !slices.Equal(got, want) {
			t.Fatalf("log %+v, want %+v", got, want)
		}
	})
}

func TestSrcDstCheck(t *testing.T) {
	e := newEnv(t, nil)
	c := e.sdk(t)
	cfg := e.sim.Config()
	ecs1, ecs2 := cfg.ECSs[0], cfg.ECSs[1] // ecs1: check on; ecs2: off
	pairs := func(portID string) []string {
		t.Helper()
		p, err := c.ShowPort(&model.ShowPortRequest{PortId: portID})
		if err != nil {
			t.Fatalf("show port %s: %v", portID, err)
		}
		var ips []string
		for _, ap := range p.Port.AllowedAddressPairs {
			ips = append(ips, ap.IpAddress)
		}
		return ips
	}
	if got := pairs(ecs1.PortID); len(got) != 0 || !e.sim.SrcDstCheck(ecs1.ID) {
		t.Fatalf("ecs1 pairs %v check %v, want none and on", got, e.sim.SrcDstCheck(ecs1.ID))
	}
	if got := pairs(ecs2.PortID); !slices.Equal(got, []string{"1.1.1.1/0"}) || e.sim.SrcDstCheck(ecs2.ID) {
		t.Fatalf("ecs2 pairs %v, want [1.1.1.1/0] and check off", got)
	}

	// Turning the check off through the API, as the console does.
	resp, err := c.UpdatePort(&model.UpdatePortRequest{PortId: ecs1.PortID, Body: &model.UpdatePortRequestBody{Port: &model.UpdatePortOption{
		AllowedAddressPairs: &[]model.AllowedAddressPair{{IpAddress: "1.1.1.1/0"}}}}})
	if err != nil || len(resp.Port.AllowedAddressPairs) != 1 {
		t.Fatalf("update port: %v %+v", err, resp)
	}
	if e.sim.SrcDstCheck(ecs1.ID) {
		t.Fatal("check still on after allowed_address_pairs 1.1.1.1/0")
	}

	// And on again from the Go API and the admin API.
	e.sim.SetSrcDstCheck(ecs1.ID, true)
	if got := pairs(ecs1.PortID); len(got) != 0 {
		t.Fatalf("pairs after SetSrcDstCheck(on): %v", got)
	}
	r, err := http.Post(e.srv.URL+"/_sim/ecs/ecs2/srcdst?on=true", "", nil)
	if err != nil || r.StatusCode != http.StatusNoContent {
		t.Fatalf("admin srcdst: %v %v", err, r)
	}
	r.Body.Close()
	if !e.sim.SrcDstCheck(ecs2.ID) {
		t.Fatal("admin API did not turn ecs2's check on")
	}

	for name, req := range map[string]*model.UpdatePortRequest{
		"unknown port": {PortId: "00000000-0000-4000-8000-00000000dead", Body: &model.UpdatePortRequestBody{Port: &model.UpdatePortOption{Name: ptr("x")}}},
		"bad pair":     {PortId: ecs1.PortID, Body: &model.UpdatePortRequestBody{Port: &model.UpdatePortOption{AllowedAddressPairs: &[]model.AllowedAddressPair{{IpAddress: "0.0.0.0/0"}}}}},
	} {
		_, err := c.UpdatePort(req)
		if se := serviceError(t, err); se.StatusCode != 400 && se.StatusCode != 404 {
			t.Errorf("%s: got %d %s", name, se.StatusCode, se.ErrorCode)
		}
	}
}

func TestAdminRouteTables(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Routes = []Route{{Type: "ecs", Destination: "10.0.2.0/24", NextHop: ecs1ID}}
	})
	var got struct {
		Routetables []TableSnapshot `json:"routetables"`
	}
	if code := getJSON(t, e.srv.URL+"/_sim/routetables", &got); code != 200 {
		t.Fatalf("status %d", code)
	}
	if len(got.Routetables) != 1 || !got.Routetables[0].Default || len(got.Routetables[0].Routes) != 4 ||
		got.Routetables[0].Routes[3].NextHop != ecs1ID {
		t.Fatalf("got %+v", got)
	}
	var cfg map[string]any
	getJSON(t, e.srv.URL+"/_sim/config", &cfg)
	if cfg["sk"] != "" || cfg["vpc_id"] != e.sim.Config().VPCID {
		t.Fatalf("/_sim/config leaks the SK or lacks the VPC ID: %v", cfg)
	}
}

func TestXRequestIDEverywhere(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/", "/v1/x", "/openstack/latest/meta_data.json", "/ecs/ecs1/openstack/latest/meta_data.json", "/_sim/routetables"} {
		resp, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s: no X-Request-Id", path)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no AK", func(c *Config) { c.AK = "" }, "ak and sk"},
		{"bad VPC CIDR", func(c *Config) { c.VPCCIDR = "192.168.0.1/16" }, "vpc_cidr"},
		{"subnet outside the VPC", func(c *Config) { c.Subnets[0].CIDR = "10.0.0.0/24" }, "outside"},
		{"overlapping subnets", func(c *Config) {
			c.Subnets = append(c.Subnets, Subnet{Name: "b", CIDR: "192.168.0.128/25"})
		}, "overlaps"},
		{"ECS outside every subnet", func(c *Config) { c.ECSs[0].IP = "192.168.9.9" }, "in no subnet"},
		{"duplicate ECS name", func(c *Config) { c.ECSs[1].Name = "ecs1" }, "duplicate"},
		{"pre-existing route inside a subnet", func(c *Config) {
			c.Routes = []Route{{Type: "ecs", Destination: "192.168.0.0/25", NextHop: ecs1ID}}
		}, "VPC.2809"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := guideConfig()
			tc.mutate(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestConfigJSON(t *testing.T) {
	var c Config
	in := `{"region":"r","project_id":"p","vpc_cidr":"10.0.0.0/16","ak":"a","sk":"s","route_quota":7,"credential_ttl":"90m",
		"subnets":[{"id":"s1","cidr":"10.0.0.0/24"}],"ecss":[{"name":"e","ip":"10.0.0.5","agency":true,"src_dst_check":true}]}`
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	if c.CredentialTTL != 90*time.Minute || c.RouteQuota != 7 || c.ECSs[0].IP != "10.0.0.5" || !c.ECSs[0].Agency || c.Subnets[0].ID != "s1" {
		t.Fatalf("parsed %+v", c)
	}
	if err := json.Unmarshal([]byte(`{"credential_ttl":"soon"}`), &c); err == nil {
		t.Fatal("bad duration accepted")
	}
	var f Fault
	if err := json.Unmarshal([]byte(`{"latency":"2s","status":429,"path_contains":"/quotas"}`), &f); err != nil || f.Latency != 2*time.Second || f.PathContains != "/quotas" {
		t.Fatalf("fault %+v %v", f, err)
	}
}

// TestHandlerServesOneAddress checks that a plain http.Server with Handler is all
// the CLI needs (no TLS: the SDK accepts http endpoints).
func TestHandlerServesOneAddress(t *testing.T) {
	e := newEnv(t, nil)
	srv := httptest.NewServer(e.sim.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/_sim/faults", bytes.NewReader([]byte(`{"status":`)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed fault: %d, want 400", resp.StatusCode)
	}
}

package controller_test

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/internal/fakecloud"
	"github.com/vpcroute/vpcroute/internal/fakehost"
	"github.com/vpcroute/vpcroute/state"
)

const netID = "0123456789abcdef0123456789abcdef"

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]string
		want    controller.Options
		wantErr string
	}{
		{name: "defaults", want: controller.Options{Masquerade: true}},
		{name: "bridge name and mtu", opts: map[string]string{controller.OptBridgeName: "br-app", controller.OptMTU: "1400"},
			want: controller.Options{Bridge: "br-app", MTU: 1400, Masquerade: true}},
		{name: "no masquerade", opts: map[string]string{controller.OptMasquerade: "false"}, want: controller.Options{}},
		{name: "long bridge name", opts: map[string]string{controller.OptBridgeName: "a-very-long-bridge-name"}, wantErr: "1 to 15 characters"},
		{name: "bridge name the kernel would expand", opts: map[string]string{controller.OptBridgeName: "br%d"}, wantErr: "'%'"},
		{name: "bad mtu", opts: map[string]string{controller.OptMTU: "jumbo"}, wantErr: "MTU from 68"},
		{name: "bad masquerade", opts: map[string]string{controller.OptMasquerade: "maybe"}, wantErr: "true or false"},
		{name: "unknown option", opts: map[string]string{"com.docker.network.bridge.host_binding_ipv4": "10.0.0.1"}, wantErr: "not known to vpcroute"},
		{name: "icc off", opts: map[string]string{controller.OptICC: "false"}, want: controller.Options{Masquerade: true, NoICC: true}},
		{name: "isolate", opts: map[string]string{controller.OptIsolate: "true"}, want: controller.Options{Masquerade: true, Isolate: true}},
		{name: "allow", opts: map[string]string{controller.OptAllow: "192.168.0.0/24,10.0.3.7:tcp/80,icmp;0.0.0.0/0:tcp/443"},
			want: controller.Options{Masquerade: true, Allow: "192.168.0.0/24,10.0.3.7:tcp/80,icmp;0.0.0.0/0:tcp/443"}},
		{name: "allow, bad port", opts: map[string]string{controller.OptAllow: "192.168.0.0/24:http"}, wantErr: `port "http" is not tcp/PORT`},
		{name: "allow, bad source", opts: map[string]string{controller.OptAllow: "vpc:tcp/80"}, wantErr: `source "vpc" is not an IPv4 address or CIDR`},
		{name: "allow, nothing", opts: map[string]string{controller.OptAllow: " ; "}, wantErr: "no source given"},
		{name: "isolate and allow", opts: map[string]string{controller.OptIsolate: "true", controller.OptAllow: "10.0.0.0/8"}, wantErr: "exclude each other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := controller.ParseOptions(tt.opts)
			if tt.wantErr != "" {
				wantErr(t, err, tt.wantErr)
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseOptions = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// ParseAllow gives one entry per source, each with the ports of its group.
func TestParseAllow(t *testing.T) {
	got, err := controller.ParseAllow("192.168.0.0/24,10.0.3.7:tcp/80,ICMP; 10.1.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	want := []firewall.Allow{
		{Source: netip.MustParsePrefix("192.168.0.0/24"), Ports: []firewall.AllowPort{{Proto: "tcp", Port: 80}, {Proto: "icmp"}}},
		{Source: netip.MustParsePrefix("10.0.3.7/32"), Ports: []firewall.AllowPort{{Proto: "tcp", Port: 80}, {Proto: "icmp"}}},
		{Source: netip.MustParsePrefix("10.1.0.0/16")},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ParseAllow = %v; want %v", got, want)
	}
}

func spec(subnet string, fromVpcroute bool) controller.NetworkSpec {
	s := netip.MustParsePrefix(subnet)
	return controller.NetworkSpec{ID: netID, Subnet: s, Gateway: netip.PrefixFrom(s.Addr().Next(), s.Bits()), FromVpcroute: fromVpcroute, Masquerade: true}
}

func TestCreateNetworkDefaults(t *testing.T) {
	h := newHarness(t)
	if err := h.c.CreateNetwork(ctx0, spec("10.0.2.0/24", false)); err != nil {
		t.Fatal(err)
	}
	n, err := h.db.Network(netID)
	if err != nil {
		t.Fatal(err)
	}
	if n.Bridge != "vr-0123456789ab" || n.MTU != 1450 || !n.Masquerade || n.Creating {
		t.Fatalf("network = %+v; want bridge vr-0123456789ab, the uplink's MTU, masquerade", n)
	}
	if h.host.Marked["vr-0123456789ab"] != netID || h.host.Rules[netID].Subnet.String() != "10.0.2.0/24" {
		t.Fatalf("kernel: bridges %v rules %v", h.host.Marked, h.host.Rules)
	}
	// Docker's default IPAM picked the subnet: the network holds the route itself.
	if r, _ := h.vpc.Get("10.0.2.0/24"); r.Owner != "net-0123456789ab" || r.Instance != instance {
		t.Fatalf("route = %+v; want this host's, owned by the network", r)
	}
	// Docker retries: nothing changes, nothing fails.
	if err := h.c.CreateNetwork(ctx0, spec("10.0.2.0/24", false)); err != nil {
		t.Fatalf("CreateNetwork again: %v", err)
	}
}

func TestCreateNetworkRefusals(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(h *harness)
		spec    controller.NetworkSpec
		wantErr string
	}{
		{name: "default IPAM's subnet held by another host", spec: spec("10.0.3.0/24", false),
			setup:   func(h *harness) { h.vpc.Add("10.0.3.0/24", fakecloud.Route{Instance: "ecs-2", Owner: "vr-x"}) },
			wantErr: "--ipam-driver vpcroute"},
		{name: "default IPAM's subnet is Docker's own bridge", spec: spec("172.17.0.0/16", false),
			setup:   func(h *harness) { h.host.Routes = []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16")} },
			wantErr: "--ipam-driver vpcroute"},
		{name: "default IPAM's subnet too large", spec: spec("10.0.0.0/12", false), wantErr: "/16 to /29"},
		{name: "vpcroute's subnet without its pool", spec: spec("10.0.4.0/24", true), wantErr: "re-create"},
		{name: "firewall fails", spec: spec("10.0.2.0/24", false),
			setup: func(h *harness) { h.host.FailRules = fakehost.ErrInjected }, wantErr: "Resource temporarily unavailable"},
		{name: "bridge name not vpcroute's", spec: spec("10.0.2.0/24", false),
			setup: func(h *harness) { h.host.Foreign["vr-0123456789ab"] = true }, wantErr: "not managed by vpcroute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if tt.setup != nil {
				tt.setup(h)
			}
			others := h.vpc.Len()
			err := h.c.CreateNetwork(ctx0, tt.spec)
			wantErr(t, err, tt.wantErr)
			h.host.FailRules = nil
			h.reconcile() // nothing a failed create left, the loop would find
			if h.vpc.Len() != others {
				t.Fatalf("failed create changed the route table: %v", h.vpc.Routes)
			}
			h.vpc.Routes = map[netip.Prefix]fakecloud.Route{}
			h.empty("after a failed create")
		})
	}
}

func TestBridgeNameClash(t *testing.T) {
	h := newHarness(t)
	s := spec("10.0.2.0/24", false)
	s.Bridge = "br-app"
	if err := h.c.CreateNetwork(ctx0, s); err != nil {
		t.Fatal(err)
	}
	s2 := spec("10.0.3.0/24", false)
	s2.ID, s2.Bridge = "fedcba9876543210", "br-app"
	wantErr(t, h.c.CreateNetwork(ctx0, s2), "already used by network")
}

func TestEndpointLifecycle(t *testing.T) {
	h := newHarness(t)
	if err := h.c.CreateNetwork(ctx0, spec("10.0.2.0/24", false)); err != nil {
		t.Fatal(err)
	}
	const ep = "eeeeeeeeeeee1111"
	if err := h.c.CreateEndpoint(netID, ep, netip.MustParsePrefix("10.0.2.2/24")); err != nil {
		t.Fatal(err)
	}
	j, err := h.c.Join(netID, ep)
	if err != nil {
		t.Fatal(err)
	}
	if j.Gateway.String() != "10.0.2.1" || j.Veth != "vrceeeeeeeeeeee" {
		t.Fatalf("Join = %+v", j)
	}
	if h.host.Attached["vrheeeeeeeeeeee"] != "vr-0123456789ab" {
		t.Fatalf("veth not on the bridge: %v", h.host.Attached)
	}
	ports := []controller.PortRequest{
		{Proto: "tcp", ContainerPort: 80, HostPort: 8080, HostPortEnd: 8080},
		{Proto: "udp", ContainerPort: 53, HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5353},
		{Proto: "tcp", ContainerPort: 9000},
	}
	if err := h.c.PublishPorts(netID, ep, ports); err != nil {
		t.Fatal(err)
	}
	saved, _ := h.db.Endpoint(netID, ep)
	if len(saved.Ports) != 3 || len(h.host.Ports) != 3 {
		t.Fatalf("ports saved %+v, rules %v", saved.Ports, h.host.Ports)
	}
	if p := saved.Ports[2]; p.HostPort < controller.EphemeralFirst || p.HostPort > controller.EphemeralLast {
		t.Fatalf("-p 9000 got host port %d; want one from the ephemeral range", p.HostPort)
	}
	if got := h.c.EndpointPorts(netID, ep); len(got) != 3 || got[0] != "0.0.0.0:8080->80/tcp" {
		t.Fatalf("EndpointPorts = %q", got)
	}
	// Programming again (a Docker retry) replaces, it does not add.
	if err := h.c.PublishPorts(netID, ep, ports[:1]); err != nil {
		t.Fatal(err)
	}
	if len(h.host.Ports) != 1 {
		t.Fatalf("ports after programming again: %v", h.host.Ports)
	}

	// A second container asking for 8080 gets a clear error and leaves no rule.
	const ep2 = "ffffffffffff2222"
	_ = h.c.CreateEndpoint(netID, ep2, netip.MustParsePrefix("10.0.2.3/24"))
	err = h.c.PublishPorts(netID, ep2, []controller.PortRequest{{Proto: "tcp", ContainerPort: 81, HostPort: 8081}, {Proto: "tcp", ContainerPort: 80, HostPort: 8080}})
	wantErr(t, err, "another host port")
	if len(h.host.Ports) != 1 {
		t.Fatalf("failed publish left rules: %v", h.host.Ports)
	}
	// A port a host process holds.
	wantErr(t, h.c.PublishPorts(netID, ep2, []controller.PortRequest{{Proto: "tcp", ContainerPort: 22, HostPort: 22}}), "in use on this host")

	// Leave removes ports and veth; repeated calls are harmless.
	for range 2 {
		if err := h.c.UnpublishPorts(netID, ep); err != nil {
			t.Fatal(err)
		}
		if err := h.c.Leave(netID, ep); err != nil {
			t.Fatal(err)
		}
		if err := h.c.DeleteEndpoint(netID, ep); err != nil {
			t.Fatal(err)
		}
		if err := h.c.DeleteEndpoint(netID, ep2); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := h.c.DeleteNetwork(ctx0, netID); err != nil {
			t.Fatal(err)
		}
	}
	h.empty("after the network was removed")
}

func TestInternalNetwork(t *testing.T) {
	h := newHarness(t)
	s := spec("10.0.2.0/24", false)
	s.Internal = true
	if err := h.c.CreateNetwork(ctx0, s); err != nil {
		t.Fatal(err)
	}
	if !h.host.Rules[netID].Internal {
		t.Fatal("rules not marked internal")
	}
	const ep = "eeeeeeeeeeee1111"
	_ = h.c.CreateEndpoint(netID, ep, netip.MustParsePrefix("10.0.2.2/24"))
	if j, err := h.c.Join(netID, ep); err != nil || j.Gateway.IsValid() {
		t.Fatalf("Join on --internal = %+v, %v; want no gateway", j, err)
	}
	wantErr(t, h.c.PublishPorts(netID, ep, []controller.PortRequest{{Proto: "tcp", ContainerPort: 80, HostPort: 8080}}), "internal")
}

// A restart puts back what the kernel lost (a reboot, someone deleting a bridge)
// before Docker's calls are served, and leaves unfinished work to the loop.
func TestStartRestores(t *testing.T) {
	h := newHarness(t)
	p, _ := h.network(netID, "web", "")
	h.container(netID, controller.PoolRef(p), "ep1", controller.PortRequest{Proto: "tcp", ContainerPort: 80, HostPort: 8080})
	// A crash mid-create of another network.
	_ = h.db.PutNetwork(state.Network{ID: "half", Bridge: "vr-half", Subnet: netip.MustParsePrefix("10.0.3.0/24"), Creating: true, ClaimOwner: "net-half", Created: h.clock.now()})
	h.vpc.Add("10.0.3.0/24", fakecloud.Route{Instance: instance, Owner: "net-half"})
	h.host.Marked["vr-half"] = "half"
	// A reboot: no bridge, no rule.
	h.host.Marked = map[string]string{"vr-half": "half"}
	h.host.Rules = map[string]firewall.NetworkRules{}
	h.host.Ports = map[firewall.PortMap]bool{}

	h.open()
	if h.host.Marked["vr-0123456789ab"] != netID || len(h.host.Rules) != 1 || len(h.host.Ports) != 1 {
		t.Fatalf("after restart: bridges %v rules %v ports %v", h.host.Marked, h.host.Rules, h.host.Ports)
	}
	if h.host.Marked["vr-half"] != "half" {
		t.Fatal("Start removed something; that is the loop's job")
	}
	h.reconcile()
	if _, ok := h.host.Marked["vr-half"]; ok {
		t.Fatal("the half-made network's bridge is still there after a cycle")
	}
	if _, ok := h.vpc.Get("10.0.3.0/24"); ok {
		t.Fatal("the half-made network's route is still there after a cycle")
	}
	if _, err := h.db.Network("half"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("half-made network kept: %v", err)
	}
}

// Docker forgets a network whatever DeleteNetwork answers: a failed teardown is
// finished by the loop, never undone by it.
func TestFailedDeleteIsFinishedLater(t *testing.T) {
	h := newHarness(t)
	if err := h.c.CreateNetwork(ctx0, spec("10.0.2.0/24", false)); err != nil {
		t.Fatal(err)
	}
	h.host.FailDelete = fakehost.ErrInjected
	if err := h.c.DeleteNetwork(ctx0, netID); err == nil {
		t.Fatal("DeleteNetwork succeeded with a failing firewall")
	}
	h.reconcile()
	if _, ok := h.host.Rules[netID]; !ok {
		t.Fatal("rules vanished although deletion failed")
	}
	if n, err := h.db.Network(netID); err != nil || !n.Deleting {
		t.Fatalf("network after failed delete = %+v, %v; want it marked Deleting", n, err)
	}
	h.host.FailDelete = nil
	h.reconcile()
	h.empty("after the loop finished the delete")
}

func TestFailedEndpointDeleteIsFinishedLater(t *testing.T) {
	h := newHarness(t)
	if err := h.c.CreateNetwork(ctx0, spec("10.0.2.0/24", false)); err != nil {
		t.Fatal(err)
	}
	const ep = "eeeeeeeeeeee1111"
	_ = h.c.CreateEndpoint(netID, ep, netip.MustParsePrefix("10.0.2.2/24"))
	_, _ = h.c.Join(netID, ep)
	if err := h.c.PublishPorts(netID, ep, []controller.PortRequest{{Proto: "tcp", ContainerPort: 80, HostPort: 8080}}); err != nil {
		t.Fatal(err)
	}
	h.host.FailPortDelete = fakehost.ErrInjected
	if err := h.c.DeleteEndpoint(netID, ep); err == nil {
		t.Fatal("DeleteEndpoint succeeded with a failing firewall")
	}
	if e, err := h.db.Endpoint(netID, ep); err != nil || !e.Gone {
		t.Fatalf("endpoint after failed delete = %+v, %v; want it marked Gone", e, err)
	}
	h.host.FailPortDelete = nil
	h.reconcile()
	if _, err := h.db.Endpoint(netID, ep); !errors.Is(err, state.ErrNotFound) || len(h.host.Ports) != 0 {
		t.Fatalf("after a cycle: endpoint err %v, ports %v", err, h.host.Ports)
	}
}

// A Docker call does not wait for another network's cloud work.
func TestCloudDoesNotBlockOtherNetworks(t *testing.T) {
	h := newHarness(t)
	p, _ := h.network(netID, "web", "")
	release := make(chan struct{})
	entered := make(chan struct{})
	h.vpc.Hook = func() {
		close(entered)
		<-release
	}
	done := make(chan error, 1)
	go func() {
		_, err := h.c.RequestPool(ctx0, controller.PoolRequest{})
		done <- err
	}()
	<-entered
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		a, err := h.c.RequestAddress(controller.PoolRef(p), netip.Addr{}, false)
		if err == nil {
			err = h.c.CreateEndpoint(netID, "ep1", a)
		}
		if err == nil {
			_, err = h.c.Join(netID, "ep1")
		}
		if err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-joined:
	case <-time.After(10 * time.Second):
		t.Fatal("a container start is blocked behind another network's cloud claim")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

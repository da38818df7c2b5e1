package driver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	dnet "github.com/docker/go-plugins-helpers/network"

	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/link"
	"github.com/vpcroute/vpcroute/state"
)

// fakeHost keeps the kernel objects the driver makes, so tests check what exists
// afterwards (the kernel itself is covered by link's, firewall's and e2e's tests).
type fakeHost struct {
	bridges map[string]string // name -> network ID
	veths   map[string]string // host end -> bridge
	nets    map[string]firewall.NetworkRules
	ports   map[firewall.PortMap]bool
	failFW  error
	failDel error
	pruned  map[string]bool
}

func newFakeHost() *fakeHost {
	return &fakeHost{bridges: map[string]string{}, veths: map[string]string{}, nets: map[string]firewall.NetworkRules{}, ports: map[firewall.PortMap]bool{}}
}

func (h *fakeHost) EnsureBridge(s link.BridgeSpec) error {
	if id, ok := h.bridges[s.Name]; ok && id != s.NetworkID {
		return fmt.Errorf("bridge %s: %w", s.Name, link.ErrNotOwned)
	}
	h.bridges[s.Name] = s.NetworkID
	return nil
}
func (h *fakeHost) DeleteBridge(name, id string) error {
	if h.bridges[name] == id {
		delete(h.bridges, name)
	}
	return nil
}
func (h *fakeHost) Bridges() (map[string]string, error) {
	out := map[string]string{}
	for k, v := range h.bridges {
		out[k] = v
	}
	return out, nil
}
func (h *fakeHost) EnsureVeth(host, peer, bridge string, mtu int) error {
	if _, ok := h.bridges[bridge]; !ok {
		return errors.New("no bridge " + bridge)
	}
	h.veths[host] = bridge
	return nil
}
func (h *fakeHost) DeleteVeth(host string) error   { delete(h.veths, host); return nil }
func (h *fakeHost) UplinkMTU() int                 { return 1450 }
func (h *fakeHost) EnsureBase(firewall.Base) error { return nil }
func (h *fakeHost) EnsureNetwork(r firewall.NetworkRules) error {
	if h.failFW != nil {
		return h.failFW
	}
	h.nets[r.NetworkID] = r
	return nil
}
func (h *fakeHost) DeleteNetwork(r firewall.NetworkRules) error {
	if h.failDel != nil {
		return h.failDel
	}
	delete(h.nets, r.NetworkID)
	return nil
}
func (h *fakeHost) EnsurePort(p firewall.PortMap) error {
	if h.failFW != nil {
		return h.failFW
	}
	h.ports[p] = true
	return nil
}
func (h *fakeHost) DeletePort(p firewall.PortMap) error { delete(h.ports, p); return nil }
func (h *fakeHost) Prune(keep map[string]bool) error {
	h.pruned = keep
	for id := range h.nets {
		if !keep[id] {
			delete(h.nets, id)
		}
	}
	return nil
}

type fakeClaimer struct{ claimed map[netip.Prefix]string }

func (c *fakeClaimer) ClaimForNetwork(_ context.Context, owner string, s netip.Prefix) error {
	if o, ok := c.claimed[s]; ok && o != owner {
		return fmt.Errorf("subnet %s overlaps: add --ipam-driver vpcroute", s)
	}
	c.claimed[s] = owner
	return nil
}
func (c *fakeClaimer) ReleaseForNetwork(_ context.Context, s netip.Prefix, owner string) error {
	if c.claimed[s] == owner {
		delete(c.claimed, s)
	}
	return nil
}

// freePorts says every port is free except those listed.
type busyPorts map[uint16]bool

func (b busyPorts) Free(_ string, _ netip.Addr, port uint16) error {
	if b[port] {
		return errors.New("address already in use")
	}
	return nil
}

func newTestDriver(t *testing.T) (*Driver, *fakeHost, *fakeClaimer, *state.DB) {
	t.Helper()
	db, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := newFakeHost()
	c := &fakeClaimer{claimed: map[netip.Prefix]string{}}
	d := New(Config{Masquerade: true, Ports: busyPorts{22: true}}, h, h, db, c)
	return d, h, c, db
}

func createReq(id, subnet, gw string, generic map[string]interface{}) *dnet.CreateNetworkRequest {
	opts := map[string]interface{}{}
	if generic != nil {
		opts[genericOption] = generic
	}
	return &dnet.CreateNetworkRequest{NetworkID: id, Options: opts,
		IPv4Data: []*dnet.IPAMData{{AddressSpace: "LocalDefault", Pool: subnet, Gateway: gw}}}
}

const netID = "0123456789abcdef0123456789abcdef"

func TestCreateNetworkOptions(t *testing.T) {
	tests := []struct {
		name    string
		generic map[string]interface{}
		check   func(state.Network) string
		wantErr string
	}{
		{name: "defaults", check: func(n state.Network) string {
			if n.Bridge != "vr-0123456789ab" || n.MTU != 1450 || !n.Masquerade {
				return fmt.Sprintf("%+v", n)
			}
			return ""
		}},
		{name: "bridge name and mtu", generic: map[string]interface{}{optBridgeName: "br-app", optMTU: "1400"}, check: func(n state.Network) string {
			if n.Bridge != "br-app" || n.MTU != 1400 {
				return fmt.Sprintf("%+v", n)
			}
			return ""
		}},
		{name: "no masquerade", generic: map[string]interface{}{optMasquerade: "false"}, check: func(n state.Network) string {
			if n.Masquerade {
				return "masquerade still on"
			}
			return ""
		}},
		{name: "long bridge name", generic: map[string]interface{}{optBridgeName: "a-very-long-bridge-name"}, wantErr: "1 to 15 characters"},
		{name: "bad mtu", generic: map[string]interface{}{optMTU: "jumbo"}, wantErr: "MTU from 68"},
		{name: "bad masquerade", generic: map[string]interface{}{optMasquerade: "maybe"}, wantErr: "true or false"},
		{name: "unknown option", generic: map[string]interface{}{"com.docker.network.bridge.enable_icc": "false"}, wantErr: "not known to vpcroute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, h, _, db := newTestDriver(t)
			err := d.CreateNetwork(createReq(netID, "10.0.2.0/24", "10.0.2.1/24", tt.generic))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("CreateNetwork = %v; want error containing %q", err, tt.wantErr)
				}
				if len(h.bridges)+len(h.nets) != 0 {
					t.Fatalf("failed create left %v %v", h.bridges, h.nets)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n, err := db.Network(netID)
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(n); msg != "" {
				t.Fatalf("network: %s", msg)
			}
			if h.bridges[n.Bridge] != netID || h.nets[netID].Subnet.String() != "10.0.2.0/24" {
				t.Fatalf("kernel objects: bridges %v rules %v", h.bridges, h.nets)
			}
		})
	}
}

func TestCreateNetworkRollsBack(t *testing.T) {
	d, h, c, db := newTestDriver(t)
	h.failFW = errors.New("iptables: resource busy")
	err := d.CreateNetwork(createReq(netID, "10.0.2.0/24", "10.0.2.1/24", nil))
	if err == nil {
		t.Fatal("CreateNetwork succeeded with a failing firewall")
	}
	nets, _ := db.Networks()
	if len(h.bridges) != 0 || len(c.claimed) != 0 || len(nets) != 0 {
		t.Fatalf("left behind: bridges %v claims %v state %v", h.bridges, c.claimed, nets)
	}
}

func TestBridgeNameClash(t *testing.T) {
	d, _, _, _ := newTestDriver(t)
	g := map[string]interface{}{optBridgeName: "br-app"}
	if err := d.CreateNetwork(createReq(netID, "10.0.2.0/24", "10.0.2.1/24", g)); err != nil {
		t.Fatal(err)
	}
	err := d.CreateNetwork(createReq("fedcba9876543210", "10.0.3.0/24", "10.0.3.1/24", g))
	if err == nil || !strings.Contains(err.Error(), "already used by network") {
		t.Fatalf("second network with the same bridge name: %v", err)
	}
}

func TestEndpointLifecycle(t *testing.T) {
	d, h, c, db := newTestDriver(t)
	if err := d.CreateNetwork(createReq(netID, "10.0.2.0/24", "10.0.2.1/24", nil)); err != nil {
		t.Fatal(err)
	}
	if c.claimed[netip.MustParsePrefix("10.0.2.0/24")] == "" {
		t.Fatal("a subnet from Docker's default IPAM was not claimed")
	}
	const ep = "eeeeeeeeeeee1111"
	res, err := d.CreateEndpoint(&dnet.CreateEndpointRequest{NetworkID: netID, EndpointID: ep, Interface: &dnet.EndpointInterface{Address: "10.0.2.2/24"}})
	if err != nil || res.Interface != nil {
		t.Fatalf("CreateEndpoint = %+v, %v; want no interface fields echoed", res, err)
	}
	join, err := d.Join(&dnet.JoinRequest{NetworkID: netID, EndpointID: ep, SandboxKey: "/var/run/docker/netns/x"})
	if err != nil {
		t.Fatal(err)
	}
	if join.Gateway != "10.0.2.1" || join.InterfaceName.SrcName != "vrceeeeeeeeeeee" || join.InterfaceName.DstPrefix != "eth" {
		t.Fatalf("Join = %+v", join)
	}
	if h.veths["vrheeeeeeeeeeee"] != "vr-0123456789ab" {
		t.Fatalf("veth not on the bridge: %v", h.veths)
	}
	portmap := []interface{}{
		map[string]interface{}{"Proto": 6, "Port": 80, "HostPort": 8080, "HostPortEnd": 8080},
		map[string]interface{}{"Proto": 17, "Port": 53, "HostIP": "127.0.0.1", "HostPort": 5353},
		map[string]interface{}{"Proto": 6, "Port": 9000, "HostPort": 0},
	}
	err = d.ProgramExternalConnectivity(&dnet.ProgramExternalConnectivityRequest{NetworkID: netID, EndpointID: ep, Options: map[string]interface{}{portMapOption: portmap}})
	if err != nil {
		t.Fatal(err)
	}
	saved, _ := db.Endpoint(netID, ep)
	if len(saved.Ports) != 3 || len(h.ports) != 3 {
		t.Fatalf("ports saved %+v, rules %v", saved.Ports, h.ports)
	}
	if p := saved.Ports[2]; p.HostPort < ephemeralFirst || p.HostPort > ephemeralLast {
		t.Fatalf("-p 9000 got host port %d; want one from the ephemeral range", p.HostPort)
	}
	if p := saved.Ports[1]; p.Proto != "udp" || p.HostIP.String() != "127.0.0.1" {
		t.Fatalf("-p 127.0.0.1:5353:53/udp saved as %+v", p)
	}

	// A second container asking for 8080 gets a clear error and leaves no rule.
	const ep2 = "ffffffffffff2222"
	_, _ = d.CreateEndpoint(&dnet.CreateEndpointRequest{NetworkID: netID, EndpointID: ep2, Interface: &dnet.EndpointInterface{Address: "10.0.2.3/24"}})
	err = d.ProgramExternalConnectivity(&dnet.ProgramExternalConnectivityRequest{NetworkID: netID, EndpointID: ep2, Options: map[string]interface{}{portMapOption: []interface{}{
		map[string]interface{}{"Proto": 6, "Port": 81, "HostPort": 8081},
		map[string]interface{}{"Proto": 6, "Port": 80, "HostPort": 8080},
	}}})
	if err == nil || !strings.Contains(err.Error(), "8080") || !strings.Contains(err.Error(), "another host port") {
		t.Fatalf("clashing -p 8080: %v", err)
	}
	if len(h.ports) != 3 {
		t.Fatalf("failed publish left rules: %v", h.ports)
	}
	// A port a host process holds.
	err = d.ProgramExternalConnectivity(&dnet.ProgramExternalConnectivityRequest{NetworkID: netID, EndpointID: ep2, Options: map[string]interface{}{portMapOption: []interface{}{
		map[string]interface{}{"Proto": 6, "Port": 22, "HostPort": 22},
	}}})
	if err == nil || !strings.Contains(err.Error(), "in use on this host") {
		t.Fatalf("-p 22 held by sshd: %v", err)
	}

	// Leave removes ports and veth; repeated calls are harmless.
	for i := 0; i < 2; i++ {
		if err := d.RevokeExternalConnectivity(&dnet.RevokeExternalConnectivityRequest{NetworkID: netID, EndpointID: ep}); err != nil {
			t.Fatal(err)
		}
		if err := d.Leave(&dnet.LeaveRequest{NetworkID: netID, EndpointID: ep}); err != nil {
			t.Fatal(err)
		}
		if err := d.DeleteEndpoint(&dnet.DeleteEndpointRequest{NetworkID: netID, EndpointID: ep}); err != nil {
			t.Fatal(err)
		}
	}
	if len(h.ports) != 0 || len(h.veths) != 0 {
		t.Fatalf("after leave: ports %v veths %v", h.ports, h.veths)
	}
	for i := 0; i < 2; i++ {
		if err := d.DeleteNetwork(&dnet.DeleteNetworkRequest{NetworkID: netID}); err != nil {
			t.Fatal(err)
		}
	}
	nets, _ := db.Networks()
	eps, _ := db.Endpoints("")
	if len(h.bridges)+len(h.nets)+len(c.claimed)+len(nets)+len(eps) != 0 {
		t.Fatalf("after delete: bridges %v rules %v claims %v state %v %v", h.bridges, h.nets, c.claimed, nets, eps)
	}
}

func TestInternalNetwork(t *testing.T) {
	d, h, _, _ := newTestDriver(t)
	req := createReq(netID, "10.0.2.0/24", "10.0.2.1/24", nil)
	req.Options[internalOption] = true
	if err := d.CreateNetwork(req); err != nil {
		t.Fatal(err)
	}
	if !h.nets[netID].Internal {
		t.Fatal("rules not marked internal")
	}
	const ep = "eeeeeeeeeeee1111"
	_, _ = d.CreateEndpoint(&dnet.CreateEndpointRequest{NetworkID: netID, EndpointID: ep, Interface: &dnet.EndpointInterface{Address: "10.0.2.2/24"}})
	join, err := d.Join(&dnet.JoinRequest{NetworkID: netID, EndpointID: ep})
	if err != nil || join.Gateway != "" {
		t.Fatalf("Join on --internal = %+v, %v; want no gateway", join, err)
	}
	err = d.ProgramExternalConnectivity(&dnet.ProgramExternalConnectivityRequest{NetworkID: netID, EndpointID: ep, Options: map[string]interface{}{portMapOption: []interface{}{
		map[string]interface{}{"Proto": 6, "Port": 80, "HostPort": 8080},
	}}})
	if err == nil || !strings.Contains(err.Error(), "internal") {
		t.Fatalf("publishing on --internal: %v", err)
	}
}

func TestRestore(t *testing.T) {
	d, h, c, db := newTestDriver(t)
	if err := d.CreateNetwork(createReq(netID, "10.0.2.0/24", "10.0.2.1/24", nil)); err != nil {
		t.Fatal(err)
	}
	_ = db.PutEndpoint(state.Endpoint{NetworkID: netID, ID: "ep1", Addr: netip.MustParseAddr("10.0.2.2"),
		Ports: []state.Port{{Proto: "tcp", HostPort: 8080, ContainerPort: 80}}})
	// A crash mid-create of another network, an orphan bridge, and rules lost in a
	// reboot of the firewall.
	_ = db.PutNetwork(state.Network{ID: "half", Bridge: "vr-half", Subnet: netip.MustParsePrefix("10.0.3.0/24"), Creating: true, ClaimOwner: "net-half"})
	c.claimed[netip.MustParsePrefix("10.0.3.0/24")] = "net-half"
	h.bridges["vr-half"] = "half"
	h.bridges["vr-orphan"] = "orphan"
	h.nets = map[string]firewall.NetworkRules{}
	h.ports = map[firewall.PortMap]bool{}

	if err := d.Restore(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if len(h.bridges) != 1 || h.bridges["vr-0123456789ab"] != netID {
		t.Fatalf("bridges after restore: %v", h.bridges)
	}
	if _, ok := h.nets[netID]; !ok || len(h.ports) != 1 {
		t.Fatalf("rules not restored: %v %v", h.nets, h.ports)
	}
	if _, ok := c.claimed[netip.MustParsePrefix("10.0.3.0/24")]; ok {
		t.Fatal("claim of the half-made network kept")
	}
	if _, err := db.Network("half"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("half-made network kept: %v", err)
	}
	if !h.pruned[netID] || h.pruned["half"] {
		t.Fatalf("prune keep set = %v", h.pruned)
	}
}

// Docker forgets a network whatever DeleteNetwork answers: a failed teardown must be
// finished by the repair loop, never undone by it.
func TestFailedDeleteIsFinishedLater(t *testing.T) {
	d, h, c, db := newTestDriver(t)
	if err := d.CreateNetwork(createReq(netID, "10.0.2.0/24", "10.0.2.1/24", nil)); err != nil {
		t.Fatal(err)
	}
	h.failDel = errors.New("iptables: resource busy")
	if err := d.DeleteNetwork(&dnet.DeleteNetworkRequest{NetworkID: netID}); err == nil {
		t.Fatal("DeleteNetwork succeeded with a failing firewall")
	}
	if err := d.repair(false); err == nil {
		t.Fatal("repair succeeded with a failing firewall")
	}
	if _, ok := h.nets[netID]; !ok {
		t.Fatal("rules vanished although deletion failed")
	}
	n, err := db.Network(netID)
	if err != nil || !n.Deleting {
		t.Fatalf("network after failed delete = %+v, %v; want it marked Deleting", n, err)
	}
	h.failDel = nil
	if err := d.repair(false); err != nil {
		t.Fatal(err)
	}
	nets, _ := db.Networks()
	if len(h.nets)+len(h.bridges)+len(c.claimed)+len(nets) != 0 {
		t.Fatalf("after repair: rules %v bridges %v claims %v state %v", h.nets, h.bridges, c.claimed, nets)
	}
}

func TestFailedEndpointDeleteIsFinishedLater(t *testing.T) {
	d, h, _, db := newTestDriver(t)
	if err := d.CreateNetwork(createReq(netID, "10.0.2.0/24", "10.0.2.1/24", nil)); err != nil {
		t.Fatal(err)
	}
	const ep = "eeeeeeeeeeee1111"
	_, _ = d.CreateEndpoint(&dnet.CreateEndpointRequest{NetworkID: netID, EndpointID: ep, Interface: &dnet.EndpointInterface{Address: "10.0.2.2/24"}})
	_, _ = d.Join(&dnet.JoinRequest{NetworkID: netID, EndpointID: ep})
	pm := map[string]interface{}{portMapOption: []interface{}{map[string]interface{}{"Proto": 6, "Port": 80, "HostPort": 8080}}}
	if err := d.ProgramExternalConnectivity(&dnet.ProgramExternalConnectivityRequest{NetworkID: netID, EndpointID: ep, Options: pm}); err != nil {
		t.Fatal(err)
	}
	// Programming again (a Docker retry) replaces, it does not add.
	if err := d.ProgramExternalConnectivity(&dnet.ProgramExternalConnectivityRequest{NetworkID: netID, EndpointID: ep, Options: pm}); err != nil {
		t.Fatal(err)
	}
	if len(h.ports) != 1 {
		t.Fatalf("ports after programming twice: %v", h.ports)
	}
	fw := &failingPorts{fakeHost: h, fail: true}
	d.fw = fw
	if err := d.DeleteEndpoint(&dnet.DeleteEndpointRequest{NetworkID: netID, EndpointID: ep}); err == nil {
		t.Fatal("DeleteEndpoint succeeded with a failing firewall")
	}
	if e, err := db.Endpoint(netID, ep); err != nil || !e.Gone {
		t.Fatalf("endpoint after failed delete = %+v, %v; want it marked Gone", e, err)
	}
	fw.fail = false
	if err := d.repair(false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Endpoint(netID, ep); !errors.Is(err, state.ErrNotFound) || len(h.ports) != 0 {
		t.Fatalf("after repair: endpoint err %v, ports %v", err, h.ports)
	}
}

// failingPorts fails DeletePort while fail is set.
type failingPorts struct {
	*fakeHost
	fail bool
}

func (f *failingPorts) DeletePort(p firewall.PortMap) error {
	if f.fail {
		return errors.New("iptables: resource busy")
	}
	return f.fakeHost.DeletePort(p)
}

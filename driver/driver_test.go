package driver

import (
	"net/netip"
	"strings"
	"testing"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	dnet "github.com/docker/go-plugins-helpers/network"

	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/internal/testctl"
	"github.com/vpcroute/vpcroute/ipam"
)

const netID = "0123456789abcdef0123456789abcdef"

func createReq(space, subnet, gw string, generic map[string]interface{}) *dnet.CreateNetworkRequest {
	opts := map[string]interface{}{}
	if generic != nil {
		opts[genericOption] = generic
	}
	return &dnet.CreateNetworkRequest{NetworkID: netID, Options: opts,
		IPv4Data: []*dnet.IPAMData{{AddressSpace: space, Pool: subnet, Gateway: gw}}}
}

func TestNetworkSpec(t *testing.T) {
	tests := []struct {
		name    string
		req     func() *dnet.CreateNetworkRequest
		want    controller.NetworkSpec
		wantErr string
	}{
		{name: "Docker's default IPAM", req: func() *dnet.CreateNetworkRequest {
			return createReq("LocalDefault", "10.0.2.0/24", "10.0.2.1/24", nil)
		}, want: controller.NetworkSpec{ID: netID, Subnet: netip.MustParsePrefix("10.0.2.0/24"), Gateway: netip.MustParsePrefix("10.0.2.1/24"), Masquerade: true}},
		{name: "vpcroute's IPAM, options, internal", req: func() *dnet.CreateNetworkRequest {
			r := createReq(ipam.LocalSpace, "10.0.2.0/24", "10.0.2.254/24", map[string]interface{}{
				controller.OptBridgeName: "br-app", controller.OptMTU: "1400", controller.OptMasquerade: "false"})
			r.Options[internalOption] = true
			return r
		}, want: controller.NetworkSpec{ID: netID, Subnet: netip.MustParsePrefix("10.0.2.0/24"), Gateway: netip.MustParsePrefix("10.0.2.254/24"),
			FromVpcroute: true, Bridge: "br-app", MTU: 1400, Internal: true}},
		{name: "unknown option", req: func() *dnet.CreateNetworkRequest {
			return createReq(ipam.LocalSpace, "10.0.2.0/24", "10.0.2.1/24", map[string]interface{}{"com.docker.network.bridge.host_binding_ipv4": "10.0.0.1"})
		}, wantErr: "not known to vpcroute"},
		{name: "ipv6", req: func() *dnet.CreateNetworkRequest {
			r := createReq(ipam.LocalSpace, "10.0.2.0/24", "10.0.2.1/24", nil)
			r.IPv6Data = []*dnet.IPAMData{{Pool: "fd00::/64"}}
			return r
		}, wantErr: "IPv4 only"},
		{name: "two subnets", req: func() *dnet.CreateNetworkRequest {
			r := createReq(ipam.LocalSpace, "10.0.2.0/24", "10.0.2.1/24", nil)
			r.IPv4Data = append(r.IPv4Data, r.IPv4Data[0])
			return r
		}, wantErr: "exactly one IPv4 subnet"},
		{name: "gateway without length", req: func() *dnet.CreateNetworkRequest {
			return createReq(ipam.LocalSpace, "10.0.2.0/24", "10.0.2.1", nil)
		}, wantErr: "--gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := networkSpec(tt.req())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("networkSpec = %+v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("networkSpec = %+v, %v;\nwant %+v", got, err, tt.want)
			}
		})
	}
}

func TestPortRequests(t *testing.T) {
	got, err := portRequests(map[string]interface{}{portMapOption: []interface{}{
		map[string]interface{}{"Proto": 6, "Port": 80, "HostPort": 8080, "HostPortEnd": 8080},
		map[string]interface{}{"Proto": 17, "Port": 53, "HostIP": "127.0.0.1", "HostPort": 5353},
		map[string]interface{}{"Proto": 132, "Port": 9000},
	}})
	want := []controller.PortRequest{
		{Proto: "tcp", ContainerPort: 80, HostPort: 8080, HostPortEnd: 8080},
		{Proto: "udp", ContainerPort: 53, HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5353},
		{Proto: "sctp", ContainerPort: 9000},
	}
	if err != nil || len(got) != len(want) {
		t.Fatalf("portRequests = %+v, %v", got, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("port %d = %+v; want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []map[string]interface{}{
		{"Proto": 1, "Port": 80},
		{"Proto": 6, "Port": 80, "HostIP": "::1", "HostPort": 80},
	} {
		if _, err := portRequests(map[string]interface{}{portMapOption: []interface{}{bad}}); err == nil {
			t.Errorf("port map %v accepted", bad)
		}
	}
	if got, err := portRequests(nil); err != nil || len(got) != 0 {
		t.Errorf("no port map = %v, %v", got, err)
	}
}

// Docker's calls for one container, in the order Docker makes them, through both
// plugin APIs: what each answers, and that nothing is left at the end.
func TestDockerSequence(t *testing.T) {
	e := testctl.New(t)
	im, d := ipam.New(e.C), New(e.C)
	pool, err := im.RequestPool(&dipam.RequestPoolRequest{AddressSpace: ipam.LocalSpace})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(pool.PoolID, "/"+pool.Pool) {
		t.Fatalf("pool ID %q does not carry the subnet %s", pool.PoolID, pool.Pool)
	}
	gw, err := im.RequestAddress(&dipam.RequestAddressRequest{PoolID: pool.PoolID, Options: map[string]string{"RequestAddressType": "com.docker.network.gateway"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CreateNetwork(createReq(ipam.LocalSpace, pool.Pool, gw.Address, nil)); err != nil {
		t.Fatal(err)
	}
	if e.VPC.Len() != 1 {
		t.Fatalf("route table after a create: %v; want the pool's route only", e.VPC.Routes)
	}
	addr, err := im.RequestAddress(&dipam.RequestAddressRequest{PoolID: pool.PoolID})
	if err != nil {
		t.Fatal(err)
	}
	const ep = "eeeeeeeeeeee1111"
	res, err := d.CreateEndpoint(&dnet.CreateEndpointRequest{NetworkID: netID, EndpointID: ep, Interface: &dnet.EndpointInterface{Address: addr.Address}})
	if err != nil || res.Interface != nil {
		t.Fatalf("CreateEndpoint = %+v, %v; want no interface fields echoed", res, err)
	}
	join, err := d.Join(&dnet.JoinRequest{NetworkID: netID, EndpointID: ep, SandboxKey: "/var/run/docker/netns/x"})
	if err != nil {
		t.Fatal(err)
	}
	if join.Gateway != strings.Split(gw.Address, "/")[0] || join.InterfaceName.SrcName != "vrceeeeeeeeeeee" || join.InterfaceName.DstPrefix != "eth" {
		t.Fatalf("Join = %+v", join)
	}
	pm := map[string]interface{}{portMapOption: []interface{}{map[string]interface{}{"Proto": 6, "Port": 80, "HostPort": 48080, "HostPortEnd": 48080}}}
	if err := d.ProgramExternalConnectivity(&dnet.ProgramExternalConnectivityRequest{NetworkID: netID, EndpointID: ep, Options: pm}); err != nil {
		t.Fatal(err)
	}
	info, err := d.EndpointInfo(&dnet.InfoRequest{NetworkID: netID, EndpointID: ep})
	if err != nil || info.Value["vpcroute.ports"] != "0.0.0.0:48080->80/tcp" {
		t.Fatalf("EndpointInfo = %+v, %v", info, err)
	}
	steps := []func() error{
		func() error {
			return d.RevokeExternalConnectivity(&dnet.RevokeExternalConnectivityRequest{NetworkID: netID, EndpointID: ep})
		},
		func() error { return d.Leave(&dnet.LeaveRequest{NetworkID: netID, EndpointID: ep}) },
		func() error { return d.DeleteEndpoint(&dnet.DeleteEndpointRequest{NetworkID: netID, EndpointID: ep}) },
		func() error {
			return im.ReleaseAddress(&dipam.ReleaseAddressRequest{PoolID: pool.PoolID, Address: strings.Split(addr.Address, "/")[0]})
		},
		func() error {
			return im.ReleaseAddress(&dipam.ReleaseAddressRequest{PoolID: pool.PoolID, Address: strings.Split(gw.Address, "/")[0]})
		},
		func() error { return im.ReleasePool(&dipam.ReleasePoolRequest{PoolID: pool.PoolID}) },
		func() error { return d.DeleteNetwork(&dnet.DeleteNetworkRequest{NetworkID: netID}) },
	}
	for range 2 { // every removal is harmless to repeat: Docker retries
		for i, step := range steps {
			if err := step(); err != nil {
				t.Fatalf("removal step %d: %v", i, err)
			}
		}
	}
	nets, _ := e.DB.Networks()
	pools, _ := e.DB.Pools()
	if e.VPC.Len()+len(e.Host.Marked)+len(e.Host.Rules)+len(e.Host.Ports)+len(e.Host.Attached)+len(nets)+len(pools) != 0 {
		t.Fatalf("left behind: routes %v bridges %v rules %v ports %v veths %v networks %v pools %v",
			e.VPC.Routes, e.Host.Marked, e.Host.Rules, e.Host.Ports, e.Host.Attached, nets, pools)
	}
}

func TestInternalJoinHasNoGateway(t *testing.T) {
	e := testctl.New(t)
	d := New(e.C)
	r := createReq("LocalDefault", "10.0.2.0/24", "10.0.2.1/24", nil)
	r.Options[internalOption] = true
	if err := d.CreateNetwork(r); err != nil {
		t.Fatal(err)
	}
	const ep = "eeeeeeeeeeee1111"
	if _, err := d.CreateEndpoint(&dnet.CreateEndpointRequest{NetworkID: netID, EndpointID: ep, Interface: &dnet.EndpointInterface{Address: "10.0.2.2/24"}}); err != nil {
		t.Fatal(err)
	}
	join, err := d.Join(&dnet.JoinRequest{NetworkID: netID, EndpointID: ep})
	if err != nil || join.Gateway != "" {
		t.Fatalf("Join on --internal = %+v, %v; want no gateway", join, err)
	}
	for _, bad := range []*dnet.EndpointInterface{nil, {Address: "10.0.2.3/24", AddressIPv6: "fd00::3/64"}, {Address: "10.0.2.3"}} {
		if _, err := d.CreateEndpoint(&dnet.CreateEndpointRequest{NetworkID: netID, EndpointID: "x", Interface: bad}); err == nil {
			t.Errorf("CreateEndpoint with %+v accepted", bad)
		}
	}
}

func TestIDsDockerWouldNotSend(t *testing.T) {
	e := testctl.New(t)
	d := New(e.C)
	for _, id := range []string{"", "../../x", "a/b", strings.Repeat("a", 200), "id with space"} {
		r := createReq("LocalDefault", "10.0.2.0/24", "10.0.2.1/24", nil)
		r.NetworkID = id
		if err := d.CreateNetwork(r); err == nil || !strings.Contains(err.Error(), "not an ID Docker makes") {
			t.Errorf("network ID %q: %v", id, err)
		}
		if _, err := d.CreateEndpoint(&dnet.CreateEndpointRequest{NetworkID: netID, EndpointID: id, Interface: &dnet.EndpointInterface{Address: "10.0.2.2/24"}}); err == nil {
			t.Errorf("endpoint ID %q accepted", id)
		}
	}
	if len(e.Host.Marked) != 0 {
		t.Errorf("refused IDs made bridges: %v", e.Host.Marked)
	}
}

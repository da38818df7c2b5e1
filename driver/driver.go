// Package driver is vpcroute's Docker network driver: a thin adapter of Docker's
// network plugin API to the controller, which owns each network's bridge, rules,
// veths and published ports. This package only reads Docker's requests (options,
// IPAM data, port maps) and writes its answers.
package driver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	dnet "github.com/docker/go-plugins-helpers/network"

	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/ipam"
	"github.com/vpcroute/vpcroute/server"
)

// Options Docker passes to CreateNetwork besides the user's -o options.
const (
	genericOption  = "com.docker.network.generic"
	internalOption = "com.docker.network.internal"
)

// Networks is what the network driver needs of the controller.
type Networks interface {
	CreateNetwork(context.Context, controller.NetworkSpec) error
	DeleteNetwork(ctx context.Context, id string) error
	CreateEndpoint(networkID, endpointID string, addr netip.Prefix) error
	DeleteEndpoint(networkID, endpointID string) error
	Join(networkID, endpointID string) (controller.Joined, error)
	Leave(networkID, endpointID string) error
	PublishPorts(networkID, endpointID string, reqs []controller.PortRequest) error
	UnpublishPorts(networkID, endpointID string) error
	EndpointPorts(networkID, endpointID string) []string
}

// Driver implements Docker's network driver plugin API.
type Driver struct{ nets Networks }

var (
	_ dnet.Driver           = (*Driver)(nil)
	_ server.ContextNetwork = (*Driver)(nil)
)

// New returns the driver.
func New(nets Networks) *Driver { return &Driver{nets: nets} }

// Capabilities: a network is local to its ECS (its subnet, bridge and records are
// this host's), and its containers reach every other ECS's by routing through the VPC:
// global connectivity. Swarm reads that pair as a node-local driver whose service
// tasks on different nodes reach each other, as with macvlan: it runs services on a
// `--config-from` network, and feeds their names to every node's DNS.
func Capabilities() *dnet.CapabilitiesResponse {
	return &dnet.CapabilitiesResponse{Scope: dnet.LocalScope, ConnectivityScope: dnet.GlobalScope}
}

// GetCapabilities returns Capabilities.
func (d *Driver) GetCapabilities() (*dnet.CapabilitiesResponse, error) { return Capabilities(), nil }

// AllocateNetwork is the swarm manager's call for global-scope drivers; for a local
// one (vpcroute) it does not come, and each node's own IPAM gives the subnet.
func (d *Driver) AllocateNetwork(*dnet.AllocateNetworkRequest) (*dnet.AllocateNetworkResponse, error) {
	return nil, errors.New("vpcroute allocates a network's subnet on each ECS: create the swarm network with --config-from a --config-only network on every node (see the README's Swarm section)")
}

// FreeNetwork is the counterpart of AllocateNetwork.
func (d *Driver) FreeNetwork(*dnet.FreeNetworkRequest) error { return nil }

// DiscoverNew tells of swarm nodes joining: the VPC routes to them, nothing to do.
func (d *Driver) DiscoverNew(*dnet.DiscoveryNotification) error { return nil }

// DiscoverDelete tells of swarm nodes leaving: their routes go with their networks.
func (d *Driver) DiscoverDelete(*dnet.DiscoveryNotification) error { return nil }

// CreateNetwork is CreateNetworkContext without a deadline of Docker's.
func (d *Driver) CreateNetwork(req *dnet.CreateNetworkRequest) error {
	return d.CreateNetworkContext(context.Background(), req)
}

// CreateNetworkContext reads Docker's request and asks the controller for the
// network; its cloud work stops when ctx (Docker's request) ends.
func (d *Driver) CreateNetworkContext(ctx context.Context, req *dnet.CreateNetworkRequest) error {
	spec, err := networkSpec(req)
	if err != nil {
		return err
	}
	return d.nets.CreateNetwork(ctx, spec)
}

// networkSpec reads a CreateNetwork request.
func networkSpec(req *dnet.CreateNetworkRequest) (controller.NetworkSpec, error) {
	generic, _ := req.Options[genericOption].(map[string]interface{})
	opts := make(map[string]string, len(generic))
	for k, v := range generic {
		opts[k] = fmt.Sprint(v)
	}
	o, err := controller.ParseOptions(opts)
	if err != nil {
		return controller.NetworkSpec{}, err
	}
	if len(req.IPv6Data) > 0 {
		return controller.NetworkSpec{}, errors.New("vpcroute routes IPv4 only: create the network without --ipv6")
	}
	if len(req.IPv4Data) != 1 {
		return controller.NetworkSpec{}, fmt.Errorf("a vpcroute network has exactly one IPv4 subnet, got %d: give one --subnet (or none)", len(req.IPv4Data))
	}
	data := req.IPv4Data[0]
	subnet, err := netip.ParsePrefix(data.Pool)
	if err != nil {
		return controller.NetworkSpec{}, fmt.Errorf("subnet %q from IPAM is not a CIDR: %w", data.Pool, err)
	}
	gw, err := netip.ParsePrefix(data.Gateway)
	if err != nil {
		return controller.NetworkSpec{}, fmt.Errorf("gateway %q from IPAM is not an address with prefix length: give --gateway inside the subnet", data.Gateway)
	}
	internal, _ := req.Options[internalOption].(bool)
	if err := checkID("network", req.NetworkID); err != nil {
		return controller.NetworkSpec{}, err
	}
	return controller.NetworkSpec{
		ID: req.NetworkID, Subnet: subnet, Gateway: gw, FromVpcroute: ipam.IsOwnSpace(data.AddressSpace),
		Bridge: o.Bridge, MTU: o.MTU, Masquerade: o.Masquerade, Internal: internal, OutsidePool: o.OutsidePool,
		Takeover: o.Takeover, NoICC: o.NoICC, Isolate: o.Isolate, Allow: o.Allow,
	}, nil
}

// checkID refuses an ID Docker would never send (it sends 64 hex digits): it names
// links, chains and records.
func checkID(what, id string) error {
	if id == "" || len(id) > 128 || strings.Contains(id, "..") {
		return fmt.Errorf("%s ID %q is not an ID Docker makes", what, id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%s ID %q is not an ID Docker makes", what, id)
		}
	}
	return nil
}

// DeleteNetwork removes the network; an unknown one succeeds, so Docker's retries are
// harmless.
func (d *Driver) DeleteNetwork(req *dnet.DeleteNetworkRequest) error {
	return d.DeleteNetworkContext(context.Background(), req)
}

// DeleteNetworkContext is DeleteNetwork bound to Docker's request.
func (d *Driver) DeleteNetworkContext(ctx context.Context, req *dnet.DeleteNetworkRequest) error {
	return d.nets.DeleteNetwork(ctx, req.NetworkID)
}

// CreateEndpoint records the endpoint. Docker already set its address, so the
// response carries nothing: a driver that echoes fields Docker set is an error.
func (d *Driver) CreateEndpoint(req *dnet.CreateEndpointRequest) (*dnet.CreateEndpointResponse, error) {
	if req.Interface == nil || req.Interface.Address == "" {
		return nil, errors.New("endpoint has no IPv4 address: vpcroute networks need an IPAM driver that assigns one")
	}
	if req.Interface.AddressIPv6 != "" {
		return nil, errors.New("vpcroute routes IPv4 only: remove --ip6")
	}
	if err := checkID("endpoint", req.EndpointID); err != nil {
		return nil, err
	}
	a, err := netip.ParsePrefix(req.Interface.Address)
	if err != nil {
		return nil, fmt.Errorf("endpoint address %q is not an address with prefix length", req.Interface.Address)
	}
	if err := d.nets.CreateEndpoint(req.NetworkID, req.EndpointID, a); err != nil {
		return nil, err
	}
	return &dnet.CreateEndpointResponse{}, nil
}

// DeleteEndpoint removes what the endpoint still holds.
func (d *Driver) DeleteEndpoint(req *dnet.DeleteEndpointRequest) error {
	return d.nets.DeleteEndpoint(req.NetworkID, req.EndpointID)
}

// EndpointInfo reports the endpoint's published ports, for `docker network inspect`
// debugging; Docker does not read anything else from a remote driver here.
func (d *Driver) EndpointInfo(req *dnet.InfoRequest) (*dnet.InfoResponse, error) {
	v := map[string]string{}
	if ps := d.nets.EndpointPorts(req.NetworkID, req.EndpointID); len(ps) > 0 {
		v["vpcroute.ports"] = strings.Join(ps, ",")
	}
	return &dnet.InfoResponse{Value: v}, nil
}

// Join hands Docker the container's end of a new veth pair on the network's bridge.
func (d *Driver) Join(req *dnet.JoinRequest) (*dnet.JoinResponse, error) {
	j, err := d.nets.Join(req.NetworkID, req.EndpointID)
	if err != nil {
		return nil, err
	}
	resp := &dnet.JoinResponse{InterfaceName: dnet.InterfaceName{SrcName: j.Veth, DstPrefix: "eth"}}
	if j.Gateway.IsValid() {
		// Returning the gateway makes this network the container's default route,
		// so Docker adds no docker_gwbridge.
		resp.Gateway = j.Gateway.String()
	}
	return resp, nil
}

// Leave removes the veth and the endpoint's published ports.
func (d *Driver) Leave(req *dnet.LeaveRequest) error {
	return d.nets.Leave(req.NetworkID, req.EndpointID)
}

// ProgramExternalConnectivity publishes the container's ports.
func (d *Driver) ProgramExternalConnectivity(req *dnet.ProgramExternalConnectivityRequest) error {
	reqs, err := portRequests(req.Options)
	if err != nil {
		return err
	}
	return d.nets.PublishPorts(req.NetworkID, req.EndpointID, reqs)
}

// RevokeExternalConnectivity removes the endpoint's published ports.
func (d *Driver) RevokeExternalConnectivity(req *dnet.RevokeExternalConnectivityRequest) error {
	return d.nets.UnpublishPorts(req.NetworkID, req.EndpointID)
}

package driver

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	dnet "github.com/docker/go-plugins-helpers/network"

	"github.com/vpcroute/vpcroute/state"
)

// Veth names are derived from the endpoint ID, so Leave and a restarted plugin find
// them without a lookup. Both fit IFNAMSIZ.
func vethNames(endpointID string) (host, peer string) {
	id := short(endpointID)
	return "vrh" + id, "vrc" + id
}

// CreateEndpoint records the endpoint. Docker already set its address, so the
// response carries nothing: a driver that echoes fields Docker set is an error.
func (d *Driver) CreateEndpoint(req *dnet.CreateEndpointRequest) (*dnet.CreateEndpointResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.store.Network(req.NetworkID)
	if err != nil {
		return nil, fmt.Errorf("network %s is unknown to vpcroute: %w", short(req.NetworkID), err)
	}
	if req.Interface == nil || req.Interface.Address == "" {
		return nil, errors.New("endpoint has no IPv4 address: vpcroute networks need an IPAM driver that assigns one")
	}
	if req.Interface.AddressIPv6 != "" {
		return nil, errors.New("vpcroute routes IPv4 only: remove --ip6")
	}
	a, err := netip.ParsePrefix(req.Interface.Address)
	if err != nil || !n.Subnet.Contains(a.Addr()) {
		return nil, fmt.Errorf("endpoint address %q is not inside the network's subnet %s", req.Interface.Address, n.Subnet)
	}
	host, peer := vethNames(req.EndpointID)
	ep := state.Endpoint{NetworkID: n.ID, ID: req.EndpointID, Addr: a.Addr(), HostVeth: host, PeerVeth: peer}
	if err := d.store.PutEndpoint(ep); err != nil {
		return nil, fmt.Errorf("save endpoint %s: %w", short(ep.ID), err)
	}
	return &dnet.CreateEndpointResponse{}, nil
}

// DeleteEndpoint removes what the endpoint still holds and forgets it.
func (d *Driver) DeleteEndpoint(req *dnet.DeleteEndpointRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ep, found, err := d.endpointOf(req.NetworkID, req.EndpointID)
	if !found || err != nil {
		return err
	}
	if err := d.removeEndpointObjects(n, ep); err != nil {
		// Docker forgets the endpoint whatever we answer: keep it marked, so the
		// repair loop removes its leftovers and never restores them.
		ep.Gone = true
		if perr := d.store.PutEndpoint(ep); perr != nil {
			return errors.Join(err, perr)
		}
		return fmt.Errorf("delete endpoint %s (vpcroute retries it): %w", short(ep.ID), err)
	}
	return d.store.DeleteEndpoint(req.NetworkID, req.EndpointID)
}

// endpointOf loads an endpoint and its network for the teardown calls. found is false
// when the endpoint is already gone, so that Docker's retries succeed.
func (d *Driver) endpointOf(networkID, endpointID string) (n state.Network, ep state.Endpoint, found bool, err error) {
	ep, err = d.store.Endpoint(networkID, endpointID)
	if errors.Is(err, state.ErrNotFound) {
		return n, ep, false, nil
	}
	if err != nil {
		return n, ep, false, err
	}
	n, err = d.store.Network(networkID)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return n, ep, false, err
	}
	return n, ep, true, nil
}

// removePorts deletes the endpoint's published ports.
func (d *Driver) removePorts(n state.Network, ep state.Endpoint) error {
	var errs []error
	for _, p := range ep.Ports {
		if err := d.fw.DeletePort(portMap(n, ep, p)); err != nil {
			errs = append(errs, fmt.Errorf("unpublish %s: %w", portString(p), err))
		}
	}
	return errors.Join(errs...)
}

// removeEndpointObjects deletes the endpoint's port rules and veth.
func (d *Driver) removeEndpointObjects(n state.Network, ep state.Endpoint) error {
	errs := []error{d.removePorts(n, ep)}
	if ep.HostVeth != "" {
		if err := d.links.DeleteVeth(ep.HostVeth); err != nil {
			errs = append(errs, fmt.Errorf("veth %s: %w", ep.HostVeth, err))
		}
	}
	return errors.Join(errs...)
}

// EndpointInfo reports the endpoint's published ports, for `docker network inspect`
// debugging; Docker does not read anything else from a remote driver here.
func (d *Driver) EndpointInfo(req *dnet.InfoRequest) (*dnet.InfoResponse, error) {
	ep, err := d.store.Endpoint(req.NetworkID, req.EndpointID)
	if err != nil {
		return &dnet.InfoResponse{Value: map[string]string{}}, nil
	}
	v := map[string]string{}
	if len(ep.Ports) > 0 {
		var ps []string
		for _, p := range ep.Ports {
			ps = append(ps, portString(p))
		}
		v["vpcroute.ports"] = strings.Join(ps, ",")
	}
	return &dnet.InfoResponse{Value: v}, nil
}

// Join makes the veth pair and hands Docker the container end. No cloud call and no
// rule is made here, so its cost does not depend on how many containers there are.
func (d *Driver) Join(req *dnet.JoinRequest) (*dnet.JoinResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.store.Network(req.NetworkID)
	if err != nil || n.Deleting {
		return nil, fmt.Errorf("network %s is unknown to vpcroute (%v): re-create it", short(req.NetworkID), err)
	}
	ep, err := d.store.Endpoint(req.NetworkID, req.EndpointID)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s is unknown to vpcroute: %w", short(req.EndpointID), err)
	}
	if err := d.links.EnsureVeth(ep.HostVeth, ep.PeerVeth, n.Bridge, n.MTU); err != nil {
		_ = d.links.DeleteVeth(ep.HostVeth)
		return nil, fmt.Errorf("join %s to %s: %w", short(ep.ID), n.Bridge, err)
	}
	resp := &dnet.JoinResponse{InterfaceName: dnet.InterfaceName{SrcName: ep.PeerVeth, DstPrefix: "eth"}}
	if !n.Internal {
		// Returning the gateway makes this network the container's default route,
		// so Docker adds no docker_gwbridge.
		resp.Gateway = n.Gateway.Addr().String()
	}
	return resp, nil
}

// Leave removes the veth and the endpoint's published ports; it tolerates them being gone.
func (d *Driver) Leave(req *dnet.LeaveRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ep, found, err := d.endpointOf(req.NetworkID, req.EndpointID)
	if !found || err != nil {
		return err
	}
	if err := d.removeEndpointObjects(n, ep); err != nil {
		return fmt.Errorf("leave %s: %w", short(ep.ID), err)
	}
	ep.Ports = nil
	return d.store.PutEndpoint(ep)
}

package controller

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vpcroute/vpcroute/state"
)

// VethNames derives a container's veth names from its endpoint ID, so that Leave, a
// restarted plugin and a network rebuilt from Docker's list find them without a
// record. Both fit IFNAMSIZ.
func VethNames(endpointID string) (host, peer string) {
	id := short(endpointID)
	return "vrh" + id, "vrc" + id
}

// CreateEndpoint records a container's endpoint; addr is the address Docker gave it,
// with the subnet's length.
func (c *Controller) CreateEndpoint(networkID, endpointID string, addr netip.Prefix) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.liveNetwork(networkID)
	if err != nil {
		return err
	}
	if !n.Subnet.Contains(addr.Addr()) || addr.Bits() != n.Subnet.Bits() {
		return fmt.Errorf("endpoint address %s is not inside the network's subnet %s", addr, n.Subnet)
	}
	if addr.Addr() == n.Gateway.Addr() {
		return fmt.Errorf("endpoint address %s is the network's gateway: choose another address", addr.Addr())
	}
	eps, err := c.store.Endpoints(n.ID)
	if err != nil {
		return err
	}
	for _, ep := range eps {
		if ep.ID != endpointID && ep.Addr == addr.Addr() && !ep.Gone {
			return fmt.Errorf("endpoint address %s is in use by container endpoint %s: choose another address", addr.Addr(), short(ep.ID))
		}
	}
	host, peer := VethNames(endpointID)
	ep := state.Endpoint{NetworkID: n.ID, ID: endpointID, Addr: addr.Addr(), HostVeth: host, PeerVeth: peer}
	if err := c.store.PutEndpoint(ep); err != nil {
		return fmt.Errorf("save endpoint %s: %w", short(ep.ID), err)
	}
	return nil
}

// liveNetwork loads a network Docker may use. Call with mu held.
func (c *Controller) liveNetwork(id string) (state.Network, error) {
	n, err := c.store.Network(id)
	switch {
	case errors.Is(err, state.ErrNotFound):
		c.Kick()
		return n, fmt.Errorf("network %s is unknown to vpcroute: if its records were lost, vpcroute rebuilds them from Docker's list within seconds, so retry; otherwise remove and re-create the network", short(id))
	case err != nil:
		return n, err
	case n.Deleting:
		return n, fmt.Errorf("network %s is being removed: re-create it", label(n))
	case n.Creating:
		return n, fmt.Errorf("network %s is still being created: retry", label(n))
	}
	return n, nil
}

// DeleteEndpoint removes what the endpoint still holds and forgets it.
func (c *Controller) DeleteEndpoint(networkID, endpointID string) error {
	return c.withEndpoint(networkID, endpointID, func(n state.Network, ep state.Endpoint) error {
		return c.deleteEndpoint(n, ep)
	})
}

// withEndpoint runs fn, with mu held, on an endpoint and its network; an endpoint that
// is gone is not an error, so that Docker's retries of a teardown are harmless.
func (c *Controller) withEndpoint(networkID, endpointID string, fn func(state.Network, state.Endpoint) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ep, found, err := c.endpointOf(networkID, endpointID)
	if !found || err != nil {
		return err
	}
	return fn(n, ep)
}

func (c *Controller) deleteEndpoint(n state.Network, ep state.Endpoint) error {
	if err := c.removeEndpointObjects(n, ep); err != nil {
		// Docker forgets the endpoint whatever vpcroute answers: keep it marked, so
		// that the loop removes its leftovers and never restores them.
		ep.Gone = true
		if perr := c.store.PutEndpoint(ep); perr != nil {
			return errors.Join(err, perr)
		}
		c.Kick()
		return fmt.Errorf("delete endpoint %s (vpcroute retries it): %w", short(ep.ID), err)
	}
	return c.store.DeleteEndpoint(ep.NetworkID, ep.ID)
}

// endpointOf loads an endpoint and its network for the teardown calls. found is false
// when the endpoint is already gone, so that Docker's retries succeed. Call with mu
// held.
func (c *Controller) endpointOf(networkID, endpointID string) (n state.Network, ep state.Endpoint, found bool, err error) {
	ep, err = c.store.Endpoint(networkID, endpointID)
	if errors.Is(err, state.ErrNotFound) {
		return n, ep, false, nil
	}
	if err != nil {
		return n, ep, false, err
	}
	n, err = c.store.Network(networkID)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return n, ep, false, err
	}
	return n, ep, true, nil
}

// removeEndpointObjects deletes the endpoint's port rules and veth. Call with mu held.
func (c *Controller) removeEndpointObjects(n state.Network, ep state.Endpoint) error {
	errs := []error{c.removePorts(n, ep)}
	if ep.HostVeth != "" {
		if err := c.links.DeleteVeth(ep.HostVeth); err != nil {
			errs = append(errs, fmt.Errorf("veth %s: %w", ep.HostVeth, err))
		}
	}
	return errors.Join(errs...)
}

// Joined is what Docker needs to put a container on a network.
type Joined struct {
	// Veth is the container's end of the veth pair, for Docker to move and rename.
	Veth string
	// Gateway is the container's default gateway; invalid for --internal networks.
	Gateway netip.Addr
}

// Join makes the endpoint's veth pair on the network's bridge. It makes no cloud call
// and no rule, so its cost does not depend on how many containers there are.
func (c *Controller) Join(networkID, endpointID string) (Joined, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.liveNetwork(networkID)
	if err != nil {
		return Joined{}, err
	}
	ep, err := c.store.Endpoint(networkID, endpointID)
	if err != nil {
		return Joined{}, fmt.Errorf("endpoint %s is unknown to vpcroute: %w", short(endpointID), err)
	}
	if err := c.links.EnsureVeth(ep.HostVeth, ep.PeerVeth, n.Bridge, n.MTU); err != nil {
		_ = c.links.DeleteVeth(ep.HostVeth)
		return Joined{}, fmt.Errorf("join %s to %s: %w", short(ep.ID), n.Bridge, err)
	}
	j := Joined{Veth: ep.PeerVeth}
	if !n.Internal {
		j.Gateway = n.Gateway.Addr()
	}
	return j, nil
}

// Leave removes the veth and the endpoint's published ports; it tolerates them being
// gone.
func (c *Controller) Leave(networkID, endpointID string) error {
	return c.withEndpoint(networkID, endpointID, func(n state.Network, ep state.Endpoint) error {
		if err := c.removeEndpointObjects(n, ep); err != nil {
			return fmt.Errorf("leave %s: %w", short(ep.ID), err)
		}
		ep.Ports = nil
		return c.store.PutEndpoint(ep)
	})
}

// EndpointPorts returns the endpoint's published ports ("0.0.0.0:8080->80/tcp").
func (c *Controller) EndpointPorts(networkID, endpointID string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ep, err := c.store.Endpoint(networkID, endpointID)
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range ep.Ports {
		out = append(out, portString(p))
	}
	return out
}

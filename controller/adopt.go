package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/vpcroute/vpcroute/alloc"
	"github.com/vpcroute/vpcroute/dockerapi"
	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/reconcile"
	"github.com/vpcroute/vpcroute/state"
)

// adopt rebuilds the records of a network Docker has and vpcroute lacks (its state
// file was lost, or restored from an old backup) from `docker network inspect`: the
// network with its options, its pool with the addresses in use, and its running
// containers' endpoints with the ports the kernel still publishes for them. Then it
// makes the network whole: bridge and rules, the containers' veths back on the bridge
// where they still exist, and its route in the VPC, claimed again if it is free (a
// conflict, when another ECS took the subnet, is reported; local traffic goes on).
func (c *Controller) adopt(ctx context.Context, a reconcile.Action, log *slog.Logger) error {
	if c.docker == nil {
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	dn, err := c.docker.Network(dctx, a.ID)
	cancel()
	if errors.Is(err, dockerapi.ErrNotFound) {
		return nil // removed meanwhile
	}
	if err != nil {
		return err
	}
	var ports []firewall.PortMap
	if a.Network {
		if ports, err = c.fw.PublishedPorts(); err != nil {
			return err
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.store.Network(a.ID); err == nil {
		return nil // Docker's own call made it meanwhile
	}
	r, err := c.rebuild(dn, a, ports)
	if err != nil {
		return err
	}
	if r.pool != nil {
		if _, err := c.store.Pool(r.pool.ID); err == nil {
			return fmt.Errorf("pool %s exists already", r.pool.ID)
		}
	}
	if a.Block != "" {
		if _, err := c.store.Pool(a.Block); errors.Is(err, state.ErrNotFound) {
			// The host block's record went with the rest: its route names it.
			if err := c.store.PutPool(state.Pool{ID: a.Block, Subnet: a.BlockSubnet, Created: c.cfg.Now().UTC()}); err != nil {
				return fmt.Errorf("record host block %s rebuilt from its route: %w", a.BlockSubnet, err)
			}
			log.Info("host block rebuilt from its route", "block", a.Block, "subnet", a.BlockSubnet)
		}
	}
	if err := c.store.Adopt(r.net, r.pool, r.addrs, r.eps); err != nil {
		return fmt.Errorf("record network %s rebuilt from Docker: %w", a.Name, err)
	}
	busyID := r.net.ID
	if busyID == "" {
		busyID = r.pool.ID
	}
	c.markBusy(busyID)
	defer c.unbusy(busyID)
	attached := 0
	var errs []error
	if r.net.ID != "" {
		errs = append(errs, c.ensureNetwork(r.net))
		for _, ep := range r.eps {
			ok, err := c.links.AttachVeth(ep.HostVeth, r.net.Bridge, r.net.MTU)
			if err != nil {
				errs = append(errs, fmt.Errorf("attach veth %s: %w", ep.HostVeth, err))
			} else if ok {
				attached++
			}
		}
		errs = append(errs, c.ensurePorts(r.net))
	}
	log.Info("rebuilt from Docker's network list", "network", a.Name, "id", short(a.ID), "subnet", a.Subnet,
		"pool", poolIDOf(r.pool), "endpoints", len(r.eps), "veths_attached", attached)
	if c.cfg.Routed && r.owner != "" {
		if err := c.reclaim(ctx, busyID, r.owner, a.Subnet, a.Name); !errors.Is(err, errMoved) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func poolIDOf(p *state.Pool) string {
	if p == nil {
		return ""
	}
	return p.ID
}

// rebuilt is what adopt records for a network.
type rebuilt struct {
	net   state.Network // zero ID when only the pool is rebuilt
	pool  *state.Pool   // nil when the subnet is not from vpcroute's IPAM, or its pool exists
	addrs []netip.Addr  // addresses in use in pool
	eps   []state.Endpoint
	owner string // the route's owner
}

// rebuild computes the records of a Docker network: a pure function of Docker's
// view, the action (which knows the route of this ECS with the subnet, if any), the
// ports the kernel publishes and the records (the pool that may exist). Call with mu
// held.
func (c *Controller) rebuild(dn dockerapi.Network, a reconcile.Action, ports []firewall.PortMap) (rebuilt, error) {
	var cfg dockerapi.IPAMConfig
	for _, x := range dn.IPAM.Config {
		if p, err := netip.ParsePrefix(x.Subnet); err == nil && p.Masked() == a.Subnet {
			cfg = x
		}
	}
	if cfg.Subnet == "" {
		return rebuilt{}, fmt.Errorf("docker network %s has no IPv4 subnet %s any more", dn.Name, a.Subnet)
	}
	gw := alloc.DefaultGateway(a.Subnet)
	if g, err := netip.ParseAddr(strings.Split(cfg.Gateway, "/")[0]); err == nil && a.Subnet.Contains(g) {
		gw = g
	}
	var r rebuilt
	now := c.cfg.Now().UTC()
	if a.Pool {
		p := state.Pool{ID: a.Owner, Subnet: a.Subnet, Gateway: gw, Created: now}
		if !strings.HasPrefix(a.Owner, "vr-") {
			// The ID Docker holds is unknown until Docker names it (see poolByRef).
			p.ID, p.Owner, p.Adopted = "vr-adopted-"+short(dn.ID), a.Owner, true
		}
		if rng, err := netip.ParsePrefix(cfg.IPRange); err == nil {
			p.Range = rng.Masked()
		}
		if a.Block != "" {
			// Carved from this ECS's host block: the block's route covers it.
			p.Block = a.Block
		}
		r.pool = &p
		if p.Block == "" {
			r.owner = p.RouteOwner()
		}
		r.addrs = append(r.addrs, gw)
		for _, aux := range cfg.AuxAddress {
			if x, err := netip.ParseAddr(aux); err == nil && a.Subnet.Contains(x) {
				r.addrs = append(r.addrs, x)
			}
		}
	}
	if !a.Network {
		return r, nil
	}
	known := map[string]string{}
	for k, v := range dn.Options {
		if _, ok := knownOptions[k]; ok {
			known[k] = v
		}
	}
	o, err := ParseOptions(known)
	if err != nil {
		return rebuilt{}, err
	}
	n := state.Network{
		ID: dn.ID, Name: dn.Name, Bridge: o.Bridge, Subnet: a.Subnet, Gateway: netip.PrefixFrom(gw, a.Subnet.Bits()),
		MTU: o.MTU, Masquerade: c.cfg.Masquerade && o.Masquerade, Internal: dn.Internal, Created: now,
		NoICC: o.NoICC, Isolate: o.Isolate, Allow: o.Allow,
	}
	if n.Bridge == "" {
		n.Bridge = defaultBridge(dn.ID)
	}
	if n.MTU == 0 {
		n.MTU = c.links.UplinkMTU()
	}
	switch {
	case r.pool != nil:
		n.PoolID = r.pool.ID
	case c.isVpcrouteIPAM(dn):
		p, err := c.poolOf(a.Subnet)
		if err != nil {
			return rebuilt{}, err
		}
		n.PoolID = p.ID
	case a.Block != "":
		n.Block = a.Block
	default:
		n.ClaimOwner = a.Owner
		if n.ClaimOwner == "" {
			n.ClaimOwner = ownClaim(dn.ID)
		}
		r.owner = n.ClaimOwner
	}
	r.net = n
	for _, e := range dn.Containers {
		addr, err := netip.ParsePrefix(e.IPv4Address)
		if err != nil || e.EndpointID == "" || !a.Subnet.Contains(addr.Addr()) {
			continue
		}
		host, peer := VethNames(e.EndpointID)
		ep := state.Endpoint{NetworkID: dn.ID, ID: e.EndpointID, Addr: addr.Addr(), HostVeth: host, PeerVeth: peer}
		for _, p := range ports {
			if p.NetworkID == dn.ID && p.ContainerIP == ep.Addr {
				ep.Ports = append(ep.Ports, state.Port{Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort, ContainerPort: p.ContainerPort})
			}
		}
		r.eps = append(r.eps, ep)
		if r.pool != nil {
			r.addrs = append(r.addrs, ep.Addr)
		}
	}
	return r, nil
}

// isVpcrouteIPAM tells whether a Docker network's IPAM driver is vpcroute's.
func (c *Controller) isVpcrouteIPAM(dn dockerapi.Network) bool { return c.ours(dn.IPAM.Driver) }

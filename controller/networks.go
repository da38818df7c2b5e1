package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vpcroute/vpcroute/alloc"
	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/internal/killpoint"
	"github.com/vpcroute/vpcroute/link"
	"github.com/vpcroute/vpcroute/state"
)

// NetworkSpec is a network Docker asks for.
type NetworkSpec struct {
	ID string
	// Subnet and Gateway (the gateway address with the subnet's length) come from
	// the IPAM driver.
	Subnet, Gateway netip.Prefix
	// FromVpcroute says the IPAM driver was vpcroute's (its address space), so the
	// subnet's pool holds its route already; otherwise the network claims its own.
	FromVpcroute bool
	// Bridge, MTU, Masquerade and Internal are the network's options; an empty
	// Bridge and a zero MTU take the defaults ("vr-" and the ID's first 12
	// characters; the uplink's MTU).
	Bridge     string
	MTU        int
	Masquerade bool
	Internal   bool
	// OutsidePool lets a subnet from Docker's default IPAM lie outside
	// VPCROUTE_POOL (-o vpcroute.outside-pool=true).
	OutsidePool bool
	// Takeover moves the subnet's route here from the ECS whose vpcroute network
	// holds it (-o vpcroute.takeover), for a subnet of Docker's default IPAM.
	Takeover cloud.Takeover
	// NoICC, Isolate and Allow are the traffic policy (see Options).
	NoICC   bool
	Isolate bool
	Allow   string
}

// defaultBridge names a network's bridge when the user does not.
func defaultBridge(id string) string { return "vr-" + short(id) }

// ownClaim is the owner a network gives the route it claims itself.
func ownClaim(id string) string { return "net-" + short(id) }

// CreateNetwork builds a network: its route (when its subnet did not come from
// vpcroute's IPAM, which claimed it already), its bridge and its rules. On any
// failure it leaves nothing behind.
func (c *Controller) CreateNetwork(ctx context.Context, spec NetworkSpec) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, err := c.store.Network(spec.ID); err == nil && !old.Creating && !old.Deleting {
		// Docker retried: make sure everything is there.
		return c.ensureNetwork(old)
	}
	if err := alloc.CheckGateway(spec.Subnet, spec.Gateway); err != nil {
		return err
	}
	if spec.Internal && (spec.Isolate || spec.Allow != "") {
		return fmt.Errorf("an --internal network lets nothing in from outside its bridge already: remove %s and %s", OptIsolate, OptAllow)
	}
	n := state.Network{
		ID:         spec.ID,
		Bridge:     spec.Bridge,
		Subnet:     spec.Subnet,
		Gateway:    spec.Gateway,
		MTU:        spec.MTU,
		Masquerade: c.cfg.Masquerade && spec.Masquerade,
		Internal:   spec.Internal,
		NoICC:      spec.NoICC,
		Isolate:    spec.Isolate,
		Allow:      spec.Allow,
		Creating:   true,
		Created:    c.cfg.Now().UTC(),
	}
	if n.Bridge == "" {
		n.Bridge = defaultBridge(spec.ID)
	}
	if n.MTU == 0 {
		n.MTU = c.links.UplinkMTU()
	}
	nets, err := c.store.Networks()
	if err != nil {
		return err
	}
	for _, o := range nets {
		if o.ID == n.ID {
			continue
		}
		if o.Bridge == n.Bridge {
			return fmt.Errorf("bridge name %s is already used by network %s: choose another com.docker.network.bridge.name", n.Bridge, label(o))
		}
		if o.Subnet.Overlaps(n.Subnet) {
			return fmt.Errorf("subnet %s overlaps subnet %s of network %s on this host: choose another --subnet", n.Subnet, o.Subnet, label(o))
		}
	}
	if spec.FromVpcroute {
		p, err := c.poolOf(spec.Subnet)
		if err != nil {
			return err
		}
		n.PoolID = p.ID
	} else {
		hint := fmt.Sprintf(" (Docker's default IPAM picked it: add --ipam-driver %s to get a free subnet, or give a free --subnet)", c.cfg.DriverName)
		if err := alloc.CheckSubnet(spec.Subnet); err != nil {
			return fmt.Errorf("%w%s", err, hint)
		}
		b, inBlock, err := c.blockFor(spec.Subnet)
		switch {
		case err != nil:
			return err
		case inBlock:
			// This ECS's host block routes it already.
			if err := c.checkCarve(spec.Subnet, spec.ID); err != nil {
				return fmt.Errorf("%w%s", err, hint)
			}
			n.Block = b.ID
		default:
			if err := c.checkLocal(spec.Subnet, spec.ID); err != nil {
				return fmt.Errorf("%w%s", err, hint)
			}
			if err := c.checkPool(spec.Subnet, spec.OutsidePool, "-o"); err != nil {
				return err
			}
			n.ClaimOwner = ownClaim(spec.ID)
		}
	}
	// Recorded before the claim and the kernel, so that a crash midway is finished
	// by the loop, which never takes the claim for an orphan.
	if err := c.store.PutNetwork(n); err != nil {
		return fmt.Errorf("save network %s: %w", short(n.ID), err)
	}
	killpoint.Here(killpoint.NetworkRecorded)
	if n.ClaimOwner != "" {
		var err error
		c.outside(n.ID, func() {
			cctx, cancel := c.cloudCtx(ctx)
			defer cancel()
			_, err = c.vpc.Claim(cctx, cloud.ClaimRequest{Owner: n.ClaimOwner, Want: n.Subnet, Takeover: spec.Takeover})
			err = c.slow(cctx, err)
		})
		if err != nil {
			c.gaveUp(n.ClaimOwner)
			if cloud.Refused(err) {
				_ = c.store.DeleteNetwork(n.ID)
			} else {
				// The write may still land: the loop releases whatever it left.
				c.markDeleting(n)
			}
			var conflict *cloud.ConflictError
			if errors.As(err, &conflict) {
				// Its message says what to do already.
				return fmt.Errorf("claim %s in the VPC: %w", n.Subnet, c.hintDriver(err, "-o"))
			}
			return fmt.Errorf("claim %s in the VPC: %w (Docker's default IPAM picked it: add --ipam-driver %s to get a free subnet, or give a free --subnet)", n.Subnet, c.hintDriver(err, "-o"), c.cfg.DriverName)
		}
		killpoint.Here(killpoint.NetworkClaimed)
		c.warnOutsidePool(n.Subnet)
	}
	if err := c.ensureNetwork(n); err != nil {
		c.undoCreate(n)
		return fmt.Errorf("create network %s: %w", short(n.ID), err)
	}
	killpoint.Here(killpoint.NetworkBuilt)
	n.Creating = false
	if err := c.store.PutNetwork(n); err != nil {
		c.undoCreate(n)
		return fmt.Errorf("save network %s: %w", short(n.ID), err)
	}
	if c.cfg.SrcDstCheckOn {
		c.log.Warn("source/destination check is ON for this ECS's NIC: containers of this network will not be reachable from other hosts; turn it off in the ECS console (NIC > Source/Destination Check) or set VPCROUTE_SRC_DST_CHECK=disable", "network", short(n.ID), "subnet", n.Subnet)
	}
	c.log.Info("network created", "network", short(n.ID), "subnet", n.Subnet, "bridge", n.Bridge, "mtu", n.MTU)
	c.Kick() // learn its name from Docker's list
	return nil
}

// poolOf returns the held pool with the given subnet. Call with mu held.
func (c *Controller) poolOf(subnet netip.Prefix) (state.Pool, error) {
	pools, err := c.store.Pools()
	if err != nil {
		return state.Pool{}, fmt.Errorf("read pools: %w", err)
	}
	for _, p := range pools {
		if p.Subnet == subnet && !p.Claiming && !p.Releasing {
			return p, nil
		}
	}
	return state.Pool{}, fmt.Errorf("subnet %s came from vpcroute's IPAM but vpcroute holds no pool for it: remove and re-create the network", subnet)
}

// undoCreate removes what a failed create made, also when Docker stopped waiting.
// Call with mu held.
func (c *Controller) undoCreate(n state.Network) {
	if err := c.deleteNetwork(context.Background(), n); err != nil {
		c.log.Error("undo half-made network (the loop finishes it)", "network", short(n.ID), "err", err)
	}
}

// markDeleting records that a network is to go, for the loop. Call with mu held.
func (c *Controller) markDeleting(n state.Network) {
	n.Creating, n.Deleting = false, true
	if err := c.store.PutNetwork(n); err != nil {
		c.log.Error("mark network for removal", "network", short(n.ID), "err", err)
	}
	c.Kick()
}

// DeleteNetwork removes a network's rules, bridge and leftovers, and the route it
// holds itself. An unknown network succeeds, so Docker's retries are harmless.
func (c *Controller) DeleteNetwork(ctx context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.store.Network(id)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.deleteNetwork(ctx, n); err != nil {
		return fmt.Errorf("delete network %s (vpcroute retries it): %w", short(n.ID), err)
	}
	return nil
}

// deleteNetwork marks the network Deleting, removes its endpoints' leftovers, its
// rules and bridge, gives back the route it holds itself, and forgets it. Docker
// forgets the network whatever vpcroute answers: the mark makes the loop finish a
// teardown that fails or is cut short. Call with mu held.
func (c *Controller) deleteNetwork(ctx context.Context, n state.Network) error {
	if !n.Deleting {
		n.Creating, n.Deleting = false, true
		if err := c.store.PutNetwork(n); err != nil {
			return fmt.Errorf("save network %s: %w", short(n.ID), err)
		}
	}
	killpoint.Here(killpoint.NetworkDeleting)
	eps, err := c.store.Endpoints(n.ID)
	if err != nil {
		return err
	}
	var errs []error
	for _, ep := range eps {
		errs = append(errs, c.removeEndpointObjects(n, ep))
	}
	errs = append(errs, c.teardownNetwork(n))
	if err := errors.Join(errs...); err != nil {
		c.Kick()
		return err
	}
	killpoint.Here(killpoint.NetworkTornDown)
	if n.ClaimOwner != "" && n.MovedTo != "" {
		c.log.Info("the network's subnet was moved to another ECS: its route there is left alone", "network", label(n), "subnet", n.Subnet, "to", n.MovedTo)
	} else if n.ClaimOwner != "" {
		c.outside(n.ID, func() {
			cctx, cancel := c.cloudCtx(ctx)
			defer cancel()
			err = c.slow(cctx, c.vpc.Release(cctx, n.Subnet, n.ClaimOwner))
		})
		if err != nil {
			c.Kick()
			return fmt.Errorf("release the route of %s in the VPC: %w", n.Subnet, err)
		}
		killpoint.Here(killpoint.NetworkReleased)
	}
	if n.ClaimOwner != "" {
		c.gaveUp(n.ClaimOwner)
	}
	if err := c.store.DeleteNetwork(n.ID); err != nil {
		return fmt.Errorf("forget network %s: %w", short(n.ID), err)
	}
	c.forget(n.ID)
	c.log.Info("network deleted", "network", label(n), "subnet", n.Subnet)
	c.Kick()
	return nil
}

func (c *Controller) rules(n state.Network) firewall.NetworkRules {
	return firewall.NetworkRules{
		NetworkID:  n.ID,
		Bridge:     n.Bridge,
		Subnet:     n.Subnet,
		Masquerade: n.Masquerade,
		Internal:   n.Internal,
		NoNAT:      c.cfg.NoNAT,
		Pool:       c.cfg.Pool,
		NoICC:      n.NoICC,
		Isolate:    n.Isolate,
		Allow:      mustAllow(n.Allow),
		Uplink:     c.uplink,
	}
}

// ensureNetwork makes the kernel objects of a network exist. Call with mu held.
func (c *Controller) ensureNetwork(n state.Network) error {
	if err := c.links.EnsureBridge(link.BridgeSpec{Name: n.Bridge, NetworkID: n.ID, Gateway: n.Gateway, MTU: n.MTU}); err != nil {
		return fmt.Errorf("bridge %s: %w", n.Bridge, err)
	}
	if err := c.fw.EnsureNetwork(c.rules(n)); err != nil {
		return fmt.Errorf("firewall rules of %s: %w", n.Subnet, err)
	}
	return nil
}

// teardownNetwork removes what ensureNetwork made and tolerates it being gone. Call
// with mu held.
func (c *Controller) teardownNetwork(n state.Network) error {
	var errs []error
	if err := c.fw.DeleteNetwork(c.rules(n)); err != nil {
		errs = append(errs, fmt.Errorf("firewall rules of %s: %w", n.Subnet, err))
	}
	if err := c.links.DeleteBridge(n.Bridge, n.ID); errors.Is(err, link.ErrNotOwned) {
		// Not vpcroute's (or made by a plugin killed before it could mark it):
		// never delete it, and do not retry forever either.
		c.log.Warn("leaving a link that is not marked as vpcroute's; remove it with `ip link del` if it is a leftover", "bridge", n.Bridge, "network", label(n))
	} else if err != nil {
		errs = append(errs, fmt.Errorf("bridge %s: %w", n.Bridge, err))
	}
	return errors.Join(errs...)
}

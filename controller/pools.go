package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vpcroute/vpcroute/alloc"
	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/internal/killpoint"
	"github.com/vpcroute/vpcroute/state"
)

// PoolRequest is what Docker asks of the IPAM driver.
type PoolRequest struct {
	// Subnet is the subnet asked for (--subnet), zero for one picked by vpcroute.
	Subnet netip.Prefix
	// Range is the part addresses come from (--ip-range), zero for all of it.
	Range netip.Prefix
	// OutsidePool lets Subnet lie outside VPCROUTE_POOL (--ipam-opt
	// vpcroute.outside-pool=true).
	OutsidePool bool
	// Takeover moves Subnet's route here from the ECS whose vpcroute network holds
	// it (--ipam-opt vpcroute.takeover).
	Takeover cloud.Takeover
}

// PoolRef is the pool ID Docker holds for p: its key, "/" and its subnet. The subnet
// lets vpcroute find the pool again if its records are lost (Docker keeps the ID);
// Docker's own IPAM names its pools the same way.
func PoolRef(p state.Pool) string { return p.ID + "/" + p.Subnet.String() }

func newPoolID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "vr-" + hex.EncodeToString(b)
}

// RequestPool claims a subnet in the VPC for a new network, before Docker gets it, so
// that no other host can have it: the one asked for when it is free, else the first
// free one of the configured size.
func (c *Controller) RequestPool(ctx context.Context, req PoolRequest) (state.Pool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pool := state.Pool{ID: newPoolID(), Range: req.Range, Claiming: true, Created: c.cfg.Now().UTC()}
	if req.Subnet.IsValid() {
		if err := alloc.CheckSubnet(req.Subnet); err != nil {
			return state.Pool{}, err
		}
		// Inside one of this ECS's host blocks: its route covers it already.
		if b, ok, err := c.blockFor(req.Subnet); err != nil || ok {
			if err != nil {
				return state.Pool{}, err
			}
			if err := c.checkCarve(req.Subnet, ""); err != nil {
				return state.Pool{}, err
			}
			return c.carve(pool, b, req.Subnet)
		}
		if err := c.checkLocal(req.Subnet, ""); err != nil {
			return state.Pool{}, err
		}
		if err := c.checkPool(req.Subnet, req.OutsidePool, "--ipam-opt"); err != nil {
			return state.Pool{}, err
		}
		pool.Subnet = req.Subnet
	} else if c.cfg.HostBlock > 0 {
		return c.carveAuto(ctx, pool)
	}
	// Recorded before the claim: if the plugin dies before Docker hears the answer,
	// the loop finds the pool still Claiming and gives the route back.
	if err := c.store.PutPool(pool); err != nil {
		return state.Pool{}, fmt.Errorf("save pool %s: %w", pool.ID, err)
	}
	killpoint.Here(killpoint.PoolRecorded)
	var got netip.Prefix
	var err error
	c.outside(pool.ID, func() {
		cctx, cancel := c.cloudCtx(ctx)
		defer cancel()
		got, err = c.vpc.Claim(cctx, cloud.ClaimRequest{Owner: pool.ID, Want: req.Subnet, Pick: c.pickerSized(pool.ID, c.cfg.SubnetSize), Takeover: req.Takeover})
		err = c.slow(cctx, err)
	})
	if err != nil {
		c.abandonClaim(pool, err)
		return state.Pool{}, fmt.Errorf("claim a subnet in the VPC: %w", c.hintDriver(err, "--ipam-opt"))
	}
	killpoint.Here(killpoint.PoolClaimed)
	if ctx.Err() != nil {
		// Docker stopped waiting just as the claim finished: it will never use
		// the pool, so give the route back.
		c.abandonClaim(pool, ctx.Err())
		return state.Pool{}, c.slow(ctx, ctx.Err())
	}
	// Docker gets the pool now: the grace in which its network may be missing
	// from Docker's list starts here, not before a claim that took long.
	pool.Subnet, pool.Claiming, pool.Created = got, false, c.cfg.Now().UTC()
	if err := c.store.PutPool(pool); err != nil {
		// The pool is still recorded as Claiming: the loop gives the route back.
		c.Kick()
		return state.Pool{}, fmt.Errorf("save pool %s: %w", pool.ID, err)
	}
	c.log.Info("pool claimed", "pool", pool.ID, "subnet", got, "requested", req.Subnet)
	c.warnOutsidePool(got)
	c.Kick()
	return pool, nil
}

// abandonClaim deals with a pool whose claim failed. A refusal (the subnet is taken,
// the table is full, the pool has no free subnet) changed nothing, and the pool is
// forgotten; any other failure may be a write that still lands (a timeout), so the
// pool is marked Releasing for the loop to give back whatever route it finds. Call
// with mu held.
func (c *Controller) abandonClaim(pool state.Pool, cause error) {
	c.gaveUp(pool.RouteOwner())
	if cloud.Refused(cause) || errors.Is(cause, alloc.ErrPoolExhausted) {
		if err := c.store.DeletePool(pool.ID); err != nil {
			c.log.Error("forget failed pool", "pool", pool.ID, "err", err)
		}
		return
	}
	if p, err := c.store.Pool(pool.ID); err == nil {
		pool = p
	}
	pool.Claiming, pool.Releasing = false, true
	if err := c.store.PutPool(pool); err != nil {
		c.log.Error("mark failed pool for release", "pool", pool.ID, "err", err)
	}
	c.Kick()
}

// pickerSized returns the claim's Pick: the first free subnet of length bits in the pool, given what the
// VPC has taken, avoiding what this host has. It records the pick in the pool at once,
// so that a pool being claimed at the same moment avoids it too. The cloud client
// calls it under its own lock, with mu free (see the lock order on Controller).
func (c *Controller) pickerSized(poolID string, bits int) func([]netip.Prefix) (netip.Prefix, error) {
	return func(cloudTaken []netip.Prefix) (netip.Prefix, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		taken, _, err := c.localTaken(poolID)
		if err != nil {
			return netip.Prefix{}, err
		}
		p, err := alloc.FirstFree(c.cfg.Pool, bits, append(taken, cloudTaken...))
		if err != nil {
			return netip.Prefix{}, err
		}
		pool, err := c.store.Pool(poolID)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("pool %s: %w", poolID, err)
		}
		pool.Subnet = p
		if err := c.store.PutPool(pool); err != nil {
			return netip.Prefix{}, fmt.Errorf("save pool %s: %w", poolID, err)
		}
		return p, nil
	}
}

// ReleasePool gives the pool's route back and forgets it. An unknown pool succeeds,
// so Docker's retries are harmless.
func (c *Controller) ReleasePool(ctx context.Context, ref string) error {
	return c.withPool(ref, func(p state.Pool) error { return c.releasePool(ctx, p) })
}

// withPool runs fn, with mu held, on the pool Docker names ref; a pool that is gone
// is not an error, so that Docker's retries of a release are harmless.
func (c *Controller) withPool(ref string, fn func(state.Pool) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := c.poolByRef(ref)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return fn(p)
}

// releasePool marks the pool Releasing, gives its route back and forgets it. Docker
// ignores ReleasePool errors and never asks again: the mark makes the loop finish a
// release that failed or was cut short. Call with mu held.
func (c *Controller) releasePool(ctx context.Context, p state.Pool) error {
	if !p.Releasing {
		p.Releasing = true
		if err := c.store.PutPool(p); err != nil {
			return fmt.Errorf("save pool %s: %w", p.ID, err)
		}
	}
	killpoint.Here(killpoint.PoolReleasing)
	if p.Block != "" {
		// Carved from a host block: the block's route stays for its other
		// networks, and the loop releases it once it is empty for a while.
	} else if p.MovedTo != "" {
		c.log.Info("the pool's subnet was moved to another ECS: its route there is left alone", "pool", p.ID, "subnet", p.Subnet, "to", p.MovedTo)
	} else if p.Subnet.IsValid() {
		var err error
		c.outside(p.ID, func() {
			cctx, cancel := c.cloudCtx(ctx)
			defer cancel()
			err = c.slow(cctx, c.vpc.Release(cctx, p.Subnet, p.RouteOwner()))
		})
		if err != nil {
			c.Kick()
			return fmt.Errorf("release the route of %s in the VPC (vpcroute retries it): %w", p.Subnet, err)
		}
	}
	killpoint.Here(killpoint.PoolReleased)
	c.gaveUp(p.RouteOwner())
	if err := c.store.DeletePool(p.ID); err != nil {
		return fmt.Errorf("forget pool %s: %w", p.ID, err)
	}
	if p.Subnet.IsValid() {
		c.forget(p.Subnet.String())
	}
	c.log.Info("pool released", "pool", p.ID, "subnet", p.Subnet)
	c.Kick()
	return nil
}

// poolByRef finds the pool Docker names ref ("vr-…/10.0.2.0/24", or "vr-…" for pools
// of older versions). A pool rebuilt from Docker's list whose ID was unknown is found
// by its subnet or its route's owner, and takes the ID. Call with mu held.
func (c *Controller) poolByRef(ref string) (state.Pool, error) {
	key, rest, _ := strings.Cut(ref, "/")
	p, err := c.store.Pool(key)
	if !errors.Is(err, state.ErrNotFound) {
		return p, err
	}
	subnet, _ := netip.ParsePrefix(rest)
	pools, err := c.store.Pools()
	if err != nil {
		return state.Pool{}, err
	}
	for _, p := range pools {
		if p.Adopted && ((subnet.IsValid() && p.Subnet == subnet) || p.RouteOwner() == key) {
			renamed, err := c.store.RenamePool(p.ID, key)
			if err != nil {
				return state.Pool{}, fmt.Errorf("give the rebuilt pool of %s its ID %s: %w", p.Subnet, key, err)
			}
			c.log.Info("rebuilt pool matched to Docker's", "pool", key, "subnet", p.Subnet)
			return renamed, nil
		}
	}
	return state.Pool{}, fmt.Errorf("pool %s: %w", ref, state.ErrNotFound)
}

// RequestAddress reserves an address in a pool: the gateway (Docker asks for it
// first), an address the user named (--ip, --aux-address, --gateway), or the next
// free one. It returns the address with the subnet's length.
func (c *Controller) RequestAddress(ref string, asked netip.Addr, gateway bool) (netip.Prefix, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pool, err := c.poolByRef(ref)
	if errors.Is(err, state.ErrNotFound) {
		return netip.Prefix{}, fmt.Errorf("pool %s is unknown to vpcroute: remove and re-create the network", ref)
	}
	if err != nil {
		return netip.Prefix{}, err
	}
	var subnet netip.Prefix
	a, err := c.store.Allocate(pool.ID, func(p *state.Pool, used func(netip.Addr) bool) (netip.Addr, error) {
		subnet = p.Subnet
		ap := alloc.AddrPool{Subnet: p.Subnet, Range: p.Range, Gateway: p.Gateway}
		if gateway {
			if !asked.IsValid() {
				asked = alloc.DefaultGateway(p.Subnet)
			}
			ap.Gateway = netip.Addr{}
		}
		if asked.IsValid() {
			if err := ap.Check(asked, used); err != nil {
				return netip.Addr{}, err
			}
			if gateway {
				p.Gateway = asked
			}
			return asked, nil
		}
		return ap.Next(p.LastAddr, used)
	})
	if errors.Is(err, alloc.ErrInUse) {
		return netip.Prefix{}, fmt.Errorf("address %s is already in use on this network: %s; choose another address", asked, c.addressHolder(pool, asked))
	}
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, subnet.Bits()), nil
}

// addressHolder says what holds a reserved address of a pool: a container's
// endpoint, or else a reservation made with the network (--aux-address). Call with
// mu held.
func (c *Controller) addressHolder(pool state.Pool, a netip.Addr) string {
	nets, _ := c.store.Networks()
	for _, n := range nets {
		if n.PoolID != pool.ID {
			continue
		}
		eps, _ := c.store.Endpoints(n.ID)
		for _, ep := range eps {
			if ep.Addr == a {
				return fmt.Sprintf("container endpoint %s of network %s has it", short(ep.ID), label(n))
			}
		}
	}
	return "it is reserved with the network (an --aux-address), or by a container being created"
}

// ReleaseAddress frees an address; freeing a free one, or one of a pool that is
// gone, succeeds.
func (c *Controller) ReleaseAddress(ref string, a netip.Addr) error {
	return c.withPool(ref, func(p state.Pool) error { return c.store.Free(p.ID, a) })
}

// localTaken is what a new subnet must not overlap on this host, with why: the
// ranges a VPC reserves, the host's routes and addresses, and every vpcroute pool and
// network. skip names a pool or network to leave out (the one being checked). Call
// with mu held.
func (c *Controller) localTaken(skip string) ([]netip.Prefix, []string, error) {
	return c.takenOnHost(skip, true)
}

// takenOnHost is localTaken, with this ECS's host blocks or without them (for a
// subnet carved from one). Call with mu held.
func (c *Controller) takenOnHost(skip string, blocks bool) ([]netip.Prefix, []string, error) {
	host, err := c.links.Prefixes()
	if err != nil {
		return nil, nil, fmt.Errorf("read this host's routes: %w", err)
	}
	taken := append([]netip.Prefix{}, alloc.Reserved...)
	why := make([]string, 0, len(taken)+len(host))
	for _, r := range alloc.Reserved {
		why = append(why, "the range "+r.String()+" that the VPC reserves")
	}
	for _, h := range host {
		taken = append(taken, h)
		why = append(why, "the route or address "+h.String()+" on this host")
	}
	pools, err := c.store.Pools()
	if err != nil {
		return nil, nil, err
	}
	for _, p := range pools {
		switch {
		case p.ID == skip || !p.Subnet.IsValid():
		case p.IsBlock() && blocks:
			taken = append(taken, p.Subnet)
			why = append(why, "this ECS's host block "+p.Subnet.String()+" (a --subnet inside it is carved from it; one around it is refused)")
		case !p.IsBlock():
			taken = append(taken, p.Subnet)
			why = append(why, "vpcroute subnet "+p.Subnet.String()+" of another network on this host")
		}
	}
	nets, err := c.store.Networks()
	if err != nil {
		return nil, nil, err
	}
	for _, n := range nets {
		if n.ID != skip {
			taken = append(taken, n.Subnet)
			why = append(why, "subnet "+n.Subnet.String()+" of network "+label(n)+" on this host")
		}
	}
	return taken, why, nil
}

// checkLocal returns an error naming what overlaps subnet on this host. Call with mu
// held.
func (c *Controller) checkLocal(subnet netip.Prefix, skip string) error {
	taken, why, err := c.localTaken(skip)
	if err != nil {
		return err
	}
	for i, t := range taken {
		if t.Overlaps(subnet) {
			return fmt.Errorf("subnet %s overlaps %s: choose a free --subnet, or leave --subnet out and use --ipam-driver %s to get a free one", subnet, why[i], c.cfg.DriverName)
		}
	}
	return nil
}

// inPool tells whether subnet lies inside VPCROUTE_POOL.
func (c *Controller) inPool(subnet netip.Prefix) bool {
	return c.cfg.Pool.Contains(subnet.Addr()) && subnet.Bits() >= c.cfg.Pool.Bits()
}

// checkPool refuses a subnet outside VPCROUTE_POOL unless the user said they mean
// it with the option (flag names how: --ipam-opt or -o): every host masquerades
// traffic to destinations outside the VPC and the pool, so other hosts' containers
// would reach this subnet's under their host's address.
func (c *Controller) checkPool(subnet netip.Prefix, allowed bool, flag string) error {
	if allowed || c.inPool(subnet) {
		return nil
	}
	return fmt.Errorf("subnet %s is outside VPCROUTE_POOL %s, the range every host treats as container subnets (traffic to it from other hosts' containers would arrive masqueraded): use a --subnet inside %s, or --ipam-driver %s without --subnet to get a free one, or widen VPCROUTE_POOL on every host; if you mean it, add %s %s=true",
		subnet, c.cfg.Pool, c.cfg.Pool, c.cfg.DriverName, flag, OptOutsidePool)
}

// warnOutsidePool says when a subnet lies outside VPCROUTE_POOL: every host
// masquerades traffic to destinations outside the VPC and the pool, so containers
// elsewhere reach this subnet's containers under their host's address, not their own.
func (c *Controller) warnOutsidePool(subnet netip.Prefix) {
	if !c.inPool(subnet) {
		c.log.Warn("subnet is outside VPCROUTE_POOL: traffic from containers on other hosts arrives masqueraded; use a subnet inside the pool, or widen VPCROUTE_POOL on every host",
			"subnet", subnet, "pool", c.cfg.Pool)
	}
}

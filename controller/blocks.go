package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vpcroute/vpcroute/alloc"
	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/state"
)

// Host blocks (VPCROUTE_HOST_BLOCK) trade route table entries for cloud calls: the
// first automatic network of an ECS claims one block (a /20 by default) with one
// VPC route, and later networks are carved from it here, without calling the cloud.
// A block is a pool record Docker never sees (ID "vb-…", the owner of its route);
// the pools carved from it name it in Block and have no route of their own. The
// loop releases a block once no network has used it for VPCROUTE_BLOCK_GRACE.

func newBlockID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return state.BlockPrefix + hex.EncodeToString(b)
}

// heldBlocks returns this ECS's blocks that networks can be carved from, lowest
// subnet first. Call with mu held.
func (c *Controller) heldBlocks() ([]state.Pool, error) {
	pools, err := c.store.Pools()
	if err != nil {
		return nil, err
	}
	var out []state.Pool
	for _, p := range pools {
		if p.IsBlock() && !p.Claiming && !p.Releasing && p.MovedTo == "" && p.Subnet.IsValid() {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b state.Pool) int { return a.Subnet.Addr().Compare(b.Subnet.Addr()) })
	return out, nil
}

// blockFor returns the held block that contains subnet, if any. Call with mu held.
func (c *Controller) blockFor(subnet netip.Prefix) (state.Pool, bool, error) {
	blocks, err := c.heldBlocks()
	if err != nil {
		return state.Pool{}, false, err
	}
	for _, b := range blocks {
		if b.Subnet.Contains(subnet.Addr()) && subnet.Bits() >= b.Subnet.Bits() {
			return b, true, nil
		}
	}
	return state.Pool{}, false, nil
}

// checkCarve returns an error naming what subnet, inside one of this ECS's blocks,
// overlaps on this host. Call with mu held.
func (c *Controller) checkCarve(subnet netip.Prefix, skip string) error {
	taken, why, err := c.takenOnHost(skip, false)
	if err != nil {
		return err
	}
	if i := slices.IndexFunc(taken, subnet.Overlaps); i >= 0 {
		return fmt.Errorf("subnet %s overlaps %s: choose a free --subnet, or leave --subnet out and use --ipam-driver %s to get a free one", subnet, why[i], c.cfg.DriverName)
	}
	return nil
}

// carve records pool with subnet from block: no cloud call, the block's route
// covers it. Call with mu held.
func (c *Controller) carve(pool state.Pool, block state.Pool, subnet netip.Prefix) (state.Pool, error) {
	// Created is the hand-off to Docker: the grace in which Docker's list may
	// still lack the network starts now, not before a block claim that took long.
	pool.Subnet, pool.Block, pool.Claiming, pool.Created = subnet, block.ID, false, c.cfg.Now().UTC()
	if err := c.store.PutPool(pool); err != nil {
		return state.Pool{}, fmt.Errorf("save pool %s: %w", pool.ID, err)
	}
	c.log.Info("pool carved from this ECS's host block", "pool", pool.ID, "subnet", subnet, "block", block.Subnet)
	return pool, nil
}

// carveAuto gives pool the first free subnet of VPCROUTE_SUBNET_SIZE in this ECS's
// blocks, claiming a new block when they are full. Requests that find the blocks
// full while a block is being claimed wait for it rather than claim one each (a
// `compose up` of several networks costs one claim). Call with mu held.
func (c *Controller) carveAuto(ctx context.Context, pool state.Pool) (state.Pool, error) {
	for claimed := false; ; {
		blocks, err := c.heldBlocks()
		if err != nil {
			return state.Pool{}, err
		}
		taken, _, err := c.takenOnHost("", false)
		if err != nil {
			return state.Pool{}, err
		}
		for _, b := range blocks {
			if p, err := alloc.FirstFree(b.Subnet, c.cfg.SubnetSize, taken); err == nil {
				return c.carve(pool, b, p)
			}
		}
		if ch := c.blockFlight; ch != nil {
			c.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
			}
			c.mu.Lock()
			if ctx.Err() != nil {
				return state.Pool{}, c.slow(ctx, ctx.Err())
			}
			continue
		}
		if claimed {
			return state.Pool{}, fmt.Errorf("the host block claimed for this network is full already: %w", alloc.ErrPoolExhausted)
		}
		if err := c.claimBlock(ctx); err != nil {
			return state.Pool{}, err
		}
		claimed = true
	}
}

// claimBlock claims a new block of VPCROUTE_HOST_BLOCK for this ECS: one route.
// Call with mu held; it is let go during the claim.
func (c *Controller) claimBlock(ctx context.Context) error {
	ch := make(chan struct{})
	c.blockFlight = ch
	defer func() {
		c.blockFlight = nil
		close(ch)
	}()
	blk := state.Pool{ID: newBlockID(), Claiming: true, Created: c.cfg.Now().UTC()}
	if err := c.store.PutPool(blk); err != nil {
		return fmt.Errorf("save host block %s: %w", blk.ID, err)
	}
	var got netip.Prefix
	var err error
	c.outside(blk.ID, func() {
		cctx, cancel := c.cloudCtx(ctx)
		defer cancel()
		got, err = c.vpc.Claim(cctx, cloud.ClaimRequest{Owner: blk.ID, Pick: c.pickerSized(blk.ID, c.cfg.HostBlock)})
		err = c.slow(cctx, err)
	})
	if err != nil {
		c.abandonClaim(blk, err)
		return fmt.Errorf("claim a host block (/%d, VPCROUTE_HOST_BLOCK) in the VPC: %w", c.cfg.HostBlock, c.hintDriver(err, "--ipam-opt"))
	}
	if p, err := c.store.Pool(blk.ID); err == nil {
		blk = p
	}
	blk.Subnet, blk.Claiming = got, false
	if err := c.store.PutPool(blk); err != nil {
		c.Kick()
		return fmt.Errorf("save host block %s: %w", blk.ID, err)
	}
	c.log.Info("host block claimed", "block", blk.ID, "subnet", got)
	c.warnOutsidePool(got)
	return nil
}

// blockUsed tells whether a pool or network record draws from block. Call with mu
// held.
func (c *Controller) blockUsed(block state.Pool) (bool, error) {
	pools, err := c.store.Pools()
	if err != nil {
		return false, err
	}
	for _, p := range pools {
		if p.Block == block.ID {
			return true, nil
		}
	}
	nets, err := c.store.Networks()
	if err != nil {
		return false, err
	}
	for _, n := range nets {
		if n.Block == block.ID {
			return true, nil
		}
	}
	return false, nil
}

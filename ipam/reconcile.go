package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vpcroute/vpcroute/cloud"
)

// Reconcile brings the VPC in line with the saved pools: claims that never reached
// Docker are given back, vpcroute routes of this host that no pool or network owns are
// removed, and a saved pool whose route someone deleted is claimed again. It only ever
// touches vpcroute's own routes for this host (the cloud implementation guarantees it).
func (d *Driver) Reconcile(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	pools, err := d.store.Pools()
	if err != nil {
		return err
	}
	owners := map[string]netip.Prefix{}
	for _, p := range pools {
		if p.Claiming {
			// Docker never got this pool: the plugin died between claim and answer.
			if p.Subnet.IsValid() {
				if err := d.vpc.Release(ctx, p.Subnet, p.ID); err != nil {
					errs = append(errs, fmt.Errorf("release unfinished claim %s: %w", p.Subnet, err))
					continue
				}
			}
			if err := d.store.DeletePool(p.ID); err != nil {
				errs = append(errs, err)
			}
			d.cfg.Log.Info("dropped unfinished pool", "pool", p.ID, "subnet", p.Subnet)
			continue
		}
		if p.Releasing {
			// Docker removed the network; the release failed or was cut short.
			if err := d.finishRelease(ctx, p); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		owners[p.ID] = p.Subnet
	}
	nets, err := d.store.Networks()
	if err != nil {
		return err
	}
	// Routes of networks the driver is creating or deleting are the driver's to
	// claim or release: keep them, but never claim them again.
	busy := map[string]bool{}
	for _, n := range nets {
		if n.ClaimOwner != "" {
			owners[n.ClaimOwner] = n.Subnet
			busy[n.ClaimOwner] = n.Creating || n.Deleting
		}
	}
	owned, err := d.vpc.Owned(ctx)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list this host's routes: %w", err))...)
	}
	present := map[string]bool{}
	for _, r := range owned {
		if sub, ok := owners[r.Owner]; ok && sub == r.Destination {
			present[r.Owner] = true
			continue
		}
		// A claim that never completed, or a network removed while the plugin was
		// down, from an earlier run on this host: give it back.
		if err := d.vpc.Release(ctx, r.Destination, r.Owner); err != nil {
			errs = append(errs, fmt.Errorf("release orphan route %s: %w", r.Destination, err))
			continue
		}
		d.cfg.Log.Info("released orphan route", "subnet", r.Destination, "owner", r.Owner)
	}
	for owner, sub := range owners {
		if present[owner] || busy[owner] {
			continue
		}
		d.cfg.Log.Warn("route of a saved network is missing from the VPC route table; claiming it again", "subnet", sub, "owner", owner)
		if _, err := d.vpc.Claim(ctx, cloud.ClaimRequest{Owner: owner, Want: sub}); err != nil {
			errs = append(errs, fmt.Errorf("re-claim %s: %w", sub, err))
		}
	}
	return errors.Join(errs...)
}

// ReconcileLoop runs Reconcile now and then every interval until ctx ends, so drift
// (a route deleted in the console, a release that failed) is repaired.
func (d *Driver) ReconcileLoop(ctx context.Context, interval time.Duration) {
	for {
		rctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		if err := d.Reconcile(rctx); err != nil && ctx.Err() == nil {
			d.cfg.Log.Error("reconcile VPC routes", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

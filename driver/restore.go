package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/state"
)

// Restore reconciles the host with the saved state at start-up: it re-creates what is
// missing for saved networks (bridge, addresses, rules, published ports), finishes
// networks a crash left half-made, and removes vpcroute-marked objects that no saved
// network owns. Running containers keep their traffic throughout: nothing that exists
// and is right is touched.
func (d *Driver) Restore(ctx context.Context, forwardAccept bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	if err := d.fw.EnsureBase(firewall.Base{ForwardAccept: forwardAccept, Pool: d.cfg.Pool}); err != nil {
		return fmt.Errorf("base firewall rules: %w", err)
	}
	nets, err := d.store.Networks()
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	bridges := map[string]bool{}
	for _, n := range nets {
		if n.Creating || n.Deleting {
			// The plugin died inside CreateNetwork (Docker saw it fail), or Docker
			// removed the network and its teardown did not finish.
			if err := d.finishDelete(n); err != nil {
				errs = append(errs, fmt.Errorf("remove network %s: %w", short(n.ID), err))
			} else {
				d.cfg.Log.Info("removed unfinished network", "network", short(n.ID))
			}
			continue
		}
		keep[n.ID] = true
		bridges[n.Bridge] = true
		if err := d.ensureNetwork(n); err != nil {
			errs = append(errs, fmt.Errorf("restore network %s: %w", short(n.ID), err))
			continue
		}
		errs = append(errs, d.ensurePorts(n))
	}
	owned, err := d.links.Bridges()
	if err != nil {
		errs = append(errs, err)
	}
	for name, id := range owned {
		if !keep[id] || !bridges[name] {
			if err := d.links.DeleteBridge(name, id); err != nil {
				errs = append(errs, fmt.Errorf("remove orphan bridge %s: %w", name, err))
			} else {
				d.cfg.Log.Info("removed orphan bridge", "bridge", name, "network", short(id))
			}
		}
	}
	if err := d.fw.Prune(keep); err != nil {
		errs = append(errs, fmt.Errorf("prune orphan rules: %w", err))
	}
	return errors.Join(errs...)
}

// KeepUp re-applies the base rules and every network's bridge and rules every
// interval, so a Docker restart that rewrites FORWARD, or someone deleting a bridge,
// is repaired without a plugin restart. It costs one iptables-restore per network
// (a check when nothing changed) and one `iptables -C` per published port.
func (d *Driver) KeepUp(ctx context.Context, interval time.Duration, forwardAccept bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.repair(forwardAccept); err != nil {
			d.cfg.Log.Warn("repair host networking", "err", err)
		}
	}
}

func (d *Driver) repair(forwardAccept bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fw.EnsureBase(firewall.Base{ForwardAccept: forwardAccept, Pool: d.cfg.Pool}); err != nil {
		return err
	}
	nets, err := d.store.Networks()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nets {
		switch {
		case n.Deleting:
			errs = append(errs, d.finishDelete(n))
		case !n.Creating:
			errs = append(errs, d.ensureNetwork(n), d.ensurePorts(n))
		}
	}
	return errors.Join(errs...)
}

// ensurePorts re-adds the published ports of a network's endpoints.
func (d *Driver) ensurePorts(n state.Network) error {
	eps, err := d.store.Endpoints(n.ID)
	if err != nil {
		return err
	}
	var errs []error
	for _, ep := range eps {
		if ep.Gone {
			// Docker deleted it but its teardown failed: finish that instead.
			if err := d.removeEndpointObjects(n, ep); err != nil {
				errs = append(errs, err)
			} else {
				errs = append(errs, d.store.DeleteEndpoint(n.ID, ep.ID))
			}
			continue
		}
		for _, p := range ep.Ports {
			if err := d.fw.EnsurePort(portMap(n, ep, p)); err != nil {
				errs = append(errs, fmt.Errorf("port %s: %w", portString(p), err))
			}
		}
	}
	return errors.Join(errs...)
}

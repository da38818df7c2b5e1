//go:build linux

package firewall

import (
	"errors"
	"fmt"
	"slices"
)

// Prune is the start-up reconcile that removes what networks deleted while
// the driver was down left behind: in the filter and nat tables, every rule
// marked "vpcroute:<ID>" whose ID is not in keep, and the per-network chains
// (VPCROUTE-E-, -F-, -I-, -P-, -N-) of networks not in keep with the jumps
// into them. It also removes rules an older vpcroute kept for a network
// directly in vpcroute's base chains, which the network's own chains have
// replaced; the driver runs it after EnsureNetwork has made those. The base
// jumps, and rules outside vpcroute's chains without a vpcroute comment, are
// never touched. It reads each table with one
// iptables-save and changes it with one iptables-restore, so it is meant for
// start-up, not for every request.
func (f *Firewall) Prune(keep map[string]bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.known {
		if !keep[id] {
			delete(f.known, id)
		}
	}
	var errs []error
	for _, table := range []string{tableFilter, tableNAT} {
		saved, err := f.save(table)
		if err != nil {
			return err
		}
		input, perrs := pruneScript(table, saved, keep)
		errs = append(errs, perrs...)
		if err := f.restore(input); err != nil {
			errs = append(errs, fmt.Errorf("prune table %s: %w", table, err))
		}
	}
	return errors.Join(errs...)
}

// RemoveAll removes every vpcroute rule and chain: the rules of every network, the
// published ports, the jumps from the built-in chains and vpcroute's base chains.
// Rules without vpcroute's mark stay. It is for `vpcroute uninstall`; FORWARD's
// policy is left as it is.
func (f *Firewall) RemoveAll() error {
	if err := f.Prune(map[string]bool{}); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.baseOrdered = false
	var errs []error
	for _, j := range slices.Concat(baseJumps(), portJumps(), legacyBaseJumps()) {
		if err := f.removeAll(j); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range append(slices.Clone(baseChains), chainRef{tableFilter, chainAccept}) { // and an earlier release's
		ok, err := f.ipt.ChainExists(c.table, c.chain)
		if err != nil {
			errs = append(errs, fmt.Errorf("look for chain %s: %w", c.chain, err))
			continue
		}
		if ok {
			if err := f.ipt.ClearAndDeleteChain(c.table, c.chain); err != nil {
				errs = append(errs, fmt.Errorf("delete chain %s: %w", c.chain, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeAll removes every copy of rule j (at most maxJumps: only a person or a bug
// makes more than one).
func (f *Firewall) removeAll(j rule) error {
	for range maxJumps {
		ok, err := f.exists(j)
		if err != nil || !ok {
			return err
		}
		if err := f.remove(j); err != nil {
			return err
		}
	}
	return nil
}

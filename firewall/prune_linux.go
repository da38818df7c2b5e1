//go:build linux

package firewall

import (
	"errors"
	"fmt"
)

// Prune is the start-up reconcile that removes what networks deleted while
// the driver was down left behind: in the filter and nat tables, every rule
// marked "vpcroute:<ID>" whose ID is not in keep, and the per-network chains
// (VPCROUTE-F-, -I-, -P-, -N-) of networks not in keep. It also removes
// rules an older vpcroute kept for a network directly in vpcroute's base
// chains, which the network's own chains have replaced; the driver runs it
// after EnsureNetwork has made those. The base jumps and rules without a
// vpcroute comment are never touched. It reads each table with one
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

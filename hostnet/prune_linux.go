//go:build linux

package hostnet

import (
	"errors"
	"fmt"
	"strings"
)

// Prune deletes every vpcroute rule whose network ID is not in keep, in
// every chain of the filter and nat tables: the start-up reconcile that
// removes what networks deleted while the driver was down left behind. The
// base jumps and rules without a vpcroute comment are never touched. It
// lists whole tables, so it is meant for start-up, not for every request.
func (f *Firewall) Prune(keep map[string]bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for _, table := range []string{tableFilter, tableNAT} {
		chains, err := f.ipt.ListChains(table)
		if err != nil {
			return fmt.Errorf("list chains of table %s: %w", table, err)
		}
		for _, chain := range chains {
			lines, err := f.ipt.List(table, chain)
			if err != nil {
				if isNotExist(err) {
					continue
				}
				return fmt.Errorf("list chain %s of table %s: %w", chain, table, err)
			}
			for _, line := range lines {
				if err := f.pruneLine(table, chain, line, keep); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

func (f *Firewall) pruneLine(table, chain, line string, keep map[string]bool) error {
	if !strings.HasPrefix(line, "-A ") {
		return nil
	}
	args, err := splitRule(line)
	if err != nil {
		return fmt.Errorf("table %s: %w", table, err)
	}
	id, ok := ruleNetworkID(args)
	if !ok || id == "" || keep[id] {
		return nil
	}
	rl := rule{table: table, chain: chain, spec: args[2:]}
	if err := f.ipt.Delete(table, chain, rl.spec...); err != nil && !isNotExist(err) {
		return fmt.Errorf("prune rule of network %s: delete %s: %w", id, rl, err)
	}
	return nil
}

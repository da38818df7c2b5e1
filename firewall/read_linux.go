//go:build linux

package firewall

import (
	"fmt"
	"os/exec"
)

// save reads one table with iptables-save of the Firewall's backend.
func (f *Firewall) save(table string) (savedTable, error) {
	f.saves.Add(1)
	out, err := exec.Command(f.savePath, "-t", table).Output()
	if err != nil {
		return savedTable{}, fmt.Errorf("list table %s: %s: %w", table, f.savePath, err)
	}
	saved, err := parseSave(string(out))
	if err != nil {
		return savedTable{}, fmt.Errorf("read table %s: %w", table, err)
	}
	return saved, nil
}

// Owners returns the IDs of the networks vpcroute's rules are marked for, in the
// filter and nat tables: what the kernel holds, for the reconcile loop to compare with
// the networks that exist. It costs one iptables-save per table.
func (f *Firewall) Owners() (map[string]bool, error) {
	out := map[string]bool{}
	for _, table := range []string{tableFilter, tableNAT} {
		saved, err := f.save(table)
		if err != nil {
			return nil, err
		}
		for _, r := range saved.rules {
			if id, ok := ruleNetworkID(r.args); ok && id != "" {
				out[id] = true
			}
		}
	}
	return out, nil
}

// PublishedPorts returns the ports vpcroute's DNAT rules publish, as the kernel holds
// them: what a network rebuilt after its records were lost takes back. Bridge is not
// in a rule and is left empty.
func (f *Firewall) PublishedPorts() ([]PortMap, error) {
	saved, err := f.save(tableNAT)
	if err != nil {
		return nil, err
	}
	var out []PortMap
	for _, r := range saved.rules {
		if r.chain != chainDNAT {
			continue
		}
		if p, ok := parsePortRule(r.args); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// Forward reads the filter FORWARD chain (one iptables-save).
func (f *Firewall) Forward() (Forward, error) {
	saved, err := f.save(tableFilter)
	if err != nil {
		return Forward{}, err
	}
	return forwardOf(saved), nil
}

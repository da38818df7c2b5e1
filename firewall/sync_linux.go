//go:build linux

package firewall

import (
	"errors"
	"fmt"
	"os"

	"github.com/vpcroute/vpcroute/sysctl"
)

// Check reads the filter and nat tables (one iptables-save each) and says what of
// want is out of line. It changes nothing and takes no lock: the background repair
// runs it without holding up Docker's calls, and calls Sync only when it finds
// something.
//
// On the nft backend a check that found everything in line is remembered with the
// ruleset's generation: while neither the generation nor want changes, the next
// check is one netlink round trip instead of two iptables-save, so that the idle
// plugin's CPU does not grow with the number of networks.
func (f *Firewall) Check(w Want) (Drift, error) {
	gen, genOK := f.generation()
	key := fmt.Sprint(w)
	f.mu.Lock()
	same := genOK && f.inLine.ok && f.inLine.gen == gen && f.inLine.want == key
	f.mu.Unlock()
	if same {
		return Drift{}, nil
	}
	filter, nat, err := f.saveBoth()
	if err != nil {
		return Drift{}, err
	}
	d, _, _, err := planSync(w, filter, nat)
	if err == nil && d.Empty() && genOK {
		f.mu.Lock()
		f.inLine = checked{ok: true, gen: gen, want: key}
		f.mu.Unlock()
	}
	return d, err
}

// checked remembers the last check that found the rules in line.
type checked struct {
	ok   bool
	gen  uint32 // nf_tables generation read before the check's reads
	want string // the Want it checked, printed
}

// Generation is the nf_tables ruleset generation, which changes whenever anyone
// changes any rule; ok is false on the legacy backend, which has none.
func (f *Firewall) Generation() (uint32, bool) { return f.generation() }

// generation is the nf_tables ruleset generation, on the nft backend.
func (f *Firewall) generation() (uint32, bool) {
	if f.backend != BackendNFT {
		return 0, false
	}
	gen, err := nftGeneration()
	return gen, err == nil
}

// Sync brings every rule of want in line, whatever the number of networks, with one
// iptables-save and at most one iptables-restore per table (each table's restore is
// one transaction), and turns route_localnet on where a network's INPUT guard
// allows it. It returns what it found out of line. Rules of networks that are not in
// want are left alone: removing them is Prune's, once Docker's list says so.
func (f *Firewall) Sync(w Want) (Drift, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inLine = checked{}
	gen, genOK := f.generation()
	filter, nat, err := f.saveBoth()
	if err != nil {
		return Drift{}, err
	}
	d, fin, nin, err := planSync(w, filter, nat)
	if err != nil {
		return Drift{}, err
	}
	if fin == "" && nin == "" && genOK {
		f.inLine = checked{ok: true, gen: gen, want: fmt.Sprint(w)}
	}
	if err := f.restore(fin); err != nil {
		return d, fmt.Errorf("repair table filter: %w", err)
	}
	if err := f.restore(nin); err != nil {
		return d, fmt.Errorf("repair table nat: %w", err)
	}
	var errs []error
	for _, r := range w.Networks {
		chains, _ := networkChains(r)
		f.known[r.NetworkID] = checkScript(r.NetworkID, chains)
		if r.Internal {
			continue
		}
		key := "net/ipv4/conf/" + r.Bridge + "/route_localnet"
		if v, err := sysctl.Get(key); err == nil && v == "1" {
			continue
		}
		if err := setRouteLocalnet(r.Bridge, true); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("network %s: allow ports on 127.0.0.1 via bridge %s: %w", r.NetworkID, r.Bridge, err))
		}
	}
	f.baseOrdered = true
	return d, errors.Join(errs...)
}

func (f *Firewall) saveBoth() (savedTable, savedTable, error) {
	filter, err := f.save(tableFilter)
	if err != nil {
		return savedTable{}, savedTable{}, err
	}
	nat, err := f.save(tableNAT)
	if err != nil {
		return savedTable{}, savedTable{}, err
	}
	return filter, nat, nil
}

// Saves is how many times this Firewall has run iptables-save, for benchmarks.
func (f *Firewall) Saves() int64 { return f.saves.Load() }

//go:build linux

package hostnet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"

	"github.com/coreos/go-iptables/iptables"
)

// Firewall manages vpcroute's iptables rules on the backend the host uses.
// All methods are safe for concurrent use.
type Firewall struct {
	ipt     *iptables.IPTables
	backend string
	// mu serialises check-then-change sequences (-C then -A) so that two
	// concurrent calls cannot add the same rule twice. It guards no data.
	mu sync.Mutex
}

// NewFirewall returns a Firewall on the iptables backend the host uses
// (legacy or nft, detected as the Kubernetes iptables wrapper does).
func NewFirewall() (*Firewall, error) {
	return NewFirewallBackend(detectBackend(runOutput))
}

// NewFirewallBackend returns a Firewall on the given backend (BackendNFT or
// BackendLegacy), for hosts where detection cannot tell and for tests.
func NewFirewallBackend(backend string) (*Firewall, error) {
	var bin string
	switch backend {
	case BackendNFT:
		bin = "iptables-nft"
	case BackendLegacy:
		bin = "iptables-legacy"
	default:
		return nil, fmt.Errorf("unknown iptables backend %q: use %q or %q", backend, BackendNFT, BackendLegacy)
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		// Distributions with a single backend ship only plain iptables.
		if path, err = exec.LookPath("iptables"); err != nil {
			return nil, fmt.Errorf("find %s or iptables: %w; install the iptables package", bin, err)
		}
	}
	ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Path(path), iptables.Timeout(10))
	if err != nil {
		return nil, fmt.Errorf("set up iptables (%s): %w", path, err)
	}
	return &Firewall{ipt: ipt, backend: backend}, nil
}

// Backend reports the iptables backend in use: "nft" or "legacy".
func (f *Firewall) Backend() string { return f.backend }

// EnsureBase creates vpcroute's chains and the jumps into them from filter
// FORWARD and INPUT and nat PREROUTING, OUTPUT and POSTROUTING. When the
// jumps are in place it costs one check per jump, so the driver can re-run it
// often to undo a Docker restart or a flush. forwardPolicyAccept sets the
// filter FORWARD policy to ACCEPT, as Huawei's guide does; otherwise the
// policy is left alone and vpcroute's own rules admit its traffic.
func (f *Firewall) EnsureBase(forwardPolicyAccept bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range baseJumps() {
		ok, err := f.exists(j)
		if err != nil {
			return err
		}
		if ok {
			continue // a jump implies its target chain exists
		}
		if err := f.ensureChain(j.table, j.spec[len(j.spec)-1]); err != nil {
			return err
		}
		if err := f.add(j); err != nil {
			return err
		}
	}
	if forwardPolicyAccept {
		if err := f.ipt.ChangePolicy(tableFilter, "FORWARD", "ACCEPT"); err != nil {
			return fmt.Errorf("set filter FORWARD policy to ACCEPT: %w", err)
		}
	}
	return nil
}

func (f *Firewall) ensureChain(table, chain string) error {
	err := f.ipt.NewChain(table, chain)
	if err == nil {
		return nil
	}
	// NewChain fails the same way for "exists" as for real errors; ask.
	ok, lerr := f.ipt.ChainExists(table, chain)
	if lerr == nil && ok {
		return nil
	}
	return fmt.Errorf("create chain %s in table %s: %w", chain, table, err)
}

// EnsureNetwork adds the rules of one network: FORWARD accepts for its
// subnet (or, for an internal network, drops for everything leaving or
// entering the bridge), masquerade of outbound traffic to destinations
// outside NoNAT, hairpin and host-local masquerade for published ports, and
// route_localnet on the bridge with a guard against reaching the host's
// loopback from containers. EnsureBase must have run; the bridge must exist.
func (f *Firewall) EnsureNetwork(r NetworkRules) error {
	rules, err := networkRules(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, rl := range rules {
		if err := f.ensure(rl); err != nil {
			return fmt.Errorf("network %s: %w", r.NetworkID, err)
		}
	}
	if !r.Internal {
		// Only now that the INPUT guard is in place.
		if err := setRouteLocalnet(r.Bridge, true); err != nil {
			return fmt.Errorf("network %s: allow ports on 127.0.0.1 via bridge %s: %w", r.NetworkID, r.Bridge, err)
		}
	}
	return nil
}

// DeleteNetwork removes exactly the rules EnsureNetwork added for r, and
// turns route_localnet off again if the bridge still exists. Rules already
// gone are not an error.
func (f *Firewall) DeleteNetwork(r NetworkRules) error {
	rules, err := networkRules(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !r.Internal {
		// Before the INPUT guard goes.
		if err := setRouteLocalnet(r.Bridge, false); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("network %s: %w", r.NetworkID, err)
		}
	}
	var errs []error
	for i := len(rules) - 1; i >= 0; i-- {
		if err := f.remove(rules[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("network %s: %w", r.NetworkID, err)
	}
	return nil
}

// ensure adds rl unless it is present: one check, and one change if needed.
func (f *Firewall) ensure(rl rule) error {
	ok, err := f.exists(rl)
	if err != nil || ok {
		return err
	}
	return f.add(rl)
}

func (f *Firewall) exists(rl rule) (bool, error) {
	ok, err := f.ipt.Exists(rl.table, rl.chain, rl.spec...)
	if err != nil {
		if isNotExist(err) {
			return false, nil
		}
		return false, fmt.Errorf("check rule %s: %w", rl, err)
	}
	return ok, nil
}

func (f *Firewall) add(rl rule) error {
	var err error
	if rl.insert {
		err = f.ipt.Insert(rl.table, rl.chain, 1, rl.spec...)
	} else {
		err = f.ipt.Append(rl.table, rl.chain, rl.spec...)
	}
	if err != nil {
		if isNotExist(err) {
			return fmt.Errorf("add rule %s: %w (run EnsureBase first)", rl, err)
		}
		return fmt.Errorf("add rule %s: %w", rl, err)
	}
	return nil
}

// remove deletes rl if present, with a single -D: iptables reports a
// missing rule (or chain) as "does not exist", which counts as done.
func (f *Firewall) remove(rl rule) error {
	if err := f.ipt.Delete(rl.table, rl.chain, rl.spec...); err != nil && !isNotExist(err) {
		return fmt.Errorf("delete rule %s: %w", rl, err)
	}
	return nil
}

func isNotExist(err error) bool {
	var e *iptables.Error
	return errors.As(err, &e) && e.IsNotExist()
}

func runOutput(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).Output()
}

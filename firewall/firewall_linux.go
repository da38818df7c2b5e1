//go:build linux

package firewall

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/coreos/go-iptables/iptables"
)

// Firewall manages vpcroute's iptables rules on the backend the host uses.
// All methods are safe for concurrent use.
type Firewall struct {
	ipt     *iptables.IPTables
	backend string
	// restorePath and savePath are iptables-restore and iptables-save of
	// the same backend, next to the iptables binary in use: rules a restore
	// of the other backend writes would be invisible to the host's.
	restorePath, savePath string
	// restoreArgs are --noflush and, where iptables-restore has it, the
	// wait for the xtables lock that go-iptables uses for iptables.
	restoreArgs []string

	// mu serialises check-then-change sequences (-C then -A) so that two
	// concurrent calls cannot add the same rule twice, and guards known.
	mu sync.Mutex
	// known maps the IDs of networks whose chains this Firewall has
	// written, or written and since found intact, to the restore input
	// that checks them (see ensureChains). Guarded by mu.
	known map[string]string
	// baseOrdered is set once EnsureBase has read VPCROUTE-FORWARD and put
	// it in order; until then (a new process) EnsureBase reads it even when
	// every rule is in place. Guarded by mu.
	baseOrdered bool
	// inLine is the last check that found every rule in line (see Check).
	// Guarded by mu.
	inLine checked
	// saves counts the iptables-save runs, for tests and benchmarks.
	saves atomic.Int64
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
	ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Path(path), iptables.Timeout(waitSeconds))
	if err != nil {
		return nil, fmt.Errorf("set up iptables (%s): %w", path, err)
	}
	f := &Firewall{ipt: ipt, backend: backend, known: map[string]string{}}
	if f.restorePath, err = sibling(path, "-restore"); err != nil {
		return nil, err
	}
	if f.savePath, err = sibling(path, "-save"); err != nil {
		return nil, err
	}
	f.restoreArgs = []string{"--noflush"}
	if v1, v2, v3 := ipt.GetIptablesVersion(); v1 > 1 || v1 == 1 && (v2 > 6 || v2 == 6 && v3 >= 2) {
		// iptables-restore takes the xtables lock since 1.6.2 (legacy; the
		// nft backend has no lock and accepts the option).
		f.restoreArgs = append(f.restoreArgs, fmt.Sprintf("--wait=%d", waitSeconds))
	}
	return f, nil
}

// sibling finds the tool of the same backend as the iptables binary at path:
// iptables-nft-restore for iptables-nft, iptables-restore for iptables. It
// looks next to path first, then in $PATH, for hosts that split them
// between /sbin and /usr/sbin.
func sibling(path, suffix string) (string, error) {
	p := path + suffix
	if _, err := exec.LookPath(p); err == nil {
		return p, nil
	}
	p, err := exec.LookPath(filepath.Base(p))
	if err != nil {
		return "", fmt.Errorf("find %s%s: %w; install the iptables package", filepath.Base(path), suffix, err)
	}
	return p, nil
}

// waitSeconds is how long iptables commands wait for the xtables lock that
// Docker and other tools hold while they change rules.
const waitSeconds = 10

// Backend reports the iptables backend in use: "nft" or "legacy".
func (f *Firewall) Backend() string { return f.backend }

// EnsureBase creates vpcroute's chains and the jumps into them from filter
// FORWARD and INPUT and nat PREROUTING, OUTPUT and POSTROUTING, and keeps
// the fast path for packets of established connections of the pool (see
// fastPathRules) at the top of VPCROUTE-FORWARD, after only the jumps of
// internal networks. When all of that is in place it costs one
// iptables-restore that checks it, so the driver can re-run it often to
// undo a Docker restart or a flush. b.ForwardAccept sets the filter FORWARD
// policy to ACCEPT, as Huawei's guide does; otherwise the policy is left
// alone and vpcroute's own rules admit its traffic.
//
// The order in VPCROUTE-FORWARD holds whatever runs before or after:
// EnsureNetwork puts an internal network's jump first and any other's
// last, so of vpcroute's own steps only removing a fast path rule can leave
// one out of place, and the check sees that. On its first run in a process,
// and whenever something is missing, EnsureBase reads the chain and, if its
// order is wrong (a person may have moved rules), rewrites it in one
// transaction.
func (f *Firewall) EnsureBase(b Base) error {
	if err := b.validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	intact := f.restore(baseCheckScript(b)) == nil
	if intact && f.baseOrdered {
		return nil
	}
	if intact {
		// First run of this Firewall: the check cannot see the order of
		// VPCROUTE-FORWARD, which a person may have changed meanwhile.
		if err := f.ensureForwardOrder(fastPathRules(b.Pool), forwardTail(b)); err != nil {
			return err
		}
		if err := f.ensurePoolShortcut(b); err != nil {
			return err
		}
		f.baseOrdered = true
		return nil
	}
	// Something is missing: find out what, one jump at a time.
	for _, c := range baseChains {
		if err := f.ensureChain(c.table, c.chain); err != nil {
			return err
		}
	}
	for _, r := range forwardTail(b) {
		if err := f.ensure(rule{table: tableFilter, chain: chainForward, spec: r}); err != nil {
			return err
		}
	}
	var docker restoreInput
	docker.line(tableFilter, ":"+chainDocker, "-", "[0:0]")
	for _, r := range dockerRules(b.DockerBridges) {
		docker.line(tableFilter, join("-A", chainDocker, r)...)
	}
	if err := f.restore(docker.String()); err != nil {
		return fmt.Errorf("write %s: %w", chainDocker, err)
	}
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
	for _, j := range legacyBaseJumps() {
		if err := f.removeAll(j); err != nil {
			return err
		}
	}
	if err := f.ensureForwardOrder(fastPathRules(b.Pool), forwardTail(b)); err != nil {
		return err
	}
	if err := f.ensurePoolShortcut(b); err != nil {
		return err
	}
	if b.ForwardAccept {
		if err := f.ipt.ChangePolicy(tableFilter, "FORWARD", "ACCEPT"); err != nil {
			return fmt.Errorf("set filter FORWARD policy to ACCEPT: %w", err)
		}
	}
	f.baseOrdered = true
	return nil
}

// ensureForwardOrder makes VPCROUTE-FORWARD hold the fast path rules fast
// right after the internal networks' jumps (see forwardOrderScript): one
// iptables-save, and one iptables-restore if anything is out of place.
func (f *Firewall) ensureForwardOrder(fast, tail [][]string) error {
	saved, err := f.save(tableFilter)
	if err != nil {
		return err
	}
	if err := f.restore(forwardOrderScript(saved, fast, tail)); err != nil {
		return fmt.Errorf("put the established fast path first in %s: %w", chainForward, err)
	}
	return nil
}

// ensurePoolShortcut makes the pool's shortcut (see poolShortcut) head
// VPCROUTE-POSTROUTING, after only the guard of published ports, and takes
// shortcuts of other settings away: one iptables-save, and one iptables-restore
// if anything is out of place. The networks' jumps stay after it, in their order.
func (f *Firewall) ensurePoolShortcut(b Base) error {
	saved, err := f.save(tableNAT)
	if err != nil {
		return err
	}
	var d Drift
	p := newTablePlan(tableNAT, saved, &d)
	var guard [][]string
	if slices.ContainsFunc(p.rules[chainPostrouting], func(r savedRule) bool { return r.target() == chainPorts }) {
		guard = [][]string{portsGuard()}
	}
	returns, accept := poolShortcut(b)
	p.baseChain(chainPostrouting, [][][]string{guard, returns, accept}, func(r savedRule) bool { return isPoolShortcutRule(r.args) })
	if err := f.restore(p.script()); err != nil {
		return fmt.Errorf("put the pool's shortcut first in %s: %w", chainPostrouting, err)
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

// EnsureNetwork makes the chains of one network hold its rules: FORWARD
// accepts for its subnet (or, for an internal network, drops for everything
// leaving or entering the bridge), masquerade of outbound traffic to
// destinations outside NoNAT, hairpin and host-local masquerade for
// published ports, and route_localnet on the bridge with a guard against
// reaching the host's loopback from containers. EnsureBase must have run;
// the bridge must exist.
//
// The rules live in chains of the network's own (VPCROUTE-F-<id>,
// VPCROUTE-I-<id>, VPCROUTE-P-<id>, VPCROUTE-N-<id>, see networkChains),
// reached by marked jumps from vpcroute's base chains. For a new network
// one iptables-restore creates them all; a re-run by the same Firewall
// checks them all with one more and, only if something drifted, rewrites
// them (repairing deleted or changed rules) in one transaction per table.
// The first run over existing chains after a restart rewrites them, so
// that rules of settings that changed meanwhile go.
func (f *Firewall) EnsureNetwork(r NetworkRules) error {
	chains, err := networkChains(r)
	if err != nil {
		return err
	}
	if r.NoICC {
		if err := ensureBridgeFiltering(); err != nil {
			return fmt.Errorf("network %s: %w", r.NetworkID, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.ensureChains(r.NetworkID, chains); err != nil {
		return fmt.Errorf("network %s: %w", r.NetworkID, err)
	}
	if !r.Internal {
		// Only now that the INPUT guard is in place.
		if err := setRouteLocalnet(r.Bridge, true); err != nil {
			return fmt.Errorf("network %s: allow ports on 127.0.0.1 via bridge %s: %w", r.NetworkID, r.Bridge, err)
		}
	}
	return nil
}

// ensureChains brings the chains of network id, and the jumps into them, to
// what chains says, in as few iptables processes as the state allows:
//
//   - A network this Firewall has not seen: one restore creates its chains
//     and jumps, and succeeds if, as for a new network, none of the chains
//     exists (see createScript).
//   - A network it wrote these same rules for: one restore checks every
//     rule and jump, and succeeds if nothing was deleted since.
//   - Otherwise (drift; rules of an earlier process, whose settings may
//     have been others; settings that changed): rewrite the chains, which
//     also drops rules the settings no longer ask for, and add the jumps
//     that are missing.
func (f *Firewall) ensureChains(id string, chains []netChain) error {
	check := checkScript(id, chains)
	switch prev, seen := f.known[id]; {
	case !seen:
		if f.restore(createScript(id, chains)) == nil {
			f.known[id] = check
			return nil
		}
	case prev == check:
		if f.restore(check) == nil {
			return nil
		}
	}
	delete(f.known, id)
	missing := map[string]bool{}
	var jumps restoreInput
	for _, c := range chains {
		j := c.jump()
		jumps.line(j.table, join("-C", j.chain, j.spec)...)
	}
	if f.restore(jumps.String()) != nil {
		// Some jump is missing: find out which, one at a time.
		for _, c := range chains {
			ok, err := f.exists(c.jump())
			if err != nil {
				return err
			}
			missing[c.name] = !ok
		}
	}
	if err := f.restore(repairScript(id, chains, missing)); err != nil {
		if base := f.missingBaseChain(); base != "" {
			return fmt.Errorf("write chains: %w (vpcroute's chain %s is missing: run EnsureBase first)", err, base)
		}
		return fmt.Errorf("write chains: %w", err)
	}
	f.known[id] = check
	return nil
}

// missingBaseChain returns the first of vpcroute's base chains that does
// not exist, or "", to explain a failure.
func (f *Firewall) missingBaseChain() string {
	for _, c := range baseChains {
		if ok, err := f.ipt.ChainExists(c.table, c.chain); err == nil && !ok {
			return c.chain
		}
	}
	return ""
}

// DeleteNetwork removes the chains EnsureNetwork made for r and the jumps
// into them, and turns route_localnet off again if the bridge still exists.
// Usually that is one iptables-restore; chains and jumps already gone (in
// part or in full) are not an error. Of r, only NetworkID, Bridge and
// Internal matter: the chains are named from the ID, and Internal (which
// Docker never changes for a network) says which chains there are.
func (f *Firewall) DeleteNetwork(r NetworkRules) error {
	chains, err := networkChains(r)
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
	delete(f.known, r.NetworkID)
	if f.restore(deleteScript(r.NetworkID, chains)) == nil {
		return nil
	}
	if err := f.deleteChains(r.NetworkID); err != nil {
		return fmt.Errorf("network %s: %w", r.NetworkID, err)
	}
	return nil
}

// maxJumps bounds how many copies of one jump deleteChains removes; only a
// person or a bug makes more than one.
const maxJumps = 8

// deleteChains removes whichever of network id's chains exist, and every
// jump into them: the careful way, for when the one-restore delete failed
// because something was already gone.
func (f *Firewall) deleteChains(id string) error {
	for _, table := range []string{tableFilter, tableNAT} {
		saved, err := f.save(table)
		if err != nil {
			return err
		}
		if err := f.restore(removeNetworkScript(table, saved, id)); err != nil {
			return fmt.Errorf("remove the rules of network %s from table %s: %w", id, table, err)
		}
	}
	return nil
}

// restore feeds input to iptables-restore --noflush of the Firewall's
// backend. Each table's block is one transaction: on error that table is
// unchanged (tables before it in input may have been committed).
func (f *Firewall) restore(input string) error {
	if input == "" {
		return nil
	}
	cmd := exec.Command(f.restorePath, f.restoreArgs...)
	cmd.Stdin = strings.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(f.restorePath), err, strings.TrimSpace(stderr.String()))
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
	// A goto into a chain that is gone: iptables-legacy says so with status 2.
	return errors.As(err, &e) && (e.IsNotExist() || strings.Contains(e.Error(), "is not a chain"))
}

func runOutput(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).Output()
}

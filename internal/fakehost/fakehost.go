// Package fakehost keeps, in memory, the kernel objects the controller makes (bridges,
// veths, each network's rules, published ports), for unit tests that check what
// exists afterwards. It marks and refuses the way packages link and firewall do: a
// link that is not vpcroute's is never changed or deleted. The kernel itself is
// covered by those packages' tests in throwaway namespaces and by internal/e2e.
package fakehost

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/link"
)

// Host is a fake of link.Host and firewall.Firewall. Its maps may be read and set by
// tests between calls.
type Host struct {
	mu sync.Mutex
	// Marked maps the marked bridges to their network IDs; Gateways gives their
	// addresses.
	Marked   map[string]string
	Gateways map[string]netip.Prefix
	// Foreign links are not vpcroute's: never changed, never listed as its.
	Foreign map[string]bool
	// Attached maps the veths' host ends to their bridges.
	Attached map[string]string
	// Rules holds each network's rules, Ports the published ports.
	Rules map[string]firewall.NetworkRules
	Ports map[firewall.PortMap]bool
	// Routes are the host's own routes (Prefixes adds the bridges' subnets).
	Routes []netip.Prefix
	// Others are address ranges of other owners (OthersIn).
	Others []netip.Prefix
	// PoolOthers is what the last Sync wrote of the base's ranges of other
	// owners (firewall.Base.PoolOthers); Check reports drift when it differs.
	PoolOthers []netip.Prefix
	MTU        int
	// UplinkName is what Uplink reports ("": no usable uplink).
	UplinkName string
	// FailRules fails EnsureNetwork and EnsurePort; FailDelete DeleteNetwork;
	// FailPortDelete DeletePort.
	FailRules, FailDelete, FailPortDelete error
	// BaseCalls counts EnsureBase; LinkReads counts Bridges and BridgesOutOfLine;
	// Checks counts Check.
	BaseCalls, LinkReads, Checks int
	// RuleGen is the rules' generation when HasGen (as on nft); a test moves it
	// to say someone changed a rule.
	RuleGen uint32
	HasGen  bool
}

// New returns an empty host with an uplink MTU of 1450.
func New() *Host {
	return &Host{
		Marked: map[string]string{}, Gateways: map[string]netip.Prefix{}, Foreign: map[string]bool{},
		Attached: map[string]string{}, Rules: map[string]firewall.NetworkRules{}, Ports: map[firewall.PortMap]bool{},
		MTU: 1450,
	}
}

// Lock and Unlock let tests read the maps while the controller's loop may run.
func (h *Host) Lock()   { h.mu.Lock() }
func (h *Host) Unlock() { h.mu.Unlock() }

// EnsureBridge makes or repairs a marked bridge.
func (h *Host) EnsureBridge(s link.BridgeSpec) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.Foreign[s.Name] {
		return fmt.Errorf("link %s: %w", s.Name, link.ErrNotOwned)
	}
	if id, ok := h.Marked[s.Name]; ok && id != s.NetworkID {
		return fmt.Errorf("bridge %s is network %s's: %w", s.Name, id, link.ErrNotOwned)
	}
	h.Marked[s.Name] = s.NetworkID
	h.Gateways[s.Name] = s.Gateway
	return nil
}

// DeleteBridge deletes a bridge marked for networkID.
func (h *Host) DeleteBridge(name, networkID string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.Foreign[name] {
		return fmt.Errorf("link %s: %w", name, link.ErrNotOwned)
	}
	id, ok := h.Marked[name]
	if !ok {
		return nil
	}
	if id != networkID {
		return fmt.Errorf("bridge %s is network %s's: %w", name, id, link.ErrNotOwned)
	}
	delete(h.Marked, name)
	delete(h.Gateways, name)
	for v, br := range h.Attached {
		if br == name {
			delete(h.Attached, v) // detached; the test sees it as gone from the bridge
		}
	}
	return nil
}

// Bridges lists the marked bridges.
func (h *Host) Bridges() (map[string]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.LinkReads++
	return maps.Clone(h.Marked), nil
}

// EnsureVeth makes a veth on a bridge.
func (h *Host) EnsureVeth(host, _, bridge string, _ int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.Marked[bridge]; !ok {
		return fmt.Errorf("look up bridge %s for veth %s: no such link", bridge, host)
	}
	if h.Foreign[host] {
		return fmt.Errorf("link %s: %w", host, link.ErrNotOwned)
	}
	h.Attached[host] = bridge
	return nil
}

// AttachVeth puts an existing veth on a bridge.
func (h *Host) AttachVeth(host, bridge string, mtu int) (bool, error) {
	h.mu.Lock()
	_, ok := h.Attached[host]
	h.mu.Unlock()
	if !ok {
		return false, nil
	}
	return true, h.EnsureVeth(host, "", bridge, mtu)
}

// DeleteVeth deletes a veth.
func (h *Host) DeleteVeth(host string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.Foreign[host] {
		return fmt.Errorf("link %s: %w", host, link.ErrNotOwned)
	}
	delete(h.Attached, host)
	return nil
}

// Veths lists the veths.
func (h *Host) Veths() ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for v := range h.Attached {
		out = append(out, v)
	}
	return out, nil
}

// UplinkMTU returns MTU.
func (h *Host) UplinkMTU() int { return h.MTU }

// Uplink returns UplinkName.
func (h *Host) Uplink() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.UplinkName
}

// Prefixes returns Routes and the subnets of the bridges, as the kernel's connected
// routes would.
func (h *Host) Prefixes() ([]netip.Prefix, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := append([]netip.Prefix{}, h.Routes...)
	for _, g := range h.Gateways {
		out = append(out, g.Masked())
	}
	return out, nil
}

// OthersIn returns the ranges of Others that overlap within.
func (h *Host) OthersIn(within netip.Prefix) ([]netip.Prefix, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []netip.Prefix
	for _, p := range h.Others {
		if p.Overlaps(within) {
			out = append(out, p)
		}
	}
	return out, nil
}

// EnsureBase counts.
func (h *Host) EnsureBase(firewall.Base) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.BaseCalls++
	return nil
}

// Generation is RuleGen when HasGen.
func (h *Host) Generation() (uint32, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.RuleGen, h.HasGen
}

// BridgesOutOfLine lists the bridges of specs that are missing or carry another
// mark or gateway.
func (h *Host) BridgesOutOfLine(specs []link.BridgeSpec) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.LinkReads++
	var out []string
	for _, s := range specs {
		if h.Marked[s.Name] != s.NetworkID || h.Gateways[s.Name] != s.Gateway {
			out = append(out, s.Name)
		}
	}
	return out, nil
}

// Check says which networks of w lack their rules (or hold others), and whether
// the published ports differ.
func (h *Host) Check(w firewall.Want) (firewall.Drift, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.Checks++
	return h.driftLocked(w), nil
}

func (h *Host) driftLocked(w firewall.Want) firewall.Drift {
	var d firewall.Drift
	known := map[string]bool{}
	for _, r := range w.Networks {
		known[r.NetworkID] = true
		if have, ok := h.Rules[r.NetworkID]; !ok || fmt.Sprint(have) != fmt.Sprint(r) {
			d.Networks = append(d.Networks, r.NetworkID)
		}
	}
	want := map[firewall.PortMap]bool{}
	for _, p := range w.Ports {
		p.Bridge = ""
		want[p] = true
		if !h.Ports[p] {
			d.Base = append(d.Base, "port "+p.String()+" missing")
		}
	}
	for p := range h.Ports {
		if known[p.NetworkID] && !want[p] {
			d.Base = append(d.Base, "stale port "+p.String())
		}
	}
	if !slices.Equal(h.PoolOthers, w.Base.PoolOthers) {
		d.Base = append(d.Base, fmt.Sprintf("pool's shortcut for other owners' ranges %v, want %v", h.PoolOthers, w.Base.PoolOthers))
	}
	return d
}

// Sync writes the rules and ports of w, and removes the ports of w's networks that w
// does not list; rules of other networks stay.
func (h *Host) Sync(w firewall.Want) (firewall.Drift, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.FailRules != nil {
		return firewall.Drift{}, h.FailRules
	}
	d := h.driftLocked(w)
	h.BaseCalls++
	h.PoolOthers = slices.Clone(w.Base.PoolOthers)
	known := map[string]bool{}
	for _, r := range w.Networks {
		known[r.NetworkID] = true
		h.Rules[r.NetworkID] = r
	}
	for p := range h.Ports {
		if known[p.NetworkID] {
			delete(h.Ports, p)
		}
	}
	for _, p := range w.Ports {
		p.Bridge = ""
		h.Ports[p] = true
	}
	return d, nil
}

// EnsureNetwork records a network's rules.
func (h *Host) EnsureNetwork(r firewall.NetworkRules) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.FailRules != nil {
		return h.FailRules
	}
	h.Rules[r.NetworkID] = r
	return nil
}

// DeleteNetwork removes a network's rules.
func (h *Host) DeleteNetwork(r firewall.NetworkRules) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.FailDelete != nil {
		return h.FailDelete
	}
	delete(h.Rules, r.NetworkID)
	return nil
}

// EnsurePort publishes a port.
func (h *Host) EnsurePort(p firewall.PortMap) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.FailRules != nil {
		return h.FailRules
	}
	p.Bridge = ""
	h.Ports[p] = true
	return nil
}

// DeletePort unpublishes a port.
func (h *Host) DeletePort(p firewall.PortMap) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.FailPortDelete != nil {
		return h.FailPortDelete
	}
	p.Bridge = ""
	delete(h.Ports, p)
	return nil
}

// Prune removes the rules and ports of networks not in keep.
func (h *Host) Prune(keep map[string]bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := range h.Rules {
		if !keep[id] {
			delete(h.Rules, id)
		}
	}
	for p := range h.Ports {
		if !keep[p.NetworkID] {
			delete(h.Ports, p)
		}
	}
	return nil
}

// Owners lists the networks that have rules or ports.
func (h *Host) Owners() (map[string]bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]bool{}
	for id := range h.Rules {
		out[id] = true
	}
	for p := range h.Ports {
		out[p.NetworkID] = true
	}
	return out, nil
}

// ByNetwork returns, by network ID, the marked bridges and which networks have rules:
// what an inventory compares with the records.
func (h *Host) ByNetwork() (bridges map[string]string, rules map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	bridges, rules = map[string]string{}, map[string]bool{}
	for br, id := range h.Marked {
		bridges[id] = br
	}
	for id := range h.Rules {
		rules[id] = true
	}
	return bridges, rules
}

// PublishedPorts lists the published ports.
func (h *Host) PublishedPorts() ([]firewall.PortMap, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []firewall.PortMap
	for p := range h.Ports {
		out = append(out, p)
	}
	return out, nil
}

// RemoveAll removes every rule and port, and the base.
func (h *Host) RemoveAll() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.Rules = map[string]firewall.NetworkRules{}
	h.Ports = map[firewall.PortMap]bool{}
	h.BaseCalls = 0
	return nil
}

// Backend is the fake's.
func (h *Host) Backend() string { return "fake" }

// Forward says FORWARD is hooked, as EnsureBase leaves it.
func (h *Host) Forward() (firewall.Forward, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.BaseCalls == 0 {
		return firewall.Forward{Policy: "DROP"}, nil
	}
	return firewall.Forward{Policy: "DROP", Hook: 1, Rules: 1}, nil
}

// ErrInjected is a failure tests inject.
var ErrInjected = errors.New("iptables: Resource temporarily unavailable (injected)")

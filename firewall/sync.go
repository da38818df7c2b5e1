package firewall

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// This file decides, from one iptables-save of each table, what of vpcroute's rules
// is out of line and the one iptables-restore per table that puts it back: the
// background repair and the start-up restore cost two reads whatever the number of
// networks, and a write only where something differs.

// Want is every rule vpcroute should have: the base, every network's chains, every
// published port.
type Want struct {
	Base     Base
	Networks []NetworkRules
	Ports    []PortMap
}

// Drift is what a check found out of line.
type Drift struct {
	// Networks are the IDs of networks whose chains (or the jumps into them) are
	// not as they should be.
	Networks []string
	// Base says what else is not: a base jump missing or out of place (FORWARD's
	// belongs right after Docker's DOCKER-USER), the fast path, FORWARD's policy,
	// a base chain, the published ports.
	Base []string
}

// Empty says nothing is out of line.
func (d Drift) Empty() bool { return len(d.Networks) == 0 && len(d.Base) == 0 }

func (d Drift) String() string {
	var parts []string
	if len(d.Networks) > 0 {
		ids := make([]string, len(d.Networks))
		for i, id := range d.Networks {
			ids[i] = id[:min(12, len(id))]
		}
		parts = append(parts, "rules of networks "+strings.Join(ids, " "))
	}
	return strings.Join(append(parts, d.Base...), "; ")
}

// dockerUser is the chain Docker reserves for its users' rules, jumped to first in
// FORWARD: vpcroute's jump goes right after it, so that those rules see vpcroute's
// traffic too, and nothing of Docker's comes before vpcroute's.
const dockerUser = "DOCKER-USER"

// canon is a rule's arguments in a form that compares equal however iptables-save
// orders them: the basic matches (-s, -d, -i, -o, -p, each with its "!") sorted,
// then the match modules and the target as they come.
func canon(args []string) string {
	type basic struct{ flag, neg, val string }
	var basics []basic
	i := 0
	for i < len(args) {
		neg := ""
		j := i
		if args[j] == "!" && j+1 < len(args) {
			neg, j = "!", j+1
		}
		switch args[j] {
		case "-s", "-d", "-i", "-o", "-p", "--source", "--destination", "--in-interface", "--out-interface", "--protocol":
			if j+1 >= len(args) {
				break
			}
			basics = append(basics, basic{args[j][:2], neg, args[j+1]})
			i = j + 2
			continue
		}
		break
	}
	sort.Slice(basics, func(a, b int) bool { return basics[a].flag < basics[b].flag })
	var b strings.Builder
	for _, x := range basics {
		if x.neg != "" {
			b.WriteString("! ")
		}
		b.WriteString(x.flag + " " + x.val + " ")
	}
	b.WriteString(strings.Join(args[i:], " "))
	return b.String()
}

// chainLines are the rules of one chain of a saved table.
func chainLines(t savedTable, chain string) []savedRule {
	var out []savedRule
	for _, r := range t.rules {
		if r.chain == chain {
			out = append(out, r)
		}
	}
	return out
}

// byChain indexes a saved table's rules by chain, so that comparing every network's
// chains costs one pass over the table, not one per chain.
func byChain(t savedTable) map[string][]savedRule {
	out := map[string][]savedRule{}
	for _, r := range t.rules {
		out[r.chain] = append(out[r.chain], r)
	}
	return out
}

// tablePlan collects one table's repairs.
type tablePlan struct {
	table   string
	saved   savedTable
	rules   map[string][]savedRule // the saved rules by chain
	has     map[string]bool        // chains that exist
	declare []string               // chains to create or flush and refill
	lines   [][]string             // rules and edits, after the declarations
	policy  string                 // ":FORWARD ACCEPT" when the policy must change
	drift   *Drift
}

func newTablePlan(table string, saved savedTable, d *Drift) *tablePlan {
	p := &tablePlan{table: table, saved: saved, rules: byChain(saved), has: map[string]bool{}, drift: d}
	for _, c := range saved.chains {
		p.has[c] = true
	}
	return p
}

// script is the restore input of the plan, "" when nothing is to change.
func (p *tablePlan) script() string {
	if len(p.declare) == 0 && len(p.lines) == 0 && p.policy == "" {
		return ""
	}
	var in restoreInput
	if p.policy != "" {
		in.raw(p.table, p.policy)
	}
	for _, c := range p.declare {
		in.line(p.table, ":"+c, "-", "[0:0]")
	}
	for _, l := range p.lines {
		in.line(p.table, l...)
	}
	return in.String()
}

// rewrite declares chain (creating it, or flushing it) and fills it with rules.
func (p *tablePlan) rewrite(chain string, rules [][]string) {
	p.declare = append(p.declare, chain)
	for _, r := range rules {
		p.lines = append(p.lines, join("-A", chain, r))
	}
}

// network checks one network chain against its rules, and rewrites it when it
// differs or is missing; it returns whether it did.
func (p *tablePlan) network(c netChain) bool {
	have := p.rules[c.name]
	same := p.has[c.name] && len(have) == len(c.rules)
	for i := 0; same && i < len(have); i++ {
		same = canon(have[i].args) == canon(c.rules[i])
	}
	if same {
		return false
	}
	p.rewrite(c.name, c.rules)
	return true
}

// builtinJump makes sure the base jump j is in its built-in chain once, at the place
// it belongs (after must name the chain it follows, "" for anywhere when present and
// first when not).
//
// Any rule of the built-in chain that leads into j's target counts as a copy of
// j: nothing else jumps into vpcroute's chains, and a copy of another form (the
// marked filter jumps of earlier releases, see legacyBaseJumps) is replaced.
func (p *tablePlan) builtinJump(j rule, after string) {
	want := canon(j.spec)
	target := j.spec[len(j.spec)-1]
	rules := p.rules[j.chain]
	var mine []int
	var mineRules []savedRule
	exact := 0
	var others []savedRule
	for i, r := range rules {
		switch {
		case canon(r.args) == want:
			exact++
			fallthrough
		case r.target() == target:
			mine = append(mine, i)
			mineRules = append(mineRules, r)
		default:
			others = append(others, r)
		}
	}
	pos := 0 // 0-based place among the other rules
	if after != "" {
		for i, r := range others {
			if r.target() == after {
				pos = i + 1
			}
		}
	}
	switch {
	case len(mine) == 1 && exact == 1 && (after == "" || mine[0] == pos):
		return
	case exact == 0:
		p.drift.Base = append(p.drift.Base, fmt.Sprintf("jump from %s into %s missing", j.chain, target))
	default:
		p.drift.Base = append(p.drift.Base, fmt.Sprintf("jump from %s into %s at rule %d, not right after %s (rule %d)",
			j.chain, target, mine[0]+1, after, pos))
	}
	for _, r := range mineRules {
		p.lines = append(p.lines, join("-D", j.chain, r.args))
	}
	if after == "" {
		pos = 0
	}
	p.lines = append(p.lines, join("-I", j.chain, strconv.Itoa(pos+1), j.spec))
}

// noJump takes every rule of the built-in chain that leads into target out of it:
// a jump that is there only when something needs it (see portJumps), and why not
// now.
func (p *tablePlan) noJump(chain, target, why string) {
	for _, r := range p.rules[chain] {
		if r.target() != target {
			continue
		}
		p.drift.Base = append(p.drift.Base, fmt.Sprintf("jump from %s into %s %s", chain, target, why))
		p.lines = append(p.lines, join("-D", chain, r.args))
	}
}

// baseChain checks one of vpcroute's base chains: groups must each be present once,
// in the order of the groups (the order within a group is free); rules that are not
// vpcroute's for a network in want (a person's, or a removed network's, which Prune
// decides about) may stay anywhere after the groups. stale says which of the other
// rules go (rules of a network in want that it no longer asks for). The chain is
// rewritten in one transaction when anything is off.
func (p *tablePlan) baseChain(chain string, groups [][][]string, stale func(savedRule) bool) {
	have := p.rules[chain]
	index := map[string]int{} // canon -> group
	for g, rules := range groups {
		for _, r := range rules {
			index[canon(r)] = g
		}
	}
	seen := map[string]int{}
	ok := p.has[chain]
	group := 0
	var foreign []savedRule
	for _, r := range have {
		c := canon(r.args)
		g, mine := index[c]
		switch {
		case mine:
			seen[c]++
			if g < group || len(foreign) > 0 {
				ok = false
			}
			group = g
		case stale(r):
			ok = false
		default:
			foreign = append(foreign, r)
		}
	}
	for c := range index {
		if seen[c] != 1 {
			ok = false
		}
	}
	if ok {
		return
	}
	p.drift.Base = append(p.drift.Base, "chain "+chain+" out of line")
	p.declare = append(p.declare, chain)
	for _, rules := range groups {
		for _, r := range rules {
			p.lines = append(p.lines, join("-A", chain, r))
		}
	}
	for _, r := range foreign {
		args, err := splitRule(r.line)
		if err == nil {
			p.lines = append(p.lines, args)
		}
	}
}

// planSync compares want with the saved filter and nat tables and returns the drift
// and the restore input of each table that fixes it ("" when nothing is to change).
func planSync(w Want, filter, nat savedTable) (Drift, string, string, error) {
	if err := w.Base.validate(); err != nil {
		return Drift{}, "", "", err
	}
	var d Drift
	f := newTablePlan(tableFilter, filter, &d)
	n := newTablePlan(tableNAT, nat, &d)
	known, knownSuffix := map[string]bool{}, map[string]bool{}
	var internalJumps, egressJumps, ingressJumps, inputJumps, portsJumps, natJumps [][]string
	for _, r := range w.Networks {
		chains, err := networkChains(r)
		if err != nil {
			return Drift{}, "", "", err
		}
		known[r.NetworkID], knownSuffix[chainSuffix(r.NetworkID)] = true, true
		drifted := false
		for _, c := range chains {
			plan := f
			if c.table == tableNAT {
				plan = n
			}
			if plan.network(c) {
				drifted = true
			}
			j := c.jump().spec
			switch {
			case c.kind == kindForward && c.insert:
				internalJumps = append(internalJumps, j)
			case c.kind == kindForward:
				ingressJumps = append(ingressJumps, j)
			case c.kind == kindEgress:
				egressJumps = append(egressJumps, j)
			case c.kind == kindInput:
				inputJumps = append(inputJumps, j)
			case c.kind == kindPorts:
				portsJumps = append(portsJumps, j)
			default:
				natJumps = append(natJumps, j)
			}
		}
		if drifted {
			d.Networks = append(d.Networks, r.NetworkID)
		}
	}
	var ports [][]string
	for _, pm := range w.Ports {
		r, err := portRule(pm)
		if err != nil {
			return Drift{}, "", "", err
		}
		ports = append(ports, r.spec)
	}
	// A rule of a network in want that want does not list: a port unpublished
	// (marked), a jump into one of its chains of an earlier setting or release
	// (marked by releases before 2026-12-02, or not).
	staleOfKnown := func(r savedRule) bool {
		if id, marked := ruleNetworkID(r.args); marked && known[id] {
			return true
		}
		suffix, into := parseNetChain(r.target())
		return into && knownSuffix[suffix]
	}
	staleBase := func(r savedRule) bool {
		id, marked := ruleNetworkID(r.args)
		return marked && (id == "" || known[id])
	}
	// The jumps to published ports are there while a port is: one of want, or
	// one of a network that want does not know (Prune's to remove, which takes
	// the jumps away at the next pass).
	published := len(ports) > 0 || slices.ContainsFunc(n.rules[chainDNAT], func(r savedRule) bool {
		return !staleOfKnown(r)
	})
	var guard [][]string
	if published {
		guard = [][]string{portsGuard()}
	}
	// The guard of another time (ports all unpublished), and the ports' jumps of
	// releases before 2026-12-02, which came first in VPCROUTE-POSTROUTING for
	// each network (marked, so staleOfKnown takes those of known networks).
	// The pool's shortcut of another pool, setting or host (see poolShortcut).
	stalePost := func(r savedRule) bool {
		return staleOfKnown(r) || r.target() == chainPorts || isPoolShortcutRule(r.args)
	}
	returns, accept := poolShortcut(w.Base)

	jumps := baseJumps()
	if w.Base.ForwardAccept && filter.policies["FORWARD"] != "ACCEPT" {
		f.policy = ":FORWARD ACCEPT [0:0]"
		d.Base = append(d.Base, "FORWARD policy "+filter.policies["FORWARD"]+", want ACCEPT")
	}
	staleForward := func(r savedRule) bool { return staleBase(r) || isBaseForwardRule(r.args) }
	f.baseChain(chainForward, [][][]string{internalJumps, fastPathRules(w.Base.Pool), forwardTail(w.Base)}, staleForward)
	f.baseChain(chainEgress, [][][]string{egressJumps}, staleOfKnown)
	f.baseChain(chainIngress, [][][]string{ingressJumps}, staleOfKnown)
	f.baseChain(chainDocker, [][][]string{dockerRules(w.Base.DockerBridges)}, staleBase)
	f.baseChain(chainInput, [][][]string{inputJumps}, staleOfKnown)
	n.baseChain(chainPostrouting, [][][]string{guard, returns, accept, natJumps}, stalePost)
	n.baseChain(chainPorts, [][][]string{portsJumps}, staleOfKnown)
	n.baseChain(chainDNAT, [][][]string{ports}, staleOfKnown)
	for _, j := range portJumps() {
		switch {
		case j.chain == chainPostrouting: // in the group above
		case published:
			jumps = append(jumps, j)
		default:
			n.noJump(j.chain, chainDNAT, "while no port is published")
		}
	}
	for _, j := range jumps {
		plan := f
		if j.table == tableNAT {
			plan = n
		}
		after := ""
		if j.chain == "FORWARD" {
			after = dockerUser
		}
		plan.builtinJump(j, after)
	}
	if legacy := legacyAcceptRemoval(filter); len(legacy) > 0 {
		// After the rewrite of VPCROUTE-FORWARD above, which dropped its jump
		// there (isBaseForwardRule), in the same transaction.
		d.Base = append(d.Base, "chain "+chainAccept+" of an earlier release")
		f.lines = append(f.lines, legacy...)
	}
	slices.Sort(d.Networks)
	return d, f.script(), n.script(), nil
}

package firewall

import (
	"bufio"
	"fmt"
	"slices"
	"strings"
)

// This file writes the iptables-restore input that EnsureNetwork,
// DeleteNetwork, EnsureBase and Prune feed to `iptables-restore --noflush`.
// One restore is one process for any number of rules, where every
// `iptables` command is a process of its own (3-7 ms each on nf_tables), and
// each table's part of it is applied as one transaction: a reader of the
// rules sees a network's chains either as they were or as they are meant to
// be, never half-written.

// restoreInput builds the input of one iptables-restore run, a block per
// table. Lines must come grouped by table.
type restoreInput struct {
	b     strings.Builder
	table string
}

// line adds one command ("-A", "CHAIN", args...) to the block of table.
func (in *restoreInput) line(table string, words ...string) {
	in.open(table)
	for i, w := range words {
		if i > 0 {
			in.b.WriteByte(' ')
		}
		in.b.WriteString(quoteArg(w))
	}
	in.b.WriteByte('\n')
}

// raw adds a line as it is, e.g. one printed by iptables-save.
func (in *restoreInput) raw(table, line string) {
	in.open(table)
	in.b.WriteString(line)
	in.b.WriteByte('\n')
}

func (in *restoreInput) open(table string) {
	if in.table == table {
		return
	}
	in.close()
	in.table = table
	in.b.WriteString("*" + table + "\n")
}

func (in *restoreInput) close() {
	if in.table != "" {
		in.b.WriteString("COMMIT\n")
		in.table = ""
	}
}

// String ends the open table block and returns the input; empty when no
// line was added.
func (in *restoreInput) String() string {
	in.close()
	return in.b.String()
}

// quoteArg quotes an argument the way iptables-save does when it holds a
// space or a quote; vpcroute's own arguments never do (IDs and bridge names
// are validated), so this only keeps a mistake from splitting an argument.
func quoteArg(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t\"\\'") {
		return a
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
}

// tablesOf returns the tables chains are in, filter first.
func tablesOf(chains []netChain) []string {
	var out []string
	for _, t := range []string{tableFilter, tableNAT} {
		for _, c := range chains {
			if c.table == t {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// addJump adds the jump into c at its place: first in c.from, or last.
func addJump(in *restoreInput, id string, c netChain) {
	j := c.jump()
	if j.insert {
		in.line(j.table, join("-I", j.chain, "1", j.spec)...)
	} else {
		in.line(j.table, join("-A", j.chain, j.spec)...)
	}
}

// createScript makes a new network's chains, fills them and adds the jumps
// into them. It fails without changing a table if any of the table's
// chains exists already (-N refuses), which is what makes it safe to run
// without checking first: a jump cannot exist without its chain, so when
// the chains are new there is no jump that could end up twice.
func createScript(id string, chains []netChain) string {
	var in restoreInput
	for _, t := range tablesOf(chains) {
		for _, c := range chains {
			if c.table == t {
				in.line(t, "-N", c.name)
			}
		}
		for _, c := range chains {
			if c.table != t {
				continue
			}
			for _, r := range c.rules {
				in.line(t, join("-A", c.name, r)...)
			}
		}
		for _, c := range chains {
			if c.table == t {
				addJump(&in, id, c)
			}
		}
	}
	return in.String()
}

// checkScript succeeds, changing nothing, when every rule of the network's
// chains and every jump into them is in place: the cheap re-run, one process
// whatever the number of rules.
func checkScript(id string, chains []netChain) string {
	var in restoreInput
	for _, t := range tablesOf(chains) {
		for _, c := range chains {
			if c.table != t {
				continue
			}
			j := c.jump()
			in.line(t, join("-C", j.chain, j.spec)...)
			for _, r := range c.rules {
				in.line(t, join("-C", c.name, r)...)
			}
		}
	}
	return in.String()
}

// repairScript rewrites a network's chains whatever they hold: declaring a
// chain creates it, or flushes it when it exists, and the rules that follow
// refill it in the same transaction. Jumps are added for the chains in
// missingJump only, as a restore cannot add a rule "unless present"; the
// jump of an internal network, present or not, is put first in
// VPCROUTE-FORWARD.
func repairScript(id string, chains []netChain, missingJump map[string]bool) string {
	var in restoreInput
	for _, t := range tablesOf(chains) {
		for _, c := range chains {
			if c.table == t {
				in.line(t, ":"+c.name, "-", "[0:0]")
			}
		}
		for _, c := range chains {
			if c.table != t {
				continue
			}
			for _, r := range c.rules {
				in.line(t, join("-A", c.name, r)...)
			}
		}
		for _, c := range chains {
			if c.table != t {
				continue
			}
			switch {
			case missingJump[c.name]:
				addJump(&in, id, c)
			case c.kind == kindForward && c.insert:
				// An internal network's drops must come before the fast
				// path (see fastPathRules); a repair puts the jump back on
				// top wherever it was.
				j := c.jump()
				in.line(t, join("-D", j.chain, j.spec)...)
				addJump(&in, id, c)
			}
		}
	}
	return in.String()
}

// deleteScript removes the jumps into a network's chains and the chains.
// It fails, changing nothing in a table, unless each of the table's jumps
// and chains exists, so callers fall back to removing what is there piece
// by piece.
func deleteScript(id string, chains []netChain) string {
	var in restoreInput
	for _, t := range tablesOf(chains) {
		for _, c := range chains {
			if c.table == t {
				j := c.jump()
				in.line(t, join("-D", j.chain, j.spec)...)
			}
		}
		for _, c := range chains {
			if c.table == t {
				in.line(t, "-F", c.name)
				in.line(t, "-X", c.name)
			}
		}
	}
	return in.String()
}

// removeNetworkScript removes, from one table as iptables-save printed it, every
// rule marked for network id outside its own chains, and its chains: the careful
// delete, for when the kernel does not hold what the one-restore delete expected
// (some of it already gone, rules of other settings).
func removeNetworkScript(table string, t savedTable, id string) string {
	suffix := chainSuffix(id)
	own := func(chain string) bool {
		s, ok := parseNetChain(chain)
		return ok && s == suffix
	}
	var in restoreInput
	for _, r := range t.rules {
		if own(r.chain) {
			continue // goes with its chain
		}
		if rid, marked := ruleNetworkID(r.args); marked && rid == id || own(r.target()) {
			in.raw(table, "-D"+strings.TrimPrefix(r.line, "-A"))
		}
	}
	for _, name := range t.chains {
		if own(name) {
			in.line(table, "-F", name)
			in.line(table, "-X", name)
		}
	}
	return in.String()
}

// baseCheckScript succeeds when every jump into vpcroute's base chains and
// every rule of the fast path is in place, in one process instead of one per
// rule. With b.ForwardAccept it also sets the filter FORWARD policy to
// ACCEPT in the same run (declaring a built-in chain in a --noflush restore
// sets its policy and keeps its rules). It cannot see where the fast path
// is in VPCROUTE-FORWARD; that changes only by removing rules (see
// EnsureBase), which it does see.
func baseCheckScript(b Base) string {
	var in restoreInput
	if b.ForwardAccept {
		in.line(tableFilter, ":FORWARD", "ACCEPT", "[0:0]")
	}
	for _, t := range []string{tableFilter, tableNAT} {
		for _, j := range baseJumps() {
			if j.table == t {
				in.line(t, join("-C", j.chain, j.spec)...)
			}
		}
		if t == tableNAT {
			returns, accept := poolShortcut(b)
			for _, r := range append(returns, accept...) {
				in.line(t, join("-C", chainPostrouting, r)...)
			}
		}
		if t == tableFilter {
			for _, r := range append(fastPathRules(b.Pool), forwardTail(b)...) {
				in.line(t, join("-C", chainForward, r)...)
			}
			for _, r := range dockerRules(b.DockerBridges) {
				in.line(t, join("-C", chainDocker, r)...)
			}
		}
	}
	return in.String()
}

// forwardOrderScript returns the restore input that rewrites
// VPCROUTE-FORWARD, as iptables-save printed it in t, into the order the
// fast path needs: first the jumps of internal networks, then the rules of
// fast (the fast path of the pool in use), then the tail (forwardTail), then every
// other rule as it was
// (other networks' jumps, anything someone else put there). Rules of an
// earlier fast path, such as one of another pool, go. It returns "" when
// the chain is in that order already.
//
// A jump belongs to an internal network when it leads to a per-network
// forward chain and that chain drops packets (only an internal network's
// does).
func forwardOrderScript(t savedTable, fast, tail [][]string) string {
	drops := map[string]bool{}
	for _, r := range t.rules {
		if r.target() == "DROP" {
			drops[r.chain] = true
		}
	}
	var first, rest []savedRule
	for _, r := range t.rules {
		if r.chain != chainForward {
			continue
		}
		switch {
		case isBaseForwardRule(r.args):
			// A fast path rule, of this pool or of another, or the tail, of
			// this release or an earlier one: rewritten below.
		case isNetChainKind(r.target(), kindForward) && drops[r.target()]:
			first = append(first, r)
		default:
			rest = append(rest, r)
		}
	}
	var have [][]string
	for _, r := range t.rules {
		if r.chain == chainForward {
			have = append(have, r.args)
		}
	}
	var want [][]string
	for _, r := range first {
		want = append(want, r.args)
	}
	want = append(want, fast...)
	want = append(want, tail...)
	for _, r := range rest {
		want = append(want, r.args)
	}
	legacy := legacyAcceptRemoval(t)
	if slices.EqualFunc(have, want, slices.Equal) && len(legacy) == 0 {
		return ""
	}
	// Declaring the chain flushes it; the lines after refill it in the
	// same transaction, so no packet sees it half-written.
	var in restoreInput
	in.line(tableFilter, ":"+chainForward, "-", "[0:0]")
	for _, r := range first {
		in.raw(tableFilter, r.line)
	}
	for _, r := range append(slices.Clone(fast), tail...) {
		in.line(tableFilter, join("-A", chainForward, r)...)
	}
	for _, r := range rest {
		in.raw(tableFilter, r.line)
	}
	for _, l := range legacy {
		in.line(tableFilter, l...)
	}
	return in.String()
}

// legacyAcceptRemoval returns the restore lines that remove VPCROUTE-ACCEPT, the
// chain of the networks' accepts of releases before 2026-12-02, from a filter table
// as iptables-save printed it, to follow a rewrite of VPCROUTE-FORWARD without its
// jump there; none when the chain is gone, or when a chain other than vpcroute's
// still jumps there (a person's rule, which the chain then outlives, empty).
func legacyAcceptRemoval(t savedTable) [][]string {
	if !slices.Contains(t.chains, chainAccept) {
		return nil
	}
	held, filled := false, false
	for _, r := range t.rules {
		held = held || r.target() == chainAccept && !isVpcrouteChain(r.chain)
		filled = filled || r.chain == chainAccept
	}
	switch {
	case !held:
		return [][]string{{"-F", chainAccept}, {"-X", chainAccept}}
	case filled:
		return [][]string{{"-F", chainAccept}}
	}
	return nil
}

// savedTable is one table as iptables-save prints it.
type savedTable struct {
	chains   []string
	policies map[string]string // built-in chain -> ACCEPT or DROP
	rules    []savedRule
}

// savedRule is one "-A CHAIN ..." line of iptables-save, with the line kept
// as printed so that it can be fed back (as "-D ...") with its quoting.
type savedRule struct {
	chain string
	line  string
	args  []string // split, without "-A CHAIN"
}

// target returns the rule's -j/-g target, or "".
func (r savedRule) target() string {
	for i := 0; i+1 < len(r.args); i++ {
		if r.args[i] == "-j" || r.args[i] == "-g" {
			return r.args[i+1]
		}
	}
	return ""
}

// parseSave reads the output of `iptables-save -t TABLE`.
func parseSave(out string) (savedTable, error) {
	var t savedTable
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, ":"):
			if f := strings.Fields(line[1:]); len(f) > 0 {
				t.chains = append(t.chains, f[0])
				if len(f) > 1 && f[1] != "-" {
					if t.policies == nil {
						t.policies = map[string]string{}
					}
					t.policies[f[0]] = f[1]
				}
			}
		case strings.HasPrefix(line, "-A "):
			args, err := splitRule(line)
			if err != nil {
				return savedTable{}, err
			}
			if len(args) < 2 {
				return savedTable{}, fmt.Errorf("rule without chain: %q", line)
			}
			t.rules = append(t.rules, savedRule{chain: args[1], line: line, args: args[2:]})
		}
	}
	return t, sc.Err()
}

// pruneScript returns the restore input that removes, from one table as
// iptables-save printed it:
//   - every rule marked "vpcroute:<ID>" for an ID not in keep (in any chain,
//     vpcroute's or not),
//   - every per-network chain whose network is not in keep, with the jumps
//     into it from vpcroute's chains (and the marked ones from any chain),
//   - the rules an older vpcroute kept directly in VPCROUTE-FORWARD,
//     VPCROUTE-INPUT and VPCROUTE-POSTROUTING, marked for a kept network but
//     not jumps into a per-network chain: their network's chains have taken
//     over, and DeleteNetwork would not remove them.
//
// Other unmarked rules, the base jumps and published ports of kept networks
// stay. A chain that an unmarked rule of a chain not vpcroute's still jumps to
// cannot be deleted: it is left as it is and reported in the returned errors.
func pruneScript(table string, t savedTable, keep map[string]bool) (string, []error) {
	keepSuffix := map[string]bool{}
	for id := range keep {
		keepSuffix[chainSuffix(id)] = true
	}
	doomed := map[string]bool{}
	for _, name := range t.chains {
		if suffix, ok := parseNetChain(name); ok && !keepSuffix[suffix] {
			doomed[name] = true
		}
	}
	var errs []error
	for _, r := range t.rules {
		if doomed[r.target()] && !doomed[r.chain] {
			if _, marked := ruleNetworkID(r.args); !marked && !isVpcrouteChain(r.chain) {
				errs = append(errs, fmt.Errorf("table %s: chain %s of a removed network is still used by a rule that is not vpcroute's, so it stays: %s", table, r.target(), r.line))
				delete(doomed, r.target())
			}
		}
	}
	var in restoreInput
	for _, r := range t.rules {
		if doomed[r.chain] {
			continue // goes with its chain
		}
		id, marked := ruleNetworkID(r.args)
		var stale bool
		switch {
		case doomed[r.target()]:
			// A jump into a chain that goes: vpcroute's (the rule is marked, or
			// in one of vpcroute's chains; any other kept the chain, above).
			stale = true
		case !marked || id == "":
			continue
		default:
			_, intoNetChain := parseNetChain(r.target())
			stale = !keep[id] ||
				(isNetworkBaseChain(r.chain) && !intoNetChain) ||
				(r.chain == chainAccept && r.target() != "ACCEPT")
		}
		if stale {
			in.raw(table, "-D"+strings.TrimPrefix(r.line, "-A"))
		}
	}
	for _, name := range t.chains {
		if doomed[name] {
			in.line(table, "-F", name)
			in.line(table, "-X", name)
		}
	}
	return in.String(), errs
}

// isVpcrouteChain reports whether chain is one of vpcroute's, base or per
// network: a jump in one of them into a network's chain is vpcroute's, marked
// or not.
func isVpcrouteChain(chain string) bool { return strings.HasPrefix(chain, netChainPrefix) }

// isNetworkBaseChain reports whether chain is one of vpcroute's base chains
// that hold only jumps into per-network chains (VPCROUTE-DNAT holds the
// rules of published ports themselves).
func isNetworkBaseChain(chain string) bool {
	switch chain {
	case chainForward, chainEgress, chainIngress, chainInput, chainPostrouting, chainPorts:
		return true
	}
	return false
}

// Forward is how the filter FORWARD chain treats vpcroute's traffic, for status and
// doctor.
type Forward struct {
	// Policy is FORWARD's policy (Docker sets DROP).
	Policy string
	// Hook is the 1-based position of the jump into VPCROUTE-FORWARD, 0 when it is
	// missing; Rules is how many rules FORWARD holds.
	Hook, Rules int
	// DropsBefore are the rules ahead of the hook that drop or reject every packet
	// they match, as iptables-save prints them: they may drop container traffic
	// before vpcroute's rules see it.
	DropsBefore []string
}

// forwardOf reads FORWARD out of a saved filter table.
func forwardOf(t savedTable) Forward {
	out := Forward{Policy: t.policies["FORWARD"]}
	for _, r := range t.rules {
		if r.chain != "FORWARD" {
			continue
		}
		out.Rules++
		if r.target() == chainForward { // marked by earlier releases, or not
			if out.Hook == 0 {
				out.Hook = out.Rules
			}
			continue
		}
		if out.Hook == 0 && (r.target() == "DROP" || r.target() == "REJECT") {
			out.DropsBefore = append(out.DropsBefore, r.line)
		}
	}
	return out
}

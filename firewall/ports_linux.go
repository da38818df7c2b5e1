//go:build linux

package firewall

import "fmt"

// EnsurePort publishes one port: a DNAT rule for destinations of type LOCAL,
// reached from nat PREROUTING (other hosts, containers: the hairpin case) and
// nat OUTPUT (the host itself, 127.0.0.1 included). The masquerade those
// paths need is per network (EnsureNetwork). The jumps that lead there are
// put in first when they are missing (see portJumps): a plugin killed in
// between leaves jumps into chains that hold nothing, which cost a rule and
// change nothing.
//
// It costs what publishing cost before the jumps came and went: one
// iptables-restore when the port is there already (it checks the jumps and
// the rule), two for a new port while the jumps are there (the second checks
// the jumps and appends the rule in one transaction, so that it appends
// nothing when they are missing); only the first port after none pays for
// adding the jumps, one at a time.
func (f *Firewall) EnsurePort(p PortMap) error {
	rl, err := portRule(p)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var check, add restoreInput
	for _, j := range portJumps() {
		check.line(j.table, join("-C", j.chain, j.spec)...)
		add.line(j.table, join("-C", j.chain, j.spec)...)
	}
	check.line(rl.table, join("-C", rl.chain, rl.spec)...)
	add.line(rl.table, join("-A", rl.chain, rl.spec)...)
	if f.restore(check.String()) == nil || f.restore(add.String()) == nil {
		return nil
	}
	for _, j := range portJumps() {
		if err := f.ensure(j); err != nil {
			return fmt.Errorf("publish port %v: %w", p, err)
		}
	}
	if err := f.ensure(rl); err != nil {
		return fmt.Errorf("publish port %v: %w", p, err)
	}
	return nil
}

// DeletePort removes exactly the rule EnsurePort added for p, with one
// delete and no check; a port that is not published is not an error. The
// jumps to the ports stay: the background repair takes them out once no port
// is left (see portJumps): deciding that here would mean reading the chain
// on every delete.
func (f *Firewall) DeletePort(p PortMap) error {
	rl, err := portRule(p)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.remove(rl); err != nil {
		return fmt.Errorf("unpublish port %v: %w", p, err)
	}
	return nil
}

//go:build linux

package firewall

import "fmt"

// EnsurePort publishes one port: a DNAT rule for destinations of type LOCAL,
// reached from nat PREROUTING (other hosts, containers: the hairpin case) and
// nat OUTPUT (the host itself, 127.0.0.1 included). The masquerade those
// paths need is per network (EnsureNetwork). The jumps that lead there are
// put in first, when they are missing (see portJumps): a plugin killed in
// between leaves jumps into chains that hold nothing, which cost a rule and
// change nothing. When all is in place it costs one iptables-restore that
// checks the jumps and the rule, whatever the number of ports already
// published.
func (f *Firewall) EnsurePort(p PortMap) error {
	rl, err := portRule(p)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var check restoreInput
	for _, j := range append(portJumps(), rl) {
		check.line(j.table, join("-C", j.chain, j.spec)...)
	}
	if f.restore(check.String()) == nil {
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

//go:build linux

package firewall

import "fmt"

// EnsurePort publishes one port: a DNAT rule for destinations of type LOCAL,
// reached from nat PREROUTING (other hosts, containers: the hairpin case) and
// nat OUTPUT (the host itself, 127.0.0.1 included). The masquerade those
// paths need is per network (EnsureNetwork). It costs one check and at most
// one append, whatever the number of ports already published.
func (f *Firewall) EnsurePort(p PortMap) error {
	rl, err := portRule(p)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.ensure(rl); err != nil {
		return fmt.Errorf("publish port %v: %w", p, err)
	}
	return nil
}

// DeletePort removes exactly the rule EnsurePort added for p, with one
// delete and no check; a port that is not published is not an error.
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

//go:build linux

package firewall

import (
	"net/netip"
	"slices"
	"testing"
)

// Owners and PublishedPorts read back, from the kernel, what EnsureNetwork and
// EnsurePort wrote: what a network rebuilt after its records were lost takes back.
func TestReadBack(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			f := testFirewall(t, backend)
			setupBridges(t)
			foreignRules(t, f)
			mustDo(t, f.EnsureNetwork(net1))
			mustDo(t, f.EnsureNetwork(net3))
			for _, p := range []PortMap{port1, port2, port3} {
				mustDo(t, f.EnsurePort(p))
			}
			owners, err := f.Owners()
			if err != nil {
				t.Fatal(err)
			}
			// net2 has a port but no chains of its own here: its port rule marks it.
			if len(owners) != 3 || !owners["net1"] || !owners["net2"] || !owners["net3"] {
				t.Errorf("Owners = %v; want net1, net2 and net3", owners)
			}
			got, err := f.PublishedPorts()
			if err != nil {
				t.Fatal(err)
			}
			// What the rule holds: no bridge, and no address for 0.0.0.0 (every one).
			norm := func(p PortMap) PortMap {
				p.Bridge = ""
				if p.HostIP.IsValid() && p.HostIP.IsUnspecified() {
					p.HostIP = netip.Addr{}
				}
				return p
			}
			for _, p := range []PortMap{port1, port2, port3} {
				if !slices.Contains(got, norm(p)) {
					t.Errorf("PublishedPorts = %+v; lacks %+v", got, norm(p))
				}
			}
			if len(got) != 3 {
				t.Errorf("PublishedPorts = %+v; want exactly the 3 published", got)
			}
		})
	}
}

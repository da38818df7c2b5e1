//go:build linux

package hostnet

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// backends returns the iptables backends this machine can run; tests run
// on each, against the same golden files.
func backends(tb testing.TB) []string {
	var out []string
	for _, b := range []string{BackendNFT, BackendLegacy} {
		if _, err := exec.LookPath("iptables-" + b + "-save"); err == nil {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		tb.Skip("needs iptables-nft or iptables-legacy")
	}
	return out
}

// testFirewall enters a fresh namespace and returns a Firewall on backend
// with its base chains in place and FORWARD's policy set to DROP, as Docker
// leaves it.
func testFirewall(t testing.TB, backend string) *Firewall {
	t.Helper()
	enterTestNetns(t)
	f, err := NewFirewallBackend(backend)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ipt.ChangePolicy(tableFilter, "FORWARD", "DROP"); err != nil {
		t.Fatal(err)
	}
	if err := f.EnsureBase(false); err != nil {
		t.Fatal(err)
	}
	return f
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// snapshot returns the filter and nat tables of the current namespace as
// iptables-save prints them, without comments and counters.
func snapshot(t testing.TB, f *Firewall) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{tableFilter, tableNAT} {
		out, err := exec.Command("iptables-"+f.backend+"-save", "-t", table).Output()
		if err != nil {
			t.Fatalf("iptables-%s-save -t %s: %v", f.backend, table, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			b.WriteString(counters.ReplaceAllString(line, "[0:0]") + "\n")
		}
	}
	return b.String()
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./hostnet -update to create it)", err)
	}
	if !bytes.Equal(want, []byte(got)) {
		t.Errorf("rules differ from %s (if intended, run go test ./hostnet -update):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func testBridge(t testing.TB, name, id, gw string) {
	t.Helper()
	if err := EnsureBridge(BridgeSpec{Name: name, NetworkID: id, Gateway: netip.MustParsePrefix(gw)}); err != nil {
		t.Fatal(err)
	}
}

var (
	noNAT = []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("10.0.0.0/16")}
	net1  = NetworkRules{NetworkID: "net1", Bridge: "vr-net1", Subnet: netip.MustParsePrefix("10.0.2.0/24"), Masquerade: true, NoNAT: noNAT}
	net2  = NetworkRules{NetworkID: "net2", Bridge: "vr-net2", Subnet: netip.MustParsePrefix("10.0.3.0/24"), Masquerade: false, NoNAT: noNAT}
	net3  = NetworkRules{NetworkID: "net3", Bridge: "vr-net3", Subnet: netip.MustParsePrefix("10.0.4.0/24"), Internal: true, NoNAT: noNAT}
	port1 = PortMap{NetworkID: "net1", Proto: "tcp", HostPort: 8080, ContainerIP: netip.MustParseAddr("10.0.2.3"), ContainerPort: 80, Bridge: "vr-net1"}
	port2 = PortMap{NetworkID: "net1", Proto: "udp", HostIP: netip.MustParseAddr("192.168.0.2"), HostPort: 5353, ContainerIP: netip.MustParseAddr("10.0.2.4"), ContainerPort: 53, Bridge: "vr-net1"}
	port3 = PortMap{NetworkID: "net2", Proto: "sctp", HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: 9000, ContainerIP: netip.MustParseAddr("10.0.3.2"), ContainerPort: 9000, Bridge: "vr-net2"}
)

func setupBridges(t testing.TB) {
	testBridge(t, "vr-net1", "net1", "10.0.2.1/24")
	testBridge(t, "vr-net2", "net2", "10.0.3.1/24")
	testBridge(t, "vr-net3", "net3", "10.0.4.1/24")
}

// TestRulesGolden pins the rules each operation leaves in the kernel.
func TestRulesGolden(t *testing.T) {
	tests := []struct {
		name  string
		apply func(t *testing.T, f *Firewall)
	}{
		{"base", func(t *testing.T, f *Firewall) {}},
		{"base_policy_accept", func(t *testing.T, f *Firewall) {
			if err := f.EnsureBase(true); err != nil {
				t.Fatal(err)
			}
		}},
		{"network_masquerade", func(t *testing.T, f *Firewall) { mustDo(t, f.EnsureNetwork(net1)) }},
		{"network_no_masquerade", func(t *testing.T, f *Firewall) { mustDo(t, f.EnsureNetwork(net2)) }},
		{"network_internal", func(t *testing.T, f *Firewall) { mustDo(t, f.EnsureNetwork(net3)) }},
		{"networks_and_ports", func(t *testing.T, f *Firewall) {
			for _, n := range []NetworkRules{net1, net2, net3} {
				mustDo(t, f.EnsureNetwork(n))
			}
			for _, p := range []PortMap{port1, port2, port3} {
				mustDo(t, f.EnsurePort(p))
			}
		}},
	}
	for _, backend := range backends(t) {
		for _, tc := range tests {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				f := testFirewall(t, backend)
				setupBridges(t)
				tc.apply(t, f)
				got := snapshot(t, f)
				checkGolden(t, tc.name, got)
				// Everything is idempotent: doing it all again changes nothing.
				mustDo(t, f.EnsureBase(false))
				tc.apply(t, f)
				if again := snapshot(t, f); again != got {
					t.Errorf("second run changed the rules:\n%s\nafter:\n%s", got, again)
				}
			})
		}
	}
}

func mustDo(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDeleteLeavesTablesAsBefore: DeleteNetwork and DeletePort remove
// exactly what was added, even among other networks' rules.
func TestDeleteLeavesTablesAsBefore(t *testing.T) {
	for _, backend := range backends(t) {
		for _, n := range []NetworkRules{net1, net2, net3} {
			t.Run(backend+"/"+n.NetworkID, func(t *testing.T) {
				f := testFirewall(t, backend)
				setupBridges(t)
				// Another network around, so deletion must be selective.
				other := net1
				if n.NetworkID == net1.NetworkID {
					other = net2
				}
				mustDo(t, f.EnsureNetwork(other))
				before := snapshot(t, f)
				localnet := sysctl(t, "net/ipv4/conf/"+n.Bridge+"/route_localnet")

				mustDo(t, f.EnsureNetwork(n))
				if snapshot(t, f) == before {
					t.Fatal("EnsureNetwork added no rules")
				}
				if n.NetworkID == net1.NetworkID {
					mustDo(t, f.EnsurePort(port1))
					mustDo(t, f.DeletePort(port1))
					mustDo(t, f.DeletePort(port1)) // already gone: fine
				}
				mustDo(t, f.DeleteNetwork(n))
				mustDo(t, f.DeleteNetwork(n)) // already gone: fine
				if after := snapshot(t, f); after != before {
					t.Errorf("tables changed:\nbefore:\n%s\nafter:\n%s", before, after)
				}
				if got := sysctl(t, "net/ipv4/conf/"+n.Bridge+"/route_localnet"); got != localnet {
					t.Errorf("route_localnet = %s, was %s", got, localnet)
				}
			})
		}
	}
}

func sysctl(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc/sys", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestPrune removes only vpcroute rules of networks not kept: neither the
// base jumps nor anything unmarked.
func TestPrune(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			f := testFirewall(t, backend)
			setupBridges(t)
			// Rules of other people, some in vpcroute's own chains.
			foreign := [][]string{
				{tableFilter, "FORWARD", "-s", "10.9.0.0/16", "-j", "ACCEPT"},
				{tableFilter, chainForward, "-s", "10.8.0.0/16", "-m", "comment", "--comment", "someone else", "-j", "ACCEPT"},
				{tableNAT, "POSTROUTING", "-s", "10.7.0.0/16", "-m", "comment", "--comment", "vpcroutex:net2", "-j", "MASQUERADE"},
			}
			for _, r := range foreign {
				mustDo(t, f.ipt.Append(r[0], r[1], r[2:]...))
			}
			mustDo(t, f.EnsureNetwork(net1))
			mustDo(t, f.EnsurePort(port1))
			mustDo(t, f.EnsurePort(port2))
			want := snapshot(t, f)

			mustDo(t, f.EnsureNetwork(net2))
			mustDo(t, f.EnsureNetwork(net3))
			mustDo(t, f.EnsurePort(port3))
			mustDo(t, f.Prune(map[string]bool{"net1": true}))
			if got := snapshot(t, f); got != want {
				t.Errorf("after Prune:\n%s\nwant:\n%s", got, want)
			}
			mustDo(t, f.Prune(map[string]bool{}))
			got := snapshot(t, f)
			if strings.Contains(got, `"vpcroute:net`) {
				t.Errorf("Prune(nothing) left network rules:\n%s", got)
			}
			if n := strings.Count(got, `--comment vpcroute -j`); n != len(baseJumps()) {
				t.Errorf("Prune removed base jumps: %d left:\n%s", n, got)
			}
			for _, s := range []string{"10.9.0.0/16", "10.8.0.0/16", "10.7.0.0/16"} {
				if !strings.Contains(got, s) {
					t.Errorf("Prune removed the foreign rule for %s", s)
				}
			}
		})
	}
}

// TestEnsureBaseRestoresJumps: after a flush of the built-in chains (what a
// careless restart of another tool does) EnsureBase puts the jumps back
// without duplicating anything.
func TestEnsureBaseRestoresJumps(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			f := testFirewall(t, backend)
			want := snapshot(t, f)
			mustDo(t, f.ipt.ClearChain(tableFilter, "FORWARD"))
			mustDo(t, f.ipt.ClearChain(tableNAT, "POSTROUTING"))
			mustDo(t, f.ipt.Insert(tableFilter, "FORWARD", 1, "-j", "ACCEPT")) // Docker's jumps, say
			mustDo(t, f.ipt.Delete(tableFilter, "FORWARD", "-j", "ACCEPT"))
			mustDo(t, f.EnsureBase(false))
			mustDo(t, f.EnsureBase(false))
			if got := snapshot(t, f); got != want {
				t.Errorf("after flush and EnsureBase:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestNewFirewallDetects(t *testing.T) {
	enterTestNetns(t)
	f, err := NewFirewall()
	if err != nil {
		t.Fatal(err)
	}
	if b := f.Backend(); b != BackendNFT && b != BackendLegacy {
		t.Fatalf("Backend() = %q", b)
	}
	t.Logf("backend in an empty namespace: %s", f.Backend())
}

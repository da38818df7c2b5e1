//go:build linux

package firewall

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vpcroute/vpcroute/internal/netnstest"
	"github.com/vpcroute/vpcroute/link"
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
// with its base chains and fast path (for testBase's pool) in place and
// FORWARD's policy set to DROP, as Docker leaves it.
func testFirewall(t testing.TB, backend string) *Firewall {
	t.Helper()
	netnstest.Enter(t)
	f, err := NewFirewallBackend(backend)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ipt.ChangePolicy(tableFilter, "FORWARD", "DROP"); err != nil {
		t.Fatal(err)
	}
	if err := f.EnsureBase(testBase); err != nil {
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
		t.Fatalf("%v (run go test ./firewall -update to create it)", err)
	}
	if !bytes.Equal(want, []byte(got)) {
		t.Errorf("rules differ from %s (if intended, run go test ./firewall -update):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func testBridge(t testing.TB, name, id, gw string) {
	t.Helper()
	if err := host.EnsureBridge(link.BridgeSpec{Name: name, NetworkID: id, Gateway: netip.MustParsePrefix(gw)}); err != nil {
		t.Fatal(err)
	}
}

var (
	noNAT = []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("10.0.0.0/16")}
	net1  = NetworkRules{NetworkID: "net1", Bridge: "vr-net1", Subnet: netip.MustParsePrefix("10.0.2.0/24"), Masquerade: true, NoNAT: noNAT, Pool: testPool, Uplink: "eth0"}
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
			b := testBase
			b.ForwardAccept = true
			if err := f.EnsureBase(b); err != nil {
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
				mustDo(t, f.EnsureBase(testBase))
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
				localnet := readSysctl(t, "net/ipv4/conf/"+n.Bridge+"/route_localnet")

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
				after := snapshot(t, f)
				if n.NetworkID == net1.NetworkID {
					// The jumps to the ports stay until the next repair pass
					// finds no port published: they are all that differs.
					for _, j := range portJumps() {
						line := "-A " + j.chain + " " + strings.Join(j.spec, " ") + "\n"
						if !strings.Contains(after, line) {
							t.Errorf("after DeletePort, the jump %q went at once; want it kept until the repair pass", line)
						}
						after = strings.Replace(after, line, "", 1)
					}
				}
				if after != before {
					t.Errorf("tables changed:\nbefore:\n%s\nafter:\n%s", before, after)
				}
				if _, err := f.Sync(Want{Base: testBase, Networks: []NetworkRules{other}}); err != nil {
					t.Fatal(err)
				}
				if after := snapshot(t, f); after != before {
					t.Errorf("after the repair pass, tables changed:\nbefore:\n%s\nafter:\n%s", before, after)
				}
				if got := readSysctl(t, "net/ipv4/conf/"+n.Bridge+"/route_localnet"); got != localnet {
					t.Errorf("route_localnet = %s, was %s", got, localnet)
				}
			})
		}
	}
}

func readSysctl(t testing.TB, name string) string {
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
			for _, w := range strings.Fields(got) {
				if _, ok := parseNetChain(strings.TrimPrefix(w, ":")); ok {
					t.Errorf("Prune(nothing) left a network's chain or a jump into one (%s):\n%s", w, got)
					break
				}
			}
			marked := 0
			for _, j := range baseJumps() {
				if slices.Contains(j.spec, baseComment) {
					marked++
				}
				if ok, err := f.exists(j); err != nil || !ok {
					t.Errorf("Prune removed the base jump %v (%v)", j, err)
				}
			}
			for _, r := range append(fastPathRules(testPool), forwardTail(testBase)...) {
				if ok, err := f.exists(rule{table: tableFilter, chain: chainForward, spec: r}); err != nil || !ok {
					t.Errorf("Prune removed the base rule %v (%v)", r, err)
				}
			}
			if n := strings.Count(got, `--comment vpcroute -j`); n != marked+len(dockerRules(nil)) {
				t.Errorf("Prune removed base jumps or the fast path: %d left:\n%s", n, got)
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
			mustDo(t, f.EnsureBase(testBase))
			mustDo(t, f.EnsureBase(testBase))
			if got := snapshot(t, f); got != want {
				t.Errorf("after flush and EnsureBase:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// An upgraded plugin finds the marked FORWARD and INPUT jumps of earlier releases:
// EnsureBase leaves one unmarked jump of each (no packet walks vpcroute's chains
// twice), and RemoveAll takes either form away.
func TestEnsureBaseReplacesMarkedJumps(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			f := testFirewall(t, backend)
			want := snapshot(t, f)
			for _, j := range baseJumps()[:2] {
				mustDo(t, f.remove(j))
			}
			for _, j := range legacyBaseJumps() {
				mustDo(t, f.ipt.Insert(j.table, j.chain, 1, j.spec...))
			}
			g, err := NewFirewallBackend(backend) // the new release's process
			mustDo(t, err)
			mustDo(t, g.EnsureBase(testBase))
			mustDo(t, g.EnsureBase(testBase))
			if got := snapshot(t, g); got != want {
				t.Errorf("after EnsureBase over the marked jumps:\n%s\nwant:\n%s", got, want)
			}
			for _, j := range legacyBaseJumps() {
				mustDo(t, g.ipt.Insert(j.table, j.chain, 1, j.spec...))
			}
			mustDo(t, g.RemoveAll())
			if got := snapshot(t, g); strings.Contains(got, "VPCROUTE") {
				t.Errorf("after RemoveAll:\n%s", got)
			}
		})
	}
}

func TestNewFirewallDetects(t *testing.T) {
	netnstest.Enter(t)
	f, err := NewFirewall()
	if err != nil {
		t.Fatal(err)
	}
	if b := f.Backend(); b != BackendNFT && b != BackendLegacy {
		t.Fatalf("Backend() = %q", b)
	}
	t.Logf("backend in an empty namespace: %s", f.Backend())
}

// saveAll returns every table of the current namespace exactly as
// iptables-save prints it, without its timestamp lines and with the
// built-in chains' counters as [0:0]: the kernel itself sends a packet now
// and then (IGMP when a bridge comes up), which those count.
func saveAll(t testing.TB, f *Firewall) string {
	t.Helper()
	return save(t, f)
}

// saveCounters is saveAll with each rule's counters, which show whether a
// rule was rewritten.
func saveCounters(t testing.TB, f *Firewall) string {
	t.Helper()
	return save(t, f, "-c")
}

func save(t testing.TB, f *Firewall, args ...string) string {
	t.Helper()
	out, err := exec.Command("iptables-"+f.backend+"-save", args...).Output()
	if err != nil {
		t.Fatalf("iptables-%s-save %v: %v", f.backend, args, err)
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, ":"):
			b.WriteString(counters.ReplaceAllString(line, "[0:0]"))
		default:
			b.WriteString(line)
		}
	}
	return b.String()
}

// foreignRules puts rules of other tools around vpcroute's, as Docker and a
// host firewall would, so that tests see that vpcroute leaves them alone.
func foreignRules(t testing.TB, f *Firewall) {
	t.Helper()
	mustDo(t, f.ipt.NewChain(tableFilter, "DOCKER-USER"))
	for _, r := range [][]string{
		{tableFilter, "FORWARD", "-j", "DOCKER-USER"},
		{tableFilter, "FORWARD", "-o", "docker0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
		{tableFilter, "DOCKER-USER", "-j", "RETURN"},
		{tableFilter, chainForward, "-s", "10.8.0.0/16", "-m", "comment", "--comment", "someone else", "-j", "ACCEPT"},
		{tableNAT, "POSTROUTING", "-s", "172.17.0.0/16", "!", "-o", "docker0", "-j", "MASQUERADE"},
	} {
		mustDo(t, f.ipt.Append(r[0], r[1], r[2:]...))
	}
}

// chainOf returns the chain of the given kind of network n.
func chainOf(t testing.TB, n NetworkRules, kind byte) netChain {
	t.Helper()
	chains, err := networkChains(n)
	mustDo(t, err)
	for _, c := range chains {
		if c.kind == kind {
			return c
		}
	}
	t.Fatalf("no chain of kind %c", kind)
	return netChain{}
}

// TestEnsureNetworkRepairs: whatever someone deleted of a network's rules,
// chains or jumps, EnsureNetwork puts back exactly what it made, whether
// the Firewall made the chains itself or finds them after a restart.
func TestEnsureNetworkRepairs(t *testing.T) {
	ruleOf := func(t testing.TB, n NetworkRules, kind byte, i int) []string {
		t.Helper()
		cs, err := networkChains(n)
		mustDo(t, err)
		for _, c := range cs {
			if c.kind == kind {
				return c.rules[i]
			}
		}
		t.Fatalf("network %s has no chain of kind %c", n.NetworkID, kind)
		return nil
	}
	drifts := []struct {
		name  string
		net   NetworkRules
		drift func(t *testing.T, f *Firewall, n NetworkRules)
	}{
		{"rule deleted inside the forward chain", net1, func(t *testing.T, f *Firewall, n NetworkRules) {
			c := chainOf(t, n, kindForward)
			mustDo(t, f.ipt.Delete(c.table, c.name, ruleOf(t, n, kindForward, 1)...))
		}},
		{"outbound masquerade deleted", net1, func(t *testing.T, f *Firewall, n NetworkRules) {
			c := chainOf(t, n, kindNAT)
			mustDo(t, f.ipt.Delete(c.table, c.name, ruleOf(t, n, kindNAT, 2)...))
		}},
		{"internal drop deleted", net3, func(t *testing.T, f *Firewall, n NetworkRules) {
			c := chainOf(t, n, kindForward)
			mustDo(t, f.ipt.Delete(c.table, c.name, ruleOf(t, n, kindForward, 0)...))
		}},
		{"rule changed inside the chain", net1, func(t *testing.T, f *Firewall, n NetworkRules) {
			c := chainOf(t, n, kindInput)
			mustDo(t, f.ipt.Delete(c.table, c.name, ruleOf(t, n, kindInput, 0)...))
			mustDo(t, f.ipt.Append(c.table, c.name, "-i", n.Bridge, "-j", "ACCEPT"))
		}},
		{"jump deleted", net1, func(t *testing.T, f *Firewall, n NetworkRules) {
			j := chainOf(t, n, kindPorts).jump()
			mustDo(t, f.ipt.Delete(j.table, j.chain, j.spec...))
		}},
		{"base chains flushed", net3, func(t *testing.T, f *Firewall, n NetworkRules) {
			mustDo(t, f.ipt.ClearChain(tableFilter, chainForward))
			mustDo(t, f.ipt.ClearChain(tableNAT, chainPostrouting))
			// The other tool puts its rule back.
			mustDo(t, f.ipt.Append(tableFilter, chainForward, "-s", "10.8.0.0/16", "-m", "comment", "--comment", "someone else", "-j", "ACCEPT"))
		}},
		{"chains deleted", net1, func(t *testing.T, f *Firewall, n NetworkRules) {
			chains, err := networkChains(n)
			mustDo(t, err)
			for _, c := range chains {
				j := c.jump()
				mustDo(t, f.ipt.Delete(j.table, j.chain, j.spec...))
				mustDo(t, f.ipt.ClearAndDeleteChain(c.table, c.name))
			}
		}},
	}
	for _, backend := range backends(t) {
		for _, tc := range drifts {
			for _, restart := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/restart=%v", backend, tc.name, restart), func(t *testing.T) {
					f := testFirewall(t, backend)
					setupBridges(t)
					foreignRules(t, f)
					other := net2 // its rules must come through untouched
					mustDo(t, f.EnsureNetwork(other))
					mustDo(t, f.EnsureNetwork(tc.net))
					want := saveAll(t, f)
					if strings.Contains(tc.name, "base chains flushed") {
						// Flushing takes the other network's jumps too; the
						// driver re-ensures every network.
						defer func() { mustDo(t, f.EnsureNetwork(other)) }()
					}
					tc.drift(t, f, tc.net)
					if saveAll(t, f) == want {
						t.Fatal("the drift changed nothing")
					}
					if restart {
						var err error
						f, err = NewFirewallBackend(backend)
						mustDo(t, err)
					}
					// As the driver's repair does: the base first, then
					// every network.
					mustDo(t, f.EnsureBase(testBase))
					mustDo(t, f.EnsureNetwork(tc.net))
					if strings.Contains(tc.name, "base chains flushed") {
						mustDo(t, f.EnsureNetwork(other))
					}
					if got := saveAll(t, f); got != want {
						t.Errorf("after repair:\n%s\nwant:\n%s", got, want)
					}
				})
			}
		}
	}
}

// TestEnsureNetworkNoChangeWhenIntact: re-running EnsureNetwork over intact
// chains changes nothing, not even counters (the driver does it for every
// network every 30 seconds); after a restart it rewrites them to the same
// rules.
func TestEnsureNetworkNoChangeWhenIntact(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			f := testFirewall(t, backend)
			setupBridges(t)
			nets := []NetworkRules{net1, net2, net3}
			for _, n := range nets {
				mustDo(t, f.EnsureNetwork(n))
			}
			// A rule's counters show whether its chain was rewritten. Only
			// forwarded traffic from the bridge counts here, and there is
			// none (the kernel's own IGMP does count in POSTROUTING).
			c := chainOf(t, net1, kindForward)
			mustDo(t, f.ipt.Replace(c.table, c.name, 1, join(c.rules[0], "-c", "7", "700")...))
			counted := "[7:700] -A " + c.name + " "
			if !strings.Contains(saveCounters(t, f), counted) {
				t.Fatalf("could not set a counter:\n%s", saveCounters(t, f))
			}
			want := saveAll(t, f)
			for _, n := range nets {
				mustDo(t, f.EnsureNetwork(n))
			}
			if got := saveCounters(t, f); !strings.Contains(got, counted) {
				t.Errorf("re-run rewrote %s:\n%s", c.name, got)
			}
			if got := saveAll(t, f); got != want {
				t.Errorf("re-run changed the tables:\n%s\nwant:\n%s", got, want)
			}
			want = saveAll(t, f)
			restarted, err := NewFirewallBackend(backend)
			mustDo(t, err)
			for _, n := range nets {
				mustDo(t, restarted.EnsureNetwork(n))
			}
			if got := saveAll(t, f); got != want {
				t.Errorf("re-run after a restart changed the rules:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestEnsureNetworkSettingsChange: a network ensured again with other
// settings (the plugin restarted with VPCROUTE_MASQUERADE or the VPC CIDRs
// changed) ends up exactly as if it had been made with them.
func TestEnsureNetworkSettingsChange(t *testing.T) {
	changed := net1
	changed.Masquerade = false
	changed.NoNAT = noNAT[:1]
	for _, backend := range backends(t) {
		for _, restart := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/restart=%v", backend, restart), func(t *testing.T) {
				f := testFirewall(t, backend)
				setupBridges(t)
				mustDo(t, f.EnsureNetwork(changed))
				want := saveAll(t, f)
				mustDo(t, f.DeleteNetwork(changed))
				mustDo(t, f.EnsureNetwork(net1))
				if restart {
					var err error
					f, err = NewFirewallBackend(backend)
					mustDo(t, err)
				}
				mustDo(t, f.EnsureNetwork(changed))
				if got := saveAll(t, f); got != want {
					t.Errorf("after the change:\n%s\nwant:\n%s", got, want)
				}
			})
		}
	}
}

// TestDeleteNetworkByteIdentical: DeleteNetwork leaves every table exactly
// as it was before EnsureNetwork, byte for byte, among other networks' and
// other tools' rules, also when part of what it made is already gone.
func TestDeleteNetworkByteIdentical(t *testing.T) {
	damages := []struct {
		name   string
		damage func(t *testing.T, f *Firewall, n NetworkRules)
	}{
		{"as made", func(*testing.T, *Firewall, NetworkRules) {}},
		{"a jump already gone", func(t *testing.T, f *Firewall, n NetworkRules) {
			j := chainOf(t, n, kindForward).jump()
			mustDo(t, f.ipt.Delete(j.table, j.chain, j.spec...))
		}},
		{"a chain already gone", func(t *testing.T, f *Firewall, n NetworkRules) {
			c := chainOf(t, n, kindForward)
			j := c.jump()
			mustDo(t, f.ipt.Delete(j.table, j.chain, j.spec...))
			mustDo(t, f.ipt.ClearAndDeleteChain(c.table, c.name))
		}},
		{"a jump twice", func(t *testing.T, f *Firewall, n NetworkRules) {
			j := chainOf(t, n, kindForward).jump()
			mustDo(t, f.ipt.Append(j.table, j.chain, j.spec...))
		}},
		{"all gone already", func(t *testing.T, f *Firewall, n NetworkRules) {
			mustDo(t, f.DeleteNetwork(n))
		}},
	}
	for _, backend := range backends(t) {
		for _, n := range []NetworkRules{net1, net3} {
			for _, tc := range damages {
				t.Run(backend+"/"+n.NetworkID+"/"+tc.name, func(t *testing.T) {
					f := testFirewall(t, backend)
					setupBridges(t)
					foreignRules(t, f)
					mustDo(t, f.EnsureNetwork(net2))
					mustDo(t, f.EnsurePort(port3))
					before := saveAll(t, f)
					mustDo(t, f.EnsureNetwork(n))
					tc.damage(t, f, n)
					mustDo(t, f.DeleteNetwork(n))
					if got := saveAll(t, f); got != before {
						t.Errorf("after DeleteNetwork:\n%s\nbefore EnsureNetwork:\n%s", got, before)
					}
					mustDo(t, f.DeleteNetwork(n))
					if got := saveAll(t, f); got != before {
						t.Errorf("a second DeleteNetwork changed the tables:\n%s", got)
					}
				})
			}
		}
	}
}

// TestPruneUpgrade: rules an older vpcroute kept directly in its base
// chains give way to the per-network chains (Prune runs after the driver
// has ensured every network), and a chain of a removed network that someone
// else's rule still jumps to is left, with an error, rather than broken.
func TestPruneUpgrade(t *testing.T) {
	c := func(id string) []string { return networkComment(id) }
	old := [][]string{ // as vpcroute made them before per-network chains
		join(tableFilter, chainForward, "-s", "10.0.2.0/24", "-i", "vr-net1", c("net1"), "-j", "ACCEPT"),
		join(tableFilter, chainForward, "-d", "10.0.2.0/24", "-o", "vr-net1", c("net1"), "-j", "ACCEPT"),
		join(tableFilter, chainInput, "-i", "vr-net1", "-d", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", c("net1"), "-j", "DROP"),
		join(tableNAT, chainPostrouting, "-s", "10.0.2.0/24", "!", "-o", "vr-net1", c("net1"), "-j", "MASQUERADE"),
	}
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			f := testFirewall(t, backend)
			setupBridges(t)
			foreignRules(t, f)
			mustDo(t, f.EnsureNetwork(net1))
			mustDo(t, f.EnsurePort(port1))
			want := saveAll(t, f)
			for _, r := range old {
				mustDo(t, f.ipt.Append(r[0], r[1], r[2:]...))
			}
			mustDo(t, f.EnsureNetwork(net2))
			mustDo(t, f.EnsureNetwork(net3))
			mustDo(t, f.Prune(map[string]bool{"net1": true, "net3": true}))
			mustDo(t, f.DeleteNetwork(net3))
			if got := saveAll(t, f); got != want {
				t.Errorf("after Prune:\n%s\nwant:\n%s", got, want)
			}

			// Someone else's jump into a chain of net2.
			mustDo(t, f.EnsureNetwork(net2))
			held := chainOf(t, net2, kindForward).name
			mustDo(t, f.ipt.Append(tableFilter, "DOCKER-USER", "-j", held))
			err := f.Prune(map[string]bool{"net1": true})
			if err == nil || !strings.Contains(err.Error(), held) {
				t.Errorf("Prune error = %v, want one naming %s", err, held)
			}
			got := saveAll(t, f)
			if !strings.Contains(got, ":"+held+" ") {
				t.Errorf("Prune deleted %s though a foreign rule jumps to it", held)
			}
			chains, err := networkChains(net2)
			mustDo(t, err)
			for _, c := range chains {
				if c.name != held && (strings.Contains(got, "-j "+c.name) || strings.Contains(got, "-g "+c.name) || strings.Contains(got, ":"+c.name+" ")) {
					t.Errorf("Prune left net2's chain %s or a jump into it:\n%s", c.name, got)
				}
			}
		})
	}
}

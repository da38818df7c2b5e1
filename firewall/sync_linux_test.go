//go:build linux

package firewall

import (
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

var syncWant = Want{Base: testBase, Networks: []NetworkRules{net1, net2, net3}, Ports: []PortMap{port1, port2, port3}}

// built is the host as EnsureNetwork and EnsurePort leave it, one call at a time.
func built(t *testing.T, f *Firewall) {
	t.Helper()
	setupBridges(t)
	for _, n := range syncWant.Networks {
		mustDo(t, f.EnsureNetwork(n))
	}
	for _, p := range syncWant.Ports {
		mustDo(t, f.EnsurePort(p))
	}
}

func ipt(t *testing.T, f *Firewall, args ...string) {
	t.Helper()
	if out, err := exec.Command("iptables-"+f.backend, args...).CombinedOutput(); err != nil {
		t.Fatalf("iptables %v: %v %s", args, err, out)
	}
}

// forwardTargets lists FORWARD's jump targets in order.
func forwardTargets(t *testing.T, f *Firewall) []string {
	t.Helper()
	saved, err := f.save(tableFilter)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range chainLines(saved, "FORWARD") {
		out = append(out, r.target())
	}
	return out
}

// dockerStarts does to FORWARD what dockerd does when it starts or makes a network:
// its own chains and jumps on top.
func dockerStarts(t *testing.T, f *Firewall) {
	t.Helper()
	for _, c := range []string{"DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-USER"} {
		_ = exec.Command("iptables-"+f.backend, "-N", c).Run()
	}
	ipt(t, f, "-I", "FORWARD", "1", "-o", "docker0", "-j", "DOCKER")
	ipt(t, f, "-I", "FORWARD", "1", "-j", "DOCKER-ISOLATION-STAGE-1")
	ipt(t, f, "-I", "FORWARD", "1", "-j", "DOCKER-USER")
	ipt(t, f, "-A", "DOCKER-USER", "-j", "RETURN")
}

// What EnsureNetwork and EnsurePort build, Check finds in line: the comparison reads
// the kernel's own rendering of vpcroute's rules as equal to vpcroute's, on both
// backends (else the background repair would rewrite everything every cycle).
func TestCheckSeesBuiltRulesInLine(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			f := testFirewall(t, backend)
			built(t, f)
			d, err := f.Check(syncWant)
			if err != nil || !d.Empty() {
				t.Fatalf("Check after building = %v, %v; want nothing out of line", d, err)
			}
			before := snapshot(t, f)
			if d, err := f.Sync(syncWant); err != nil || !d.Empty() {
				t.Fatalf("Sync = %v, %v", d, err)
			}
			if after := snapshot(t, f); after != before {
				t.Fatalf("Sync of rules in line changed them:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// Sync puts back what was lost or moved, in one restore per table, and leaves what
// is not vpcroute's alone.
func TestSyncRepairs(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(t *testing.T, f *Firewall)
		network bool // the drift is a network's
	}{
		{"a network's rule deleted", func(t *testing.T, f *Firewall) {
			ipt(t, f, "-t", "nat", "-F", netChainName(kindNAT, "net1"))
		}, true},
		{"a network's jump deleted", func(t *testing.T, f *Firewall) {
			ipt(t, f, "-D", chainIngress, "-o", "vr-net2", "-g", netChainName(kindForward, "net2"))
		}, false},
		{"VPCROUTE-FORWARD flushed", func(t *testing.T, f *Firewall) { ipt(t, f, "-F", chainForward) }, false},
		{"the whole filter table flushed", func(t *testing.T, f *Firewall) {
			ipt(t, f, "-F")
			ipt(t, f, "-X")
		}, true},
		{"a published port deleted", func(t *testing.T, f *Firewall) {
			r, _ := portRule(port1)
			ipt(t, f, append([]string{"-t", "nat", "-D", chainDNAT}, r.spec...)...)
		}, false},
		{"a stale port of a known network", func(t *testing.T, f *Firewall) {
			stale := port1
			stale.HostPort = 9999
			mustDo(t, f.EnsurePort(stale))
		}, false},
		{"dockerd restarted and put its jumps on top", dockerStarts, false},
		{"the marked base jumps of an earlier release", func(t *testing.T, f *Firewall) {
			for _, j := range baseJumps() {
				ipt(t, f, join("-t", j.table, "-D", j.chain, j.spec)...)
			}
			for _, j := range legacyBaseJumps() {
				ipt(t, f, join("-t", j.table, "-I", j.chain, "1", j.spec)...)
			}
		}, false},
		{"the commented network rules and Docker drops of an earlier release", func(t *testing.T, f *Firewall) {
			// Until 2026-12-02 every rule of a network's chains carried the
			// network's comment, the jump into its ports chain did not ask for
			// DNAT (the chain's rules did), and VPCROUTE-DOCKER dropped DNATed
			// packets too (the chains jumping there checked DNAT first).
			for _, r := range []NetworkRules{net1, net2} {
				chains, err := networkChains(r)
				mustDo(t, err)
				for _, c := range chains {
					if c.kind == kindPorts {
						j := c.jump()
						ipt(t, f, join("-t", j.table, "-D", j.chain, j.spec)...)
						ipt(t, f, join("-t", j.table, "-I", chainPostrouting, "1", "-o", r.Bridge, networkComment(r.NetworkID), "-j", c.name)...)
					}
					if len(c.rules) == 0 {
						continue
					}
					ipt(t, f, "-t", c.table, "-F", c.name)
					for _, rule := range c.rules {
						ipt(t, f, join("-t", c.table, "-A", c.name, rule[:len(rule)-2], networkComment(r.NetworkID), rule[len(rule)-2:])...)
					}
				}
			}
			// Every jump into a network's chains carried the network's mark,
			// and each network's accept was a rule of VPCROUTE-ACCEPT, jumped
			// to last from VPCROUTE-FORWARD.
			for _, r := range []NetworkRules{net1, net2} {
				chains, err := networkChains(r)
				mustDo(t, err)
				for _, c := range chains {
					j := c.jump()
					if c.kind == kindPorts {
						continue // replaced above
					}
					ipt(t, f, join("-t", j.table, "-D", j.chain, j.spec)...)
					ipt(t, f, join("-t", j.table, "-A", j.chain, j.spec[:len(j.spec)-2], networkComment(r.NetworkID), j.spec[len(j.spec)-2:])...)
				}
			}
			ipt(t, f, "-N", chainAccept)
			ipt(t, f, join("-A", chainAccept, "-i", "vr-net1", networkComment("net1"), "-j", "ACCEPT")...)
			ipt(t, f, "-A", chainForward, "-j", chainAccept)
			ipt(t, f, "-F", chainDocker)
			for _, b := range dockerBridges {
				ipt(t, f, "-A", chainDocker, "-i", b, "-m", "comment", "--comment", baseComment, "-j", "DROP")
			}
			// A published port's rule did not test the address type (the
			// jump into VPCROUTE-DNAT did).
			r, _ := portRule(port1)
			ipt(t, f, append([]string{"-t", "nat", "-D", chainDNAT}, r.spec...)...)
			ipt(t, f, join("-t", "nat", "-A", chainDNAT, "-p", "tcp", "-m", "tcp", "--dport", "8080", networkComment("net1"), "-j", "DNAT", "--to-destination", "10.0.2.3:80")...)
		}, true},
		{"the marked fast path and tail of an earlier release", func(t *testing.T, f *Firewall) {
			c := []string{"-m", "comment", "--comment", baseComment}
			for _, r := range append(fastPathRules(testPool), forwardTail(testBase)...) {
				ipt(t, f, join("-D", chainForward, r)...)
			}
			for _, r := range slices.Backward(append(fastPathRules(testPool), forwardTail(testBase)...)) {
				j := slices.Clone(r[:len(r)-2])
				ipt(t, f, join("-I", chainForward, "1", j, c, r[len(r)-2:])...)
			}
		}, false},
		{"jumps of an earlier release, without their conditions", func(t *testing.T, f *Firewall) {
			// Until 2026-12 the jumps into a network's INPUT and nat chains had
			// no condition; an upgraded plugin finds them beside its own.
			c := []string{"-m", "comment", "--comment", "vpcroute:net1"}
			ipt(t, f, join("-A", chainInput, c, "-j", netChainName(kindInput, "net1"))...)
			ipt(t, f, join("-t", "nat", "-A", chainPostrouting, c, "-j", netChainName(kindNAT, "net1"))...)
			ipt(t, f, join("-t", "nat", "-I", chainPostrouting, "1", c, "-j", netChainName(kindPorts, "net1"))...)
		}, false},
		{"the ports' jumps of the release before 2026-12-02", func(t *testing.T, f *Firewall) {
			// Each network's jump into its ports chain came first in
			// VPCROUTE-POSTROUTING and asked for DNAT itself; there was no
			// VPCROUTE-PORTS and no guard.
			ipt(t, f, join("-t", "nat", "-D", chainPostrouting, portsGuard())...)
			ipt(t, f, "-t", "nat", "-F", chainPorts)
			for _, r := range []NetworkRules{net1, net2} { // net3 is internal
				ipt(t, f, join("-t", "nat", "-I", chainPostrouting, "1", "-o", r.Bridge, "-m", "conntrack", "--ctstate", "DNAT",
					networkComment(r.NetworkID), "-j", netChainName(kindPorts, r.NetworkID))...)
			}
		}, false},
		{"the ports' guard deleted", func(t *testing.T, f *Firewall) {
			ipt(t, f, join("-t", "nat", "-D", chainPostrouting, portsGuard())...)
		}, false},
		{"the jump from PREROUTING into the ports deleted", func(t *testing.T, f *Firewall) {
			ipt(t, f, "-t", "nat", "-D", "PREROUTING", "-j", chainDNAT)
		}, false},
		{"the egress jump of the release before 2026-12-02, without the uplink's guard", func(t *testing.T, f *Firewall) {
			ipt(t, f, "-D", chainForward, "!", "-i", "eth0", "-j", chainEgress)
			ipt(t, f, "-I", chainForward, "4", "-j", chainEgress)
		}, false},
		{"the pool's shortcut deleted", func(t *testing.T, f *Firewall) {
			ipt(t, f, "-t", "nat", "-D", chainPostrouting, "-s", "10.0.0.0/16", "-d", "10.0.0.0/16", "-j", "ACCEPT")
		}, false},
		{"the pool's shortcut behind the networks' jumps, beside one of another pool and a return of a range gone", func(t *testing.T, f *Firewall) {
			ipt(t, f, "-t", "nat", "-D", chainPostrouting, "-s", "10.0.0.0/16", "-d", "10.0.0.0/16", "-j", "ACCEPT")
			ipt(t, f, "-t", "nat", "-A", chainPostrouting, "-s", "10.0.0.0/16", "-d", "10.0.0.0/16", "-j", "ACCEPT")
			ipt(t, f, "-t", "nat", "-I", chainPostrouting, "2", "-s", "10.9.0.0/16", "-d", "10.9.0.0/16", "-j", "ACCEPT")
			ipt(t, f, "-t", "nat", "-I", chainPostrouting, "2", "-s", "10.0.200.0/24", "-j", "RETURN")
		}, false},
	}
	for _, backend := range backends(t) {
		for _, tc := range tests {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				f := testFirewall(t, backend)
				built(t, f)
				// Rules that are not vpcroute's stay where they are.
				ipt(t, f, "-A", "FORWARD", "-s", "172.31.0.0/16", "-j", "DROP")
				ipt(t, f, "-t", "nat", "-A", "POSTROUTING", "-s", "172.17.0.0/16", "-j", "MASQUERADE")
				tc.break_(t, f)
				d, err := f.Check(syncWant)
				if err != nil || d.Empty() {
					t.Fatalf("Check after %s = %v, %v; want drift", tc.name, d, err)
				}
				if tc.network != (len(d.Networks) > 0) {
					t.Errorf("drift %v: network part %v, want %v", d, len(d.Networks) > 0, tc.network)
				}
				if _, err := f.Sync(syncWant); err != nil {
					t.Fatalf("Sync: %v", err)
				}
				if d, err := f.Check(syncWant); err != nil || !d.Empty() {
					t.Fatalf("after Sync: %v, %v", d, err)
				}
				snap := snapshot(t, f)
				for _, want := range []string{"-A FORWARD -s 172.31.0.0/16 -j DROP", "-A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE"} {
					if !strings.Contains(snap, want) && tc.name != "the whole filter table flushed" {
						t.Errorf("a rule that is not vpcroute's is gone: %q\n%s", want, snap)
					}
				}
				for _, stale := range []string{"-A VPCROUTE-INPUT -m comment", "-A VPCROUTE-POSTROUTING -m comment", "-A FORWARD -m comment", "-A INPUT -m comment",
					"-A VPCROUTE-FORWARD -m comment --comment vpcroute -j", "RELATED,ESTABLISHED -m comment --comment vpcroute -j ACCEPT",
					"-A PREROUTING -m addrtype --dst-type LOCAL -m comment", "-A OUTPUT -m addrtype --dst-type LOCAL -m comment", "-A POSTROUTING -m comment",
					"-A VPCROUTE-DOCKER -i docker0 -m comment", "--dport 8080 -m comment", ":VPCROUTE-ACCEPT", "-j VPCROUTE-ACCEPT", `-o vr-net1 -m comment --comment "vpcroute:net1" -j VPCROUTE-P-`,
					"-A VPCROUTE-POSTROUTING -o vr-net", "-s 10.9.0.0/16 -d 10.9.0.0/16", "-s 10.0.200.0/24 -j RETURN"} {
					if strings.Contains(snap, stale) {
						t.Errorf("a rule of an earlier release is still there (%q):\n%s", stale, snap)
					}
				}
				for _, l := range strings.Split(snap, "\n") {
					if f := strings.Fields(l); len(f) > 1 && f[0] == "-A" && strings.Contains(l, "--comment") {
						if _, ok := parseNetChain(f[1]); ok {
							t.Errorf("a network's chain holds a commented rule of an earlier release: %s", l)
						}
						// Only the jumps into the ports' chains and internal
						// networks' keep a mark.
						if target := f[len(f)-1]; !isNetChainKind(target, kindPorts) && !(f[1] == chainForward && isNetChainKind(target, kindForward)) {
							if _, ok := parseNetChain(target); ok {
								t.Errorf("a marked jump of an earlier release into a network's chain: %s", l)
							}
						}
						if f[1] == chainDocker && !strings.Contains(l, "DNAT") {
							t.Errorf("%s drops published ports, as an earlier release did: %s", chainDocker, l)
						}
					}
				}
				if strings.Contains(snap, "--dport 9999") {
					t.Errorf("the stale port is still there:\n%s", snap)
				}
				if got := postrouting(t, f); !slices.Equal(got, wantPostrouting) {
					t.Errorf("%s =\n%s\nwant\n%s", chainPostrouting, strings.Join(got, "\n"), strings.Join(wantPostrouting, "\n"))
				}
				if n := strings.Count(snap, "-j "+chainEgress); n != 1 || !strings.Contains(snap, "-A VPCROUTE-FORWARD ! -i eth0 -j "+chainEgress) {
					t.Errorf("want one jump into %s, with the uplink's guard:\n%s", chainEgress, snap)
				}
				targets := forwardTargets(t, f)
				hook := slices.Index(targets, chainForward)
				if user := slices.Index(targets, dockerUser); user >= 0 && hook != user+1 || user < 0 && hook != 0 {
					t.Errorf("FORWARD targets %v: vpcroute's jump must come right after DOCKER-USER (or first)", targets)
				}
			})
		}
	}
}

// After a reboot nothing is there: one Sync builds every chain, jump and port, and
// the result is what building one network at a time gives.
func TestSyncFromNothing(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			f := testFirewall(t, backend)
			built(t, f)
			want := lines(snapshot(t, f))
			ipt(t, f, "-F")
			ipt(t, f, "-X")
			ipt(t, f, "-t", "nat", "-F")
			ipt(t, f, "-t", "nat", "-X")
			g, err := NewFirewallBackend(backend) // a new process
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g.Sync(syncWant); err != nil {
				t.Fatal(err)
			}
			if got := lines(snapshot(t, g)); !slices.Equal(got, want) {
				t.Errorf("Sync from nothing:\n%s\nbuilding one at a time:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// lines is a snapshot's lines, sorted: the same rules in a chain-wise other order of
// networks compare equal.
func lines(s string) []string {
	out := strings.Split(strings.TrimSpace(s), "\n")
	slices.Sort(out)
	return out
}

// On nft, a check of rules already found in line is one netlink read, not two
// iptables-save, until anyone changes any rule.
func TestCheckRemembersTheGeneration(t *testing.T) {
	if !slices.Contains(backends(t), BackendNFT) {
		t.Skip("needs iptables-nft")
	}
	f := testFirewall(t, BackendNFT)
	built(t, f)
	if d, err := f.Check(syncWant); err != nil || !d.Empty() {
		t.Fatalf("first check: %v, %v", d, err)
	}
	before := f.saves.Load()
	for range 3 {
		if d, err := f.Check(syncWant); err != nil || !d.Empty() {
			t.Fatalf("check: %v, %v", d, err)
		}
	}
	if n := f.saves.Load() - before; n != 0 {
		t.Fatalf("%d iptables-save for checks of an unchanged ruleset; want none", n)
	}
	// Someone else's change, even one that is not vpcroute's, makes it look again.
	ipt(t, f, "-A", "FORWARD", "-s", "172.31.0.0/16", "-j", "DROP")
	if d, err := f.Check(syncWant); err != nil || !d.Empty() || f.saves.Load() == before {
		t.Fatalf("after an unrelated change: %v, %v, saves %d", d, err, f.saves.Load()-before)
	}
	ipt(t, f, "-t", "nat", "-F", netChainName(kindNAT, "net1"))
	if d, err := f.Check(syncWant); err != nil || d.Empty() {
		t.Fatalf("after a network's rules were flushed: %v, %v; want drift", d, err)
	}
	// A different want is checked again.
	less := syncWant
	less.Ports = less.Ports[:1]
	if _, err := f.Sync(syncWant); err != nil {
		t.Fatal(err)
	}
	if d, err := f.Check(less); err != nil || d.Empty() {
		t.Fatalf("check of another want: %v, %v; want the extra ports as drift", d, err)
	}
}

// The jumps to published ports are there only while a port is: the repair pass takes
// them out when the last one goes (rules in line otherwise stay as they are), and
// EnsurePort puts them back before its rule, so that the port answers at once. A
// port of a network the plugin does not know (a network removed while it was down,
// whose rules Prune removes) keeps them until it goes.
func TestPortJumpsOnlyWhilePublished(t *testing.T) {
	hasJumps := func(t *testing.T, f *Firewall) []bool {
		t.Helper()
		snap := snapshot(t, f)
		var out []bool
		for _, j := range portJumps() {
			out = append(out, strings.Contains(snap, "-A "+j.chain+" "+strings.Join(j.spec, " ")+"\n"))
		}
		return out
	}
	all := func(v bool) []bool { return []bool{v, v, v} }
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			f := testFirewall(t, backend)
			built(t, f)
			if got := hasJumps(t, f); !slices.Equal(got, all(true)) {
				t.Fatalf("ports published: jumps %v, want all", got)
			}
			noPorts := Want{Base: testBase, Networks: syncWant.Networks}
			for _, p := range syncWant.Ports {
				mustDo(t, f.DeletePort(p))
			}
			d, err := f.Check(noPorts)
			if err != nil || len(d.Base) != 3 {
				t.Fatalf("Check with no port left = %v, %v; want the 3 jumps out of line", d, err)
			}
			if _, err := f.Sync(noPorts); err != nil {
				t.Fatal(err)
			}
			if got := hasJumps(t, f); !slices.Equal(got, all(false)) {
				t.Fatalf("no port left, after the repair pass: jumps %v, want none", got)
			}
			if d, err := f.Check(noPorts); err != nil || !d.Empty() {
				t.Fatalf("after Sync: %v, %v", d, err)
			}
			mustDo(t, f.EnsurePort(port1))
			if got := hasJumps(t, f); !slices.Equal(got, all(true)) {
				t.Fatalf("EnsurePort: jumps %v, want all", got)
			}
			one := noPorts
			one.Ports = []PortMap{port1}
			if d, err := f.Check(one); err != nil || !d.Empty() {
				t.Fatalf("after EnsurePort: %v, %v", d, err)
			}
			// A jump lost while the port is there: publishing it again puts the
			// jump back and leaves one copy of the rule.
			ipt(t, f, "-t", "nat", "-D", "OUTPUT", "-j", chainDNAT)
			mustDo(t, f.EnsurePort(port1))
			dest := "--to-destination " + netip.AddrPortFrom(port1.ContainerIP, port1.ContainerPort).String()
			if snap := snapshot(t, f); strings.Count(snap, dest) != 1 || !slices.Equal(hasJumps(t, f), all(true)) {
				t.Fatalf("EnsurePort of a published port with a jump missing:\n%s", snap)
			}
			// A network the plugin does not know any more.
			unknown := Want{Base: testBase, Networks: []NetworkRules{net2, net3}}
			if _, err := f.Sync(unknown); err != nil {
				t.Fatal(err)
			}
			if got := hasJumps(t, f); !slices.Equal(got, all(true)) {
				t.Fatalf("a port of a network not in want left: jumps %v, want all kept", got)
			}
			mustDo(t, f.Prune(map[string]bool{net2.NetworkID: true, net3.NetworkID: true}))
			if _, err := f.Sync(unknown); err != nil {
				t.Fatal(err)
			}
			if got := hasJumps(t, f); !slices.Equal(got, all(false)) {
				t.Fatalf("after Prune and the repair pass: jumps %v, want none", got)
			}
		})
	}
}

// wantPostrouting is VPCROUTE-POSTROUTING as syncWant has it: the ports' guard, the
// pool's shortcut, then each network's dispatch (net3 is internal).
var wantPostrouting = []string{
	"-m conntrack --ctstate DNAT -j " + chainPorts,
	"-s 10.0.0.0/16 -d 10.0.0.0/16 -j ACCEPT",
	"-s 10.0.2.0/24 -j " + netChainName(kindNAT, "net1"),
	"-s 10.0.3.0/24 -j " + netChainName(kindNAT, "net2"),
}

// postrouting lists the rules of VPCROUTE-POSTROUTING as iptables-save prints them.
func postrouting(t *testing.T, f *Firewall) []string {
	t.Helper()
	saved, err := f.save(tableNAT)
	mustDo(t, err)
	var out []string
	for _, r := range chainLines(saved, chainPostrouting) {
		out = append(out, strings.Join(r.args, " "))
	}
	return out
}

// The pool's shortcut follows the host: a range of another owner inside the pool
// returns before it, one that holds the whole pool takes it away, and it comes back
// when they go; Check sees each change as drift and each Sync as in line.
func TestPoolShortcutFollowsTheHost(t *testing.T) {
	p := netip.MustParsePrefix
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			f := testFirewall(t, backend)
			built(t, f)
			for _, step := range []struct {
				others []netip.Prefix
				want   []string
			}{
				{[]netip.Prefix{p("10.0.9.0/24"), p("172.17.0.0/16")}, slices.Insert(slices.Clone(wantPostrouting), 1, "-s 10.0.9.0/24 -j RETURN")},
				{[]netip.Prefix{p("10.0.0.0/8")}, slices.Delete(slices.Clone(wantPostrouting), 1, 2)},
				{nil, wantPostrouting},
			} {
				w := syncWant
				w.Base.PoolOthers = step.others
				if d, err := f.Check(w); err != nil || d.Empty() {
					t.Fatalf("others %v: Check = %v, %v; want drift", step.others, d, err)
				}
				if _, err := f.Sync(w); err != nil {
					t.Fatal(err)
				}
				if d, err := f.Check(w); err != nil || !d.Empty() {
					t.Fatalf("others %v: after Sync %v, %v", step.others, d, err)
				}
				if got := postrouting(t, f); !slices.Equal(got, step.want) {
					t.Errorf("others %v: %s =\n%s\nwant\n%s", step.others, chainPostrouting, strings.Join(got, "\n"), strings.Join(step.want, "\n"))
				}
			}
		})
	}
}

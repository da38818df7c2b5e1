//go:build linux

package firewall

import (
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// forwardOrder returns what each rule of VPCROUTE-FORWARD is, in order:
// "internal:<id>" (the jump of an internal test network), "net:<id>" (any
// other network's jump), "fast-s"/"fast-d" (the fast path of pool), "stale"
// (a fast path of another pool) or "foreign".
func forwardOrder(t testing.TB, f *Firewall, pool netip.Prefix) []string {
	t.Helper()
	lines, err := f.ipt.List(tableFilter, chainForward)
	mustDo(t, err)
	fast := fastPathRules(pool)
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "-A ") {
			continue
		}
		args, err := splitRule(l)
		mustDo(t, err)
		args = args[2:]
		id, marked := ruleNetworkID(args)
		base := isBaseForwardRule(args)
		switch {
		case base && len(fast) == 2 && strings.Join(args, " ") == strings.Join(fast[0], " "):
			out = append(out, "fast-s")
		case base && len(fast) == 2 && strings.Join(args, " ") == strings.Join(fast[1], " "):
			out = append(out, "fast-d")
		case base && strings.Join(args, " ") == strings.Join(forwardTail(testBase)[0], " "):
			out = append(out, "tail-e")
		case base && strings.Join(args, " ") == "-j "+chainIngress:
			out = append(out, "tail-i")
		case base && strings.Join(args, " ") == "-j "+chainAccept:
			out = append(out, "tail-a")
		case base || marked && id == "":
			out = append(out, "stale")
		case marked && id == net3.NetworkID:
			out = append(out, "internal:"+id)
		case marked:
			out = append(out, "net:"+id)
		default:
			out = append(out, "foreign")
		}
	}
	return out
}

// jumpsInto counts the rules of chain that jump into a chain of network id.
func jumpsInto(t testing.TB, f *Firewall, chain, id string) int {
	t.Helper()
	lines, err := f.ipt.List(tableFilter, chain)
	mustDo(t, err)
	n := 0
	for _, l := range lines {
		if args, err := splitRule(l); err == nil && strings.HasPrefix(l, "-A ") {
			if suffix, ok := parseNetChain(savedRule{args: args}.target()); ok && suffix == chainSuffix(id) {
				n++
			}
		}
	}
	return n
}

// orderOK is the order EnsureBase and EnsureNetwork promise: internal
// networks' drops, then the fast path, then everything else.
var orderOK = regexp.MustCompile(`^(internal:\S+ )*fast-s fast-d tail-e tail-i ((net:|foreign)\S* )*$`)

// TestFastPathOrder: after any sequence of EnsureBase, EnsureNetwork,
// restarts and repairs, VPCROUTE-FORWARD holds the internal networks'
// jumps first, then the established fast path, once, then the other
// networks' jumps: no internal network's drops are skipped by the fast
// path, and no packet walks other networks' jumps before it.
func TestFastPathOrder(t *testing.T) {
	otherPool := netip.MustParsePrefix("10.1.0.0/16")
	type env struct {
		t  *testing.T
		f  *Firewall
		bk string
	}
	base := func(e *env) { mustDo(e.t, e.f.EnsureBase(testBase)) }
	ensure := func(ns ...NetworkRules) func(*env) {
		return func(e *env) {
			for _, n := range ns {
				mustDo(e.t, e.f.EnsureNetwork(n))
			}
		}
	}
	restart := func(e *env) {
		var err error
		e.f, err = NewFirewallBackend(e.bk)
		mustDo(e.t, err)
	}
	delFast := func(e *env) {
		for _, r := range fastPathRules(testPool) {
			mustDo(e.t, e.f.ipt.Delete(tableFilter, chainForward, r...))
		}
	}
	flushForward := func(e *env) { mustDo(e.t, e.f.ipt.ClearChain(tableFilter, chainForward)) }
	foreign := func(e *env) {
		mustDo(e.t, e.f.ipt.Append(tableFilter, chainForward, "-s", "10.8.0.0/16", "-m", "comment", "--comment", "someone else", "-j", "ACCEPT"))
	}
	all := ensure(net1, net3, net2)
	sequences := []struct {
		name  string
		steps []func(*env)
	}{
		{"base, then networks", []func(*env){base, all}},
		{"networks, then base again", []func(*env){all, base, base}},
		{"upgrade: networks without a fast path, restart", []func(*env){all, delFast, restart, base, all}},
		{"fast path deleted", []func(*env){all, delFast, base}},
		{"fast path deleted, internal network repaired first", []func(*env){all, delFast, ensure(net3), base}},
		{"chain flushed, networks repaired before the base", []func(*env){all, foreign, flushForward, restart, all, base}},
		{"chain flushed, base first (the driver's order)", []func(*env){all, flushForward, restart, base, all}},
		{"pool changed and back", []func(*env){all, func(e *env) {
			mustDo(e.t, e.f.EnsureBase(Base{Pool: otherPool, Uplink: testBase.Uplink}))
			if got := strings.Join(forwardOrder(e.t, e.f, otherPool), " ") + " "; !orderOK.MatchString(got) || strings.Contains(got, "stale") {
				e.t.Errorf("with pool %v: %s", otherPool, got)
			}
		}, base}},
		{"internal chain flushed and fast path gone", []func(*env){all, func(e *env) {
			mustDo(e.t, e.f.ipt.ClearChain(tableFilter, netChainName(kindForward, net3.NetworkID)))
		}, delFast, restart, base, all}},
		{"internal jump deleted", []func(*env){all, func(e *env) {
			j := chainOf(e.t, net3, kindForward).jump()
			mustDo(e.t, e.f.ipt.Delete(j.table, j.chain, j.spec...))
		}, base, all}},
		{"a person moved the fast path below the networks, restart", []func(*env){all, func(e *env) {
			for _, r := range fastPathRules(testPool) {
				mustDo(e.t, e.f.ipt.Delete(tableFilter, chainForward, r...))
				mustDo(e.t, e.f.ipt.Append(tableFilter, chainForward, r...))
			}
		}, restart, base, all}},
		{"internal network deleted and made again", []func(*env){all, func(e *env) {
			mustDo(e.t, e.f.DeleteNetwork(net3))
		}, ensure(net3)}},
	}
	for _, backend := range backends(t) {
		for _, seq := range sequences {
			t.Run(backend+"/"+seq.name, func(t *testing.T) {
				e := &env{t: t, f: testFirewall(t, backend), bk: backend}
				setupBridges(t)
				for _, step := range seq.steps {
					step(e)
				}
				got := forwardOrder(t, e.f, testPool)
				joined := strings.Join(got, " ") + " "
				if !orderOK.MatchString(joined) {
					t.Errorf("VPCROUTE-FORWARD is %s, want internal networks' jumps, fast-s fast-d, then the rest", joined)
				}
				for _, n := range []NetworkRules{net1, net2, net3} {
					if n.Internal {
						if c := strings.Count(joined, "internal:"+n.NetworkID+" "); c != 1 {
							t.Errorf("%s: %d jumps, want 1: %s", n.NetworkID, c, joined)
						}
						continue
					}
					if strings.Contains(joined, "net:"+n.NetworkID+" ") {
						t.Errorf("%s: a jump in VPCROUTE-FORWARD: %s", n.NetworkID, joined)
					}
					for _, chain := range []string{chainEgress, chainIngress} {
						if c := jumpsInto(t, e.f, chain, n.NetworkID); c != 1 {
							t.Errorf("%s: %d rules in %s, want 1", n.NetworkID, c, chain)
						}
					}
				}
				// Settled: re-running everything changes nothing.
				before := saveAll(t, e.f)
				base(e)
				all(e)
				if after := saveAll(t, e.f); after != before {
					t.Errorf("a re-run changed the tables:\n%s\nbefore:\n%s", after, before)
				}
			})
		}
	}
}

// ruleCounters returns the packet counter of every rule of a chain of table, by its
// spec as iptables -S prints it.
func ruleCounters(t testing.TB, f *Firewall, table, chain string) map[string]int {
	t.Helper()
	out, err := exec.Command("iptables-"+f.backend+"-save", "-c", "-t", table).Output()
	mustDo(t, err)
	m := map[string]int{}
	re := regexp.MustCompile(`^\[(\d+):\d+\] -A ` + regexp.QuoteMeta(chain) + ` (.*)$`)
	for _, l := range strings.Split(string(out), "\n") {
		if sm := re.FindStringSubmatch(l); sm != nil {
			n, err := strconv.Atoi(sm[1])
			mustDo(t, err)
			m[sm[2]] = n
		}
	}
	return m
}

// TestDatapathFastPath: with the fast path in place, a new connection is
// still refused until its network's accept is there, and once accepted
// only its first packet (the SYN) walks the network's chain: every other
// packet, both ways, takes the fast path.
func TestDatapathFastPath(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			b := newBed(t, backend, false)
			serve(t, b.c2, 80)
			if got := strings.Join(forwardOrder(t, b.f, testPool), " "); got != "fast-s fast-d tail-e tail-i" {
				t.Fatalf("VPCROUTE-FORWARD is %q, want the fast path and the tail alone", got)
			}
			if _, err := seenFrom(b.remote, c2IP+":80"); err == nil {
				t.Fatal("a new connection got through on the fast path alone")
			}
			n := NetworkRules{NetworkID: "net1", Bridge: "vr-br", Subnet: netip.MustParsePrefix("10.0.2.0/24"), NoNAT: noNAT}
			mustDo(t, b.f.EnsureNetwork(n))
			fwd := chainOf(t, n, kindForward).name
			// Only the connections below count.
			mustDo(t, exec.Command("iptables-"+backend, "-t", tableFilter, "-Z").Run())

			const conns = 3
			for i := range conns {
				seen, err := seenFrom(b.remote, c2IP+":80")
				if err != nil || seen != remoteIP {
					t.Fatalf("connection %d: saw %q, %v", i, seen, err)
				}
			}
			fc := ruleCounters(t, b.f, tableFilter, chainForward)
			nc := ruleCounters(t, b.f, tableFilter, fwd)
			pool := testPool.String()
			const in = `-d 10.0.2.0/24 -j ACCEPT`
			if nc[in] != conns {
				t.Errorf("the network's accept counted %d packets, want %d (one SYN per connection): %v", nc[in], conns, nc)
			}
			for k, v := range nc {
				if v > conns {
					t.Errorf("%s counted %d packets, want at most %d (the SYNs)", k, v, conns)
				}
			}
			// Each connection: SYN-ACK, data and FIN from the server (-s);
			// ACKs and FIN from the client (-d).
			for _, dir := range []string{"-s " + pool, "! -s " + pool + " -d " + pool} {
				k := dir + " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
				if fc[k] < 2*conns {
					t.Errorf("fast path %s counted %d packets, want at least %d: %v", dir, fc[k], 2*conns, fc)
				}
			}
		})
	}
}

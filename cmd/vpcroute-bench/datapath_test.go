//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// ecsFilter is ECS 1's filter table as the data path sees it: the benchmark's hand-built
// accepts first, Docker's chains, and vpcroute's chains for three networks.
const ecsFilter = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:DOCKER-USER - [0:0]
:VPCROUTE-FORWARD - [0:0]
:VPCROUTE-F-aaaaaaaaaaaaaaaa - [0:0]
:VPCROUTE-F-bbbbbbbbbbbbbbbb - [0:0]
:VPCROUTE-F-cccccccccccccccc - [0:0]
-A FORWARD -d 100.64.0.0/16 -j ACCEPT
-A FORWARD -s 100.64.0.0/16 -j ACCEPT
-A FORWARD -j DOCKER-USER
-A FORWARD -m comment --comment vpcroute -j VPCROUTE-FORWARD
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A DOCKER-USER -j RETURN
-A VPCROUTE-FORWARD -m comment --comment "vpcroute:aaaa" -j VPCROUTE-F-aaaaaaaaaaaaaaaa
-A VPCROUTE-FORWARD -m comment --comment "vpcroute:bbbb" -j VPCROUTE-F-bbbbbbbbbbbbbbbb
-A VPCROUTE-FORWARD -m comment --comment "vpcroute:cccc" -j VPCROUTE-F-cccccccccccccccc
-A VPCROUTE-F-aaaaaaaaaaaaaaaa -s 10.0.0.0/24 -i vr-aaaa -m comment --comment "vpcroute:aaaa" -j ACCEPT
-A VPCROUTE-F-aaaaaaaaaaaaaaaa -d 10.0.0.0/24 -o vr-aaaa -m comment --comment "vpcroute:aaaa" -j ACCEPT
-A VPCROUTE-F-aaaaaaaaaaaaaaaa -i vr-aaaa -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "vpcroute:aaaa" -j ACCEPT
-A VPCROUTE-F-bbbbbbbbbbbbbbbb -s 10.0.1.0/24 -i vr-bbbb -m comment --comment "vpcroute:bbbb" -j ACCEPT
-A VPCROUTE-F-bbbbbbbbbbbbbbbb -d 10.0.1.0/24 -o vr-bbbb -m comment --comment "vpcroute:bbbb" -j ACCEPT
-A VPCROUTE-F-bbbbbbbbbbbbbbbb -i vr-bbbb -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "vpcroute:bbbb" -j ACCEPT
-A VPCROUTE-F-cccccccccccccccc -s 10.0.2.0/24 -i vr-cccc -m comment --comment "vpcroute:cccc" -j ACCEPT
-A VPCROUTE-F-cccccccccccccccc -d 10.0.2.0/24 -o vr-cccc -m comment --comment "vpcroute:cccc" -j ACCEPT
COMMIT
`

func TestFilterWalk(t *testing.T) {
	fw := parseFilter(ecsFilter)
	tests := []struct {
		name   string
		p      packet
		want   int
		accept bool
		xt     int // xtables matches called: comments, and conntrack where the rest matched
	}{
		{"hand-built: the first rule", packet{src: "100.64.1.2", dst: "100.64.2.2", in: "vrbhand", out: "eth0"}, 1, true, 0},
		// 2 hand rules, DOCKER-USER jump + its RETURN, the VPCROUTE-FORWARD jump, the
		// first network's jump and its first rule.
		{"oldest network", packet{src: "10.0.0.254", dst: "10.0.20.2", in: "vr-aaaa", out: "eth0"}, 7, true, 3},
		// ... plus the first network's other two rules and the second network's jump
		// and three rules, then the third's jump and first rule.
		{"newest network", packet{src: "10.0.2.254", dst: "10.0.20.2", in: "vr-cccc", out: "eth0"}, 7 + 2 + 4 + 2, true, 5},
		// A spoofed source is walked through every chain and dropped by the policy:
		// FORWARD's 6 rules, DOCKER-USER's RETURN, 3 jumps and 8 rules.
		{"spoofed source", packet{src: "10.9.9.9", dst: "10.0.20.2", in: "vr-cccc", out: "eth0"}, 6 + 1 + 3 + 8, false, 4},
		// Docker's own bridge: after vpcroute's chains, its ! -o rule accepts.
		{"docker0 outbound", packet{src: "172.17.0.2", dst: "10.0.20.2", in: "docker0", out: "eth0"}, 6 + 1 + 3 + 8, true, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, xt, ok := fw.walkCost("FORWARD", tt.p)
			if n != tt.want || ok != tt.accept || xt != tt.xt {
				t.Errorf("walk = %d rules, %d xtables matches, accepted %v; want %d, %d, %v", n, xt, ok, tt.want, tt.xt, tt.accept)
			}
		})
	}
}

func TestSplitWords(t *testing.T) {
	got := splitWords(`VPCROUTE-FORWARD -m comment --comment "vpcroute:a b" -j X`)
	want := []string{"VPCROUTE-FORWARD", "-m", "comment", "--comment", "vpcroute:a b", "-j", "X"}
	if !slices.Equal(got, want) {
		t.Errorf("splitWords = %q, want %q", got, want)
	}
}

func TestLastHost(t *testing.T) {
	for _, tt := range []struct{ prefix, want string }{
		{"10.0.20.0/24", "10.0.20.254"},
		{"10.0.20.7/24", "10.0.20.254"},
		{"10.1.0.0/16", "10.1.255.254"},
		{"192.168.0.0/30", "192.168.0.2"},
	} {
		if got := lastHost(netip.MustParsePrefix(tt.prefix)); got != tt.want {
			t.Errorf("lastHost(%s) = %s, want %s", tt.prefix, got, tt.want)
		}
	}
}

func TestRatiosPairRounds(t *testing.T) {
	d := &datapathFigures{Rounds: 3, Paths: []string{pathHost, pathHand}, Samples: []runSample{
		{Round: 0, Path: pathHost, Bps: 9}, {Round: 0, Path: pathHand, Bps: 10},
		{Round: 1, Path: pathHand, Bps: 5}, {Round: 1, Path: pathHost, Bps: 6},
		{Round: 2, Path: pathHost, Bps: 7}, // its pair is missing: no ratio
	}}
	if got, want := d.ratios(pathHost, pathHand), []float64{0.9, 1.2}; !slices.Equal(got, want) {
		t.Errorf("ratios = %v, want %v", got, want)
	}
	if got := median(d.ratios(pathHost, pathHand)); got != 1.05 {
		t.Errorf("median ratio = %v, want 1.05", got)
	}
}

func TestParseSet(t *testing.T) {
	got, err := parseSet("host, hand,,guide", allPaths())
	if err != nil {
		t.Fatal(err)
	}
	if !got[pathHost] || !got[pathHand] || !got[pathGuide] || got[pathContainer] {
		t.Errorf("parseSet = %v", got)
	}
	if _, err := parseSet("host,hands", allPaths()); err == nil {
		t.Error("parseSet accepted an unknown path")
	}
}

func TestParseProfile(t *testing.T) {
	const report = `# Samples: 33K of event 'cpu-clock:ppp'
#
    17.03%  [k] pv_native_safe_halt
    13.44%  [k] _raw_spin_unlock_irqrestore
     5.78%  [k] nft_do_chain
     1.49%  [k] nft_meta_store_ifname
     1.05%  [k] nft_match_large_eval
     0.64%  [k] nf_conntrack_tcp_packet
     0.50%  [.] nft_user_space_symbol
`
	got := parseProfile(report)
	if got.Rules < 8.31 || got.Rules > 8.33 {
		t.Errorf("rules share = %.2f%%, want 8.32%% (nft_* in the kernel only)", got.Rules)
	}
	if got.Idle != 17.03 {
		t.Errorf("idle share = %.2f%%, want 17.03%%", got.Idle)
	}
}

// natTable is the nat table of an ECS with Docker's default bridge and one vpcroute
// network with a published port, as both write them.
const natTable = `*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
:VPCROUTE-DNAT - [0:0]
:VPCROUTE-POSTROUTING - [0:0]
:VPCROUTE-PORTS - [0:0]
:VPCROUTE-P-aaaaaaaaaaaaaaaa - [0:0]
:VPCROUTE-N-aaaaaaaaaaaaaaaa - [0:0]
-A PREROUTING -j VPCROUTE-DNAT
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -j VPCROUTE-POSTROUTING
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A VPCROUTE-DNAT -p tcp -m tcp --dport 8080 -m addrtype --dst-type LOCAL -m comment --comment "vpcroute:aaaa" -j DNAT --to-destination 10.0.2.3:80
-A VPCROUTE-PORTS -o vr-aaaa -m comment --comment "vpcroute:aaaa" -g VPCROUTE-P-aaaaaaaaaaaaaaaa
-A VPCROUTE-POSTROUTING -m conntrack --ctstate DNAT -j VPCROUTE-PORTS
-A VPCROUTE-POSTROUTING -s 10.0.2.0/24 -j VPCROUTE-N-aaaaaaaaaaaaaaaa
-A VPCROUTE-P-aaaaaaaaaaaaaaaa -m addrtype --src-type LOCAL -j MASQUERADE
-A VPCROUTE-P-aaaaaaaaaaaaaaaa -s 10.0.2.0/24 -j MASQUERADE
-A VPCROUTE-N-aaaaaaaaaaaaaaaa -s 10.0.2.0/24 -d 192.168.0.0/24 -j ACCEPT
-A VPCROUTE-N-aaaaaaaaaaaaaaaa -s 10.0.2.0/24 -d 10.0.0.0/8 -j ACCEPT
-A VPCROUTE-N-aaaaaaaaaaaaaaaa -s 10.0.2.0/24 ! -o vr-aaaa -j MASQUERADE
COMMIT
`

// The first packet of a connection walks the nat table too, and conntrack's state is
// NEW: the matches that test it fail, negated ones hold.
func TestFirstPacketWalk(t *testing.T) {
	nat := parseFilter(natTable)
	tests := []struct {
		name         string
		chain        string
		p            packet
		rules, xt    int
		verdictRules bool // a rule ended the walk (ACCEPT, MASQUERADE)
	}{
		// vpcroute's jump, its port's rule (the port differs: native), Docker's jump
		// (its address type match): 3 rules, 1 match, no verdict.
		{"prerouting, to another host", "PREROUTING", packet{src: "10.0.2.2", dst: "10.0.3.2", in: "vr-aaaa", new: true}, 3, 1, false},
		// The same to port 8080, which is published here: the rule's address type is
		// tested too.
		{"prerouting, to another host's 8080", "PREROUTING", packet{src: "10.0.2.2", dst: "10.0.3.2", in: "vr-aaaa", dport: "8080", new: true}, 3, 2, false},
		// The jump, the ports guard (its conntrack match fails: not DNATed), the NAT
		// jump, the chain's first rule fails, its second (the pool) accepts.
		{"postrouting, out of the network to the pool", "POSTROUTING", packet{src: "10.0.2.2", dst: "10.0.3.2", out: "eth0", new: true}, 1 + 2 + 2, 1, true},
		// Into the bridge, not to a published port: the guard's conntrack match
		// fails; the NAT jump's source does not match; Docker's rule does not either.
		{"postrouting, into the network", "POSTROUTING", packet{src: "10.0.3.2", dst: "10.0.2.2", out: "vr-aaaa", new: true}, 1 + 2 + 1, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, xt, verdict := nat.walkChain(tt.chain, tt.p, 0)
			if rules != tt.rules || xt != tt.xt || (verdict != "") != tt.verdictRules {
				t.Errorf("walk = %d rules, %d xtables matches, verdict %q; want %d, %d, a verdict: %v", rules, xt, verdict, tt.rules, tt.xt, tt.verdictRules)
			}
		})
	}
	// The same rule reads differently for a connection's first packet.
	est := []string{"-s", "10.0.0.0/8", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"}
	notDNAT := []string{"-m", "conntrack", "!", "--ctstate", "DNAT", "-j", "DROP"}
	for _, tc := range []struct {
		rule []string
		new  bool
		ok   bool
	}{{est, false, true}, {est, true, false}, {notDNAT, true, true}, {notDNAT, false, true}} {
		if _, _, ok := ruleMatches(tc.rule, packet{src: "10.0.2.2", dst: "10.0.3.2", new: tc.new}); ok != tc.ok {
			t.Errorf("%q for a packet new=%v: matches %v, want %v", tc.rule, tc.new, ok, tc.ok)
		}
	}
}

// TestConnSlices runs the interleaved client's loop against a loopback listener: one
// answer line per duration read, each counting connections the server really accepted.
func TestConnSlices(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback listener: %v", err)
	}
	defer l.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	var out strings.Builder
	if err := connSlices(l.Addr().String(), strings.NewReader("30ms\n30ms\n"), &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d answers %q, want one per duration (2)", len(lines), out.String())
	}
	total := 0
	for _, line := range lines {
		var n int
		var secs float64
		if _, err := fmt.Sscan(line, &n, &secs); err != nil || n == 0 || secs < 0.03 {
			t.Fatalf("answer %q: want a positive count over at least the 30 ms asked (%v)", line, err)
		}
		total += n
	}
	// Every connection counted was accepted (a few may still be in the accept queue).
	deadline := time.Now().Add(2 * time.Second)
	for accepted.Load() < int64(total) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := accepted.Load(); got != int64(total) {
		t.Errorf("client counted %d connections, server accepted %d", total, got)
	}
	if err := connSlices(l.Addr().String(), strings.NewReader("soon\n"), io.Discard); err == nil {
		t.Error("a line that is not a duration was accepted")
	}
}

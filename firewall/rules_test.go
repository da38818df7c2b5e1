package firewall

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestDetectBackend(t *testing.T) {
	const rules3 = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n-A FORWARD -j DOCKER\n-A FORWARD -j ACCEPT\nCOMMIT\n"
	const rules1 = "*nat\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n"
	tests := []struct {
		name                 string
		legacy, nft, version string
		legacyErr, nftErr    bool
		want                 string
	}{
		{name: "nft holds the rules", legacy: rules1, nft: rules3, version: "iptables v1.8.9 (legacy)", want: BackendNFT},
		{name: "legacy holds the rules", legacy: rules3, nft: rules1, version: "iptables v1.8.9 (nf_tables)", want: BackendLegacy},
		{name: "no rules: default is nft", version: "iptables v1.8.9 (nf_tables)", want: BackendNFT},
		{name: "no rules: default is legacy", version: "iptables v1.8.9 (legacy)", want: BackendLegacy},
		{name: "old iptables without backends", legacyErr: true, nftErr: true, version: "iptables v1.6.1", want: BackendLegacy},
		{name: "legacy tools missing", legacyErr: true, nft: rules1, want: BackendNFT},
		{name: "tie goes to the default", legacy: rules1, nft: rules1, version: "iptables v1.8.7 (nf_tables)", want: BackendNFT},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run := func(name string, args ...string) ([]byte, error) {
				switch name {
				case "iptables-legacy-save":
					if tc.legacyErr {
						return nil, errors.New("not found")
					}
					return []byte(tc.legacy), nil
				case "iptables-nft-save":
					if tc.nftErr {
						return nil, errors.New("not found")
					}
					return []byte(tc.nft), nil
				case "iptables":
					return []byte(tc.version), nil
				}
				return nil, errors.New("unexpected command " + name)
			}
			if got := detectBackend(run); got != tc.want {
				t.Errorf("detectBackend = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSplitRuleAndNetworkID(t *testing.T) {
	tests := []struct {
		line   string
		want   []string
		id     string
		marked bool
	}{
		{`-A VPCROUTE-FORWARD -s 10.0.2.0/24 -i br -m comment --comment "vpcroute:net1" -j ACCEPT`,
			[]string{"-A", "VPCROUTE-FORWARD", "-s", "10.0.2.0/24", "-i", "br", "-m", "comment", "--comment", "vpcroute:net1", "-j", "ACCEPT"}, "net1", true},
		{`-A FORWARD -m comment --comment vpcroute -j VPCROUTE-FORWARD`,
			[]string{"-A", "FORWARD", "-m", "comment", "--comment", "vpcroute", "-j", "VPCROUTE-FORWARD"}, "", true},
		{`-A FORWARD -m comment --comment "a \"quoted\" \\ comment" -j ACCEPT`,
			[]string{"-A", "FORWARD", "-m", "comment", "--comment", `a "quoted" \ comment`, "-j", "ACCEPT"}, "", false},
		{`-A POSTROUTING -m comment --comment "vpcroutex:net2" -j MASQUERADE`,
			[]string{"-A", "POSTROUTING", "-m", "comment", "--comment", "vpcroutex:net2", "-j", "MASQUERADE"}, "", false},
		{`-A FORWARD -j DOCKER-USER`, []string{"-A", "FORWARD", "-j", "DOCKER-USER"}, "", false},
	}
	for _, tc := range tests {
		got, err := splitRule(tc.line)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("splitRule(%s) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
		id, ok := ruleNetworkID(got)
		if id != tc.id || ok != tc.marked {
			t.Errorf("ruleNetworkID(%s) = %q, %v; want %q, %v", tc.line, id, ok, tc.id, tc.marked)
		}
	}
	if _, err := splitRule(`-A X --comment "open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestNetworkRulesValidation(t *testing.T) {
	good := NetworkRules{NetworkID: "abc123", Bridge: "vr-abc", Subnet: netip.MustParsePrefix("10.0.2.0/24")}
	tests := []struct {
		name   string
		modify func(*NetworkRules)
		errHas string // "" = valid
	}{
		{"valid", func(*NetworkRules) {}, ""},
		{"empty ID", func(r *NetworkRules) { r.NetworkID = "" }, "network ID"},
		{"ID with a quote", func(r *NetworkRules) { r.NetworkID = `a"b` }, "only letters"},
		{"no bridge", func(r *NetworkRules) { r.Bridge = "" }, "bridge name"},
		{"IPv6 subnet", func(r *NetworkRules) { r.Subnet = netip.MustParsePrefix("fd00::/64") }, "not an IPv4 prefix"},
		{"bad no-NAT", func(r *NetworkRules) { r.NoNAT = []netip.Prefix{{}} }, "no-NAT"},
		{"IPv6 pool", func(r *NetworkRules) { r.Pool = netip.MustParsePrefix("fd00::/48") }, "container pool"},
		{"uplink with a space", func(r *NetworkRules) { r.Uplink = "eth 0" }, "uplink"},
		{"uplink", func(r *NetworkRules) { r.Uplink = "eth0" }, ""},
	}
	for _, tc := range tests {
		r := good
		tc.modify(&r)
		chains, err := networkChains(r)
		switch {
		case tc.errHas == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)):
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.errHas)
		case err == nil:
			// The jumps and the rules of a network's chains say whose they are
			// by the chain's name, and carry no comment (an xtables call per
			// packet on iptables-nft), but for one jump that keeps the
			// network's full ID for Owners.
			marked := 0
			for _, c := range chains {
				j := c.jump().spec
				if suffix, ok := parseNetChain(j[len(j)-1]); !ok || suffix != chainSuffix(r.NetworkID) {
					t.Errorf("%s: jump %q does not lead into a chain named for %s", tc.name, j, r.NetworkID)
				}
				if id, ok := ruleNetworkID(j); ok {
					marked++
					if id != r.NetworkID || c.kind != kindPorts {
						t.Errorf("%s: jump %q is marked, for %q", tc.name, j, id)
					}
				}
				for _, spec := range c.rules {
					if slices.Contains(spec, "comment") {
						t.Errorf("%s: rule %q in %s carries a comment", tc.name, spec, c.name)
					}
				}
			}
			if marked != 1 {
				t.Errorf("%s: %d jumps marked with the network's ID, want 1", tc.name, marked)
			}
		}
	}
}

// TestNetworkRulesShape checks the properties the rule order relies on:
// masquerade for published ports comes before every network's no-NAT
// accepts, an internal network's chain goes first in FORWARD, and
// Masquerade=false adds no outbound NAT.
func TestNetworkRulesShape(t *testing.T) {
	base := NetworkRules{NetworkID: "n", Bridge: "br", Subnet: netip.MustParsePrefix("10.0.2.0/24"),
		NoNAT: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}}
	byKind := func(cs []netChain) map[byte]netChain {
		m := map[byte]netChain{}
		for _, c := range cs {
			m[c.kind] = c
		}
		return m
	}
	count := func(c netChain, target string) (n int) {
		for _, r := range c.rules {
			if r[len(r)-1] == target {
				n++
			}
		}
		return n
	}
	masq := base
	masq.Masquerade = true
	cs, _ := networkChains(masq)
	m := byKind(cs)
	if len(cs) != 5 {
		t.Fatalf("masquerade network has %d chains, want 5 (egress, ingress, input, ports, NAT)", len(cs))
	}
	if m[kindEgress].from != chainEgress || m[kindForward].from != chainIngress {
		t.Errorf("egress and ingress must hang off %s and %s: %+v", chainEgress, chainIngress, cs)
	}
	// The egress chain ends with the ingress check and then the accept: nothing
	// leaves a bridge before the bridge it enters has had its say.
	if e := m[kindEgress].rules; len(e) < 2 || !slices.Equal(e[len(e)-2], []string{"-j", chainIngress}) || !slices.Equal(e[len(e)-1], []string{"-j", "ACCEPT"}) {
		t.Errorf("egress chain must end with the jump into %s and the accept: %q", chainIngress, e)
	}
	if got := count(m[kindPorts], "MASQUERADE") + count(m[kindNAT], "MASQUERADE"); got != 3 {
		t.Errorf("masquerade network: %d MASQUERADE rules, want 3 (hairpin, host-local, outbound)", got)
	}
	// Only DNATed connections reach VPCROUTE-PORTS (its guard, first in
	// VPCROUTE-POSTROUTING); there, each network takes those into its bridge.
	if j := m[kindPorts].jump(); j.chain != chainPorts || !slices.Equal(j.spec[:2], []string{"-o", "br"}) || !m[kindPorts].goTo {
		t.Errorf("the jump into the ports chain %v must go from %s for connections into the bridge, as a goto", j, chainPorts)
	}
	guard := portJumps()[2]
	if guard.chain != chainPostrouting || !guard.insert || !slices.Contains(guard.spec, "DNAT") || guard.spec[len(guard.spec)-1] != chainPorts {
		t.Errorf("the guard %v must take DNATed connections into %s, first in %s", guard, chainPorts, chainPostrouting)
	}
	if m[kindNAT].insert || m[kindNAT].from != chainPostrouting {
		t.Errorf("outbound NAT must be jumped to last in %s", chainPostrouting)
	}
	cs, _ = networkChains(base)
	m = byKind(cs)
	if got := count(m[kindPorts], "MASQUERADE"); got != 2 {
		t.Errorf("Masquerade=false: %d MASQUERADE rules, want only the 2 for published ports", got)
	}
	if got := len(m[kindNAT].rules); got != 0 {
		t.Errorf("Masquerade=false: %d outbound NAT rules, want 0", got)
	}
	internal := masq
	internal.Internal = true
	cs, _ = networkChains(internal)
	if len(cs) != 1 || cs[0].table != tableFilter || cs[0].from != chainForward {
		t.Fatalf("internal network has chains %v, want only its forward chain", cs)
	}
	if !cs[0].insert {
		t.Errorf("internal chain is jumped to last, so another network's accept could shadow its drops")
	}
	if id, ok := ruleNetworkID(cs[0].jump().spec); !ok || id != internal.NetworkID {
		t.Errorf("an internal network's only jump must keep its mark, for Owners: %q", cs[0].jump().spec)
	}
	if last := cs[0].rules[len(cs[0].rules)-1]; last[len(last)-1] != "ACCEPT" {
		t.Errorf("internal chain must accept bridge-to-bridge traffic after its drops, ends with %q", last)
	}
}

func TestChainNames(t *testing.T) {
	dockerID := "5f3c2a1b9d8e7f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"
	tests := []struct {
		id, want string
	}{
		{dockerID, "VPCROUTE-F-5f3c2a1b9d8e7f60"},
		{"net1", "VPCROUTE-F-" + chainSuffix("net1")},
		{strings.ToUpper(dockerID), "VPCROUTE-F-" + chainSuffix(strings.ToUpper(dockerID))},
	}
	for _, tc := range tests {
		got := netChainName(kindForward, tc.id)
		if got != tc.want {
			t.Errorf("netChainName(%s) = %s, want %s", tc.id, got, tc.want)
		}
		if len(got) > 28 {
			t.Errorf("chain name %s is longer than iptables' 28 bytes", got)
		}
		if suffix, ok := parseNetChain(got); !ok || suffix != chainSuffix(tc.id) {
			t.Errorf("parseNetChain(%s) = %s, %v", got, suffix, ok)
		}
	}
	if chainSuffix("net1") == chainSuffix("net2") || len(chainSuffix("net1")) != 16 {
		t.Errorf("hashed suffixes: %s, %s", chainSuffix("net1"), chainSuffix("net2"))
	}
	for _, name := range []string{chainForward, chainInput, chainPostrouting, chainDNAT, "VPCROUTE-X-5f3c2a1b9d8e7f60", "VPCROUTE-F-5f3c2a1b9d8e7f6", "VPCROUTE-F-5f3c2a1b9d8e7f6g", "DOCKER"} {
		if _, ok := parseNetChain(name); ok {
			t.Errorf("parseNetChain(%s) took it for a network's chain", name)
		}
	}
}

func TestPortRule(t *testing.T) {
	ok := PortMap{NetworkID: "n1", Proto: "tcp", HostPort: 8080, ContainerIP: netip.MustParseAddr("10.0.2.3"), ContainerPort: 80}
	tests := []struct {
		name   string
		modify func(*PortMap)
		want   string // rule text, or "error"
	}{
		{"all addresses", func(*PortMap) {}, `-t nat -A VPCROUTE-DNAT -p tcp -m tcp --dport 8080 -m addrtype --dst-type LOCAL -m comment --comment vpcroute:n1 -j DNAT --to-destination 10.0.2.3:80`},
		{"0.0.0.0 is all", func(p *PortMap) { p.HostIP = netip.IPv4Unspecified() }, `-t nat -A VPCROUTE-DNAT -p tcp -m tcp --dport 8080 -m addrtype --dst-type LOCAL -m comment --comment vpcroute:n1 -j DNAT --to-destination 10.0.2.3:80`},
		{"one address", func(p *PortMap) { p.HostIP = netip.MustParseAddr("127.0.0.1"); p.Proto = "udp" }, `-t nat -A VPCROUTE-DNAT -p udp -d 127.0.0.1/32 -m udp --dport 8080 -m addrtype --dst-type LOCAL -m comment --comment vpcroute:n1 -j DNAT --to-destination 10.0.2.3:80`},
		{"bad proto", func(p *PortMap) { p.Proto = "icmp" }, "error"},
		{"port 0", func(p *PortMap) { p.HostPort = 0 }, "error"},
		{"IPv6 container", func(p *PortMap) { p.ContainerIP = netip.MustParseAddr("fd00::1") }, "error"},
		{"IPv6 host", func(p *PortMap) { p.HostIP = netip.MustParseAddr("fd00::1") }, "error"},
		{"bad ID", func(p *PortMap) { p.NetworkID = "a b" }, "error"},
	}
	for _, tc := range tests {
		p := ok
		tc.modify(&p)
		r, err := portRule(p)
		got := "error"
		if err == nil {
			got = r.String()
		}
		if got != tc.want {
			t.Errorf("%s: got %s (%v), want %s", tc.name, got, err, tc.want)
		}
	}
}

// testPool is the container pool of the tests: every test network's subnet
// is in it, as on a real host.
var (
	testPool = netip.MustParsePrefix("10.0.0.0/16")
	// testBase is the base as the plugin gives it: the pool in NoNAT, first.
	testBase = Base{Pool: testPool, NoNAT: []netip.Prefix{testPool, netip.MustParsePrefix("192.168.0.0/16")}, Uplink: "eth0"}
)

func TestBaseValidation(t *testing.T) {
	for _, tc := range []struct {
		base Base
		ok   bool
	}{
		{Base{}, true}, // no fast path
		{Base{Pool: testPool}, true},
		{Base{Pool: netip.MustParsePrefix("10.0.0.7/16")}, true}, // masked when written
		{Base{Pool: netip.MustParsePrefix("fd00::/64")}, false},
		{Base{Pool: netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), 40)}, false},
	} {
		if err := tc.base.validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: validate() = %v, want ok=%v", tc.base, err, tc.ok)
		}
	}
	if got := fastPathRules(netip.MustParsePrefix("10.0.0.7/16")); len(got) != 2 || got[0][1] != "10.0.0.0/16" || got[1][2] != "10.0.0.0/16" || got[1][4] != "10.0.0.0/16" {
		t.Errorf("fast path of an unmasked pool: %q", got)
	}
	if got := fastPathRules(netip.Prefix{}); got != nil {
		t.Errorf("fast path without a pool: %q", got)
	}
}

// parsePortRule reads back exactly what portRule writes, and nothing else.
func TestParsePortRule(t *testing.T) {
	ports := []PortMap{
		{NetworkID: "net1", Proto: "tcp", HostPort: 8080, ContainerIP: netip.MustParseAddr("10.0.2.3"), ContainerPort: 80},
		{NetworkID: "net1", Proto: "udp", HostIP: netip.MustParseAddr("192.168.0.2"), HostPort: 5353, ContainerIP: netip.MustParseAddr("10.0.2.4"), ContainerPort: 53},
	}
	for _, p := range ports {
		r, err := portRule(p)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := parsePortRule(r.spec); !ok || got != p {
			t.Errorf("parsePortRule(%q) = %+v, %v; want %+v", r.spec, got, ok, p)
		}
	}
	for _, spec := range [][]string{
		{"-p", "tcp", "-m", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", "10.0.2.3:80"},                                    // unmarked
		{"-p", "tcp", "-m", "comment", "--comment", "vpcroute", "-j", "ACCEPT"},                                                         // a base rule
		{"-p", "tcp", "-m", "tcp", "--dport", "x", "-m", "comment", "--comment", "vpcroute:n", "-j", "DNAT", "--to-destination", "a:b"}, // garbage
	} {
		if got, ok := parsePortRule(spec); ok {
			t.Errorf("parsePortRule(%q) = %+v; want it refused", spec, got)
		}
	}
}

// TestNetworkRulesUplink: connections through the uplink skip the checks of
// Docker's bridges and of other vpcroute bridges, and only those; an uplink
// name those checks could match leaves them unguarded.
func TestNetworkRulesUplink(t *testing.T) {
	base := NetworkRules{NetworkID: "n", Bridge: "vr-n", Subnet: netip.MustParsePrefix("10.0.2.0/24")}
	policies := map[string]func(*NetworkRules){
		"default": func(*NetworkRules) {},
		"isolate": func(r *NetworkRules) { r.Isolate = true },
		"allow":   func(r *NetworkRules) { r.Allow = []Allow{{Source: netip.MustParsePrefix("192.168.0.3/32")}} },
		"icc off": func(r *NetworkRules) { r.NoICC = true },
	}
	tests := []struct {
		uplink, guard string // guard: the interface the checks are skipped for ("" none)
	}{
		{"", ""},
		{"eth0", "eth0"},
		{"ens3", "ens3"},
		{"vr-n", ""},    // the network's own bridge
		{"docker0", ""}, // Docker's bridges
		{"br-0123abcd", ""},
		{"docker_gwbridge", ""},
	}
	for pname, policy := range policies {
		for _, tc := range tests {
			r := base
			policy(&r)
			r.Uplink = tc.uplink
			chains, err := networkChains(r)
			if err != nil {
				t.Fatalf("%s, uplink %q: %v", pname, tc.uplink, err)
			}
			var guardOut, guardIn []string
			if tc.guard != "" {
				guardOut, guardIn = []string{"!", "-o", tc.guard}, []string{"!", "-i", tc.guard}
			}
			want := map[byte][][]string{
				kindEgress:  {join(guardOut, "-j", chainDocker), join(guardOut, "-j", chainIngress)},
				kindForward: {join(guardIn, "-j", chainDocker)},
			}
			for _, c := range chains {
				var local [][]string // the rules that reach the local bridges' checks
				for _, spec := range c.rules {
					if target := spec[len(spec)-1]; target == chainDocker || target == chainIngress {
						local = append(local, spec)
					}
				}
				if w, ok := want[c.kind]; ok && !slices.EqualFunc(local, w, slices.Equal) {
					t.Errorf("%s, uplink %q: chain %s reaches the local checks with %q, want %q", pname, tc.uplink, c.name, local, w)
				}
			}
		}
	}
}

// The pool's shortcut is there only where it changes nothing but the rules walked:
// the networks never masquerade the pool, and no other owner's range holds a source
// in it but those that return to their owner's masquerade first.
func TestPoolShortcut(t *testing.T) {
	pool := testPool
	vpc := netip.MustParsePrefix("192.168.0.0/16")
	p := netip.MustParsePrefix
	accept := [][]string{{"-s", "10.0.0.0/16", "-d", "10.0.0.0/16", "-j", "ACCEPT"}}
	for _, tc := range []struct {
		name    string
		base    Base
		returns [][]string
		accept  [][]string
	}{
		{"no pool", Base{NoNAT: []netip.Prefix{vpc}}, nil, nil},
		{"the pool not in NoNAT: the networks masquerade some of it", Base{Pool: pool, NoNAT: []netip.Prefix{vpc}}, nil, nil},
		{"the pool in NoNAT", Base{Pool: pool, NoNAT: []netip.Prefix{vpc, pool}}, nil, accept},
		{"NoNAT holds the pool", Base{Pool: pool, NoNAT: []netip.Prefix{p("10.0.0.0/8")}}, nil, accept},
		{"NoNAT holds a part of the pool only", Base{Pool: pool, NoNAT: []netip.Prefix{p("10.0.0.0/17")}}, nil, nil},
		{"an unmasked pool is written masked", Base{Pool: p("10.0.7.1/16"), NoNAT: []netip.Prefix{pool}}, nil, accept},
		{"other owners' ranges return first, in order, once each", Base{Pool: pool, NoNAT: []netip.Prefix{pool},
			PoolOthers: []netip.Prefix{p("10.0.9.1/24"), p("10.0.8.0/24"), p("10.0.9.0/24"), p("172.17.0.0/16")}},
			[][]string{{"-s", "10.0.8.0/24", "-j", "RETURN"}, {"-s", "10.0.9.0/24", "-j", "RETURN"}}, accept},
		{"another owner's range holds the pool", Base{Pool: pool, NoNAT: []netip.Prefix{pool}, PoolOthers: []netip.Prefix{p("10.0.0.0/8")}}, nil, nil},
		{"another owner's range is the pool", Base{Pool: pool, NoNAT: []netip.Prefix{pool}, PoolOthers: []netip.Prefix{pool}}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			returns, accept := poolShortcut(tc.base)
			if !slices.EqualFunc(returns, tc.returns, slices.Equal) || !slices.EqualFunc(accept, tc.accept, slices.Equal) {
				t.Errorf("poolShortcut = %q, %q; want %q, %q", returns, accept, tc.returns, tc.accept)
			}
			for _, r := range append(returns, accept...) {
				if !isPoolShortcutRule(r) {
					t.Errorf("isPoolShortcutRule(%q) = false for a rule of the shortcut", r)
				}
			}
		})
	}
	// Rules of VPCROUTE-POSTROUTING that are not the shortcut's.
	for _, r := range append(slices.Clone(allNetChainJumps()), portsGuard(), []string{"-s", "10.0.2.0/24", "-d", "10.0.0.0/16", "-m", "comment", "--comment", "x", "-j", "ACCEPT"}) {
		if isPoolShortcutRule(r) {
			t.Errorf("isPoolShortcutRule(%q) = true", r)
		}
	}
}

// allNetChainJumps are the jumps of one network's chains.
func allNetChainJumps() [][]string {
	var out [][]string
	for _, c := range allNetChains("net1", "vr-br", "10.0.2.0/24") {
		out = append(out, c.jump().spec)
	}
	return out
}

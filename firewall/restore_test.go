package firewall

import (
	"net/netip"
	"strings"
	"testing"
)

// dockerID is a network ID as Docker makes them; its chains are named
// after the first 16 hex digits.
const dockerID = "5f3c2a1b9d8e7f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"

// TestRestoreScripts pins the iptables-restore input of each step for an
// internal network (the shortest); the kernel tests run every script on
// both backends.
func TestRestoreScripts(t *testing.T) {
	r := NetworkRules{NetworkID: dockerID, Bridge: "vr-x", Subnet: netip.MustParsePrefix("10.0.4.0/24"), Internal: true}
	chains, err := networkChains(r)
	if err != nil {
		t.Fatal(err)
	}
	const (
		chain = "VPCROUTE-F-5f3c2a1b9d8e7f60"
		drop1 = "! -i vr-x -o vr-x -j DROP"
		drop2 = "-i vr-x ! -o vr-x -j DROP"
		acc   = "-i vr-x -o vr-x -j ACCEPT"
		jump  = "-m comment --comment vpcroute:" + dockerID + " -j " + chain
	)
	lines := func(ls ...string) string { return strings.Join(ls, "\n") + "\n" }
	// checkTail is what every base check holds after the fast path: the tail of
	// VPCROUTE-FORWARD and Docker's bridges.
	checkTail := strings.Join([]string{
		"-C VPCROUTE-FORWARD -j VPCROUTE-EGRESS",
		"-C VPCROUTE-FORWARD -j VPCROUTE-INGRESS",
		"-C VPCROUTE-DOCKER -i docker0 -m conntrack ! --ctstate DNAT -m comment --comment vpcroute -j DROP",
		"-C VPCROUTE-DOCKER -o docker0 -m conntrack ! --ctstate DNAT -m comment --comment vpcroute -j DROP",
		"-C VPCROUTE-DOCKER -i br-+ -m conntrack ! --ctstate DNAT -m comment --comment vpcroute -j DROP",
		"-C VPCROUTE-DOCKER -o br-+ -m conntrack ! --ctstate DNAT -m comment --comment vpcroute -j DROP",
		"-C VPCROUTE-DOCKER -i docker_gwbridge -m conntrack ! --ctstate DNAT -m comment --comment vpcroute -j DROP",
		"-C VPCROUTE-DOCKER -o docker_gwbridge -m conntrack ! --ctstate DNAT -m comment --comment vpcroute -j DROP",
	}, "\n")
	tests := []struct {
		name, got, want string
	}{
		{"create", createScript(dockerID, chains), lines("*filter",
			"-N "+chain,
			"-A "+chain+" "+drop1, "-A "+chain+" "+drop2, "-A "+chain+" "+acc,
			"-I VPCROUTE-FORWARD 1 "+jump,
			"COMMIT")},
		{"check", checkScript(dockerID, chains), lines("*filter",
			"-C VPCROUTE-FORWARD "+jump,
			"-C "+chain+" "+drop1, "-C "+chain+" "+drop2, "-C "+chain+" "+acc,
			"COMMIT")},
		{"repair, jump in place (put back on top)", repairScript(dockerID, chains, map[string]bool{}), lines("*filter",
			":"+chain+" - [0:0]",
			"-A "+chain+" "+drop1, "-A "+chain+" "+drop2, "-A "+chain+" "+acc,
			"-D VPCROUTE-FORWARD "+jump,
			"-I VPCROUTE-FORWARD 1 "+jump,
			"COMMIT")},
		{"repair, jump missing", repairScript(dockerID, chains, map[string]bool{chain: true}), lines("*filter",
			":"+chain+" - [0:0]",
			"-A "+chain+" "+drop1, "-A "+chain+" "+drop2, "-A "+chain+" "+acc,
			"-I VPCROUTE-FORWARD 1 "+jump,
			"COMMIT")},
		{"delete", deleteScript(dockerID, chains), lines("*filter",
			"-D VPCROUTE-FORWARD "+jump, "-F "+chain, "-X "+chain,
			"COMMIT")},
		{"base check", baseCheckScript(Base{ForwardAccept: true, Pool: netip.MustParsePrefix("10.0.0.0/16")}), lines("*filter",
			":FORWARD ACCEPT [0:0]",
			"-C FORWARD -j VPCROUTE-FORWARD",
			"-C INPUT -j VPCROUTE-INPUT",
			"-C VPCROUTE-FORWARD -s 10.0.0.0/16 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
			"-C VPCROUTE-FORWARD ! -s 10.0.0.0/16 -d 10.0.0.0/16 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
			checkTail,
			"COMMIT", "*nat",
			"-C POSTROUTING -j VPCROUTE-POSTROUTING",
			"COMMIT")},
		{"base check without a pool", baseCheckScript(Base{}), lines("*filter",
			"-C FORWARD -j VPCROUTE-FORWARD",
			"-C INPUT -j VPCROUTE-INPUT",
			checkTail,
			"COMMIT", "*nat",
			"-C POSTROUTING -j VPCROUTE-POSTROUTING",
			"COMMIT")},
		{"nothing to do", (&restoreInput{}).String(), ""},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.name, tc.got, tc.want)
		}
	}
}

// TestRestoreScriptsTables: a network with chains in both tables gets one
// block per table, filter first, each chain created before a jump to it.
func TestRestoreScriptsTables(t *testing.T) {
	r := NetworkRules{NetworkID: dockerID, Bridge: "vr-x", Subnet: netip.MustParsePrefix("10.0.2.0/24"), Masquerade: true,
		NoNAT: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}}
	chains, err := networkChains(r)
	if err != nil {
		t.Fatal(err)
	}
	script := createScript(dockerID, chains)
	blocks := strings.Split(strings.TrimSuffix(script, "COMMIT\n"), "COMMIT\n")
	if len(blocks) != 2 || !strings.HasPrefix(blocks[0], "*filter\n") || !strings.HasPrefix(blocks[1], "*nat\n") {
		t.Fatalf("create script is not a filter block then a nat block:\n%s", script)
	}
	for _, c := range chains {
		created := strings.Index(script, "-N "+c.name+"\n")
		jumped := max(strings.Index(script, " -j "+c.name+"\n"), strings.Index(script, " -g "+c.name+"\n"))
		if created < 0 || jumped < created {
			t.Errorf("chain %s: created at %d, jumped to at %d:\n%s", c.name, created, jumped, script)
		}
	}
	if !strings.Contains(script, "-A VPCROUTE-PORTS -o vr-x -m comment --comment vpcroute:"+dockerID+" -g VPCROUTE-P-") ||
		!strings.Contains(script, "-A VPCROUTE-POSTROUTING -s 10.0.2.0/24 -j VPCROUTE-N-") {
		t.Errorf("port masquerade must be reached from the ports' chain, outbound NAT from VPCROUTE-POSTROUTING, each only for the network's packets:\n%s", script)
	}
	if !strings.Contains(script, "-A VPCROUTE-INPUT -i vr-x -j VPCROUTE-I-") {
		t.Errorf("the loopback guard must be jumped to only for the bridge's packets:\n%s", script)
	}
}

func TestQuoteArg(t *testing.T) {
	for in, want := range map[string]string{
		"vpcroute:net1": "vpcroute:net1",
		"two words":     `"two words"`,
		`a"b`:           `"a\"b"`,
		`a\b`:           `"a\\b"`,
		"":              `""`,
	} {
		if got := quoteArg(in); got != want {
			t.Errorf("quoteArg(%q) = %s, want %s", in, got, want)
		}
		if args, err := splitRule("-A X " + quoteArg(in)); err != nil || len(args) != 3 || args[2] != in {
			t.Errorf("quoteArg(%q) does not read back: %q, %v", in, args, err)
		}
	}
}

// TestPruneScript runs Prune's decision on a saved table holding a bit of
// everything.
func TestPruneScript(t *testing.T) {
	kept, gone := dockerID, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	fk, fg := netChainName(kindForward, kept), netChainName(kindForward, gone)
	ik, ig := netChainName(kindInput, kept), netChainName(kindInput, gone)
	ck, cg := `-m comment --comment "vpcroute:`+kept+`"`, `-m comment --comment "vpcroute:`+gone+`"`
	saved := strings.Join([]string{
		"# Generated by iptables-save",
		"*filter",
		":INPUT ACCEPT [0:0]",
		":FORWARD DROP [0:0]",
		":DOCKER-USER - [0:0]",
		":" + fg + " - [0:0]",
		":" + fk + " - [0:0]",
		":VPCROUTE-FORWARD - [0:0]",
		":" + ig + " - [0:0]",
		":" + ik + " - [0:0]",
		":VPCROUTE-INPUT - [0:0]",
		"-A INPUT -m comment --comment vpcroute -j VPCROUTE-INPUT",
		"-A FORWARD -m comment --comment vpcroute -j VPCROUTE-FORWARD",
		"-A FORWARD -j DOCKER-USER",
		"-A FORWARD -s 10.9.0.0/16 " + cg + " -j ACCEPT", // gone network's rule outside vpcroute's chains
		"-A DOCKER-USER -j RETURN",
		"-A " + fg + " -s 10.0.3.0/24 -i vr-g " + cg + " -j ACCEPT",
		"-A " + fk + " -s 10.0.2.0/24 -i vr-k " + ck + " -j ACCEPT",
		"-A VPCROUTE-FORWARD -s 10.8.0.0/16 -m comment --comment \"someone else\" -j ACCEPT",
		"-A VPCROUTE-FORWARD " + ck + " -j " + fk,
		"-A VPCROUTE-FORWARD " + cg + " -j " + fg,
		"-A VPCROUTE-FORWARD -s 10.0.2.0/24 -i vr-k " + ck + " -j ACCEPT", // from before per-network chains
		"-A " + ik + " -d 127.0.0.0/8 -i vr-k " + ck + " -j DROP",
		"-A VPCROUTE-INPUT " + ck + " -j " + ik,
		// This release's jumps carry no mark: their target says whose they are.
		"-A " + ig + " -d 127.0.0.0/8 -i vr-g -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
		"-A VPCROUTE-INPUT -i vr-g -j " + ig,
		"COMMIT",
		"# Completed",
	}, "\n") + "\n"
	table, err := parseSave(saved)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"*filter",
		"-D FORWARD -s 10.9.0.0/16 " + cg + " -j ACCEPT",
		"-D VPCROUTE-FORWARD " + cg + " -j " + fg,
		"-D VPCROUTE-FORWARD -s 10.0.2.0/24 -i vr-k " + ck + " -j ACCEPT",
		"-D VPCROUTE-INPUT -i vr-g -j " + ig,
		"-F " + fg,
		"-X " + fg,
		"-F " + ig,
		"-X " + ig,
		"COMMIT",
	}, "\n") + "\n"
	got, errs := pruneScript(tableFilter, table, map[string]bool{kept: true})
	if got != want || len(errs) != 0 {
		t.Errorf("pruneScript = %v\n%s\nwant:\n%s", errs, got, want)
	}

	// Everything kept: only the rule from before per-network chains goes.
	got, _ = pruneScript(tableFilter, table, map[string]bool{kept: true, gone: true})
	if want := "*filter\n-D VPCROUTE-FORWARD -s 10.0.2.0/24 -i vr-k " + ck + " -j ACCEPT\nCOMMIT\n"; got != want {
		t.Errorf("keeping both:\n%s\nwant:\n%s", got, want)
	}

	// Someone else's rule jumps into the gone network's chain: the chain
	// stays (deleting it would fail the whole restore), with an error.
	held := saved + "*filter\n-A DOCKER-USER -j " + fg + "\nCOMMIT\n"
	table, err = parseSave(held)
	if err != nil {
		t.Fatal(err)
	}
	got, errs = pruneScript(tableFilter, table, map[string]bool{kept: true})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), fg) {
		t.Errorf("errors %v, want one naming %s", errs, fg)
	}
	if strings.Contains(got, "-X "+fg) || strings.Contains(got, "-F "+fg) {
		t.Errorf("held chain deleted anyway:\n%s", got)
	}
}

// TestForwardOrderScript: whatever order VPCROUTE-FORWARD is found in, the
// rewrite puts internal networks' jumps first, then the fast path of the
// pool in use (once, an old pool's gone), then everything else as it was.
func TestForwardOrderScript(t *testing.T) {
	internal, routed := dockerID, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	fi, fr := netChainName(kindForward, internal), netChainName(kindForward, routed)
	jumpI := `-A VPCROUTE-FORWARD -m comment --comment "vpcroute:` + internal + `" -j ` + fi
	jumpR := `-A VPCROUTE-FORWARD -m comment --comment "vpcroute:` + routed + `" -j ` + fr
	foreign := `-A VPCROUTE-FORWARD -s 10.8.0.0/16 -m comment --comment "someone else" -j ACCEPT`
	fast := func(pool string) []string {
		return []string{
			"-A VPCROUTE-FORWARD -s " + pool + " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
			"-A VPCROUTE-FORWARD ! -s " + pool + " -d " + pool + " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		}
	}
	// The fast path's second rule as releases before 2026-12-02 wrote it.
	oldDest := "-A VPCROUTE-FORWARD -d 10.0.0.0/16 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
	// The fast path and the tail as releases before 2026-12 marked them.
	marked := []string{
		"-A VPCROUTE-FORWARD -s 10.0.0.0/16 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment vpcroute -j ACCEPT",
		"-A VPCROUTE-FORWARD -d 10.0.0.0/16 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment vpcroute -j ACCEPT",
		"-A VPCROUTE-FORWARD -m comment --comment vpcroute -j VPCROUTE-EGRESS",
		"-A VPCROUTE-FORWARD -m comment --comment vpcroute -j VPCROUTE-INGRESS",
		"-A VPCROUTE-FORWARD -m comment --comment vpcroute -j VPCROUTE-ACCEPT",
	}
	table := func(forward ...string) string {
		return strings.Join(append([]string{
			"*filter",
			":FORWARD DROP [0:0]",
			":" + fi + " - [0:0]",
			":" + fr + " - [0:0]",
			":VPCROUTE-FORWARD - [0:0]",
			"-A FORWARD -m comment --comment vpcroute -j VPCROUTE-FORWARD",
			"-A " + fi + ` ! -i vr-i -o vr-i -m comment --comment "vpcroute:` + internal + `" -j DROP`,
			"-A " + fr + ` -s 10.0.2.0/24 -i vr-r -m comment --comment "vpcroute:` + routed + `" -j ACCEPT`,
		}, append(forward, "COMMIT")...), "\n") + "\n"
	}
	rewrite := func(forward ...string) string {
		return strings.Join(append([]string{"*filter", ":VPCROUTE-FORWARD - [0:0]"}, append(forward, "COMMIT")...), "\n") + "\n"
	}
	pool := fastPathRules(testPool)
	f, old := fast("10.0.0.0/16"), fast("10.1.0.0/16")
	// The tail follows the fast path (or, without a pool, the internal jumps); a is
	// the jump into the networks' accepts of releases before 2026-12-02.
	e, i, a := "-A VPCROUTE-FORWARD -j VPCROUTE-EGRESS",
		"-A VPCROUTE-FORWARD -j VPCROUTE-INGRESS",
		"-A VPCROUTE-FORWARD -j VPCROUTE-ACCEPT"
	// The internal network's jump as this release writes it, without a mark.
	plainI := "-A VPCROUTE-FORWARD -j " + fi
	// An earlier release's accept chain, then the lines that remove it.
	withAccept := func(forward ...string) string {
		return strings.Replace(table(forward...), ":VPCROUTE-FORWARD - [0:0]\n",
			":VPCROUTE-ACCEPT - [0:0]\n:VPCROUTE-FORWARD - [0:0]\n-A VPCROUTE-ACCEPT -i vr-r -m comment --comment \"vpcroute:"+routed+"\" -j ACCEPT\n", 1)
	}
	dropAccept := []string{"-F VPCROUTE-ACCEPT", "-X VPCROUTE-ACCEPT"}
	tests := []struct {
		name  string
		saved string
		want  string
	}{
		{"in order", table(jumpI, f[0], f[1], e, i, foreign, jumpR), ""},
		{"in order, an unmarked internal jump", table(plainI, f[0], f[1], e, i, foreign, jumpR), ""},
		{"an unmarked internal jump below the fast path", table(f[0], f[1], e, i, plainI), rewrite(plainI, f[0], f[1], e, i)},
		{"tail out of order", table(jumpI, f[0], f[1], i, e, foreign, jumpR), rewrite(jumpI, f[0], f[1], e, i, foreign, jumpR)},
		{"empty chain", table(), rewrite(f[0], f[1], e, i)},
		{"no fast path yet (upgrade)", table(jumpI, jumpR, foreign), rewrite(jumpI, f[0], f[1], e, i, jumpR, foreign)},
		{"fast path above an internal jump", table(f[0], f[1], jumpI, jumpR), rewrite(jumpI, f[0], f[1], e, i, jumpR)},
		{"half of the fast path gone", table(jumpI, f[1], jumpR), rewrite(jumpI, f[0], f[1], e, i, jumpR)},
		{"fast path twice", table(jumpI, f[0], f[1], f[0], f[1], jumpR), rewrite(jumpI, f[0], f[1], e, i, jumpR)},
		{"another pool's fast path", table(jumpI, old[0], old[1], jumpR), rewrite(jumpI, f[0], f[1], e, i, jumpR)},
		{"networks before the base", table(jumpR, jumpI), rewrite(jumpI, f[0], f[1], e, i, jumpR)},
		{"the marked rules of an earlier release", table(append(append([]string{jumpI}, marked...), foreign, jumpR)...), rewrite(jumpI, f[0], f[1], e, i, foreign, jumpR)},
		{"the fast path of an earlier release", table(jumpI, f[0], oldDest, e, i, jumpR), rewrite(jumpI, f[0], f[1], e, i, jumpR)},
		{"the accept chain of an earlier release", withAccept(jumpI, f[0], f[1], e, i, a, jumpR), rewrite(append([]string{jumpI, f[0], f[1], e, i, jumpR}, dropAccept...)...)},
		{"marked and unmarked", table(append(append([]string{jumpI, f[0], f[1], e, i, a}, marked...), jumpR)...), rewrite(jumpI, f[0], f[1], e, i, jumpR)},
	}
	for _, tc := range tests {
		saved, err := parseSave(tc.saved)
		if err != nil {
			t.Fatal(err)
		}
		if got := forwardOrderScript(saved, pool, forwardTail(Base{})); got != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.name, got, tc.want)
		}
	}
	// Without a pool, the fast path goes.
	saved, err := parseSave(table(jumpI, f[0], f[1], jumpR))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := forwardOrderScript(saved, nil, forwardTail(Base{})), rewrite(jumpI, e, i, jumpR); got != want {
		t.Errorf("no pool:\n%s\nwant:\n%s", got, want)
	}
}

func TestForwardOf(t *testing.T) {
	tests := []struct {
		name string
		save string
		want Forward
	}{
		{name: "hooked first", save: `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:VPCROUTE-FORWARD - [0:0]
-A FORWARD -m comment --comment vpcroute -j VPCROUTE-FORWARD
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
COMMIT
`, want: Forward{Policy: "DROP", Hook: 1, Rules: 3}},
		{name: "a drop ahead of the hook", save: `*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -s 10.0.0.0/8 -j DROP
-A FORWARD -j DOCKER-USER
-A FORWARD -j VPCROUTE-FORWARD
COMMIT
`, want: Forward{Policy: "ACCEPT", Hook: 3, Rules: 3, DropsBefore: []string{"-A FORWARD -s 10.0.0.0/8 -j DROP"}}},
		{name: "not hooked", save: `*filter
:FORWARD DROP [0:0]
-A FORWARD -j DOCKER-USER
COMMIT
`, want: Forward{Policy: "DROP", Rules: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved, err := parseSave(tt.save)
			if err != nil {
				t.Fatal(err)
			}
			got := forwardOf(saved)
			if got.Policy != tt.want.Policy || got.Hook != tt.want.Hook || got.Rules != tt.want.Rules || strings.Join(got.DropsBefore, "|") != strings.Join(tt.want.DropsBefore, "|") {
				t.Fatalf("forwardOf = %+v; want %+v", got, tt.want)
			}
		})
	}
}

//go:build linux

package main

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
)

// compatProbes are a rule of each match module vpcroute's and Docker's rules use
// (iptables arguments, in a throwaway namespace).
var compatProbes = map[string][]string{
	"conntrack": {"-A", "FORWARD", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "ACCEPT"},
	"comment":   {"-A", "FORWARD", "-i", "x0", "-m", "comment", "--comment", "probe", "-j", "ACCEPT"},
	"addrtype":  {"-t", "nat", "-A", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "RETURN"},
	"tcp":       {"-A", "FORWARD", "-p", "tcp", "-m", "tcp", "--dport", "80", "-j", "ACCEPT"},
	"udp":       {"-A", "FORWARD", "-p", "udp", "-m", "udp", "--dport", "53", "-j", "ACCEPT"},
}

// probeCompat finds which of those modules this machine's iptables runs through
// nftables' compat layer (an `xt match` in `nft list ruleset`) rather than as native
// nftables expressions, and sets nativeModules to the others, for the walks' count of
// xtables matches. It returns what it found, for the report. iptables-nft 1.8.9
// (Debian 12) turned out to translate conntrack's state and status, comments and
// address types into native expressions (ct status, rule userdata, fib); the
// walks counted them as compat calls until 2026-12-02.
func probeCompat(ctx context.Context) string {
	const fallback = "every match module but tcp and udp counted as an xtables match"
	out, err := exec.CommandContext(ctx, "iptables", "--version").Output()
	if err != nil {
		return "iptables not found: every match module counted as an xtables match"
	}
	if !strings.Contains(string(out), "nf_tables") {
		return "iptables-legacy: every match module is an xtables match (no compat layer); counted as such"
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return "nft not installed, so not probed: " + fallback
	}
	const ns = "vrbench-xt"
	_ = exec.Command("ip", "netns", "del", ns).Run()
	if err := exec.CommandContext(ctx, "ip", "netns", "add", ns).Run(); err != nil {
		return fmt.Sprintf("not probed (ip netns add: %v): %s", err, fallback)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	in := func(argv ...string) ([]byte, error) {
		return exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + ns, "--"}, argv...)...).CombinedOutput()
	}
	var compat, native []string
	for _, name := range slices.Sorted(maps.Keys(compatProbes)) {
		if out, err := in(append([]string{"iptables", "-w"}, compatProbes[name]...)...); err != nil {
			return fmt.Sprintf("not probed (iptables %s: %v %s): %s", name, err, out, fallback)
		}
		list, err := in("nft", "list", "ruleset")
		if err != nil {
			return fmt.Sprintf("not probed (nft list ruleset: %v): %s", err, fallback)
		}
		if strings.Contains(string(list), `xt match "`+name+`"`) {
			compat = append(compat, name)
		} else {
			native = append(native, name)
		}
		_, _ = in("iptables", "-w", "-F")
		_, _ = in("iptables", "-w", "-t", "nat", "-F")
	}
	for _, name := range native {
		nativeModules[name] = true
	}
	for _, name := range compat {
		delete(nativeModules, name)
	}
	if len(compat) == 0 {
		return fmt.Sprintf("probed with `nft list ruleset`: this machine's iptables-nft turns every match module of these rules (%s) into native nftables expressions, so no rule calls an xtables match", strings.Join(native, ", "))
	}
	return fmt.Sprintf("probed with `nft list ruleset`: run through the compat layer: %s; native: %s", strings.Join(compat, ", "), strings.Join(native, ", "))
}

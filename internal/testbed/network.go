//go:build linux

package testbed

import (
	"context"
	"fmt"
	"strings"
)

// Interface names inside the namespaces. They are namespace-local, so they never clash with
// the root namespace or with another bed.
const (
	vpcBridge  = "vpc0" // the VPC bridge in the router namespace
	wanLink    = "wan0" // the router's side of the outside link
	ecsUplink  = "eth0" // an ECS's NIC, and the outside host's
	bridgeMask = "/24"
)

// buildNetwork creates the router, outside and ECS namespaces and wires them. It expects none
// of them to exist (Up runs Down first) but tolerates existing namespaces.
func buildNetwork(ctx context.Context, prefix string, ecss []*ECS) error {
	router, outside := routerNetns(prefix), outsideNetns(prefix)
	names := []string{router, outside}
	for _, e := range ecss {
		names = append(names, e.Netns)
	}
	for _, n := range names {
		if err := ensureNetns(ctx, n); err != nil {
			return err
		}
	}

	// Router: the VPC bridge, one veth per ECS whose far end is the ECS's eth0, and the
	// outside link. Links are created from inside the router namespace with the peer placed
	// directly in its own namespace, so nothing ever appears in the root namespace.
	batch := []string{
		"link add " + vpcBridge + " type bridge",
		"addr add " + RouterIP + bridgeMask + " dev " + vpcBridge,
		"link set " + vpcBridge + " up",
		"addr add " + MetadataIP + "/32 dev lo",
		"link add " + wanLink + " type veth peer name " + ecsUplink + " netns " + outside,
		"addr add " + OutsideRouterIP + "/24 dev " + wanLink,
		"link set " + wanLink + " up",
	}
	for _, e := range ecss {
		batch = append(batch,
			"link add "+e.Name+" type veth peer name "+ecsUplink+" netns "+e.Netns,
			"link set "+e.Name+" master "+vpcBridge,
			"link set "+e.Name+" up",
		)
	}
	if err := ipBatch(ctx, router, batch); err != nil {
		return err
	}
	// The VPC fabric neither decrements TTL nor redirects; bridged frames between two ECSs
	// must not traverse iptables, or they would get the TTL increment too (ttl=63).
	if err := setSysctls(router, false,
		"net.ipv4.ip_forward", "1",
		"net.ipv4.conf.all.send_redirects", "0",
		"net.ipv4.conf.default.send_redirects", "0",
		"net.ipv4.conf."+vpcBridge+".send_redirects", "0",
	); err != nil {
		return err
	}
	if err := setSysctls(router, true,
		"net.bridge.bridge-nf-call-iptables", "0",
		"net.bridge.bridge-nf-call-ip6tables", "0",
		"net.bridge.bridge-nf-call-arptables", "0",
	); err != nil {
		return err
	}
	if err := ensureIptablesRule(ctx, router, "mangle", "PREROUTING",
		"-i", vpcBridge, "-j", "TTL", "--ttl-inc", "1"); err != nil {
		return fmt.Errorf("make the VPC router transparent to TTL: %w", err)
	}

	// Outside host: reachable from the VPC, and answering only the VPC's own addresses.
	if err := ipBatch(ctx, outside, []string{
		"addr add " + OutsideIP + "/24 dev " + ecsUplink,
		"link set " + ecsUplink + " up",
		"route add " + VPCCIDR + " via " + OutsideRouterIP,
	}); err != nil {
		return err
	}

	for _, e := range ecss {
		if err := ipBatch(ctx, e.Netns, []string{
			"addr add " + e.IP.String() + bridgeMask + " dev " + ecsUplink,
			"link set " + ecsUplink + " up",
			"route add default via " + RouterIP,
		}); err != nil {
			return err
		}
		// An ECS forwards for its containers and must ignore redirects, or the router
		// would teach it a direct path and the guide's trace would change.
		if err := setSysctls(e.Netns, false,
			"net.ipv4.ip_forward", "1",
			"net.ipv4.conf.all.accept_redirects", "0",
			"net.ipv4.conf.default.accept_redirects", "0",
			"net.ipv4.conf."+ecsUplink+".accept_redirects", "0",
		); err != nil {
			return err
		}
	}
	return nil
}

// ipBatch runs `ip -batch -` in the namespace; the error names the namespace and ip's
// complaint, which quotes the failing line.
func ipBatch(ctx context.Context, netns string, lines []string) error {
	if _, err := ExecStdin(ctx, netns, []byte(strings.Join(lines, "\n")+"\n"), "ip", "-batch", "-"); err != nil {
		return fmt.Errorf("configure network namespace %s: %w", netns, err)
	}
	return nil
}

// ensureIptablesRule appends the rule to table/chain in the namespace unless it is there.
func ensureIptablesRule(ctx context.Context, netns, table, chain string, rule ...string) error {
	check := append([]string{"iptables", "-w", "-t", table, "-C", chain}, rule...)
	if _, err := Exec(ctx, netns, check...); err == nil {
		return nil
	}
	add := append([]string{"iptables", "-w", "-t", table, "-A", chain}, rule...)
	if _, err := Exec(ctx, netns, add...); err != nil {
		return fmt.Errorf("add iptables rule in %s: %w", netns, err)
	}
	return nil
}

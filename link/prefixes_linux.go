//go:build linux

package link

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vpcroute/vpcroute/sysctl"
)

// defaultMTU is what UplinkMTU reports when the host has no default route.
const defaultMTU = 1500

// UplinkMTU returns the MTU of the default route's device, so bridges and
// veths never exceed what the VPC carries; 1500 when there is no default
// route.
func (Host) UplinkMTU() int {
	link, err := uplink()
	if err != nil || link == nil {
		return defaultMTU
	}
	return link.Attrs().MTU
}

// Uplink returns the name of the default route's device, the host's way to the
// VPC, or "" when there is no default route or its device is a bridge (a host
// whose NIC sits in a bridge): the firewall lets connections through it skip the
// checks of the host's bridges (firewall.NetworkRules.Uplink), which is exact only
// for a device that is not one.
func (Host) Uplink() string {
	link, err := uplink()
	if err != nil || link == nil || link.Type() == "bridge" {
		return ""
	}
	return link.Attrs().Name
}

// UplinkPrefixes returns the IPv4 subnets on the default route's device: the
// VPC subnet the host sits in, which containers reach without NAT.
func (Host) UplinkPrefixes() ([]netip.Prefix, error) {
	link, err := uplink()
	if err != nil {
		return nil, err
	}
	if link == nil {
		return nil, nil
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list addresses of uplink %s: %w", link.Attrs().Name, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			out = append(out, p.Masked())
		}
	}
	return sortPrefixes(out), nil
}

// Prefixes returns every IPv4 route destination (all routing tables,
// default routes excluded) and every IPv4 address subnet on the host: the
// ranges a new container subnet must not overlap.
func (Host) Prefixes() ([]netip.Prefix, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list IPv4 routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if p, ok := prefixOf(r.Dst); ok && p.Bits() > 0 {
			out = append(out, p.Masked())
		}
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list IPv4 addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			out = append(out, p.Masked())
		}
	}
	return sortPrefixes(out), nil
}

// uplink returns the device of the main table's IPv4 default route with the
// lowest metric, or nil when there is none.
func uplink() (netlink.Link, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list IPv4 routes: %w", err)
	}
	best, bestIndex := -1, 0
	for _, r := range routes {
		if p, ok := prefixOf(r.Dst); ok && p.Bits() != 0 {
			continue
		}
		index := r.LinkIndex
		if index == 0 && len(r.MultiPath) > 0 {
			index = r.MultiPath[0].LinkIndex
		}
		if index != 0 && (best < 0 || r.Priority < best) {
			best, bestIndex = r.Priority, index
		}
	}
	if best < 0 {
		return nil, nil
	}
	link, err := netlink.LinkByIndex(bestIndex)
	if err != nil {
		return nil, fmt.Errorf("look up default route device %d: %w", bestIndex, err)
	}
	return link, nil
}

func sortPrefixes(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(ps)
}

// EnsureForwarding sets net.ipv4.ip_forward=1: without it the host does not
// route between the VPC and its container bridges.
func (Host) EnsureForwarding() error {
	return sysctl.Set("net/ipv4/ip_forward", "1")
}

// OthersIn returns the IPv4 address ranges of this host that overlap within (the
// container pool) and sit on a link that is not one of vpcroute's bridges: a
// Docker network, or another tool's, made inside the pool. Their sources keep the
// masquerade of their owner's rules (firewall.Base.PoolOthers).
func (Host) OthersIn(within netip.Prefix) ([]netip.Prefix, error) {
	if !within.IsValid() {
		return nil, nil
	}
	bridges, err := markedBridges()
	if err != nil {
		return nil, err
	}
	mine := map[int]bool{}
	for _, l := range bridges {
		mine[l.Attrs().Index] = true
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list IPv4 addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && !mine[a.LinkIndex] && p.Masked().Overlaps(within) {
			out = append(out, p.Masked())
		}
	}
	return sortPrefixes(out), nil
}

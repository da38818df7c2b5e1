//go:build linux

package link

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
)

// BridgesOutOfLine returns the names of the bridges of specs that are missing or not
// as EnsureBridge leaves them: a bridge marked for its network, up, with the MTU
// asked for and the gateway as its only IPv4 address. It reads every link and every
// address once, whatever the number of bridges, and changes nothing, so that the
// background repair can look often and write only where something differs.
func (Host) BridgesOutOfLine(specs []BridgeSpec) ([]string, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	byName := make(map[string]netlink.Link, len(links))
	for _, l := range links {
		byName[l.Attrs().Name] = l
	}
	byIndex := map[int][]netip.Prefix{}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			byIndex[a.LinkIndex] = append(byIndex[a.LinkIndex], p)
		}
	}
	var out []string
	for _, s := range specs {
		l, ok := byName[s.Name]
		if !ok || !bridgeInLine(l, s, byIndex[l.Attrs().Index]) {
			out = append(out, s.Name)
		}
	}
	return out, nil
}

// bridgeInLine says whether link l, with IPv4 addresses addrs, is the bridge s asks for.
func bridgeInLine(l netlink.Link, s BridgeSpec, addrs []netip.Prefix) bool {
	a := l.Attrs()
	_, isBridge := l.(*netlink.Bridge)
	return isBridge && a.Alias == bridgeAlias(s.NetworkID) && a.Flags&net.FlagUp != 0 &&
		(s.MTU <= 0 || a.MTU == s.MTU) && slices.Equal(addrs, []netip.Prefix{s.Gateway})
}

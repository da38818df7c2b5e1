//go:build linux

package link

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Host is the host's link layer as vpcroute uses it: the bridges of its networks,
// the veths of their containers, the uplink, and the host's own routes. It has no
// state; every method acts on the network namespace of the calling thread.
type Host struct{}

// Link aliases that mark links as vpcroute's. A link without one of them is
// never modified or deleted.
const (
	aliasPrefix = "vpcroute:"
	vethAlias   = aliasPrefix + "veth"
)

// ErrNotOwned is returned (wrapped) when a link with the requested name
// exists but is not vpcroute's, so vpcroute refuses to change or delete it.
var ErrNotOwned = errors.New("link is not managed by vpcroute")

// BridgeSpec describes the bridge of one vpcroute network.
type BridgeSpec struct {
	// Name is the bridge's interface name (at most 15 bytes).
	Name string
	// NetworkID is the Docker network ID; it is stored in the link alias so
	// that the bridge can be recognised as this network's after a restart.
	NetworkID string
	// Gateway is the containers' default gateway with the subnet's prefix
	// length, e.g. 10.0.2.1/24; it is the bridge's only IPv4 address.
	Gateway netip.Prefix
	// MTU of the bridge; 0 keeps the kernel default.
	MTU int
}

func bridgeAlias(networkID string) string { return aliasPrefix + networkID }

func (s BridgeSpec) validate() error {
	switch {
	case s.Name == "" || len(s.Name) > unix.IFNAMSIZ-1 || strings.ContainsAny(s.Name, "/ \t\n"):
		return fmt.Errorf("bridge name %q: must be 1-%d bytes without '/' or spaces", s.Name, unix.IFNAMSIZ-1)
	case s.NetworkID == "" || s.NetworkID == "veth":
		return fmt.Errorf("bridge %s: network ID %q is not usable as an owner mark", s.Name, s.NetworkID)
	case !s.Gateway.IsValid() || !s.Gateway.Addr().Is4():
		return fmt.Errorf("bridge %s: gateway %v is not an IPv4 address with prefix length", s.Name, s.Gateway)
	case s.MTU < 0 || s.MTU > 65535:
		return fmt.Errorf("bridge %s: MTU %d out of range", s.Name, s.MTU)
	}
	return nil
}

// EnsureBridge creates the bridge of a network or repairs it: type bridge,
// alias "vpcroute:<NetworkID>", the gateway as its only IPv4 address, the
// MTU, a fixed MAC address, and up. It refuses a same-name link that is not
// vpcroute's bridge for NetworkID, wrapping ErrNotOwned.
func (Host) EnsureBridge(s BridgeSpec) error {
	if err := s.validate(); err != nil {
		return err
	}
	br, err := ensureBridgeLink(s)
	if err != nil {
		return err
	}
	if s.MTU > 0 && br.Attrs().MTU != s.MTU {
		if err := netlink.LinkSetMTU(br, s.MTU); err != nil {
			return fmt.Errorf("set MTU %d on bridge %s: %w", s.MTU, s.Name, err)
		}
	}
	// Set the bridge MAC to itself: an explicitly set address is kept,
	// otherwise the bridge takes the lowest port's MAC and changes it as
	// containers come and go, which breaks the containers' ARP caches.
	if err := netlink.LinkSetHardwareAddr(br, br.Attrs().HardwareAddr); err != nil {
		return fmt.Errorf("pin MAC address of bridge %s: %w", s.Name, err)
	}
	if err := ensureOnlyAddr(br, s.Gateway); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("set bridge %s up: %w", s.Name, err)
	}
	return nil
}

// ensureBridgeLink returns the bridge named s.Name, creating it when absent,
// after checking that it is a bridge marked for s.NetworkID.
func ensureBridgeLink(s BridgeSpec) (netlink.Link, error) {
	alias := bridgeAlias(s.NetworkID)
	link, err := netlink.LinkByName(s.Name)
	switch {
	case err == nil:
		if link.Attrs().Alias != alias {
			return nil, fmt.Errorf("link %s exists with alias %q, not %q: %w; remove it (ip link del %s) or pick another bridge name",
				s.Name, link.Attrs().Alias, alias, ErrNotOwned, s.Name)
		}
		if _, ok := link.(*netlink.Bridge); ok {
			return link, nil
		}
		// Marked as this network's but of the wrong type: only vpcroute
		// writes that mark, so replacing the link is a repair.
		if err := netlink.LinkDel(link); err != nil && !isNotFound(err) {
			return nil, fmt.Errorf("delete %s link %s to recreate it as a bridge: %w", link.Type(), s.Name, err)
		}
	case !isNotFound(err):
		return nil, fmt.Errorf("look up bridge %s: %w", s.Name, err)
	}

	mac, err := randomMAC()
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", s.Name, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = s.Name
	attrs.Alias = alias // in case the kernel honours it on creation
	attrs.MTU = s.MTU
	attrs.HardwareAddr = mac
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create bridge %s: %w", s.Name, err)
	}
	// Re-read: on EEXIST someone else made it; trust nothing by name alone.
	link, err = netlink.LinkByName(s.Name)
	if err != nil {
		return nil, fmt.Errorf("re-read bridge %s after creating it: %w", s.Name, err)
	}
	if _, ok := link.(*netlink.Bridge); !ok {
		return nil, fmt.Errorf("link %s is a %s, not a bridge: %w", s.Name, link.Type(), ErrNotOwned)
	}
	if link.Attrs().Alias != alias {
		// Kernels ignore IFLA_IFALIAS when creating a link: mark it now, but
		// only if it is still unmarked (so created by us a moment ago). A
		// crash right here leaves an unmarked bridge, which EnsureBridge
		// then refuses, saying how to remove it.
		if link.Attrs().Alias != "" {
			return nil, fmt.Errorf("bridge %s has alias %q, not %q: %w", s.Name, link.Attrs().Alias, alias, ErrNotOwned)
		}
		if err := netlink.LinkSetAlias(link, alias); err != nil {
			return nil, fmt.Errorf("mark bridge %s as vpcroute's: %w", s.Name, err)
		}
	}
	return link, nil
}

// ensureOnlyAddr makes want the only IPv4 address of link: a stale address
// from an earlier configuration would keep routing a subnet that is gone.
func ensureOnlyAddr(link netlink.Link, want netip.Prefix) error {
	name := link.Attrs().Name
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", name, err)
	}
	found := false
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet)
		if ok && p == want {
			found = true
			continue
		}
		if err := netlink.AddrDel(link, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove stale address %s from %s: %w", a.IPNet, name, err)
		}
	}
	if found {
		return nil
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: want.Addr().AsSlice(), Mask: net.CIDRMask(want.Bits(), 32)}}
	if err := netlink.AddrAdd(link, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s to %s: %w", want, name, err)
	}
	return nil
}

// DeleteBridge deletes the bridge name if its alias says it is vpcroute's
// bridge for networkID. A bridge that is already gone is not an error; a
// link that is not marked for networkID is refused with ErrNotOwned.
func (Host) DeleteBridge(name, networkID string) error {
	link, err := netlink.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up bridge %s: %w", name, err)
	}
	if want := bridgeAlias(networkID); link.Attrs().Alias != want {
		return fmt.Errorf("refusing to delete link %s: alias %q is not %q: %w", name, link.Attrs().Alias, want, ErrNotOwned)
	}
	if err := netlink.LinkDel(link); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete bridge %s: %w", name, err)
	}
	return nil
}

// Bridges returns bridge name -> network ID for every bridge marked as
// vpcroute's, so the driver can find bridges left by networks it no longer
// knows.
func (Host) Bridges() (map[string]string, error) {
	bridges, err := markedBridges()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range bridges {
		out[l.Attrs().Name] = strings.TrimPrefix(l.Attrs().Alias, aliasPrefix)
	}
	return out, nil
}

// markedBridges lists the bridges marked as vpcroute networks'.
func markedBridges() ([]netlink.Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []netlink.Link
	for _, l := range links {
		if isBridgeMark(l) {
			out = append(out, l)
		}
	}
	return out, nil
}

// isBridgeMark says whether l is a bridge marked as a vpcroute network's.
func isBridgeMark(l netlink.Link) bool {
	if _, ok := l.(*netlink.Bridge); !ok {
		return false
	}
	id, ok := strings.CutPrefix(l.Attrs().Alias, aliasPrefix)
	return ok && id != "" && id != "veth"
}

// EnsureVeth creates the veth pair hostName/peerName, or repairs it: the
// host end is marked "vpcroute:veth", enslaved to bridge in hairpin mode,
// given mtu and set up. The peer stays in the current namespace, down, for Docker to move into
// the container and rename. A same-name link that is not a vpcroute veth is
// refused with ErrNotOwned.
func (Host) EnsureVeth(hostName, peerName, bridge string, mtu int) error {
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("look up bridge %s for veth %s: %w", bridge, hostName, err)
	}
	if _, ok := br.(*netlink.Bridge); !ok || !strings.HasPrefix(br.Attrs().Alias, aliasPrefix) {
		return fmt.Errorf("attach veth %s: link %s is not a vpcroute bridge: %w", hostName, bridge, ErrNotOwned)
	}
	host, err := ensureVethLink(hostName, peerName, br.Attrs().Index, mtu)
	if err != nil {
		return err
	}
	if mtu > 0 && host.Attrs().MTU != mtu {
		if err := netlink.LinkSetMTU(host, mtu); err != nil {
			return fmt.Errorf("set MTU %d on veth %s: %w", mtu, hostName, err)
		}
	}
	if host.Attrs().MasterIndex != br.Attrs().Index {
		if err := netlink.LinkSetMaster(host, br); err != nil {
			return fmt.Errorf("attach veth %s to bridge %s: %w", hostName, bridge, err)
		}
	}
	// Hairpin: with br_netfilter (which Docker loads), a container's
	// connection to a port published by itself is DNATed in the bridge and
	// must go back out of the port it came in on.
	if err := netlink.LinkSetHairpin(host, true); err != nil {
		return fmt.Errorf("set hairpin mode on veth %s: %w", hostName, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("set veth %s up: %w", hostName, err)
	}
	return nil
}

// AttachVeth puts the existing vpcroute veth hostName back on bridge, with the
// repairs EnsureVeth makes, and reports whether it exists. It never creates one:
// a network rebuilt after its records were lost takes back the veths of its
// running containers, whose other ends are inside the containers.
func (h Host) AttachVeth(hostName, bridge string, mtu int) (bool, error) {
	_, err := netlink.LinkByName(hostName)
	switch {
	case isNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("look up veth %s: %w", hostName, err)
	}
	return true, h.EnsureVeth(hostName, "", bridge, mtu)
}

// Veths returns the host ends of every veth marked as vpcroute's.
func (Host) Veths() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []string
	for _, l := range links {
		if _, ok := l.(*netlink.Veth); ok && l.Attrs().Alias == vethAlias {
			out = append(out, l.Attrs().Name)
		}
	}
	return out, nil
}

func ensureVethLink(hostName, peerName string, masterIndex, mtu int) (netlink.Link, error) {
	link, err := netlink.LinkByName(hostName)
	switch {
	case err == nil:
		if _, ok := link.(*netlink.Veth); !ok || link.Attrs().Alias != vethAlias {
			return nil, fmt.Errorf("link %s exists (%s, alias %q) and is not a vpcroute veth: %w; remove it or pick another name",
				hostName, link.Type(), link.Attrs().Alias, ErrNotOwned)
		}
		return link, nil
	case !isNotFound(err):
		return nil, fmt.Errorf("look up veth %s: %w", hostName, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = hostName
	attrs.Alias = vethAlias
	attrs.MTU = mtu
	attrs.MasterIndex = masterIndex
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: peerName}
	if err := netlink.LinkAdd(veth); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create veth pair %s/%s: %w", hostName, peerName, err)
	}
	link, err = netlink.LinkByName(hostName)
	if err != nil {
		return nil, fmt.Errorf("re-read veth %s after creating it: %w", hostName, err)
	}
	if _, ok := link.(*netlink.Veth); !ok {
		return nil, fmt.Errorf("link %s is a %s, not a veth: %w", hostName, link.Type(), ErrNotOwned)
	}
	if link.Attrs().Alias != vethAlias {
		if link.Attrs().Alias != "" {
			return nil, fmt.Errorf("veth %s has alias %q: %w", hostName, link.Attrs().Alias, ErrNotOwned)
		}
		if err := netlink.LinkSetAlias(link, vethAlias); err != nil {
			return nil, fmt.Errorf("mark veth %s as vpcroute's: %w", hostName, err)
		}
	}
	return link, nil
}

// DeleteVeth deletes the vpcroute veth whose host end is hostName, which
// also removes its peer. A veth that is already gone is not an error; a link
// not marked "vpcroute:veth" is refused with ErrNotOwned.
func (Host) DeleteVeth(hostName string) error {
	link, err := netlink.LinkByName(hostName)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up veth %s: %w", hostName, err)
	}
	if _, ok := link.(*netlink.Veth); !ok || link.Attrs().Alias != vethAlias {
		return fmt.Errorf("refusing to delete link %s (%s, alias %q): %w", hostName, link.Type(), link.Attrs().Alias, ErrNotOwned)
	}
	if err := netlink.LinkDel(link); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete veth %s: %w", hostName, err)
	}
	return nil
}

func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)
}

// randomMAC returns a random locally administered unicast MAC address.
func randomMAC() (net.HardwareAddr, error) {
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		return nil, fmt.Errorf("generate MAC address: %w", err)
	}
	mac[0] = mac[0]&^0x01 | 0x02
	return mac, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

package alloc

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrAddressesExhausted means every assignable address of a network is in use.
var ErrAddressesExhausted = errors.New("no free address left")

// ErrInUse means an address asked for is reserved already; the caller says by what.
var ErrInUse = errors.New("already in use on this network")

// AddrPool is the addressing of one network: where addresses come from and which
// ones are never handed out.
type AddrPool struct {
	Subnet  netip.Prefix
	Range   netip.Prefix // --ip-range; the whole subnet when unset
	Gateway netip.Addr
}

// DefaultGateway is the first usable address of subnet, as Docker's bridge uses.
func DefaultGateway(subnet netip.Prefix) netip.Addr {
	return subnet.Masked().Addr().Next()
}

// reserved reports why a is never handed out, or "" when it may be.
func (p AddrPool) reserved(a netip.Addr) string {
	s := p.Subnet.Masked()
	switch {
	case a == s.Addr():
		return "the network address"
	case s.Bits() < 31 && uint64(u32(a)) == lastOf(s):
		return "the broadcast address"
	case a == p.Gateway:
		return "the gateway"
	}
	return ""
}

// Check validates an address the user asked for (--ip): inside the subnet, not
// reserved, not in use (wrapping ErrInUse).
func (p AddrPool) Check(a netip.Addr, used func(netip.Addr) bool) error {
	if !p.Subnet.Contains(a) {
		return fmt.Errorf("address %s is outside the network's subnet %s: choose an address inside it", a, p.Subnet)
	}
	if why := p.reserved(a); why != "" {
		return fmt.Errorf("address %s is %s of %s: choose another address", a, why, p.Subnet)
	}
	if used(a) {
		return fmt.Errorf("address %s is %w", a, ErrInUse)
	}
	return nil
}

// Next returns the first free address after last, wrapping around the range, so a
// just-released address is not handed out again at once (ARP caches of peers still
// point at the old container). A zero last starts at the beginning of the range.
func (p AddrPool) Next(last netip.Addr, used func(netip.Addr) bool) (netip.Addr, error) {
	r := p.Range
	if !r.IsValid() {
		r = p.Subnet
	}
	r = r.Masked()
	first, end := uint64(u32(r.Addr())), lastOf(r)
	n := end - first + 1
	start := first
	if last.IsValid() && r.Contains(last) {
		start = uint64(u32(last)) + 1
	}
	for i := uint64(0); i < n; i++ {
		v := start + i
		if v > end {
			v -= n
		}
		a := addr(uint32(v))
		if p.reserved(a) == "" && !used(a) {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w in %s: remove unused containers or create a network with a larger --subnet/--ip-range", ErrAddressesExhausted, r)
}

// Broadcast is the last address of p.
func Broadcast(p netip.Prefix) netip.Addr { return addr(uint32(lastOf(p))) }

// CheckGateway refuses a gateway (an address with the subnet's length) that is no
// host address of the subnet, or has another length: the bridge would route
// something else.
func CheckGateway(subnet, gw netip.Prefix) error {
	s := subnet.Masked()
	switch {
	case !gw.IsValid() || !gw.Addr().Is4():
		return fmt.Errorf("gateway %s is not an IPv4 address: give --gateway inside %s", gw, s)
	case gw.Bits() != s.Bits():
		return fmt.Errorf("gateway %s has a /%d length, the subnet %s a /%d: give --gateway as an address inside the subnet", gw, gw.Bits(), s, s.Bits())
	case !s.Contains(gw.Addr()):
		return fmt.Errorf("gateway %s is outside the subnet %s: give --gateway inside it", gw.Addr(), s)
	case gw.Addr() == s.Addr() || (s.Bits() < 31 && gw.Addr() == Broadcast(s)):
		return fmt.Errorf("gateway %s is the network or broadcast address of %s: give another --gateway", gw.Addr(), s)
	}
	return nil
}

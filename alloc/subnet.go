// Package alloc holds vpcroute's allocation policy: which subnet a new network gets
// and which address a new endpoint gets. It is pure (no kernel, no cloud, no disk), so
// every rule is table-tested; the ipam package feeds it what is taken and persists the
// result.
package alloc

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Reserved are ranges a VPC never routes to an ECS, so a container subnet there would
// be unreachable: loopback, link-local (the metadata service), carrier-grade NAT (cloud
// service addresses) and the range Huawei Cloud reserves for its own services.
var Reserved = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("198.19.128.0/20"),
}

// ErrPoolExhausted means every subnet of the wanted size in the pool overlaps something.
var ErrPoolExhausted = errors.New("no free subnet left in the pool")

// FirstFree returns the lowest subnet of length bits inside pool that overlaps none of
// taken. It skips over each taken range instead of testing every candidate, so a /8
// pool full of /24s costs one pass over taken.
func FirstFree(pool netip.Prefix, bits int, taken []netip.Prefix) (netip.Prefix, error) {
	if !pool.Addr().Is4() || bits < pool.Bits() || bits > 32 {
		return netip.Prefix{}, fmt.Errorf("cannot carve /%d subnets from %s", bits, pool)
	}
	ts := make([]netip.Prefix, 0, len(taken))
	for _, t := range taken {
		if t.Addr().Is4() && t.Overlaps(pool) {
			ts = append(ts, t.Masked())
		}
	}
	slices.SortFunc(ts, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })

	size := uint64(1) << (32 - bits)
	start := u32(pool.Addr())
	end := uint64(start) + uint64(1)<<(32-pool.Bits()) // exclusive
	cand := uint64(start)
	i := 0
	for cand+size <= end {
		c := netip.PrefixFrom(addr(uint32(cand)), bits)
		// Drop taken ranges that end before the candidate starts.
		for i < len(ts) && lastOf(ts[i]) < cand {
			i++
		}
		next := uint64(0)
		for j := i; j < len(ts) && uint64(u32(ts[j].Addr())) <= lastOf(c); j++ {
			if ts[j].Overlaps(c) {
				if l := lastOf(ts[j]) + 1; l > next {
					next = l
				}
			}
		}
		if next == 0 {
			return c, nil
		}
		// Jump past the blocking range, rounded up to the next aligned candidate.
		cand = (next + size - 1) / size * size
	}
	return netip.Prefix{}, fmt.Errorf("%w: every /%d in %s overlaps a VPC route, a host route or another network; remove unused networks, or set VPCROUTE_POOL to a larger range or VPCROUTE_SUBNET_SIZE to a longer prefix", ErrPoolExhausted, bits, pool)
}

// Overlapping returns the first of taken that overlaps p, if any.
func Overlapping(p netip.Prefix, taken []netip.Prefix) (netip.Prefix, bool) {
	for _, t := range taken {
		if t.Overlaps(p) {
			return t, true
		}
	}
	return netip.Prefix{}, false
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// lastOf is the last address of p as a number.
func lastOf(p netip.Prefix) uint64 {
	p = p.Masked()
	return uint64(u32(p.Addr())) + uint64(1)<<(32-p.Bits()) - 1
}

// Routable subnet lengths: a /16 holds a whole region's worth of containers on one
// host, and a /29 is the smallest with room for a gateway and a few containers.
const (
	MinBits = 16
	MaxBits = 29
)

// Ranges no host may have: 0.0.0.0/8 ("this network") and 240.0.0.0/4 (class E,
// with the broadcast address).
var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	classE      = netip.MustParsePrefix("240.0.0.0/4")
)

// CheckSubnet says whether p can be a vpcroute network's subnet: IPv4, a network
// address, from /16 to /29.
func CheckSubnet(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is4() {
		return fmt.Errorf("subnet %s is not an IPv4 CIDR: give --subnet like 10.0.2.0/24", p)
	}
	if p.Masked() != p {
		return fmt.Errorf("subnet %s is not a network address: use --subnet %s", p, p.Masked())
	}
	if a := p.Addr(); a.IsMulticast() || a.IsLoopback() || classE.Contains(a) || thisNetwork.Contains(a) {
		return fmt.Errorf("subnet %s is not a unicast range a VPC can route (multicast, loopback, reserved or broadcast): give a --subnet such as 10.0.2.0/24", p)
	}
	if p.Bits() < MinBits || p.Bits() > MaxBits {
		return fmt.Errorf("subnet %s has a /%d prefix: vpcroute routes subnets from /%d to /%d; give a --subnet in that range", p, p.Bits(), MinBits, MaxBits)
	}
	return nil
}

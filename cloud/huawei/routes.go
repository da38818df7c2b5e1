package huawei

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// descriptionPrefix marks the routes vpcroute owns: only routes whose
// description starts with it are ever changed or deleted.
const descriptionPrefix = "vpcroute"

// maxDescription is the VPC API's limit on a route description.
const maxDescription = 255

// Route types as the API shows them.
const (
	routeTypeECS   = "ecs"
	routeTypeLocal = "local"
)

// systemRanges are the system routes Huawei shows as "local" in every route
// table besides the subnets' own; they are taken but not the VPC's ranges.
var systemRanges = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("198.19.128.0/20"),
}

// describe is the description of a route vpcroute creates:
// "vpcroute owner=<Owner> net=<Docker network name> host=<Hostname>", net=
// only where the name is known, within the API's limits (255 characters, no <
// or >). Docker network names have no spaces, so the fields stay apart.
func describe(owner, network, hostname string) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			switch {
			case r == '<' || r == '>':
				return -1
			case r < ' ' || r == 0x7f:
				return ' '
			}
			return r
		}, s)
	}
	d := descriptionPrefix + " owner=" + clean(owner)
	if network != "" && !strings.ContainsAny(network, " \t") {
		d += " net=" + clean(network)
	}
	d += " host=" + clean(hostname)
	if len(d) > maxDescription {
		d = d[:maxDescription]
		for !utf8.ValidString(d) {
			d = d[:len(d)-1]
		}
	}
	return d
}

// parsedDescription is what a vpcroute description says.
type parsedDescription struct {
	Owner, Network, Host string
}

// parseDescription reads a description written by describe; ok is false for
// routes that are not vpcroute's.
func parseDescription(d string) (parsedDescription, bool) {
	rest, ok := strings.CutPrefix(d, descriptionPrefix+" ")
	if !ok {
		return parsedDescription{}, false
	}
	var p parsedDescription
	for _, field := range strings.Fields(rest) {
		if v, ok := strings.CutPrefix(field, "owner="); ok && p.Owner == "" {
			p.Owner = v
		}
		if v, ok := strings.CutPrefix(field, "net="); ok && p.Network == "" && p.Host == "" {
			p.Network = v
		}
	}
	if _, host, ok := strings.Cut(rest, " host="); ok {
		p.Host = host
	} else if h, ok := strings.CutPrefix(rest, "host="); ok {
		p.Host = h
	}
	return p, p.Owner != ""
}

// destination parses a route's destination; ok is false for anything that is
// not an IPv4 prefix (IPv6 routes, malformed data).
func (r route) destination() (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(r.Destination)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, false
	}
	return p.Masked(), true
}

// isLocal says whether the route is the system's (a subnet or a system range).
func (r route) isLocal() bool { return r.Type == routeTypeLocal }

// ownedBy says whether r is vpcroute's route to instance for owner.
func (r route) ownedBy(instance, owner string) bool {
	if r.Type != routeTypeECS || r.NextHop != instance {
		return false
	}
	d, ok := parseDescription(r.Description)
	return ok && d.Owner == owner
}

// customCount is the number of routes of a table that count against the quota.
func customCount(routes []route) int {
	n := 0
	for _, r := range routes {
		if !r.isLocal() {
			n++
		}
	}
	return n
}

// isSystemRange says whether p is one of Huawei's system routes.
func isSystemRange(p netip.Prefix) bool {
	for _, s := range systemRanges {
		if s == p {
			return true
		}
	}
	return false
}

// comparePrefix orders prefixes by address, then by length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

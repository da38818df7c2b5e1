package hostnet

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Tables and chains. vpcroute keeps its rules in chains of its own, reached
// by one marked jump from each built-in chain, so that Docker reordering the
// built-in chains never reorders vpcroute's rules.
const (
	tableFilter = "filter"
	tableNAT    = "nat"

	chainForward     = "VPCROUTE-FORWARD"     // filter FORWARD: let routed container traffic through a DROP policy
	chainInput       = "VPCROUTE-INPUT"       // filter INPUT: guard 127.0.0.0/8 on bridges with route_localnet
	chainDNAT        = "VPCROUTE-DNAT"        // nat PREROUTING+OUTPUT, dst-type LOCAL: published ports
	chainPostrouting = "VPCROUTE-POSTROUTING" // nat POSTROUTING: masquerade

	// baseComment marks the jumps into vpcroute's chains; Prune keeps them.
	baseComment = "vpcroute"
	// commentPrefix + network ID marks every rule of one network.
	commentPrefix = "vpcroute:"
)

// rule is one iptables rule of vpcroute's.
type rule struct {
	table, chain string
	// insert puts a missing rule first in its chain instead of last; used
	// for rules that must win over rules of other networks.
	insert bool
	spec   []string
}

func (r rule) String() string {
	return fmt.Sprintf("-t %s -A %s %s", r.table, r.chain, strings.Join(r.spec, " "))
}

type chainRef struct{ table, chain string }

// baseChains are vpcroute's own chains.
var baseChains = []chainRef{
	{tableFilter, chainForward},
	{tableFilter, chainInput},
	{tableNAT, chainDNAT},
	{tableNAT, chainPostrouting},
}

// baseJumps are the rules that lead from the built-in chains into
// vpcroute's. They go first so that nothing before them drops or
// masquerades vpcroute's traffic.
func baseJumps() []rule {
	c := []string{"-m", "comment", "--comment", baseComment}
	local := []string{"-m", "addrtype", "--dst-type", "LOCAL"}
	return []rule{
		{tableFilter, "FORWARD", true, join(c, "-j", chainForward)},
		{tableFilter, "INPUT", true, join(c, "-j", chainInput)},
		{tableNAT, "PREROUTING", true, join(local, c, "-j", chainDNAT)},
		{tableNAT, "OUTPUT", true, join(local, c, "-j", chainDNAT)},
		{tableNAT, "POSTROUTING", true, join(c, "-j", chainPostrouting)},
	}
}

// NetworkRules describes the firewall rules of one vpcroute network.
type NetworkRules struct {
	// NetworkID marks the rules ("vpcroute:<NetworkID>") so Prune can find
	// the rules of networks that no longer exist.
	NetworkID string
	// Bridge is the network's bridge device.
	Bridge string
	// Subnet is the network's container subnet, e.g. 10.0.2.0/24.
	Subnet netip.Prefix
	// Masquerade NATs outbound traffic to destinations outside NoNAT.
	Masquerade bool
	// Internal (docker network create --internal): nothing in or out except
	// within the bridge.
	Internal bool
	// NoNAT lists destinations never masqueraded: the VPC CIDRs and the
	// container pool, so the VPC sees container source addresses.
	NoNAT []netip.Prefix
}

func (r NetworkRules) validate() error {
	if err := validateNetworkID(r.NetworkID); err != nil {
		return err
	}
	if r.Bridge == "" || strings.ContainsAny(r.Bridge, " \t\n\"") || len(r.Bridge) > 15 {
		return fmt.Errorf("network %s: bad bridge name %q", r.NetworkID, r.Bridge)
	}
	if !r.Subnet.IsValid() || !r.Subnet.Addr().Is4() {
		return fmt.Errorf("network %s: subnet %v is not an IPv4 prefix", r.NetworkID, r.Subnet)
	}
	for _, p := range r.NoNAT {
		if !p.IsValid() || !p.Addr().Is4() {
			return fmt.Errorf("network %s: no-NAT prefix %v is not an IPv4 prefix", r.NetworkID, p)
		}
	}
	return nil
}

// validateNetworkID keeps IDs usable inside an iptables comment (at most 256
// bytes, no quoting surprises) and distinct from the base mark.
func validateNetworkID(id string) error {
	if id == "" || len(id) > 200 {
		return fmt.Errorf("network ID %q: must be 1-200 characters", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("network ID %q: only letters, digits, '-', '_' and '.' are allowed", id)
		}
	}
	return nil
}

func networkComment(id string) []string {
	return []string{"-m", "comment", "--comment", commentPrefix + id}
}

// networkRules returns the rules of one network in the order they are
// added; DeleteNetwork removes them in reverse.
func networkRules(r NetworkRules) ([]rule, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	c := networkComment(r.NetworkID)
	br := r.Bridge
	subnet := r.Subnet.Masked().String()
	var rules []rule
	if r.Internal {
		// The drops are inserted first in the chain so that another
		// network's accepts cannot let traffic of this one through; they
		// exclude bridge-to-bridge traffic so their order does not matter.
		return append(rules,
			rule{tableFilter, chainForward, true, join([]string{"-i", br, "!", "-o", br}, c, "-j", "DROP")},
			rule{tableFilter, chainForward, true, join([]string{"!", "-i", br, "-o", br}, c, "-j", "DROP")},
			rule{tableFilter, chainForward, false, join([]string{"-i", br, "-o", br}, c, "-j", "ACCEPT")},
		), nil
	}
	rules = append(rules,
		// route_localnet on the bridge (for ports published on 127.0.0.1)
		// would also let containers reach services bound to the host's
		// loopback; drop that unless it is the reply to a DNATed connection.
		rule{tableFilter, chainInput, false, join([]string{"-i", br, "-d", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT"}, c, "-j", "DROP")},
		// Routed traffic in both directions; the source/destination match
		// keeps spoofed addresses out. Replies need no conntrack rule since
		// both directions are accepted outright.
		rule{tableFilter, chainForward, false, join([]string{"-s", subnet, "-i", br}, c, "-j", "ACCEPT")},
		rule{tableFilter, chainForward, false, join([]string{"-d", subnet, "-o", br}, c, "-j", "ACCEPT")},
		// Published ports, hairpin: a container reaching a port on the host
		// that leads back into its own bridge must see the reply come from
		// the host, else it answers directly and the connection breaks.
		// Inserted first: the no-NAT accepts below must not shadow it.
		rule{tableNAT, chainPostrouting, true, join([]string{"-s", subnet, "-o", br, "-m", "conntrack", "--ctstate", "DNAT"}, c, "-j", "MASQUERADE")},
		// Published ports reached from the host itself, 127.0.0.1 included:
		// a loopback source cannot leave the host.
		rule{tableNAT, chainPostrouting, true, join([]string{"-o", br, "-m", "addrtype", "--src-type", "LOCAL", "-m", "conntrack", "--ctstate", "DNAT"}, c, "-j", "MASQUERADE")},
	)
	if r.Masquerade {
		// ACCEPT (not RETURN) ends nat POSTROUTING for the connection, so
		// no later rule of another tool masquerades traffic to the VPC.
		for _, p := range r.NoNAT {
			rules = append(rules, rule{tableNAT, chainPostrouting, false, join([]string{"-s", subnet, "-d", p.Masked().String()}, c, "-j", "ACCEPT")})
		}
		rules = append(rules, rule{tableNAT, chainPostrouting, false, join([]string{"-s", subnet, "!", "-o", br}, c, "-j", "MASQUERADE")})
	}
	return rules, nil
}

// PortMap is one published port of one container.
type PortMap struct {
	// NetworkID marks the rule, as for NetworkRules.
	NetworkID string
	// Proto is "tcp", "udp" or "sctp".
	Proto string
	// HostIP restricts the port to one host address; the zero Addr or
	// 0.0.0.0 publishes it on every host address, 127.0.0.1 included.
	HostIP netip.Addr
	// HostPort is the published port.
	HostPort uint16
	// ContainerIP and ContainerPort are where the port leads.
	ContainerIP   netip.Addr
	ContainerPort uint16
	// Bridge is the container's bridge. The rule itself does not need it:
	// the network's rules masquerade hairpin and host-local connections.
	Bridge string
}

func (p PortMap) String() string {
	host := "*"
	if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
		host = p.HostIP.String()
	}
	return fmt.Sprintf("%s %s:%d -> %s:%d", p.Proto, host, p.HostPort, p.ContainerIP, p.ContainerPort)
}

// portRule returns the single DNAT rule of a published port. It is reached
// from nat PREROUTING (other hosts, containers) and nat OUTPUT (the host
// itself) for destinations of type LOCAL.
func portRule(p PortMap) (rule, error) {
	if err := validateNetworkID(p.NetworkID); err != nil {
		return rule{}, fmt.Errorf("port %v: %w", p, err)
	}
	switch p.Proto {
	case "tcp", "udp", "sctp":
	default:
		return rule{}, fmt.Errorf("port %v: protocol %q is not tcp, udp or sctp", p, p.Proto)
	}
	if p.HostPort == 0 || p.ContainerPort == 0 {
		return rule{}, fmt.Errorf("port %v: host and container ports must be set (the driver picks a host port for 0)", p)
	}
	if !p.ContainerIP.Is4() {
		return rule{}, fmt.Errorf("port %v: container address must be IPv4", p)
	}
	if p.HostIP.IsValid() && !p.HostIP.Is4() {
		return rule{}, fmt.Errorf("port %v: host address must be IPv4", p)
	}
	spec := []string{"-p", p.Proto}
	if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
		spec = append(spec, "-d", p.HostIP.String()+"/32")
	}
	spec = append(spec, "-m", p.Proto, "--dport", strconv.Itoa(int(p.HostPort)))
	spec = join(spec, networkComment(p.NetworkID), "-j", "DNAT", "--to-destination",
		netip.AddrPortFrom(p.ContainerIP, p.ContainerPort).String())
	return rule{tableNAT, chainDNAT, false, spec}, nil
}

// join concatenates argument lists and single arguments.
func join(parts ...any) []string {
	var out []string
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			out = append(out, v)
		case []string:
			out = append(out, v...)
		default:
			panic(fmt.Sprintf("join: unexpected %T", p))
		}
	}
	return out
}

// ruleNetworkID returns the network ID in the vpcroute comment of a rule as
// printed by iptables -S, and whether the rule carries such a comment. Base
// jumps ("vpcroute") report ok with an empty ID.
func ruleNetworkID(args []string) (id string, ok bool) {
	for i := 0; i+1 < len(args); i++ {
		if args[i] != "--comment" {
			continue
		}
		switch v := args[i+1]; {
		case v == baseComment:
			return "", true
		case strings.HasPrefix(v, commentPrefix):
			return strings.TrimPrefix(v, commentPrefix), true
		}
	}
	return "", false
}

// splitRule splits a rule as printed by iptables -S / iptables-save into
// arguments, undoing the double quotes (with \" and \\ escapes) iptables
// puts around values such as comments.
func splitRule(line string) ([]string, error) {
	var (
		args    []string
		cur     strings.Builder
		inQuote bool
		have    bool
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (c == ' ' || c == '\t'):
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote in rule %q", line)
	}
	if have {
		args = append(args, cur.String())
	}
	return args, nil
}

package firewall

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Tables and chains. vpcroute keeps its rules in chains of its own, reached
// by one marked jump from each built-in chain, so that Docker reordering the
// built-in chains never reorders vpcroute's rules.
const (
	tableFilter = "filter"
	tableNAT    = "nat"

	chainForward = "VPCROUTE-FORWARD" // filter FORWARD: let routed container traffic through a DROP policy
	chainEgress  = "VPCROUTE-EGRESS"  // filter, from VPCROUTE-FORWARD: what leaves each bridge (spoofing, icc, Docker's networks)
	chainIngress = "VPCROUTE-INGRESS" // filter, from VPCROUTE-FORWARD: what may enter each bridge (isolate, allow)
	// chainAccept held each network's accept, after the egress and ingress chains,
	// until 2026-12-02; each egress chain ends with that accept now. Sync,
	// EnsureBase and RemoveAll remove the chain where an earlier release left it.
	chainAccept      = "VPCROUTE-ACCEPT"
	chainDocker      = "VPCROUTE-DOCKER"      // filter, from the networks' chains: drop traffic to or from Docker's own networks
	chainInput       = "VPCROUTE-INPUT"       // filter INPUT: guard 127.0.0.0/8 on bridges with route_localnet
	chainDNAT        = "VPCROUTE-DNAT"        // nat PREROUTING+OUTPUT, while a port is published: the published ports
	chainPostrouting = "VPCROUTE-POSTROUTING" // nat POSTROUTING: masquerade
	chainPorts       = "VPCROUTE-PORTS"       // nat, from VPCROUTE-POSTROUTING for DNATed connections while a port is published: to each bridge's masquerade of published ports

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
	{tableFilter, chainEgress},
	{tableFilter, chainIngress},
	{tableFilter, chainDocker},
	{tableFilter, chainInput},
	{tableNAT, chainDNAT},
	{tableNAT, chainPostrouting},
	{tableNAT, chainPorts},
}

// baseJumps are the rules that lead from the built-in chains into
// vpcroute's. They go first so that nothing before them drops or
// masquerades vpcroute's traffic.
//
// The jumps carry no comment and no match module: FORWARD's is evaluated for
// every forwarded packet, INPUT's for every packet to the host and the nat jump
// for every new connection, vpcroute's or not, and on iptables-legacy (or an
// iptables-nft that does not translate the module) each match module is a call
// for each of them. Their target, a chain of vpcroute's, says whose they are.
//
// The jumps that only published ports need are not base jumps: see portJumps.
// Those into VPCROUTE-DNAT do not ask for a local destination either: each
// published port's rule does, after its protocol and port, native comparisons
// that turn away every other connection (see portRule).
func baseJumps() []rule {
	return []rule{
		{tableFilter, "FORWARD", true, []string{"-j", chainForward}},
		{tableFilter, "INPUT", true, []string{"-j", chainInput}},
		{tableNAT, "POSTROUTING", true, []string{"-j", chainPostrouting}},
	}
}

// portJumps lead to the rules of published ports: from nat PREROUTING and OUTPUT
// into VPCROUTE-DNAT (the ports' DNAT rules), and, first in VPCROUTE-POSTROUTING,
// DNATed connections into VPCROUTE-PORTS (each bridge's masquerade of host-local
// and hairpin connections to its ports). They are there only while a port is
// published: the nat table sees the first packet of every connection, forwarded
// or the host's own, and without ports these three rules would turn every one of
// them away for nothing (on the two ECSs of a connection between containers, four
// of the rules its first packet walked). EnsurePort puts them in before its rule;
// DeletePort leaves them, and the background repair (Sync) takes them out once no
// port is left: the controller computes the ports it gives Sync under the lock it
// publishes ports under, so a port published meanwhile is among them.
func portJumps() []rule {
	return []rule{
		{tableNAT, "PREROUTING", true, []string{"-j", chainDNAT}},
		{tableNAT, "OUTPUT", true, []string{"-j", chainDNAT}},
		{tableNAT, chainPostrouting, true, portsGuard()},
	}
}

// portsGuard is the rule of VPCROUTE-POSTROUTING that takes DNATed connections to
// the published ports' masquerade, while a port is published.
func portsGuard() []string {
	return []string{"-m", "conntrack", "--ctstate", "DNAT", "-j", chainPorts}
}

// legacyBaseJumps are the base jumps of earlier releases that baseJumps no
// longer makes (the same jumps with vpcroute's comment), for EnsureBase and
// RemoveAll to take away; Sync replaces any jump into a base chain that is not
// baseJumps' own.
func legacyBaseJumps() []rule {
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

// forwardTail are the rules of VPCROUTE-FORWARD after the fast path: a new
// connection is checked where it leaves its bridge (its network's egress chain:
// spoofed sources, icc, Docker's networks, then the ingress chains, then the
// accept), or, when it did not come from a vpcroute bridge (the VPC, Docker's
// networks), where it enters one (the network's ingress chain: isolate, allow).
// Each network's rules go in chains of their own, so that the order between
// networks never matters: no network's accept can come before another's check.
// They carry no comment (see isBaseForwardRule): every packet the fast path does
// not take walks them, Docker's own networks' included.
//
// A packet in from the uplink (b.uplink()) skips the egress chain: it holds one
// jump per network, each for packets in from the network's bridge, so the first
// packet of every connection from the VPC walked them all for nothing (on the ECS
// a connection between containers enters, one rule per network).
func forwardTail(b Base) [][]string {
	egress := []string{"-j", chainEgress}
	if up := b.uplink(); up != "" {
		egress = join("!", "-i", up, egress)
	}
	return [][]string{
		egress,
		{"-j", chainIngress},
	}
}

// isBaseForwardRule says whether a rule of VPCROUTE-FORWARD (its arguments as
// iptables-save prints them) is one of vpcroute's base rules there, of this
// release or of an earlier one: a jump into the tail's chains, or a fast path
// accept of any pool. These rules carry no comment, since each is evaluated for
// most forwarded packets and a comment is an xtables match on iptables-nft; the
// chain they are in is vpcroute's, and their shape says what they are. Earlier
// releases marked them with vpcroute's comment; a network's rules are never
// base rules.
func isBaseForwardRule(args []string) bool {
	if id, marked := ruleNetworkID(args); marked && id != "" {
		return false
	}
	target, est, addr, iface := "", false, 0, false
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-j", "-g":
			target = args[i+1]
		case "--ctstate":
			est = args[i+1] == "RELATED,ESTABLISHED"
		case "-s", "-d":
			addr++
		case "-i", "-o":
			iface = true
		}
	}
	switch target {
	case chainEgress, chainIngress, chainAccept:
		return true
	case "ACCEPT":
		return est && addr >= 1 && !iface
	}
	return false
}

// dockerBridges are the bridges of Docker's own networks whatever their names in
// Docker's list: the default bridge, user bridges (br-<ID>) and Swarm's gateway
// bridge.
var dockerBridges = []string{"docker0", "br-+", "docker_gwbridge"}

// dockerRules are the rules of VPCROUTE-DOCKER: it drops what comes from or goes to
// one of Docker's bridges (extra: bridges of Docker networks named with
// com.docker.network.bridge.name) unless it goes to a published port (DNAT), of
// Docker's or of vpcroute's. The networks' chains jump here only for traffic
// of their own bridge, so that Docker's networks and vpcroute's never reach each
// other through the host, as Docker isolates its own bridges from each other.
// The bridge comes first, a native comparison: the conntrack and comment
// matches, xtables calls on iptables-nft, run only for packets of Docker's
// bridges, not for every new connection of vpcroute's networks.
func dockerRules(extra []string) [][]string {
	m := []string{"-m", "conntrack", "!", "--ctstate", "DNAT", "-m", "comment", "--comment", baseComment, "-j", "DROP"}
	var out [][]string
	for _, b := range append(slices.Clone(dockerBridges), extra...) {
		out = append(out, join("-i", b, m), join("-o", b, m))
	}
	return out
}

// Base is what EnsureBase needs to know about the host: settings of the
// plugin, not of one network.
type Base struct {
	// ForwardAccept sets the filter FORWARD policy to ACCEPT, as Huawei's
	// guide does; otherwise the policy is left alone and vpcroute's own
	// rules admit its traffic.
	ForwardAccept bool
	// Pool is the container pool (VPCROUTE_POOL), the addresses of every
	// vpcroute network on every host. Packets of connections already
	// accepted to or from it are accepted at the top of VPCROUTE-FORWARD
	// instead of walking every network's chain (see fastPathRules). The
	// zero Prefix leaves the fast path out: every packet then walks the
	// networks' chains.
	Pool netip.Prefix
	// DockerBridges are the bridges of Docker's networks that have names of their
	// own (com.docker.network.bridge.name), isolated as docker0 and br-* are.
	DockerBridges []string
	// NoNAT is what the networks never masquerade to (NetworkRules.NoNAT, the
	// same for every network): when it holds the whole pool, connections from
	// the pool to the pool are accepted at the head of VPCROUTE-POSTROUTING (see
	// poolShortcut).
	NoNAT []netip.Prefix
	// Uplink is the host's way to the VPC (NetworkRules.Uplink): what comes in
	// through it skips the networks' egress jumps (see forwardTail). "" or a name
	// of Docker's bridges: every packet walks them.
	Uplink string
	// PoolOthers are the address ranges of this host inside the pool (or holding
	// it) that are not vpcroute's bridges: a Docker network made inside the pool,
	// say. What comes from them keeps the masquerade of whoever owns them.
	PoolOthers []netip.Prefix
}

func (b Base) validate() error {
	if b.Pool != (netip.Prefix{}) && (!b.Pool.IsValid() || !b.Pool.Addr().Is4()) {
		return fmt.Errorf("container pool %v is not an IPv4 prefix: pass the pool vpcroute allocates subnets from, e.g. 10.0.0.0/16", b.Pool)
	}
	for _, br := range b.DockerBridges {
		if err := validIfName(br); err != nil {
			return fmt.Errorf("a bridge of Docker's: %w", err)
		}
	}
	if b.Uplink != "" {
		if err := validIfName(b.Uplink); err != nil {
			return fmt.Errorf("uplink: %w", err)
		}
	}
	for _, p := range append(slices.Clone(b.NoNAT), b.PoolOthers...) {
		if !p.IsValid() || !p.Addr().Is4() {
			return fmt.Errorf("no-NAT range or host range %v is not an IPv4 prefix", p)
		}
	}
	return nil
}

// poolShortcut are the rules that head VPCROUTE-POSTROUTING (after only the guard
// of published ports): a connection from the pool to the pool is never
// masqueraded, and is accepted by one rule instead of walking its network's
// dispatch and no-NAT accepts on the ECS it leaves (three rules) and every
// network's dispatch on the ECS it enters (one per network), on the first packet
// of every connection between containers. The sources of other owners inside the
// pool (b.PoolOthers: a Docker network's bridge, say) return first, to the
// masquerade of their owner's rules in POSTROUTING. There is no shortcut without
// a pool, when the networks masquerade some of the pool (NoNAT does not hold it),
// or when a range of another owner holds the whole pool; each network's own
// no-NAT accepts then do the work. The rules carry no comment (one more xtables
// call each on iptables-nft); their shape and chain say whose they are (see
// isPoolShortcutRule).
func poolShortcut(b Base) (returns, accept [][]string) {
	if !b.Pool.IsValid() {
		return nil, nil
	}
	pool := b.Pool.Masked()
	if !slices.ContainsFunc(b.NoNAT, func(p netip.Prefix) bool { return p.Bits() <= pool.Bits() && p.Contains(pool.Addr()) }) {
		return nil, nil
	}
	var others []netip.Prefix
	for _, p := range b.PoolOthers {
		p = p.Masked()
		switch {
		case !p.Overlaps(pool):
		case p.Bits() <= pool.Bits():
			return nil, nil // every source in the pool may be another owner's
		default:
			others = append(others, p)
		}
	}
	slices.SortFunc(others, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	for _, p := range slices.Compact(others) {
		returns = append(returns, []string{"-s", p.String(), "-j", "RETURN"})
	}
	return returns, [][]string{{"-s", pool.String(), "-d", pool.String(), "-j", "ACCEPT"}}
}

// isPoolShortcutRule says whether a rule of VPCROUTE-POSTROUTING (its arguments as
// iptables-save prints them) has the shape of poolShortcut's rules, of any pool or
// range: unmarked, a source, perhaps a destination, and RETURN or ACCEPT. Sync
// replaces those that are not the current ones.
func isPoolShortcutRule(args []string) bool {
	switch {
	case len(args) == 4 && args[0] == "-s" && args[2] == "-j" && args[3] == "RETURN":
		return true
	case len(args) == 6 && args[0] == "-s" && args[2] == "-d" && args[4] == "-j" && args[5] == "ACCEPT":
		return true
	}
	return false
}

// validIfName keeps an interface name usable in a rule.
func validIfName(name string) error {
	if name == "" || strings.ContainsAny(name, " \t\n\"/") || len(name) > 15 {
		return fmt.Errorf("bad interface name %q", name)
	}
	return nil
}

// fastPathRules are the rules EnsureBase keeps at the top of
// VPCROUTE-FORWARD, after only the jumps of internal networks: they accept
// the packets of connections already accepted (RELATED, ESTABLISHED) whose
// source or destination is in the pool. Without them each packet walks one
// jump per network, in creation order, before its own network's accept; on
// iptables-nft each of those jumps is an xtables match (-m comment) of its
// own, which costs a newest network measurable throughput. New connections
// still need their network's accept, so the fast path lets through nothing
// the per-network chains would not. Scoping it to the pool keeps it from
// accepting other forwarded traffic (Docker's own networks, say) ahead of
// rules a user keeps in DOCKER-USER. The internal networks' drops come
// first so that no packet leaves or enters an internal network's bridge by
// belonging to a connection its container has on another network. The
// rules carry no comment, which iptables-nft would evaluate as one more
// xtables match for every packet accepted (see isBaseForwardRule). The
// second rule leaves out what the first one looked at already (a source in the
// pool), so that the first packet of a connection between two containers calls
// conntrack's match once, not twice; its words are in the order iptables-save
// prints them, which forwardOrderScript compares against.
func fastPathRules(pool netip.Prefix) [][]string {
	if !pool.IsValid() {
		return nil
	}
	p := pool.Masked().String()
	est := []string{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"}
	return [][]string{
		join("-s", p, est),
		join("!", "-s", p, "-d", p, est),
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
	// Pool is Base.Pool, the prefix whose established traffic the fast path
	// accepts before any network's chain (the zero Prefix: no fast path). A
	// subnet inside it needs no conntrack accept of its own for packets from
	// its own addresses.
	Pool netip.Prefix
	// NoICC (com.docker.network.bridge.enable_icc=false): the network's
	// containers do not reach each other; published ports still work.
	NoICC bool
	// Isolate (vpcroute.isolate=true): nothing but the network itself opens
	// connections to its containers, from this host's other networks or from
	// the VPC; published ports still work.
	Isolate bool
	// Allow (vpcroute.allow): only these sources open connections to the
	// network's containers (published ports aside); empty allows every source.
	Allow []Allow
	// Uplink is the host's way to the VPC (the default route's device), which
	// must not be a bridge; "" when there is none. A connection between this
	// network and the VPC, in or out through it, cannot concern Docker's bridges
	// or this host's other vpcroute bridges, so the network's chains send only
	// other connections through the checks of those (VPCROUTE-DOCKER,
	// VPCROUTE-INGRESS): the first packet of a connection across ECSs walks
	// seven rules less on the client's ECS and six less on the server's. Any
	// interface that is not a bridge keeps the rules exact; the name is ignored
	// when it is the network's bridge or a name of Docker's bridges.
	Uplink string
}

// Allow is one entry of a network's edge policy: a source range, and the ports it
// may open connections to (none: every port and protocol).
type Allow struct {
	Source netip.Prefix
	Ports  []AllowPort
}

// AllowPort is a protocol and port of an Allow entry; Port 0 with Proto "icmp"
// allows pings.
type AllowPort struct {
	Proto string
	Port  uint16
}

func (a AllowPort) String() string {
	if a.Proto == "icmp" {
		return a.Proto
	}
	return fmt.Sprintf("%s/%d", a.Proto, a.Port)
}

// uplink is r.Uplink where it keeps the network's rules exact: not its own
// bridge, not a name of Docker's bridges.
func (r NetworkRules) uplink() string {
	if r.Uplink == r.Bridge {
		return ""
	}
	return exactUplink(r.Uplink)
}

// uplink is b.Uplink where it keeps the base rules exact: not a name of
// Docker's bridges (a vpcroute bridge is never the default route's device, see
// link.Host.Uplink).
func (b Base) uplink() string { return exactUplink(b.Uplink) }

// exactUplink is name, or "" when it is a name of Docker's bridges.
func exactUplink(name string) string {
	for _, b := range dockerBridges {
		if ifaceMatches(b, name) {
			return ""
		}
	}
	return name
}

// ifaceMatches says whether iptables' interface pattern (a trailing + matches any
// rest) matches the interface name.
func ifaceMatches(pattern, name string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "+"); ok {
		return strings.HasPrefix(name, prefix)
	}
	return pattern == name
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
	if r.Uplink != "" {
		if err := validIfName(r.Uplink); err != nil {
			return fmt.Errorf("network %s: uplink: %w", r.NetworkID, err)
		}
	}
	for _, p := range r.NoNAT {
		if !p.IsValid() || !p.Addr().Is4() {
			return fmt.Errorf("network %s: no-NAT prefix %v is not an IPv4 prefix", r.NetworkID, p)
		}
	}
	if r.Pool != (netip.Prefix{}) && (!r.Pool.IsValid() || !r.Pool.Addr().Is4()) {
		return fmt.Errorf("network %s: container pool %v is not an IPv4 prefix", r.NetworkID, r.Pool)
	}
	for _, a := range r.Allow {
		if !a.Source.IsValid() || !a.Source.Addr().Is4() {
			return fmt.Errorf("network %s: allowed source %v is not an IPv4 prefix", r.NetworkID, a.Source)
		}
		for _, p := range a.Ports {
			switch {
			case p.Proto == "icmp" && p.Port == 0:
			case (p.Proto == "tcp" || p.Proto == "udp" || p.Proto == "sctp") && p.Port != 0:
			default:
				return fmt.Errorf("network %s: allowed port %v: give tcp/PORT, udp/PORT, sctp/PORT or icmp", r.NetworkID, p)
			}
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

// Kinds of per-network chains. Each network's rules live in chains of its
// own, named from its ID, so that one iptables-restore can rewrite all of
// them at once (declaring a chain in a restore flushes it) and DeleteNetwork
// can drop them whole. The letter says what the chain does:
const (
	kindEgress  = 'E' // filter, from VPCROUTE-EGRESS for packets from the bridge: spoofing, icc, Docker's networks
	kindForward = 'F' // filter, from VPCROUTE-INGRESS for packets into the bridge: the edge policy; or, from VPCROUTE-FORWARD, isolate an internal network
	kindInput   = 'I' // filter, from VPCROUTE-INPUT: guard the host's loopback from the bridge
	kindPorts   = 'P' // nat, from VPCROUTE-PORTS (DNATed connections): masquerade for published ports
	kindNAT     = 'N' // nat, from VPCROUTE-POSTROUTING, last: outbound masquerade outside NoNAT
)

// netChainPrefix starts the name of every per-network chain:
// "VPCROUTE-<kind>-<suffix>", 27 bytes, within iptables' 28.
const netChainPrefix = "VPCROUTE-"

// chainSuffixLen is how much of a network ID names its chains. Docker's
// network IDs are 64 random hex digits; the first 12 are what `docker
// network ls` shows, so a person can match chains to networks, and 16 (64
// bits) make two networks sharing chains, which would rewrite each other's
// rules, as unlikely as two equal IDs.
const chainSuffixLen = 16

// chainSuffix returns the part of a network's chain names that identifies
// the network: the first 16 hex digits of a Docker network ID, or, for IDs
// of another form, the first 16 hex digits of their SHA-256, so that chain
// names stay short and free of characters iptables would reject.
func chainSuffix(id string) string {
	if len(id) == 64 && isLowerHex(id) {
		return id[:chainSuffixLen]
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])[:chainSuffixLen]
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// netChainName names the chain of kind for the network with the given ID.
func netChainName(kind byte, id string) string {
	return netChainPrefix + string(kind) + "-" + chainSuffix(id)
}

// parseNetChain reports whether name is a per-network chain, and the suffix
// that identifies its network.
func parseNetChain(name string) (suffix string, ok bool) {
	rest, ok := strings.CutPrefix(name, netChainPrefix)
	if !ok || len(rest) != 2+chainSuffixLen || rest[1] != '-' || !strings.ContainsRune("EFIPN", rune(rest[0])) {
		return "", false
	}
	return rest[2:], isLowerHex(rest[2:])
}

// isNetChainKind reports whether name is a per-network chain of kind.
func isNetChainKind(name string, kind byte) bool {
	_, ok := parseNetChain(name)
	return ok && name[len(netChainPrefix)] == kind
}

// netChain is one of a network's own chains: its rules, in order, and the
// jump into it from one of vpcroute's base chains.
type netChain struct {
	kind        byte
	table, name string
	// from is the base chain that jumps here; insert puts the jump first in
	// from (so it wins over other networks' chains), else last.
	from   string
	insert bool
	// match are the conditions of the jump (the bridge it is for).
	match []string
	// goTo makes the jump a goto (-g): a chain that falls off its end returns past
	// the rest of from, whose other rules are for other bridges and cannot match.
	goTo bool
	// markID, when set, marks the jump with the network's comment (see jump).
	markID string
	rules  [][]string
}

// jump returns the rule that leads from c.from into c. Most jumps carry no
// comment: their target, the network's chain, says whose they are (see
// parseNetChain), and a comment would be one more xtables call on iptables-nft
// for every packet the jump takes, the first packet of each of the network's
// connections. One jump per network keeps the mark with the full network ID, for
// Owners (the reconcile loop's list of networks the kernel holds rules of): the
// jump into the published ports' chain, taken only by connections to a published
// port, or an internal network's only jump.
func (c netChain) jump() rule {
	verb := "-j"
	if c.goTo {
		verb = "-g"
	}
	var mark []string
	if c.markID != "" {
		mark = networkComment(c.markID)
	}
	return rule{table: c.table, chain: c.from, insert: c.insert, spec: join(c.match, mark, verb, c.name)}
}

// allNetChains returns every chain a network with the given ID, bridge and
// subnet may have, empty, whatever its settings.
//
// Every jump carries the condition all the rules of its chain share (the
// bridge, or the subnet for outbound NAT), so that a packet of another network,
// of Docker's own, or for the host itself costs each network one native
// comparison: VPCROUTE-INPUT sees every packet to the host,
// VPCROUTE-POSTROUTING every new connection. The jumps into the published ports'
// chains sit in VPCROUTE-PORTS, behind one rule for all networks that takes
// DNATed connections only, and only while a port is published (see portJumps):
// a connection that is not to a published port walks none of them.
func allNetChains(id, br, subnet string) []netChain {
	return []netChain{
		{kind: kindEgress, table: tableFilter, name: netChainName(kindEgress, id), from: chainEgress, match: []string{"-i", br}, goTo: true},
		{kind: kindForward, table: tableFilter, name: netChainName(kindForward, id), from: chainIngress, match: []string{"-o", br}, goTo: true},
		{kind: kindInput, table: tableFilter, name: netChainName(kindInput, id), from: chainInput, match: []string{"-i", br}},
		{kind: kindPorts, table: tableNAT, name: netChainName(kindPorts, id), from: chainPorts, match: []string{"-o", br}, goTo: true, markID: id},
		{kind: kindNAT, table: tableNAT, name: netChainName(kindNAT, id), from: chainPostrouting, match: []string{"-s", subnet}},
	}
}

// networkChains returns the chains of one network with their rules. An
// internal network has only its forward chain; any other network has all
// four, some possibly empty (no outbound NAT without Masquerade), so that
// the set of chains depends on nothing that can change for a network.
//
// The rules in a network's own chains carry no comment: the chain's name says
// whose they are (Prune and DeleteNetwork remove chains by name, Sync compares
// them whole), and on iptables-nft a comment is one more xtables call for
// every packet a rule matches. Within each rule the native comparisons
// (addresses, interfaces) come first and decide most packets, so that the
// first packet of a connection calls as few conntrack matches as it can.
func networkChains(r NetworkRules) ([]netChain, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	br := r.Bridge
	subnet := r.Subnet.Masked().String()
	chains := allNetChains(r.NetworkID, br, subnet)
	egress, fwd, input, ports, nat := &chains[0], &chains[1], &chains[2], &chains[3], &chains[4]
	if r.Internal {
		// The jump goes first in VPCROUTE-FORWARD so that another network's
		// accepts cannot let traffic of this one through; the drops exclude
		// bridge-to-bridge traffic, which the accept after them lets through
		// (or, without icc, drops).
		fwd.from, fwd.insert, fwd.match, fwd.goTo, fwd.markID = chainForward, true, nil, false, r.NetworkID
		within := "ACCEPT"
		if r.NoICC {
			within = "DROP"
		}
		fwd.rules = [][]string{
			{"!", "-i", br, "-o", br, "-j", "DROP"},
			{"-i", br, "!", "-o", br, "-j", "DROP"},
			{"-i", br, "-o", br, "-j", within},
		}
		return []netChain{*fwd}, nil
	}
	// What leaves the bridge. The conntrack accept comes first for containers
	// on several networks: a reply from the address on another network leaves
	// through the bridge of the default route, with a source outside this
	// subnet. Anything else with a source outside the subnet is spoofed, and
	// dropped (the rule's counters count it), routed or masqueraded alike.
	// When the subnet is inside the pool, the fast path has accepted every
	// established packet from the subnet already, so the accept looks only at
	// other sources and a new connection's first packet skips its conntrack
	// match. Published ports of Docker's networks stay reachable (DNAT, see
	// dockerRules).
	est := []string{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"}
	if r.Pool.IsValid() && r.Pool.Bits() <= r.Subnet.Bits() && r.Pool.Contains(r.Subnet.Addr()) {
		est = join("!", "-s", subnet, est)
	}
	icc := []string{"-o", br, "-j", "ACCEPT"}
	if r.NoICC {
		// A published port of the network's own containers stays reachable
		// (hairpin), as with Docker's bridge; the ingress chain accepts it.
		icc = []string{"-o", br, "-m", "conntrack", "!", "--ctstate", "DNAT", "-j", "DROP"}
	}
	// Then where the connection enters: the ingress chain of the bridge it goes
	// to, if that is a vpcroute bridge of this host (a goto from
	// VPCROUTE-INGRESS, which returns here), and the accept. This accept, last
	// in the network's own chain, was a rule per network in a chain of its own
	// (VPCROUTE-ACCEPT) until 2026-12-02: one jump and one comment less for the
	// first packet of every connection.
	//
	// Connections out through the uplink skip those two jumps (see
	// NetworkRules.Uplink), as connections in from it skip the check of Docker's
	// bridges in the network's ingress chain below.
	var outLocal, inLocal []string
	if up := r.uplink(); up != "" {
		outLocal, inLocal = []string{"!", "-o", up}, []string{"!", "-i", up}
	}
	egress.rules = [][]string{
		est,
		{"!", "-s", subnet, "-j", "DROP"},
		icc,
		join(outLocal, "-j", chainDocker),
		join(outLocal, "-j", chainIngress),
		{"-j", "ACCEPT"},
	}
	// What enters the bridge from elsewhere (its own traffic ended in egress):
	// nothing from Docker's networks but their connections to published ports,
	// then the network's edge policy. A policy that drops comes after an
	// accept of published ports, which are open to every source; without a
	// policy the subnet's accept takes them anyway.
	toDocker := join(inLocal, "-j", chainDocker)
	switch {
	case r.Isolate:
		fwd.rules = [][]string{dnatAccept(), toDocker, {"-j", "DROP"}}
	case len(r.Allow) > 0:
		fwd.rules = [][]string{dnatAccept(), toDocker}
		for _, a := range r.Allow {
			src := []string{"-s", a.Source.Masked().String()}
			if len(a.Ports) == 0 {
				fwd.rules = append(fwd.rules, join(src, "-d", subnet, "-j", "ACCEPT"))
			}
			for _, p := range a.Ports {
				m := []string{"-p", p.Proto, "-m", p.Proto, "--dport", strconv.Itoa(int(p.Port))}
				if p.Proto == "icmp" {
					m = []string{"-p", "icmp", "-m", "icmp", "--icmp-type", "echo-request"}
				}
				fwd.rules = append(fwd.rules, join(src, "-d", subnet, m, "-j", "ACCEPT"))
			}
		}
		fwd.rules = append(fwd.rules, []string{"-j", "DROP"})
	default:
		fwd.rules = [][]string{toDocker, {"-d", subnet, "-j", "ACCEPT"}}
	}
	// route_localnet on the bridge (for ports published on 127.0.0.1) would
	// also let containers reach services bound to the host's loopback; drop
	// that unless it is the reply to a DNATed connection.
	input.rules = [][]string{
		{"-i", br, "-d", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP"},
	}
	// Published ports (only DNATed connections into the bridge reach the chain).
	// Reached from the host itself, 127.0.0.1 included: a loopback source
	// cannot leave the host. Hairpin: a container reaching a port on the host
	// that leads back into its own bridge must see the reply come from the
	// host, else it answers directly and the connection breaks. The chain is
	// reached first (VPCROUTE-PORTS' guard heads VPCROUTE-POSTROUTING): no
	// network's no-NAT accepts may shadow these. It is reached by a goto: a
	// connection it does not masquerade goes on after the guard.
	ports.rules = [][]string{
		{"-m", "addrtype", "--src-type", "LOCAL", "-j", "MASQUERADE"},
		{"-s", subnet, "-j", "MASQUERADE"},
	}
	if r.Masquerade {
		// ACCEPT (not RETURN) ends nat POSTROUTING for the connection, so
		// no later rule of another tool masquerades traffic to the VPC.
		for _, p := range r.NoNAT {
			nat.rules = append(nat.rules, []string{"-s", subnet, "-d", p.Masked().String(), "-j", "ACCEPT"})
		}
		nat.rules = append(nat.rules, []string{"-s", subnet, "!", "-o", br, "-j", "MASQUERADE"})
	}
	return chains, nil
}

// dnatAccept accepts connections to published ports (DNAT) into a bridge, ahead
// of an edge policy that would drop them.
func dnatAccept() []string {
	return []string{"-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"}
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
// itself) for every new connection, and takes those to its port on a local
// address: the protocol and port come first (native comparisons), the address
// type (an xtables match) only for connections to that port.
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
	spec = append(spec, "-m", p.Proto, "--dport", strconv.Itoa(int(p.HostPort)), "-m", "addrtype", "--dst-type", "LOCAL")
	spec = join(spec, networkComment(p.NetworkID), "-j", "DNAT", "--to-destination",
		netip.AddrPortFrom(p.ContainerIP, p.ContainerPort).String())
	return rule{tableNAT, chainDNAT, false, spec}, nil
}

// parsePortRule reads a rule of VPCROUTE-DNAT, as iptables-save printed it
// (without "-A CHAIN"), back into the PortMap portRule made it from; ok is false
// for anything else.
func parsePortRule(args []string) (p PortMap, ok bool) {
	id, marked := ruleNetworkID(args)
	if !marked || id == "" {
		return PortMap{}, false
	}
	p.NetworkID = id
	for i := 0; i+1 < len(args); i++ {
		v := args[i+1]
		switch args[i] {
		case "-p":
			p.Proto = v
		case "-d":
			a, err := netip.ParsePrefix(v)
			if err != nil || a.Bits() != 32 {
				return PortMap{}, false
			}
			p.HostIP = a.Addr()
		case "--dport":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return PortMap{}, false
			}
			p.HostPort = uint16(n)
		case "--to-destination":
			ap, err := netip.ParseAddrPort(v)
			if err != nil {
				return PortMap{}, false
			}
			p.ContainerIP, p.ContainerPort = ap.Addr(), ap.Port()
		}
	}
	if _, err := portRule(p); err != nil {
		return PortMap{}, false
	}
	return p, true
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

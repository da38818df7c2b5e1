// Package reconcile decides, as the Kubernetes route controller does, what it takes
// to bring this host in line with what it should be: one pure function compares the
// desired state (vpcroute's records, corrected by Docker's own list of networks) with
// the actual one (this ECS's vpcroute routes in the VPC route table, the
// vpcroute-marked bridges and rules in the kernel) and returns a list of actions. It
// does nothing itself: package controller applies the plan, under its locks, checking
// each action against the records again, since Docker calls go on meanwhile.
//
// Three rules keep the plan safe:
//   - Only what vpcroute marked is ever touched: routes with a vpcroute description
//     and this ECS as next hop, bridges with a vpcroute link alias, rules with a
//     vpcroute comment. An unmarked object is not even an input.
//   - A missing record is never an order to tear down: a marked object that no record
//     owns goes only when Docker's list confirms that no network of Docker's has it.
//     Without Docker's list (no access), such objects stay and are reported.
//   - Silence is not proof: a record younger than Grace when Docker's list was read
//     may belong to a network Docker has not stored yet, and a route is released
//     only after nothing has owned it for OrphanGrace.
package reconcile

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/state"
)

// Input is everything the plan depends on. Parts of the actual state that were not
// read in this cycle are nil: the plan then says nothing about them.
type Input struct {
	Now time.Time

	// Networks and Pools are vpcroute's records: what it was asked for.
	Networks []state.Network
	Pools    []state.Pool
	// Busy holds the network and pool IDs a Docker call is working on right now:
	// their records are in flux, and the plan leaves them alone.
	Busy map[string]bool
	// Forgotten holds the IDs of networks vpcroute removed lately, and the subnets
	// of pools it released lately: Docker may still list them for a moment, and
	// they must not be adopted back.
	Forgotten map[string]bool

	// Released holds the route owners vpcroute gave up lately: pools and networks
	// it released, claims cut short. A route of theirs that shows up is a write
	// the cloud applied late, and goes at once.
	Released map[string]bool

	// Docker is Docker's list of networks, nil when it could not be read.
	Docker *Docker

	// Routes are this ECS's vpcroute routes in the VPC route table; nil when the
	// cloud was not read in this cycle (or there is no cloud).
	Routes []cloud.Route
	// Routed says a cloud routes subnets: a network is then rebuilt only in a cycle
	// that read the route table, whose routes say which pool owned it.
	Routed bool
	// Bridges maps each vpcroute-marked bridge to the network ID in its mark; nil
	// when not read.
	Bridges map[string]string
	// RuleOwners are the network IDs that vpcroute rules are marked with; nil when
	// not read.
	RuleOwners map[string]bool

	// OrphanSince says since when each unowned route (RouteKey) has been seen
	// unowned; the plan returns it updated.
	OrphanSince map[string]time.Time
	// Grace is how old a record must be, when Docker's list was read, for its
	// absence from that list to count.
	Grace time.Duration
	// OrphanGrace is how long a vpcroute route to this ECS may stay unowned before
	// it is released.
	OrphanGrace time.Duration

	// BlockEmptySince says since when each host block has had no network; the plan
	// returns it updated. BlockGrace is how long an empty block stays claimed.
	BlockEmptySince map[string]time.Time
	BlockGrace      time.Duration
}

// Docker is Docker's list of networks.
type Docker struct {
	// ReadAt is when the read started: records made later may be missing from it.
	ReadAt   time.Time
	Networks []DockerNetwork
}

// DockerNetwork is one network of Docker's list.
type DockerNetwork struct {
	ID, Name string
	// Driver says the network's driver is vpcroute; IPAM that its IPAM driver is.
	Driver, IPAM bool
	// Subnet is its (first) IPv4 subnet; zero when it has none.
	Subnet netip.Prefix
}

// Kind is what an action does.
type Kind int

// Kinds of action, in the order a plan lists them: what frees subnets and routes
// first, then what rebuilds and claims, then kernel repairs and removals.
const (
	// FinishNetwork tears down a network's kernel objects, gives back the route it
	// holds itself, and forgets it.
	FinishNetwork Kind = iota
	// FinishPool gives back a pool's route and forgets it.
	FinishPool
	// ReleaseRoute removes a vpcroute route to this ECS that nothing owns.
	ReleaseRoute
	// Adopt rebuilds the records of a network Docker has and vpcroute lacks.
	Adopt
	// Claim adds a route that a live record holds but the route table lacks.
	Claim
	// Rename records the network's name in Docker.
	Rename
	// DeleteBridge removes a vpcroute bridge that belongs to no network.
	DeleteBridge
	// PruneRules removes the vpcroute rules of networks not in Keep.
	PruneRules
)

var kindNames = [...]string{"finish-network", "finish-pool", "release-route", "adopt", "claim", "rename", "delete-bridge", "prune-rules"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Action is one step of a plan.
type Action struct {
	Kind Kind
	// ID is the network ID (FinishNetwork, Adopt, Rename,
	// DeleteBridge) or the pool ID (FinishPool).
	ID     string
	Subnet netip.Prefix
	// Owner is the route owner (Claim, ReleaseRoute, Adopt when a route of this
	// ECS already has the network's subnet).
	Owner string
	// Name is the Docker network's name, where known.
	Name string
	// Bridge is the bridge to delete (DeleteBridge).
	Bridge string
	// Network and Pool say what Adopt rebuilds: the network (its driver is
	// vpcroute), its pool (its IPAM driver is vpcroute).
	Network, Pool bool
	// Block and BlockSubnet name this ECS's host block whose route covers the
	// subnet of a network Adopt rebuilds (its pool has no route of its own).
	Block       string
	BlockSubnet netip.Prefix
	// Keep lists the network IDs whose rules stay (PruneRules).
	Keep map[string]bool
	// Since is the Created time of the record the action was planned from
	// (FinishNetwork, FinishPool): the controller skips the
	// action if the record changed meanwhile.
	Since time.Time
	// Why says, for the log, why the action is needed.
	Why string
}

// Plan is what Compute decided.
type Plan struct {
	Actions []Action
	// Held lists what the plan leaves alone although it looks wrong, and why: the
	// controller logs each once.
	Held []string
	// OrphanSince is Input.OrphanSince for the next cycle.
	OrphanSince map[string]time.Time
	// BlockEmptySince is Input.BlockEmptySince for the next cycle.
	BlockEmptySince map[string]time.Time
}

// RouteKey identifies a route in OrphanSince.
func RouteKey(r cloud.Route) string { return r.Owner + " " + r.Destination.String() }

// Compute returns the plan for in. It is pure: the same input gives the same plan.
func Compute(in Input) Plan {
	p := planner{in: in, plan: Plan{OrphanSince: map[string]time.Time{}, BlockEmptySince: map[string]time.Time{}}}
	p.index()
	p.planNetworks()
	p.planPools()
	p.planAdopt()
	p.planRoutes()
	p.planBridges()
	p.planRules()
	slices.SortStableFunc(p.plan.Actions, func(a, b Action) int { return cmp.Compare(a.Kind, b.Kind) })
	return p.plan
}

type planner struct {
	in   Input
	plan Plan

	nets       map[string]state.Network
	pools      map[string]state.Pool
	docker     map[string]DockerNetwork       // by ID
	dockerSub  map[netip.Prefix]DockerNetwork // by subnet
	finishing  map[string]bool                // networks and pools this plan finishes
	adopting   map[netip.Prefix]bool          // subnets of networks this plan adopts
	poolSubnet map[netip.Prefix]bool          // subnets of pools in any phase
}

func (p *planner) add(a Action) { p.plan.Actions = append(p.plan.Actions, a) }

func (p *planner) hold(format string, args ...any) {
	p.plan.Held = append(p.plan.Held, fmt.Sprintf(format, args...))
}

func (p *planner) index() {
	p.nets = map[string]state.Network{}
	for _, n := range p.in.Networks {
		p.nets[n.ID] = n
	}
	p.pools = map[string]state.Pool{}
	p.poolSubnet = map[netip.Prefix]bool{}
	for _, pl := range p.in.Pools {
		p.pools[pl.ID] = pl
		if pl.Subnet.IsValid() {
			p.poolSubnet[pl.Subnet] = true
		}
	}
	p.docker = map[string]DockerNetwork{}
	p.dockerSub = map[netip.Prefix]DockerNetwork{}
	if p.in.Docker != nil {
		for _, d := range p.in.Docker.Networks {
			p.docker[d.ID] = d
			if d.Subnet.IsValid() {
				p.dockerSub[d.Subnet] = d
			}
		}
	}
	p.finishing = map[string]bool{}
	p.adopting = map[netip.Prefix]bool{}
}

// quiet tells whether Docker's list can speak about a record created at t: it was
// read, and long enough after t.
func (p *planner) quiet(t time.Time) bool {
	return p.in.Docker != nil && t.Before(p.in.Docker.ReadAt.Add(-p.in.Grace))
}

func (p *planner) planNetworks() {
	for _, id := range slices.Sorted(maps.Keys(p.nets)) {
		n := p.nets[id]
		if p.in.Busy[id] {
			continue
		}
		d, inDocker := p.docker[id]
		finish := func(why string) {
			p.finishing[id] = true
			p.add(Action{Kind: FinishNetwork, ID: id, Subnet: n.Subnet, Name: n.Name, Since: n.Created, Why: why})
		}
		switch {
		case n.Deleting:
			finish("Docker removed the network and its teardown did not finish")
		case n.Creating:
			finish("its creation was cut short")
		case !inDocker && p.quiet(n.Created):
			finish("Docker no longer has the network (removed while vpcroute was not serving)")
		default:
			if inDocker && d.Name != "" && d.Name != n.Name {
				p.add(Action{Kind: Rename, ID: id, Name: d.Name, Why: "named in Docker's list"})
			}
		}
	}
}

func (p *planner) planPools() {
	for _, id := range slices.Sorted(maps.Keys(p.pools)) {
		pl := p.pools[id]
		if p.in.Busy[id] {
			continue
		}
		why := ""
		switch {
		case pl.Releasing:
			why = "Docker released the pool and the release did not finish"
		case pl.Claiming:
			why = "its claim never reached Docker"
		case pl.IsBlock():
			why = p.blockIdle(pl)
			if why == "" {
				continue
			}
		case p.quiet(pl.Created) && !p.poolInUse(pl):
			why = "no network of Docker's uses the pool"
		default:
			continue
		}
		p.finishing[id] = true
		p.add(Action{Kind: FinishPool, ID: id, Subnet: pl.Subnet, Owner: pl.RouteOwner(), Since: pl.Created, Why: why})
	}
}

// blockIdle says why a host block goes: no network has drawn from it for
// BlockGrace; "" while one does, or for less time.
func (p *planner) blockIdle(b state.Pool) string {
	used := false
	for _, pl := range p.pools {
		used = used || pl.Block == b.ID
	}
	for _, n := range p.nets {
		used = used || n.Block == b.ID
	}
	for sub := range p.dockerSub {
		used = used || (b.Subnet.IsValid() && b.Subnet.Contains(sub.Addr()) && sub.Bits() >= b.Subnet.Bits())
	}
	if used || b.MovedTo != "" {
		return ""
	}
	since, seen := p.in.BlockEmptySince[b.ID]
	if !seen {
		since = p.in.Now
	}
	p.plan.BlockEmptySince[b.ID] = since
	// Docker's list must have been read (it may show a network inside the block
	// whose records were lost); the block's age does not matter: a block is used
	// by the records carved from it, which the controller checks again under its
	// lock before it lets a block go.
	if empty := p.in.Now.Sub(since); empty >= p.in.BlockGrace && p.in.Docker != nil {
		return fmt.Sprintf("no network has used this host block for %s", empty.Round(time.Second))
	}
	return ""
}

// blockOf returns this ECS's host block that covers subnet: a record, else a route
// of this ECS with a block's owner (the records were lost).
func (p *planner) blockOf(subnet netip.Prefix) (string, netip.Prefix) {
	inside := func(b netip.Prefix) bool {
		return b.IsValid() && b != subnet && b.Contains(subnet.Addr()) && subnet.Bits() > b.Bits()
	}
	for _, pl := range p.pools {
		if pl.IsBlock() && inside(pl.Subnet) {
			return pl.ID, pl.Subnet
		}
	}
	for _, r := range p.in.Routes {
		if strings.HasPrefix(r.Owner, state.BlockPrefix) && inside(r.Destination) {
			return r.Owner, r.Destination
		}
	}
	return "", netip.Prefix{}
}

// poolInUse tells whether a network of Docker's has the pool's subnet. It matches by
// subnet, whatever Docker calls the IPAM driver: vpcroute's subnets are unique on
// this host, and a wrong "in use" only keeps a pool longer.
func (p *planner) poolInUse(pl state.Pool) bool {
	_, ok := p.dockerSub[pl.Subnet]
	return ok
}

// planAdopt plans the rebuilding of networks Docker has and vpcroute lacks: those with
// the vpcroute driver, and the pools of networks on another driver with vpcroute's
// IPAM.
func (p *planner) planAdopt() {
	if p.in.Docker == nil {
		return
	}
	if p.in.Routed && p.in.Routes == nil {
		for _, d := range p.in.Docker.Networks {
			if _, known := p.nets[d.ID]; d.Driver && !known && !p.in.Forgotten[d.ID] {
				// Rebuilt in the next cycle that reads the route table.
				p.adopting[d.Subnet] = true
			}
		}
		return
	}
	owners := map[netip.Prefix]string{}
	for _, r := range p.in.Routes {
		owners[r.Destination] = r.Owner
	}
	for _, d := range p.in.Docker.Networks {
		if p.in.Forgotten[d.ID] || !d.Subnet.IsValid() {
			continue
		}
		if _, known := p.nets[d.ID]; known {
			continue
		}
		a := Action{Kind: Adopt, ID: d.ID, Name: d.Name, Subnet: d.Subnet, Owner: owners[d.Subnet]}
		if a.Owner == "" {
			a.Block, a.BlockSubnet = p.blockOf(d.Subnet)
		}
		switch {
		case d.Driver:
			a.Network = true
			a.Pool = d.IPAM && !p.poolSubnet[d.Subnet]
			a.Why = "Docker has the network and vpcroute has no record of it"
		case d.IPAM && !p.poolSubnet[d.Subnet] && !p.in.Forgotten[d.Subnet.String()]:
			a.Pool = true
			a.Why = "Docker's network uses vpcroute's IPAM and vpcroute has no record of its pool"
		default:
			continue
		}
		p.adopting[d.Subnet] = true
		if a.Block != "" {
			p.adopting[a.BlockSubnet] = true
		}
		p.add(a)
	}
}

// planRoutes compares the routes the records hold with this ECS's vpcroute routes.
func (p *planner) planRoutes() {
	if p.in.Routes == nil {
		return
	}
	type want struct {
		subnet netip.Prefix
		name   string
	}
	wanted := map[string]want{}
	known := map[string]bool{}
	for _, pl := range p.pools {
		known[pl.RouteOwner()] = true
		if !p.in.Busy[pl.ID] && !p.finishing[pl.ID] && !pl.Claiming && !pl.Releasing && pl.Subnet.IsValid() && pl.MovedTo == "" && pl.Block == "" {
			wanted[pl.RouteOwner()] = want{subnet: pl.Subnet, name: p.poolNetworkName(pl)}
		}
	}
	for _, n := range p.nets {
		if n.ClaimOwner == "" {
			continue
		}
		known[n.ClaimOwner] = true
		if !p.in.Busy[n.ID] && !p.finishing[n.ID] && !n.Creating && !n.Deleting && n.MovedTo == "" {
			wanted[n.ClaimOwner] = want{subnet: n.Subnet, name: p.nameOf(n)}
		}
	}
	present := map[string]bool{}
	for _, r := range p.in.Routes {
		key := RouteKey(r)
		if w, ok := wanted[r.Owner]; ok && w.subnet == r.Destination {
			present[r.Owner] = true
			continue
		}
		if known[r.Owner] || p.adopting[r.Destination] {
			// A record in flux, or a network being rebuilt, speaks for it.
			continue
		}
		if p.in.Released[r.Owner] {
			p.add(Action{Kind: ReleaseRoute, Subnet: r.Destination, Owner: r.Owner,
				Why: "vpcroute gave this route up (a released network, or a claim cut short): the VPC applied the write late"})
			continue
		}
		since, seen := p.in.OrphanSince[key]
		if !seen {
			since = p.in.Now
		}
		p.plan.OrphanSince[key] = since
		switch {
		case p.in.Docker == nil:
			p.hold("route %s (owner %s) to this ECS belongs to no network vpcroute knows: kept, since Docker's networks cannot be read to confirm it is unused", r.Destination, r.Owner)
		case p.in.Now.Sub(since) >= p.in.OrphanGrace:
			p.add(Action{Kind: ReleaseRoute, Subnet: r.Destination, Owner: r.Owner,
				Why: fmt.Sprintf("no network of vpcroute's or Docker's has owned it for %s", p.in.Now.Sub(since).Round(time.Second))})
		}
	}
	held := map[netip.Prefix]bool{}
	for _, r := range p.in.Routes {
		held[r.Destination] = true
	}
	for _, owner := range slices.Sorted(maps.Keys(wanted)) {
		w := wanted[owner]
		if present[owner] {
			continue
		}
		why := "missing from the VPC route table (deleted in the console?)"
		if held[w.subnet] {
			why = "its route to this ECS is under another owner (edited in the console?)"
		}
		p.add(Action{Kind: Claim, Owner: owner, Subnet: w.subnet, Name: w.name, Why: why})
	}
}

// nameOf is a network's name: Docker's, else the one recorded.
func (p *planner) nameOf(n state.Network) string {
	if d, ok := p.docker[n.ID]; ok && d.Name != "" {
		return d.Name
	}
	return n.Name
}

// poolNetworkName is the name of the network drawing from pl, for route descriptions.
func (p *planner) poolNetworkName(pl state.Pool) string {
	for _, n := range p.nets {
		if n.PoolID == pl.ID || (n.PoolID == "" && n.ClaimOwner == "" && n.Subnet == pl.Subnet) {
			return p.nameOf(n)
		}
	}
	if d, ok := p.dockerSub[pl.Subnet]; ok {
		return d.Name
	}
	return ""
}

// planBridges plans the removal of vpcroute bridges that no network has.
func (p *planner) planBridges() {
	for _, name := range slices.Sorted(maps.Keys(p.in.Bridges)) {
		id := p.in.Bridges[name]
		if n, ok := p.nets[id]; ok {
			if n.Bridge != name && !p.in.Busy[id] {
				p.add(Action{Kind: DeleteBridge, ID: id, Bridge: name, Why: "its network's bridge is " + n.Bridge})
			}
			continue
		}
		if _, ok := p.docker[id]; ok {
			continue // adopted in this plan
		}
		if p.in.Docker == nil {
			p.hold("bridge %s of network %s belongs to no network vpcroute knows: kept, since Docker's networks cannot be read to confirm it is unused", name, short(id))
			continue
		}
		p.add(Action{Kind: DeleteBridge, ID: id, Bridge: name, Why: "neither vpcroute nor Docker has its network"})
	}
}

// planRules plans the removal of vpcroute rules of networks no one has.
func (p *planner) planRules() {
	if p.in.RuleOwners == nil {
		return
	}
	keep := map[string]bool{}
	for id := range p.nets {
		keep[id] = true
	}
	for id := range p.docker {
		keep[id] = true
	}
	var orphans []string
	for id := range p.in.RuleOwners {
		if !keep[id] {
			orphans = append(orphans, short(id))
		}
	}
	if len(orphans) == 0 {
		return
	}
	slices.Sort(orphans)
	if p.in.Docker == nil {
		p.hold("iptables rules of networks %v belong to no network vpcroute knows: kept, since Docker's networks cannot be read to confirm they are unused", orphans)
		return
	}
	p.add(Action{Kind: PruneRules, Keep: keep, Why: fmt.Sprintf("rules of networks %v that neither vpcroute nor Docker has", orphans)})
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

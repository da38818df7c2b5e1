package controller

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/state"
	"github.com/vpcroute/vpcroute/sysctl"
)

// Status is what `vpcroute status` shows: every network with its route, bridge,
// containers and ports; the route table; the host's forwarding; the last cycle.
type Status struct {
	Version  string          `json:"version"`
	Hostname string          `json:"hostname"`
	Networks []NetworkStatus `json:"networks"`
	// Blocks are this ECS's host blocks (VPCROUTE_HOST_BLOCK), each with its route
	// and the networks carved from it.
	Blocks []BlockStatus `json:"blocks,omitempty"`
	// Unowned are the vpcroute routes to this ECS that no network has; Others the
	// routes to this ECS that are not vpcroute's.
	Unowned []cloud.TableRoute `json:"unowned_routes"`
	Others  []cloud.TableRoute `json:"other_routes,omitempty"`
	// Pool is VPCROUTE_POOL.
	Pool  netip.Prefix `json:"pool"`
	Cloud CloudStatus  `json:"cloud"`
	Host  HostStatus   `json:"host"`
	Cycle CycleReport  `json:"last_cycle"`
}

// NetworkStatus is one network.
type NetworkStatus struct {
	ID      string       `json:"id"`
	Name    string       `json:"name"`
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
	Bridge  string       `json:"bridge"`
	// State is ready, creating or deleting; BridgeUp says the bridge exists.
	State    string `json:"state"`
	BridgeUp bool   `json:"bridge_up"`
	// Pool is the vpcroute pool of the subnet, empty for another IPAM driver.
	Pool  string      `json:"pool,omitempty"`
	Route RouteStatus `json:"route"`
	// Block is the host block the subnet was carved from, whose route (Route)
	// covers it; zero when the network has a route of its own.
	Block netip.Prefix `json:"block,omitzero"`
	// Containers are its endpoints, with their addresses and published ports.
	Containers []EndpointStatus `json:"containers"`
}

// Route states.
const (
	RouteOK      = "ok"      // in the table, to this ECS, for this network
	RouteMissing = "missing" // not in the table: the loop claims it again
	RouteOther   = "other"   // the subnet is routed elsewhere
	RouteNone    = "none"    // no cloud routes subnets (VPCROUTE_CLOUD=none)
	RouteUnknown = "unknown" // the table could not be read
	RouteDrifted = "drifted" // to this ECS, but not as vpcroute's route of this network
	RouteMoved   = "moved"   // another ECS took the subnet over (vpcroute.takeover)
)

// RouteStatus is a network's route in the VPC route table.
type RouteStatus struct {
	State string `json:"state"`
	Owner string `json:"owner,omitempty"`
	// NextHop and Description are what the table holds for the subnet.
	NextHop     string `json:"next_hop,omitempty"`
	Description string `json:"description,omitempty"`
}

// BlockStatus is one host block.
type BlockStatus struct {
	ID     string       `json:"id"`
	Subnet netip.Prefix `json:"subnet"`
	// State is held, claiming or releasing.
	State string      `json:"state"`
	Route RouteStatus `json:"route"`
	// Networks are the names (or IDs) of the networks carved from it.
	Networks []string `json:"networks"`
	// EmptySince is when the block was last seen with no network; zero while it
	// has one. It goes VPCROUTE_BLOCK_GRACE later.
	EmptySince time.Time `json:"empty_since,omitzero"`
}

// EndpointStatus is one container's attachment.
type EndpointStatus struct {
	ID      string     `json:"id"`
	Address netip.Addr `json:"address"`
	Ports   []string   `json:"ports,omitempty"`
}

// CloudStatus is the cloud as the plugin sees it.
type CloudStatus struct {
	Mode       string `json:"mode"`
	Ready      bool   `json:"ready"`
	Error      string `json:"error,omitempty"`
	InstanceID string `json:"instance_id,omitempty"`
	RouteTable string `json:"route_table,omitempty"`
	Used       int    `json:"routes_used"`
	Quota      int    `json:"routes_quota"`
	// SrcDstCheckOn says the NIC drops traffic of container addresses.
	SrcDstCheckOn bool `json:"src_dst_check_on"`
}

// HostStatus is the host's forwarding as vpcroute needs it.
type HostStatus struct {
	Iptables  string           `json:"iptables"` // the backend in use: nft or legacy
	IPForward bool             `json:"ip_forward"`
	Forward   firewall.Forward `json:"forward"`
	Bridges   int              `json:"bridges"`
	Docker    string           `json:"docker"` // ok, or why Docker's list cannot be read
}

// CycleReport is what the last cycle of the loop did.
type CycleReport struct {
	At     time.Time `json:"at"`
	Done   []string  `json:"done,omitempty"`
	Failed []string  `json:"failed,omitempty"`
	Held   []string  `json:"held,omitempty"`
}

// Status gathers the status: the records, one read of the route table, of the
// bridges and of FORWARD. It changes nothing.
func (c *Controller) Status(ctx context.Context) (Status, error) {
	id := c.vpc.Identity()
	st := Status{Version: c.cfg.Version, Hostname: id.Hostname}
	st.Cloud = CloudStatus{Mode: "huaweicloud", Ready: true, InstanceID: id.InstanceID, SrcDstCheckOn: id.SrcDstCheckOn}
	var table cloud.Table
	var tableErr error
	if !c.cfg.Routed {
		st.Cloud.Mode = "none"
	} else {
		tctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		table, tableErr = c.vpc.Table(tctx)
		cancel()
		if tableErr != nil {
			st.Cloud.Ready = !errors.Is(tableErr, cloud.ErrNotReady)
			st.Cloud.Error = tableErr.Error()
		}
		st.Cloud.RouteTable, st.Cloud.Used, st.Cloud.Quota = table.ID, table.Used, table.Quota
	}
	bridges, _ := c.links.Bridges()
	st.Host.Bridges = len(bridges)
	st.Host.Iptables = c.fw.Backend()
	if v, err := sysctl.Get("net/ipv4/ip_forward"); err == nil {
		st.Host.IPForward = v == "1"
	}
	if f, err := c.fw.Forward(); err == nil {
		st.Host.Forward = f
	}
	st.Host.Docker = "ok"
	if c.docker == nil {
		st.Host.Docker = "not configured (VPCROUTE_DOCKER_HOST=none)"
	} else if _, err := c.docker.Networks(ctx); err != nil {
		st.Host.Docker = err.Error()
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	nets, err := c.store.Networks()
	if err != nil {
		return st, err
	}
	pools, err := c.store.Pools()
	if err != nil {
		return st, err
	}
	owners := map[string]bool{}
	for _, p := range pools {
		owners[p.RouteOwner()] = true
	}
	for _, n := range nets {
		if n.ClaimOwner != "" {
			owners[n.ClaimOwner] = true
		}
		ns := NetworkStatus{ID: n.ID, Name: n.Name, Subnet: n.Subnet, Gateway: n.Gateway.Addr(), Bridge: n.Bridge,
			State: "ready", BridgeUp: bridges[n.Bridge] == n.ID, Pool: n.PoolID}
		switch {
		case n.Creating:
			ns.State = "creating"
		case n.Deleting:
			ns.State = "deleting"
		}
		owner, movedTo, block := n.ClaimOwner, n.MovedTo, n.Block
		if p := poolByID(pools, n.PoolID); p != nil {
			owner, movedTo, block = p.RouteOwner(), p.MovedTo, p.Block
		}
		routed := n.Subnet
		if b := poolByID(pools, block); b != nil {
			owner, routed, ns.Block = b.ID, b.Subnet, b.Subnet
		}
		ns.Route = routeStatus(c.cfg.Routed, tableErr, table, routed, owner)
		if movedTo != "" {
			ns.Route = RouteStatus{State: RouteMoved, Owner: owner, NextHop: movedTo}
		}
		eps, err := c.store.Endpoints(n.ID)
		if err != nil {
			return st, err
		}
		for _, ep := range eps {
			es := EndpointStatus{ID: short(ep.ID), Address: ep.Addr}
			for _, p := range ep.Ports {
				es.Ports = append(es.Ports, portString(p))
			}
			ns.Containers = append(ns.Containers, es)
		}
		st.Networks = append(st.Networks, ns)
	}
	slices.SortFunc(st.Networks, func(a, b NetworkStatus) int { return a.Subnet.Addr().Compare(b.Subnet.Addr()) })
	st.Blocks = c.blockStatus(pools, nets, table, tableErr)
	for _, r := range table.Routes {
		switch {
		case r.Mine && r.Owner != "" && !owners[r.Owner]:
			st.Unowned = append(st.Unowned, r)
		case r.Mine && r.Owner == "":
			st.Others = append(st.Others, r)
		}
	}
	st.Pool = c.cfg.Pool
	st.Cycle = c.lastCycle
	return st, nil
}

// blockStatus lists the host blocks with their routes and networks. Call with mu
// held.
func (c *Controller) blockStatus(pools []state.Pool, nets []state.Network, table cloud.Table, tableErr error) []BlockStatus {
	var out []BlockStatus
	for _, b := range pools {
		if !b.IsBlock() {
			continue
		}
		bs := BlockStatus{ID: b.ID, Subnet: b.Subnet, State: "held", EmptySince: c.blockEmpty[b.ID], Networks: []string{}}
		switch {
		case b.Claiming:
			bs.State = "claiming"
		case b.Releasing:
			bs.State = "releasing"
		}
		bs.Route = routeStatus(c.cfg.Routed, tableErr, table, b.Subnet, b.ID)
		for _, n := range nets {
			p := poolByID(pools, n.PoolID)
			if n.Block == b.ID || (p != nil && p.Block == b.ID) {
				bs.Networks = append(bs.Networks, label(n))
			}
		}
		slices.Sort(bs.Networks)
		out = append(out, bs)
	}
	slices.SortFunc(out, func(a, b BlockStatus) int { return a.Subnet.Addr().Compare(b.Subnet.Addr()) })
	return out
}

func poolByID(pools []state.Pool, id string) *state.Pool {
	for i := range pools {
		if pools[i].ID == id {
			return &pools[i]
		}
	}
	return nil
}

// routeStatus says what the table holds for a network's subnet.
func routeStatus(routed bool, tableErr error, t cloud.Table, subnet netip.Prefix, owner string) RouteStatus {
	switch {
	case !routed:
		return RouteStatus{State: RouteNone}
	case tableErr != nil:
		return RouteStatus{State: RouteUnknown, Owner: owner}
	}
	for _, r := range t.Routes {
		if r.Destination != subnet {
			continue
		}
		rs := RouteStatus{Owner: owner, NextHop: r.NextHop, Description: r.Description}
		switch {
		case r.Mine && r.Owner == owner:
			rs.State = RouteOK
		case r.Mine:
			rs.State = RouteDrifted
		default:
			rs.State = RouteOther
		}
		return rs
	}
	return RouteStatus{State: RouteMissing, Owner: owner}
}

package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/vpcroute/vpcroute/check"
	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/reconcile"
)

// Doctor checks what vpcroute depends on and says, for each finding, what to do: the
// cloud (cloud.VPC.Checks), the host's forwarding, Docker's API, and the records
// against the route table. It changes nothing.
func (c *Controller) Doctor(ctx context.Context) ([]check.Result, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	var out []check.Result
	if c.cfg.Routed {
		out = append(out, c.vpc.Checks(ctx, c.cfg.Pool)...)
	} else {
		out = append(out, check.Result{Name: "cloud", Status: check.Skip, Detail: "VPCROUTE_CLOUD=none: no VPC routes to check"})
	}
	out = append(out, hostChecks(st)...)
	out = append(out, routeChecks(st)...)
	return out, nil
}

// hostChecks are the host's part of doctor: forwarding, FORWARD, Docker's API and
// the bridges of the networks.
func hostChecks(st Status) []check.Result {
	var out []check.Result
	h := st.Host
	if h.IPForward {
		out = append(out, check.Result{Name: "ip_forward", Status: check.Pass, Detail: "on"})
	} else {
		out = append(out, check.Result{Name: "ip_forward", Status: check.Fail, Detail: "off: the host routes no container traffic",
			Fix: "vpcroute sets it at start: something turned it off; find what (sysctl.d, another service) and let it be 1"})
	}
	f := h.Forward
	switch {
	case f.Hook == 0:
		out = append(out, check.Result{Name: "FORWARD", Status: check.Fail, Detail: "vpcroute's jump to VPCROUTE-FORWARD is missing (policy " + orNone(f.Policy) + ")",
			Fix: "vpcroute puts it back within VPCROUTE_KERNEL_INTERVAL; if it stays missing, another tool flushes FORWARD: run vpcroute after it"})
	case len(f.DropsBefore) > 0:
		out = append(out, check.Result{Name: "FORWARD", Status: check.Warn,
			Detail: fmt.Sprintf("rules ahead of vpcroute's hook (rule %d of %d) drop traffic: %s", f.Hook, f.Rules, strings.Join(f.DropsBefore, "; ")),
			Fix:    "make sure they do not match container traffic, or move them below vpcroute's jump"})
	default:
		out = append(out, check.Result{Name: "FORWARD", Status: check.Pass,
			Detail: fmt.Sprintf("policy %s; vpcroute's hook at rule %d of %d, nothing dropping ahead of it", orNone(f.Policy), f.Hook, f.Rules)})
	}
	if h.Docker == "ok" {
		out = append(out, check.Result{Name: "Docker's API", Status: check.Pass, Detail: "vpcroute reads Docker's networks"})
	} else {
		out = append(out, check.Result{Name: "Docker's API", Status: check.Warn, Detail: h.Docker,
			Fix: "give the plugin Docker's socket (VPCROUTE_DOCKER_HOST; the managed plugin's docker-socket mount): without it, networks removed while vpcroute was not serving are not noticed, and lost records are not rebuilt"})
	}
	var missing []string
	for _, n := range st.Networks {
		if n.State == "ready" && !n.BridgeUp {
			missing = append(missing, nameOf(n))
		}
	}
	if len(missing) > 0 {
		out = append(out, check.Result{Name: "bridges", Status: check.Warn, Detail: "missing for " + strings.Join(missing, ", "),
			Fix: "vpcroute builds them again within VPCROUTE_KERNEL_INTERVAL"})
	} else {
		out = append(out, check.Result{Name: "bridges", Status: check.Pass, Detail: fmt.Sprintf("every network's bridge is up (%d)", len(st.Networks))})
	}
	return out
}

// routeChecks compare the networks' routes with the route table.
func routeChecks(st Status) []check.Result {
	if st.Cloud.Mode == "none" || st.Cloud.Error != "" {
		return nil
	}
	var out []check.Result
	var missing, drifted, other, moved []string
	for _, n := range st.Networks {
		switch n.Route.State {
		case RouteMissing:
			missing = append(missing, nameOf(n)+" "+n.Subnet.String())
		case RouteDrifted:
			drifted = append(drifted, fmt.Sprintf("%s %s (%q)", nameOf(n), n.Subnet, n.Route.Description))
		case RouteOther:
			other = append(other, fmt.Sprintf("%s %s (to %s)", nameOf(n), n.Subnet, n.Route.NextHop))
		case RouteMoved:
			moved = append(moved, fmt.Sprintf("%s %s (to %s)", nameOf(n), n.Subnet, n.Route.NextHop))
		}
	}
	if len(moved) > 0 {
		out = append(out, check.Result{Name: "networks moved away", Status: check.Warn, Detail: "taken over by another ECS: " + strings.Join(moved, ", "),
			Fix: "their containers are reachable from this ECS only: docker network rm them here (the route stays with the other ECS)"})
	}
	switch {
	case len(other) > 0:
		out = append(out, check.Result{Name: "network routes", Status: check.Fail, Detail: "routed to another instance: " + strings.Join(other, ", "),
			Fix: "the subnet is another ECS's now: remove the network here (docker network rm) and create it with another subnet"})
	case len(drifted) > 0:
		out = append(out, check.Result{Name: "network routes", Status: check.Fail, Detail: "to this ECS, but not as vpcroute's route of the network: " + strings.Join(drifted, ", "),
			Fix: "`vpcroute gc --apply` puts vpcroute's route back"})
	case len(missing) > 0:
		out = append(out, check.Result{Name: "network routes", Status: check.Warn, Detail: "missing from the route table: " + strings.Join(missing, ", "),
			Fix: "vpcroute claims them again within VPCROUTE_CLOUD_INTERVAL; `vpcroute gc --apply` does it now"})
	default:
		out = append(out, check.Result{Name: "network routes", Status: check.Pass, Detail: fmt.Sprintf("every network's route is in the table (%d)", len(st.Networks))})
	}
	var others, overlapping []string
	for _, r := range st.Others {
		others = append(others, r.Destination.String())
		if st.Pool.IsValid() && r.Destination.Overlaps(st.Pool) {
			overlapping = append(overlapping, r.Destination.String())
		}
	}
	switch {
	case len(overlapping) > 0:
		out = append(out, check.Result{Name: "other routes to this ECS", Status: check.Warn,
			Detail: "routes to this ECS that are not vpcroute's lie in the container pool: " + strings.Join(overlapping, ", "),
			Fix:    "vpcroute never touches them and picks no subnet they overlap; remove them in the console if they are leftovers"})
	case len(others) > 0:
		out = append(out, check.Result{Name: "other routes to this ECS", Status: check.Pass, Detail: "not vpcroute's, left alone: " + strings.Join(others, ", ")})
	}
	if len(st.Unowned) > 0 {
		var s []string
		for _, r := range st.Unowned {
			s = append(s, r.Destination.String()+" (owner "+r.Owner+")")
		}
		out = append(out, check.Result{Name: "routes of no network", Status: check.Warn, Detail: "vpcroute routes to this ECS that no network has: " + strings.Join(s, ", "),
			Fix: "vpcroute releases them after VPCROUTE_ORPHAN_GRACE; `vpcroute gc --apply` does it now"})
	} else {
		out = append(out, check.Result{Name: "routes of no network", Status: check.Pass, Detail: "every vpcroute route to this ECS belongs to a network"})
	}
	return out
}

func nameOf(n NetworkStatus) string {
	if n.Name != "" {
		return n.Name
	}
	return short(n.ID)
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// GCReport is what `vpcroute gc` found stale, and did.
type GCReport struct {
	Applied bool     `json:"applied"`
	Stale   []string `json:"stale"`
	Failed  []string `json:"failed,omitempty"`
}

// GC finds what is stale now, without the grace periods the loop keeps: records of
// networks Docker no longer has, vpcroute routes to this ECS that no network owns
// (or that drifted from the network's), vpcroute routes to instances that are gone,
// bridges and rules of no network. With apply it removes them (and puts drifted
// routes right); without, it only lists them.
func (c *Controller) GC(ctx context.Context, apply bool) (GCReport, error) {
	in, ok := c.gather(ctx, scope{kernel: true, cloud: true, rules: true})
	if !ok {
		return GCReport{}, errors.New("vpcroute cannot read its records (see its log)")
	}
	if in.Docker == nil {
		return GCReport{}, errors.New("what is stale cannot be told without Docker's list of networks: give the plugin Docker's socket (VPCROUTE_DOCKER_HOST)")
	}
	if c.cfg.Routed && in.Routes == nil {
		return GCReport{}, errors.New("the VPC route table cannot be read (see `vpcroute doctor`)")
	}
	in.Grace, in.OrphanGrace, in.BlockGrace = 0, 0, 0
	// A route to this ECS under another owner for a network's subnet is drift: it
	// goes, and the network's own route is claimed in its place.
	plan := reconcile.Compute(in)
	var actions []reconcile.Action
	for _, a := range plan.Actions {
		switch a.Kind {
		case reconcile.FinishNetwork, reconcile.FinishPool, reconcile.ReleaseRoute, reconcile.DeleteBridge, reconcile.PruneRules:
			actions = append(actions, a)
		}
	}
	var claims []reconcile.Action
	for _, a := range plan.Actions {
		if a.Kind == reconcile.Claim {
			claims = append(claims, a)
		}
	}
	r := GCReport{Applied: apply}
	for _, a := range append(slices.Clone(actions), claims...) {
		r.Stale = append(r.Stale, describe(a))
	}
	var gone []cloud.TableRoute
	if c.cfg.Routed {
		t, err := c.vpc.Table(ctx)
		if err != nil {
			return GCReport{}, err
		}
		for _, tr := range t.Routes {
			if tr.Gone {
				gone = append(gone, tr)
				r.Stale = append(r.Stale, fmt.Sprintf("release-route %s to the deleted instance %s (owner %s)", tr.Destination, tr.NextHop, tr.Owner))
			}
		}
	}
	if !apply {
		return r, nil
	}
	done := c.applyAll(ctx, actions, func(reconcile.Action) bool { return true })
	r.Failed = done.Failed
	// Claims go after the releases, so that a drifted route is out of the way.
	done = c.applyAll(ctx, claims, func(reconcile.Action) bool { return true })
	r.Failed = append(r.Failed, done.Failed...)
	for _, tr := range gone {
		if err := c.vpc.ReleaseGone(ctx, tr); err != nil {
			r.Failed = append(r.Failed, fmt.Sprintf("release-route %s to %s: %v", tr.Destination, tr.NextHop, err))
		}
	}
	return r, nil
}

// UninstallReport is what `vpcroute uninstall` removes, or removed.
type UninstallReport struct {
	Applied bool     `json:"applied"`
	Removes []string `json:"removes"`
	Failed  []string `json:"failed,omitempty"`
}

// Uninstalled is the error Docker's calls get once vpcroute was uninstalled.
func (c *Controller) Uninstalled() error {
	return fmt.Errorf("vpcroute was uninstalled from this host: remove the plugin (`docker plugin disable -f %s && docker plugin rm %s`), or stop the service; start it again to use vpcroute again", c.cfg.DriverName, c.cfg.DriverName)
}

// Uninstall removes everything vpcroute made on this host: this ECS's vpcroute
// routes, its bridges and veths, its iptables rules and chains, and its records. It
// refuses while Docker has vpcroute networks (they would lose their data plane),
// unless force. Without apply it only lists what it would remove. Once applied, the
// loop stops and Docker's calls are to be refused with Uninstalled.
func (c *Controller) Uninstall(ctx context.Context, apply, force bool) (UninstallReport, error) {
	if !force {
		if c.docker == nil {
			return UninstallReport{}, errors.New("without Docker's list of networks, vpcroute cannot check that none is its own: remove them first, then run again with --force")
		}
		list, err := c.docker.Networks(ctx)
		if err != nil {
			return UninstallReport{}, fmt.Errorf("read Docker's networks to check that none is vpcroute's: %w; remove them first, then run again with --force", err)
		}
		var ours []string
		c.mu.Lock()
		for _, n := range list {
			if !n.ConfigOnly && (c.ours(n.Driver) || c.ours(n.IPAM.Driver)) {
				ours = append(ours, n.Name)
			}
		}
		c.mu.Unlock()
		if len(ours) > 0 {
			slices.Sort(ours)
			return UninstallReport{}, fmt.Errorf("Docker still has vpcroute networks %s: remove their containers and them first (`docker network rm %s`), or run again with --force to take their routes, bridges and rules away anyway",
				strings.Join(ours, ", "), strings.Join(ours, " "))
		}
	}
	var r UninstallReport
	r.Applied = apply
	var routes []cloud.Route
	if c.cfg.Routed {
		var err error
		if routes, err = c.vpc.Owned(ctx); err != nil {
			return UninstallReport{}, fmt.Errorf("list this ECS's routes: %w", err)
		}
		for _, rt := range routes {
			r.Removes = append(r.Removes, fmt.Sprintf("route %s (owner %s)", rt.Destination, rt.Owner))
		}
	}
	bridges, err := c.links.Bridges()
	if err != nil {
		return UninstallReport{}, err
	}
	for _, name := range slices.Sorted(maps.Keys(bridges)) {
		r.Removes = append(r.Removes, "bridge "+name)
	}
	veths, err := c.links.Veths()
	if err != nil {
		return UninstallReport{}, err
	}
	slices.Sort(veths)
	for _, v := range veths {
		r.Removes = append(r.Removes, "veth "+v)
	}
	r.Removes = append(r.Removes, "iptables rules and chains VPCROUTE-*", "records (the state file)")
	if !apply {
		return r, nil
	}

	c.mu.Lock()
	c.uninstalled = true
	c.mu.Unlock()
	fail := func(what string, err error) {
		if err != nil {
			r.Failed = append(r.Failed, what+": "+err.Error())
		}
	}
	for _, rt := range routes {
		fail("route "+rt.Destination.String(), c.vpc.Release(ctx, rt.Destination, rt.Owner))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, id := range bridges {
		fail("bridge "+name, c.links.DeleteBridge(name, id))
	}
	for _, v := range veths {
		fail("veth "+v, c.links.DeleteVeth(v))
	}
	fail("iptables", c.fw.RemoveAll())
	fail("records", c.store.Remove())
	c.log.Info("uninstalled: every route, bridge, rule and record of vpcroute's on this host is gone", "failed", len(r.Failed))
	return r, nil
}

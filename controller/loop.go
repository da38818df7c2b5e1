package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/dockerapi"
	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/reconcile"
	"github.com/vpcroute/vpcroute/state"
)

// forgetFor is how long a removed network or released pool stays in memory: Docker
// lists a network until its removal is done, which takes seconds at most.
const forgetFor = 10 * time.Minute

// dockerTimeout bounds one read of Docker's network list.
const dockerTimeout = 10 * time.Second

// Start puts the kernel back the way the records say, before Docker's calls are
// served: the base rules, and every live network's bridge, rules and published ports
// (after a reboot none of them exist, and a container that restarts needs its
// bridge), in two reads of the kernel and, where anything is missing, one restore
// per table for all networks at once. It never removes anything: what is left over
// goes in the loop's first cycle, once Docker's list says it is unused.
func (c *Controller) Start() error {
	others := c.readPoolOthers()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.poolOthers = others
	c.saveDataPlane()
	_, err := c.syncKernel()
	return err
}

// DataPlane is what the kernel objects of every network depend on besides its own
// record. It is saved with the records, so that a plugin started with a setting the
// user must fix still restores its networks the way they were (RestoreDataPlane).
type DataPlane struct {
	Pool          netip.Prefix   `json:"pool"`
	NoNAT         []netip.Prefix `json:"no_nat"`
	ForwardAccept bool           `json:"forward_accept"`
}

const metaDataPlane = "dataplane"

// saveDataPlane records the data plane settings in use. Call with mu held.
func (c *Controller) saveDataPlane() {
	dp := DataPlane{Pool: c.cfg.Pool, NoNAT: c.cfg.NoNAT, ForwardAccept: c.cfg.ForwardAccept}
	if err := c.store.PutMeta(metaDataPlane, dp); err != nil {
		c.log.Warn("save the data plane settings", "err", err)
	}
}

// RestoreDataPlane puts back the kernel objects of the networks in store with the
// data plane settings of the last good run, for a plugin that cannot serve (a bad
// setting): running containers keep their traffic, and containers that restart
// find their bridge (after a reboot, say). It does nothing when no run saved them.
func RestoreDataPlane(store *state.DB, links Links, fw Firewall, log *slog.Logger) error {
	var dp DataPlane
	if err := store.Meta(metaDataPlane, &dp); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			return nil
		}
		return err
	}
	c := New(Config{Pool: dp.Pool, NoNAT: dp.NoNAT, ForwardAccept: dp.ForwardAccept, Log: log}, store, links, fw, nil, nil)
	others := c.readPoolOthers()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.poolOthers = others
	_, err := c.syncKernel()
	return err
}

func (c *Controller) base() firewall.Base {
	return firewall.Base{ForwardAccept: c.cfg.ForwardAccept, Pool: c.cfg.Pool, DockerBridges: slices.Clone(c.dockerBridges),
		NoNAT: slices.Clone(c.cfg.NoNAT), PoolOthers: slices.Clone(c.poolOthers), Uplink: c.uplink}
}

// readPoolOthers reads the host's address ranges inside the pool that are not
// vpcroute's bridges. When they cannot be read it says the whole pool may be
// another's, which leaves the pool's shortcut out (each network's own no-NAT
// accepts do its work): never a shortcut past a masquerade someone needs.
func (c *Controller) readPoolOthers() []netip.Prefix {
	if !c.cfg.Pool.IsValid() {
		return nil
	}
	others, err := c.links.OthersIn(c.cfg.Pool)
	if err != nil {
		c.log.Warn("list the host's addresses inside the pool (retried next pass)", "err", err)
		return []netip.Prefix{c.cfg.Pool}
	}
	return others
}

// dockerBridgeNames are the bridges of Docker's own bridge networks that have a
// name of their own (docker0 and br-<ID> are isolated whatever Docker's list says).
func dockerBridgeNames(list []dockerapi.Network) []string {
	var out []string
	for _, d := range list {
		if d.Driver != "bridge" {
			continue
		}
		name := d.Options[OptBridgeName]
		if name == "" || name == "docker0" || strings.HasPrefix(name, "br-") || name == "docker_gwbridge" || len(name) > 15 ||
			strings.ContainsAny(name, " \t\n\"/") {
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ReconcileNow runs one full cycle: Docker's list, the VPC route table, the kernel.
func (c *Controller) ReconcileNow(ctx context.Context) {
	c.cycle(ctx, scope{kernel: true, cloud: true, rules: true})
}

// Run is the loop: a full cycle at once (Docker's list, the VPC route table, the
// kernel), then the kernel every KernelInterval, the cloud every CloudInterval, and a
// short cycle (Docker's list and the records) after each Docker call that changed
// something or left work to finish. It returns when ctx ends.
func (c *Controller) Run(ctx context.Context) {
	c.ReconcileNow(ctx)
	kernel := time.NewTicker(c.cfg.KernelInterval)
	defer kernel.Stop()
	cloudT := time.NewTicker(c.cfg.CloudInterval)
	defer cloudT.Stop()
	settle := newSettler(c.cfg.CloudInterval)
	defer settle.timer.Stop()
	for {
		if c.cfg.Routed && c.vpc != nil {
			settle.arm(c.vpc.Unsettled(), time.Now())
		}
		var s scope
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
			// Let a burst of calls (compose up/down) settle into one cycle.
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			c.mu.Lock()
			if c.full {
				s, c.full = scope{kernel: true, cloud: true, rules: true}, false
			}
			c.mu.Unlock()
		case <-kernel.C:
			s.kernel = true
			if c.kernelIdle() {
				continue
			}
		case <-c.cfg.OthersInPool:
			s.kernel = true
		case <-cloudT.C:
			s = scope{kernel: true, cloud: true, rules: true}
		case <-settle.timer.C:
			s.cloud = true
		}
		if s.cloud {
			settle.read(time.Now())
		}
		c.cycle(ctx, s)
	}
}

// settleEvery is how often the loop reads the VPC route table while a write the
// cloud did not answer may still land: a late delete of a route that is needed
// again is put back within this, not within CloudInterval.
const settleEvery = 15 * time.Second

// settler schedules the reads of the route table that unsettled writes call for:
// every settleEvery while one may land, and one after the last may have landed.
type settler struct {
	timer *time.Timer
	every time.Duration
	at    time.Time // when timer fires; zero when stopped
	owed  time.Time // the last read owed: after every unsettled write's end
	last  time.Time // the last read of the route table
}

func newSettler(cloudInterval time.Duration) *settler {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &settler{timer: t, every: min(settleEvery, cloudInterval)}
}

// arm takes the cloud's Unsettled and sets the timer for the next read due.
func (s *settler) arm(until, now time.Time) {
	if !until.IsZero() && until.Add(time.Second).After(s.owed) {
		s.owed = until.Add(time.Second)
	}
	if s.owed.IsZero() {
		return
	}
	next := s.owed
	if periodic := s.last.Add(s.every); periodic.Before(next) {
		next = periodic
	}
	if !next.Equal(s.at) {
		s.at = next
		s.timer.Reset(max(next.Sub(now), 10*time.Millisecond))
	}
}

// read notes a read of the route table made at now.
func (s *settler) read(now time.Time) {
	s.last = now
	if !s.owed.IsZero() && !now.Before(s.owed) {
		s.owed = time.Time{}
	}
	s.at = time.Time{}
	s.timer.Stop()
}

// scope says which parts of the actual state a cycle reads.
type scope struct {
	kernel bool // bridges, base rules, and a repair of every network
	cloud  bool // this ECS's routes in the VPC route table
	rules  bool // the owners of vpcroute's iptables rules
}

// kernelOnly says the cycle is the periodic kernel check alone: it does not read
// Docker's list, which the full cycles (every CloudInterval, and after Docker's
// calls) keep up to date; without it, the plan removes nothing it cannot tell is
// unused.
func (s scope) kernelOnly() bool { return s.kernel && !s.cloud && !s.rules }

// kernelToken is what a kernel-only cycle depends on: the records (state.DB.Gen),
// the links (LinkChanges and vpcroute's own edits) and the rules (the firewall's
// generation). known is false when one of them cannot tell.
type kernelToken struct {
	records, links uint64
	rules          uint32
	known          bool
}

func (c *Controller) kernelToken() kernelToken {
	rules, ok := c.fw.Generation()
	if !ok || c.cfg.LinkChanges == nil {
		return kernelToken{}
	}
	return kernelToken{records: c.store.Gen(), links: c.linkGen(), rules: rules, known: true}
}

// kernelIdle says that nothing a kernel-only cycle reads has changed since the last
// one, which found everything in line and had nothing to do: the idle plugin's
// periodic check then costs three counter reads, whatever the number of networks.
func (c *Controller) kernelIdle() bool {
	t := c.kernelToken()
	c.mu.Lock()
	defer c.mu.Unlock()
	return t.known && c.lastKernelClean && t == c.lastKernel
}

// cycle reads what is, plans, and applies the plan. The reads come before the
// records are read, so that an object made meanwhile always has its record in the
// snapshot (and is never taken for an orphan).
func (c *Controller) cycle(ctx context.Context, s scope) {
	var token kernelToken
	if s.kernelOnly() {
		token = c.kernelToken() // before the reads: a change meanwhile makes it stale
	}
	in, ok := c.gather(ctx, s)
	if !ok {
		return
	}
	plan := reconcile.Compute(in)

	c.mu.Lock()
	if in.Routes != nil {
		c.orphanSince = plan.OrphanSince
	}
	c.blockEmpty = plan.BlockEmptySince
	for _, h := range plan.Held {
		if !c.held[h] {
			c.held[h] = true
			c.log.Warn(h)
		}
	}
	c.mu.Unlock()
	report := c.applyAll(ctx, plan.Actions, func(reconcile.Action) bool { return true })
	if s.kernel {
		kr, err := c.repairKernel()
		switch {
		case err != nil:
			report.Failed = append(report.Failed, "repair the kernel: "+err.Error())
		case !kr.Empty():
			report.Done = append(report.Done, "repair-kernel ("+kr.String()+")")
		}
	}
	report.At, report.Held = in.Now, plan.Held
	c.mu.Lock()
	if s.kernelOnly() {
		c.lastKernel = token
		c.lastKernelClean = len(plan.Actions) == 0 && len(report.Failed) == 0 && len(report.Done) == 0
	}
	c.lastCycle = report
	c.mu.Unlock()
}

// applyAll applies actions in order and reports them: report says which of the
// done ones to list.
func (c *Controller) applyAll(ctx context.Context, actions []reconcile.Action, report func(reconcile.Action) bool) CycleReport {
	var r CycleReport
	for _, a := range actions {
		if ctx.Err() != nil || c.isUninstalled() {
			break
		}
		what := describe(a)
		switch err := c.apply(ctx, a); {
		case err != nil:
			r.Failed = append(r.Failed, what+": "+err.Error())
		case report(a):
			r.Done = append(r.Done, what)
		}
	}
	return r
}

// gather reads what is (Docker's list, and what s says of the cloud and the kernel)
// and then the records, into the plan's input; false when the records cannot be read
// or vpcroute was uninstalled.
func (c *Controller) gather(ctx context.Context, s scope) (reconcile.Input, bool) {
	in := reconcile.Input{Grace: c.cfg.Grace, OrphanGrace: c.cfg.OrphanGrace, Routed: c.cfg.Routed}
	if c.isUninstalled() {
		return in, false
	}
	var list []dockerapi.Network
	var readAt time.Time
	if !s.kernelOnly() {
		list, readAt = c.readDocker(ctx)
	}
	if s.cloud && c.cfg.Routed {
		rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		routes, err := c.vpc.Owned(rctx)
		cancel()
		switch {
		case errors.Is(err, cloud.ErrNotReady):
			c.log.Debug("the VPC route table cannot be read yet", "err", err)
		case err != nil:
			c.log.Warn("read this ECS's routes in the VPC route table (retried next cycle)", "err", err)
		default:
			in.Routes = append([]cloud.Route{}, routes...)
		}
	}
	if s.kernel {
		bridges, err := c.markedBridges()
		if err != nil {
			c.log.Warn("list bridges", "err", err)
		} else {
			in.Bridges = bridges
		}
	}
	if s.rules {
		owners, err := c.fw.Owners()
		if err != nil {
			c.log.Warn("list vpcroute's iptables rules", "err", err)
		} else {
			in.RuleOwners = owners
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.uninstalled {
		return in, false
	}
	var err error
	if in.Networks, err = c.store.Networks(); err == nil {
		in.Pools, err = c.store.Pools()
	}
	if err != nil {
		c.log.Error("read the state file", "err", err)
		return in, false
	}
	in.Now = c.cfg.Now()
	if list != nil {
		in.Docker = c.dockerView(list, readAt, in.Networks)
		c.dockerBridges = dockerBridgeNames(list)
	}
	in.Busy = map[string]bool{}
	for id := range c.busy {
		in.Busy[id] = true
	}
	in.Forgotten = map[string]bool{}
	for k, t := range c.forgotten {
		if in.Now.Sub(t) > forgetFor {
			delete(c.forgotten, k)
			continue
		}
		in.Forgotten[k] = true
	}
	in.Released = map[string]bool{}
	for k, t := range c.released {
		if in.Now.Sub(t) > forgetFor {
			delete(c.released, k)
			continue
		}
		in.Released[k] = true
	}
	in.OrphanSince = maps.Clone(c.orphanSince)
	in.BlockEmptySince, in.BlockGrace = maps.Clone(c.blockEmpty), c.cfg.BlockGrace
	return in, true
}

// describe says what an action is about, for status.
func describe(a reconcile.Action) string {
	s := a.Kind.String()
	switch {
	case a.Name != "":
		s += " " + a.Name
	case a.ID != "":
		s += " " + short(a.ID)
	}
	if a.Subnet.IsValid() {
		s += " " + a.Subnet.String()
	}
	if a.Bridge != "" {
		s += " bridge " + a.Bridge
	}
	return s + " (" + a.Why + ")"
}

// readDocker reads Docker's list of networks; nil when it cannot. The lack of access
// is logged once per outage: vpcroute then goes on with its own records alone.
func (c *Controller) readDocker(ctx context.Context) ([]dockerapi.Network, time.Time) {
	if c.docker == nil {
		if !c.dockerWarned {
			c.dockerWarned = true
			c.log.Warn("Docker's API is not configured (VPCROUTE_DOCKER_HOST): vpcroute cannot check its networks against Docker's, so it keeps what it finds without a record and cannot see networks removed while it was not serving")
		}
		return nil, time.Time{}
	}
	readAt := c.cfg.Now()
	dctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	list, err := c.docker.Networks(dctx)
	if err != nil {
		if !c.dockerWarned {
			c.dockerWarned = true
			c.log.Warn("cannot read Docker's networks: vpcroute goes on with its own records, keeps what it finds without a record, and tries again every cycle; give the plugin Docker's socket (VPCROUTE_DOCKER_HOST, or the managed plugin's docker-socket mount)", "err", err)
		}
		return nil, time.Time{}
	}
	if c.dockerWarned {
		c.dockerWarned = false
		c.log.Info("reading Docker's networks again")
	}
	if list == nil {
		list = []dockerapi.Network{}
	}
	return list, readAt
}

// dockerView turns Docker's list into the plan's input. A network is vpcroute's when
// its driver is the plugin's name (with or without a tag or repository) or the driver
// of a network vpcroute has a record of. Config-only networks (Swarm's --config-only)
// have no driver state and are left out.
func (c *Controller) dockerView(list []dockerapi.Network, readAt time.Time, nets []state.Network) *reconcile.Docker {
	known := map[string]bool{}
	for _, n := range nets {
		known[n.ID] = true
	}
	for _, d := range list {
		if known[d.ID] && d.Driver != "" {
			c.driverNames[d.Driver] = true
		}
	}
	v := &reconcile.Docker{ReadAt: readAt}
	for _, d := range list {
		if d.ConfigOnly {
			continue
		}
		dn := reconcile.DockerNetwork{ID: d.ID, Name: d.Name, Driver: c.ours(d.Driver), IPAM: c.ours(d.IPAM.Driver)}
		for _, cfg := range d.IPAM.Config {
			if p, err := netip.ParsePrefix(cfg.Subnet); err == nil && p.Addr().Is4() {
				dn.Subnet = p.Masked()
				break
			}
		}
		v.Networks = append(v.Networks, dn)
	}
	return v
}

// ours tells whether a driver name of Docker's is this plugin: "vpcroute",
// "vpcroute:latest", "vpcroute/vpcroute:1.2", or a name a network vpcroute has a
// record of was created with (an alias).
func (c *Controller) ours(driver string) bool {
	if driver == "" {
		return false
	}
	if c.driverNames[driver] {
		return true
	}
	return baseName(driver) == baseName(c.cfg.DriverName)
}

// apply carries out one action of a plan. Each action checks the records again under
// mu first: Docker's calls went on while the plan was made.
func (c *Controller) apply(ctx context.Context, a reconcile.Action) error {
	log := c.log.With("action", a.Kind.String(), "why", a.Why)
	var err error
	switch a.Kind {
	case reconcile.FinishNetwork:
		err = c.applyFinishNetwork(ctx, a, log)
	case reconcile.FinishPool:
		err = c.applyFinishPool(ctx, a, log)
	case reconcile.ReleaseRoute:
		err = c.applyReleaseRoute(ctx, a, log)
	case reconcile.Adopt:
		err = c.adopt(ctx, a, log)
	case reconcile.Claim:
		err = c.applyClaim(ctx, a, log)
	case reconcile.Rename:
		err = c.applyRename(a)
	case reconcile.DeleteBridge:
		err = c.applyDeleteBridge(a, log)
	case reconcile.PruneRules:
		err = c.applyPrune(a, log)
	}
	if err != nil {
		log.Warn("could not bring the host in line (retried next cycle)", "network", short(a.ID), "subnet", a.Subnet, "err", err)
	}
	return err
}

// current returns the record of a network an action was planned from, if it is still
// as it was and no call is working on it. Call with mu held.
func (c *Controller) current(a reconcile.Action) (state.Network, bool) {
	n, err := c.store.Network(a.ID)
	if err != nil || c.busy[a.ID] > 0 || !n.Created.Equal(a.Since) {
		return n, false
	}
	return n, true
}

func (c *Controller) applyFinishNetwork(ctx context.Context, a reconcile.Action, log *slog.Logger) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.current(a)
	if !ok {
		return nil
	}
	log.Info("removing network", "network", label(n), "subnet", n.Subnet)
	return c.deleteNetwork(ctx, n)
}

func (c *Controller) applyFinishPool(ctx context.Context, a reconcile.Action, log *slog.Logger) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := c.store.Pool(a.ID)
	if err != nil || c.busy[a.ID] > 0 || !p.Created.Equal(a.Since) {
		return nil
	}
	if p.IsBlock() && !p.Claiming && !p.Releasing {
		// A network may have been carved from it since the plan was made.
		if used, err := c.blockUsed(p); used || err != nil {
			return err
		}
		log.Info("releasing host block", "block", p.ID, "subnet", p.Subnet, "why", a.Why)
		return c.releasePool(ctx, p)
	}
	log.Info("releasing pool", "pool", p.ID, "subnet", p.Subnet)
	return c.releasePool(ctx, p)
}

// ownerRecord tells whether a record holds the route owner, and which (a pool or
// network ID). Call with mu held.
func (c *Controller) ownerRecord(owner string) (string, bool, error) {
	pools, err := c.store.Pools()
	if err != nil {
		return "", false, err
	}
	for _, p := range pools {
		if p.RouteOwner() == owner {
			return p.ID, true, nil
		}
	}
	nets, err := c.store.Networks()
	if err != nil {
		return "", false, err
	}
	for _, n := range nets {
		if n.ClaimOwner == owner {
			return n.ID, true, nil
		}
	}
	return "", false, nil
}

func (c *Controller) applyReleaseRoute(ctx context.Context, a reconcile.Action, log *slog.Logger) error {
	c.mu.Lock()
	_, owned, err := c.ownerRecord(a.Owner)
	c.mu.Unlock()
	if err != nil || owned {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if err := c.vpc.Release(rctx, a.Subnet, a.Owner); err != nil {
		return err
	}
	log.Info("released a route of this ECS that no network owns", "subnet", a.Subnet, "owner", a.Owner)
	c.mu.Lock()
	delete(c.orphanSince, reconcile.RouteKey(cloud.Route{Destination: a.Subnet, Owner: a.Owner}))
	c.mu.Unlock()
	return nil
}

func (c *Controller) applyClaim(ctx context.Context, a reconcile.Action, log *slog.Logger) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, owned, err := c.ownerRecord(a.Owner)
	if err != nil || !owned || c.busy[id] > 0 {
		return err
	}
	if err := c.reclaim(ctx, id, a.Owner, a.Subnet, a.Name); errors.Is(err, errMoved) {
		return nil
	} else if err != nil {
		return err
	}
	log.Info("route claimed again", "subnet", a.Subnet, "owner", a.Owner, "name", a.Name)
	return nil
}

// errMoved: the subnet's route was taken over by another ECS, and the record now
// says so (markMoved).
var errMoved = errors.New("the subnet moved to another ECS")

// reclaim claims a record's route again, with mu let go and the record busy; a
// conflict says whose the subnet is now, and errMoved that another ECS took it
// over. Call with mu held.
func (c *Controller) reclaim(ctx context.Context, id, owner string, subnet netip.Prefix, name string) error {
	var err error
	c.outside(id, func() {
		rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
		_, err = c.vpc.Claim(rctx, cloud.ClaimRequest{Owner: owner, Want: subnet, Name: name})
	})
	var conflict *cloud.ConflictError
	if errors.As(err, &conflict) && conflict.Takeable {
		// Another ECS took the subnet over (vpcroute.takeover): it is theirs now.
		if err := c.markMoved(id, conflict.NextHop, name, subnet); err != nil {
			return err
		}
		return errMoved
	}
	if errors.As(err, &conflict) {
		return fmt.Errorf("network %s cannot have its route back: %w; its containers are reachable from this ECS only until the route is freed", name, err)
	}
	if err != nil {
		return fmt.Errorf("claim %s again: %w", subnet, err)
	}
	return nil
}

// markMoved records that the ECS to took the route of record id's subnet over: the
// network keeps serving its containers here, but vpcroute no longer claims the route,
// and removing the network leaves it alone. Call with mu held.
func (c *Controller) markMoved(id, to, name string, subnet netip.Prefix) error {
	if p, err := c.store.Pool(id); err == nil {
		p.MovedTo = to
		if err := c.store.PutPool(p); err != nil {
			return fmt.Errorf("record that %s moved to %s: %w", subnet, to, err)
		}
	} else if n, err := c.store.Network(id); err == nil {
		n.MovedTo = to
		if err := c.store.PutNetwork(n); err != nil {
			return fmt.Errorf("record that %s moved to %s: %w", subnet, to, err)
		}
	} else {
		return nil
	}
	c.log.Warn("another ECS took this network's subnet over (vpcroute.takeover): vpcroute no longer claims its route; its containers are reachable from this ECS only; docker network rm removes it here and leaves the route alone",
		"network", name, "subnet", subnet, "moved_to", to)
	return nil
}

func (c *Controller) applyRename(a reconcile.Action) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.store.Network(a.ID)
	if err != nil || n.Name == a.Name {
		return nil
	}
	n.Name = a.Name
	return c.store.PutNetwork(n)
}

func (c *Controller) applyDeleteBridge(a reconcile.Action, log *slog.Logger) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, err := c.store.Network(a.ID); err == nil && n.Bridge == a.Bridge {
		return nil
	}
	if err := c.links.DeleteBridge(a.Bridge, a.ID); err != nil {
		return err
	}
	log.Info("removed bridge", "bridge", a.Bridge, "network", short(a.ID))
	return nil
}

func (c *Controller) applyPrune(a reconcile.Action, log *slog.Logger) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := maps.Clone(a.Keep)
	nets, err := c.store.Networks()
	if err != nil {
		return err
	}
	for _, n := range nets {
		keep[n.ID] = true
	}
	if err := c.fw.Prune(keep); err != nil {
		return err
	}
	log.Info("removed iptables rules of networks that are gone")
	return nil
}

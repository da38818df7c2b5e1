package huawei

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vpcroute/vpcroute/cloud"
)

// srcDstOffPair is the allowed address pair that turns the source/destination
// check of a Huawei Cloud port off.
const srcDstOffPair = "1.1.1.1/0"

// quotaWarnFraction is how full the route table may get before every claim
// logs a warning.
const quotaWarnFraction = 0.9

// Client is cloud.VPC on Huawei Cloud for one ECS. It writes this host's routes
// into one route table of the VPC and never touches routes that are not
// vpcroute's for this instance.
//
// Claims and releases run concurrently: one slow call must not hold up the
// others. pickMu makes a pick and its mark as in flight one step, so that two
// claims of one Client never pick the same subnet; other hosts are other Clients,
// and races with them are settled by the API (VPC.2812, duplicate destination).
// Lock order: pickMu, then the Pick callback's own locks, then writesMu or
// cacheMu (never both).
type Client struct {
	log     *slog.Logger
	api     vpcAPI
	t       timing
	id      cloud.Identity
	project string
	region  string
	portID  string
	subnet  string // network ID of the primary port's subnet
	tableID string // the route table vpcroute writes to
	quota   int    // routes per table, 0 when unknown
	srcDst  bool   // the primary port's source/destination check is on
	// md is the metadata service; usesMetadata says the identity or the
	// credentials come from it, so that doctor checks it.
	md           *metadataClient
	usesMetadata bool
	agency       bool // credentials are the ECS agency's

	pickMu sync.Mutex

	writesMu  sync.Mutex
	inflight  map[netip.Prefix]int       // subnets being written now
	unsettled map[netip.Prefix]time.Time // subnets with a write that may still land, until when

	cacheMu  sync.Mutex
	tables   []string  // IDs of the VPC's route tables
	tablesAt time.Time // when tables was listed
}

var _ cloud.VPC = (*Client)(nil)

// New finds out who this ECS is, which route table to use and how full it is,
// and checks the primary port's source/destination check. It fails with a
// message naming the settings to give when the metadata service cannot answer.
func New(ctx context.Context, cfg Config) (*Client, error) {
	return newClient(ctx, cfg, defaultTiming(), http.DefaultTransport)
}

// newClient is New with the timing and transport that tests shorten or count.
func newClient(ctx context.Context, cfg Config, t timing, transport http.RoundTripper) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Timeouts.apply(&t)
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("cloud", "huawei")
	if cfg.MetadataURL == "" {
		cfg.MetadataURL = DefaultMetadataURL
	}
	md := newMetadataClient(cfg.MetadataURL, t.metadataTimeout)

	c := &Client{log: log, t: t, md: md, agency: cfg.AK == "",
		inflight: map[netip.Prefix]int{}, unsettled: map[netip.Prefix]time.Time{}}
	c.usesMetadata = cfg.AK == "" || cfg.InstanceID == "" || cfg.ProjectID == "" || cfg.Region == "" || cfg.VPCID == "" || cfg.PortID == ""
	if err := c.resolveIdentity(ctx, &cfg, md); err != nil {
		return nil, err
	}

	var creds credentialSource
	if cfg.AK != "" {
		sc, err := buildCredentials(&temporaryKey{AK: cfg.AK, SK: cfg.SK, Token: cfg.SecurityToken}, c.project)
		if err != nil {
			return nil, err
		}
		creds = &staticCredentials{creds: sc}
	} else {
		ac, err := newAgencyCredentials(ctx, md, c.project, log)
		if err != nil {
			return nil, err
		}
		creds = ac
	}

	endpoint := apiEndpoint(cfg.VPCEndpoint, regionEndpoint(c.region))
	ecsEndpoint := apiEndpoint(cfg.ECSEndpoint, ecsRegionEndpoint(c.region))
	c.api = &sdkAPI{endpoint: endpoint, ecsEndpoint: ecsEndpoint, transport: transport, creds: creds, log: log, t: t}

	if err := c.checkPort(ctx, cfg.SrcDstCheck); err != nil {
		return nil, err
	}
	if err := c.chooseTable(ctx, cfg.RouteTableID); err != nil {
		return nil, err
	}
	c.readQuota(ctx)

	sctx, cancel := context.WithTimeout(ctx, t.opTimeout)
	defer cancel()
	tables, err := c.readAll(sctx)
	if err != nil {
		return nil, fmt.Errorf("read the route tables of VPC %s: %w", c.id.VPCID, err)
	}
	if err := c.resolveVPCCIDRs(ctx, cfg.VPCCIDRs, tables); err != nil {
		return nil, err
	}
	if _, err := c.checkQuota(tables[c.tableID]); err != nil {
		log.Warn("the route table is full: new networks will fail until routes are removed", "error", err)
	}
	log.Info("using the VPC route table", "instance", c.id.InstanceID, "vpc", c.id.VPCID, "region", c.region,
		"route_table", c.tableID, "endpoint", endpoint, "vpc_cidrs", c.id.VPCCIDRs, "route_quota", c.quota)
	return c, nil
}

// apiEndpoint is the endpoint a setting gives (https:// when it names no scheme),
// else def.
func apiEndpoint(setting, def string) string {
	e := strings.TrimRight(setting, "/")
	switch {
	case e == "":
		return def
	case !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://"):
		return "https://" + e
	}
	return e
}

// Identity returns this host's identity, as found at start.
func (c *Client) Identity() cloud.Identity {
	id := c.id
	id.VPCCIDRs = slices.Clone(c.id.VPCCIDRs)
	id.SrcDstCheckOn = c.srcDst
	return id
}

// RouteTableID is the route table this client writes to.
func (c *Client) RouteTableID() string { return c.tableID }

func (c *Client) setTables(ids []string) {
	c.cacheMu.Lock()
	c.tables = ids
	c.tablesAt = time.Now()
	c.cacheMu.Unlock()
}

// readAll reads every route table of the VPC (one request per table). The list
// of tables is reused for tableListTTL.
func (c *Client) readAll(ctx context.Context) (map[string][]route, error) {
	c.cacheMu.Lock()
	ids := slices.Clone(c.tables)
	listAge := time.Since(c.tablesAt)
	c.cacheMu.Unlock()
	if listAge > c.t.tableListTTL || !slices.Contains(ids, c.tableID) {
		all, err := c.api.listRouteTables(ctx, c.id.VPCID, "")
		if err != nil {
			return nil, err
		}
		ids = ids[:0]
		for _, t := range all {
			ids = append(ids, t.ID)
		}
		c.setTables(ids)
	}
	out := make(map[string][]route, len(ids))
	for _, id := range ids {
		t, err := c.api.showRouteTable(ctx, id)
		if err != nil {
			if hasStatus(err, http.StatusNotFound) && id != c.tableID {
				// Deleted since it was listed: list again next time.
				c.setTables(slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == id }))
				continue
			}
			return nil, err
		}
		out[id] = t.Routes
	}
	if _, ok := out[c.tableID]; !ok {
		out[c.tableID] = nil
	}
	return out, nil
}

// taken lists every IPv4 destination of every table plus the configured VPC
// ranges. A default route (0.0.0.0/0, e.g. to a NAT gateway) is left out: it
// does not make any subnet unusable, longest prefix match routes around it.
func (c *Client) taken(tables map[string][]route, extra []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	add := func(p netip.Prefix) {
		if p.Bits() > 0 && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(tables)) {
		for _, r := range tables[id] {
			if p, ok := r.destination(); ok {
				add(p)
			}
		}
	}
	for _, p := range c.id.VPCCIDRs {
		add(p.Masked())
	}
	for _, p := range extra {
		add(p)
	}
	slices.SortFunc(out, comparePrefix)
	return out
}

// checkQuota returns the number of custom routes of the table and an error
// wrapping ErrQuotaFull when another one does not fit.
func (c *Client) checkQuota(routes []route) (int, error) {
	n := customCount(routes)
	if c.quota > 0 && n >= c.quota {
		return n, c.quotaError(n, nil)
	}
	return n, nil
}

func (c *Client) quotaError(n int, cause error) error {
	limit := "its quota"
	if c.quota > 0 {
		limit = fmt.Sprintf("its quota of %d", c.quota)
	}
	msg := fmt.Sprintf("route table %s of VPC %s holds %d routes, %s (routetableContainRoutes): %%w; "+
		"remove unused routes, raise the quota in the Huawei Cloud console (My Quotas), or set VPCROUTE_ROUTE_TABLE_ID "+
		"to another route table associated with this ECS's subnet", c.tableID, c.id.VPCID, n, limit)
	if cause != nil {
		return fmt.Errorf(msg+" (%w)", ErrQuotaFull, cause)
	}
	return fmt.Errorf(msg, ErrQuotaFull)
}

func (c *Client) warnIfNearlyFull(n int) {
	if c.quota > 0 && float64(n) > quotaWarnFraction*float64(c.quota) {
		c.log.Warn("the route table is nearly full: raise the quota (routetableContainRoutes) in the console or remove unused routes",
			"route_table", c.tableID, "routes", n, "quota", c.quota)
	}
}

// validOwner keeps owners parseable from descriptions.
func validOwner(owner string) error {
	if owner == "" || strings.ContainsAny(owner, " \t\r\n<>") || len(owner) > 128 {
		return fmt.Errorf("claim owner %q must be 1-128 characters without spaces, < or >", owner)
	}
	return nil
}

// Claim routes a subnet to this ECS. A route this instance already holds for
// req.Owner counts as success, so a retried claim is harmless. In the common
// case it costs one read per route table and one write.
func (c *Client) Claim(ctx context.Context, req cloud.ClaimRequest) (netip.Prefix, error) {
	if err := validOwner(req.Owner); err != nil {
		return netip.Prefix{}, err
	}
	explicit := req.Want.IsValid()
	if explicit {
		if !req.Want.Addr().Is4() {
			return netip.Prefix{}, fmt.Errorf("subnet %s: only IPv4 subnets can be routed", req.Want)
		}
		req.Want = req.Want.Masked()
	} else if req.Pick == nil {
		return netip.Prefix{}, errors.New("claim without a subnet needs a Pick function")
	}
	ctx, cancel := context.WithTimeout(ctx, c.t.opTimeout)
	defer cancel()

	var avoid []netip.Prefix // picks the API refused as overlapping a subnet
	lastRace := netip.Prefix{}
	racesLost := 0    // writes refused because another host had just added the subnet
	var lastErr error // why the last write did not settle the claim
	// retry is the subnet whose write got no answer: the next round writes it
	// again rather than another, so that a late landing is a harmless duplicate,
	// not a second route.
	var retry netip.Prefix
	// holderState is the state of the ECS a takeover moves the route from, once read.
	holderState := ""
	for round := 0; round < c.t.maxClaimRounds; round++ {
		if round > 0 && lastErr != nil {
			if err := sleep(ctx, backoff(c.t, round)); err != nil {
				return netip.Prefix{}, c.claimCut(req, err, lastErr)
			}
		}
		tables, err := c.readAll(ctx)
		if err != nil {
			if lastErr != nil && ctx.Err() != nil {
				return netip.Prefix{}, c.claimCut(req, ctx.Err(), lastErr)
			}
			return netip.Prefix{}, fmt.Errorf("claim a subnet: read the route tables of VPC %s: %w", c.id.VPCID, err)
		}
		routes := tables[c.tableID]
		// takeFrom is the route of another ECS this claim moves here (vpcroute.takeover).
		var takeFrom *cloud.ConflictError
		if p, done, err := c.alreadyClaimed(req, tables); done || err != nil {
			if first, ok := overlapping(routes, p, c.id.InstanceID, req.Owner); err == nil && !req.Want.IsValid() && ok {
				// This claim's earlier write landed late, beside a route that
				// overlaps it: which landed first is unknown, so this one
				// withdraws (at worst both do, and pick again).
				if werr := c.withdraw(ctx, p, req.Owner, first); werr != nil {
					return netip.Prefix{}, c.lostRace(req, p, first, werr)
				}
				avoid = append(avoid, p)
				lastErr, lastRace = errLostOverlap, p
				continue
			}
			if !errors.As(err, &takeFrom) || !takeFrom.Takeable || req.Takeover == cloud.NoTakeover {
				return p, err
			}
			if err := c.mayTakeOver(ctx, takeFrom, &holderState); err != nil {
				return netip.Prefix{}, err
			}
		}
		n, err := c.checkQuota(routes)
		if takeFrom != nil {
			err = nil // a move adds no route
		}
		if err != nil {
			// The quota may have been raised since it was read (the error tells the
			// user to): read it again before refusing.
			c.readQuota(ctx)
			if n, err = c.checkQuota(routes); err != nil {
				return netip.Prefix{}, err
			}
		}
		spread := 0
		if racesLost >= 2 {
			// Hosts that keep losing races together (many ECSs creating at
			// once) would all pick the same next subnet again: each skips a
			// random few of the free ones, more after each race lost.
			spread = rand.N(min(4<<racesLost, 64))
		}
		want, end, err := c.pick(req, tables, avoid, retry, spread)
		if err != nil {
			return netip.Prefix{}, err
		}
		r := route{Type: routeTypeECS, Destination: want.String(), NextHop: c.id.InstanceID, Description: describe(req.Owner, req.Name, c.id.Hostname)}
		var del []route
		if takeFrom != nil {
			// One update deletes the other ECS's route and adds this one's: there
			// is no moment without a route to the subnet.
			del = []route{{Type: routeTypeECS, Destination: want.String(), NextHop: takeFrom.NextHop}}
		}
		var after routeTable
		after, err = c.api.updateRouteTable(ctx, c.tableID, []route{r}, del)
		if err == nil && takeFrom == nil && after.Shown {
			// The answer shows the table right after the write. A route in it
			// that overlaps the new one was not in the read this claim picked
			// from, so it landed first: it stands, this one withdraws.
			if first, ok := overlapping(after.Routes, want, c.id.InstanceID, req.Owner); ok {
				end()
				if werr := c.withdraw(ctx, want, req.Owner, first); werr != nil || req.Want.IsValid() {
					return netip.Prefix{}, c.lostRace(req, want, first, werr)
				}
				avoid = append(avoid, want)
				lastErr, lastRace, retry = errLostOverlap, want, netip.Prefix{}
				continue
			}
		}
		if err == nil && c.isUnsettled(want) {
			// An earlier write of this subnet may land meanwhile (a late delete):
			// confirm the route is there.
			err = c.confirm(ctx, want, req.Owner)
		}
		end()
		lastErr, retry = err, netip.Prefix{}
		switch {
		case err == nil && takeFrom != nil:
			c.log.Warn("took the subnet's route over from another ECS", "subnet", want, "from", takeFrom.NextHop,
				"its_state", holderState, "takeover", req.Takeover, "owner", req.Owner, "route_table", c.tableID)
			return want, nil
		case err == nil:
			c.warnIfNearlyFull(n + 1)
			c.log.Info("claimed subnet", "subnet", want, "owner", req.Owner, "route_table", c.tableID)
			return want, nil
		case takeFrom != nil && hasCode(err, codeRouteNotFound):
			// The other ECS's route went meanwhile: read again.
			c.log.Debug("the route to take over is gone; reading again", "subnet", want)
		case errors.Is(err, errNotConfirmed):
			// Gone again at once: a late delete took it; write it again.
		case uncertain(err):
			// Perhaps added: the next round reads the table before writing again.
			c.unsettle(want, err)
			retry = want
		case hasCode(err, codeDuplicateDestination):
			// Another host added the same destination since our read (or our own
			// earlier write landed): read again and see who holds it now. Hosts
			// that start claiming together also pick the same next subnet: the
			// random pause before the next round lets one of them go first.
			c.log.Debug("another host claimed the subnet first; reading again", "subnet", want)
			lastRace = want
			racesLost++
			if !req.Want.IsValid() {
				avoid = append(avoid, want)
			}
		case hasCode(err, codeOverlapsSubnet):
			if req.Want.IsValid() {
				return netip.Prefix{}, c.subnetConflict(want, tables)
			}
			avoid = append(avoid, want)
			lastErr = nil
		case hasStatus(err, http.StatusConflict):
			// The API refuses a route beyond the quota with 409.
			return netip.Prefix{}, c.quotaError(n, err)
		default:
			return netip.Prefix{}, fmt.Errorf("claim subnet %s: %w", want, err)
		}
	}
	if lastRace.IsValid() {
		return netip.Prefix{}, fmt.Errorf("claim a subnet in route table %s: gave up after %d attempts, other hosts kept taking the same subnet (last %s); try again",
			c.tableID, c.t.maxClaimRounds, lastRace)
	}
	return netip.Prefix{}, fmt.Errorf("claim a subnet in route table %s: gave up after %d attempts: %w", c.tableID, c.t.maxClaimRounds, lastErr)
}

// errLostOverlap: the claim's route overlapped a route that landed first, and was
// withdrawn.
var errLostOverlap = errors.New("another route overlapping the subnet landed first")

// overlapping finds, among routes, one that overlaps p and is not this instance's
// route to p for owner. The VPC API refuses only an identical destination, so two
// hosts that read the table at the same moment can add overlapping routes of
// different sizes (an explicit /16 here, an automatic /24 inside it there).
func overlapping(routes []route, p netip.Prefix, instance, owner string) (route, bool) {
	for _, r := range routes {
		d, ok := r.destination()
		if !ok || d.Bits() == 0 || !d.Overlaps(p) || isSystemRange(d) {
			continue
		}
		if d == p && r.ownedBy(instance, owner) {
			continue
		}
		return r, true
	}
	return route{}, false
}

// withdraw removes this instance's route to p for owner after it lost to first.
func (c *Client) withdraw(ctx context.Context, p netip.Prefix, owner string, first route) error {
	c.log.Warn("withdrawing a route that overlaps one that landed first", "subnet", p, "owner", owner,
		"first", first.Destination, "its_next_hop", first.NextHop, "route_table", c.tableID)
	return c.deleteRoute(ctx, p, "withdraw the route to "+p.String(),
		func(r route) bool { return r.ownedBy(c.id.InstanceID, owner) }, nil)
}

// lostRace is the error of a claim whose route overlapped one that landed first: a
// conflict naming that route once the withdrawal is done; else the withdrawal's
// failure (the route may still be there, and the caller gives it back).
func (c *Client) lostRace(req cloud.ClaimRequest, want netip.Prefix, first route, withdrawErr error) error {
	if withdrawErr != nil {
		return fmt.Errorf("claim %s: a route overlapping it (%s to %s) landed first, and withdrawing this one failed (vpcroute retries): %w",
			want, first.Destination, first.NextHop, withdrawErr)
	}
	existing, _ := first.destination()
	return &cloud.ConflictError{Want: want, Existing: existing, NextHop: first.NextHop, Description: first.Description, Takeover: req.Takeover}
}

// mayTakeOver says whether a takeover may move the route conflict names: always with
// force, else only when the ECS holding it is not running, as the ECS API says
// (state is read once per claim). It returns the conflict, telling the state, when
// that ECS runs.
func (c *Client) mayTakeOver(ctx context.Context, conflict *cloud.ConflictError, state *string) error {
	if conflict.Takeover == cloud.TakeoverForce {
		return nil
	}
	if *state == "" {
		s, err := c.api.serverStatus(ctx, conflict.NextHop)
		if err != nil {
			conflict.StateErr = err
			return conflict
		}
		*state = s
	}
	switch *state {
	case "SHUTOFF", "ERROR", "DELETED", "SHELVED", "SHELVED_OFFLOADED":
		return nil
	}
	conflict.Running = *state
	return conflict
}

// errNotConfirmed: a route the API said it added is not in the table.
var errNotConfirmed = errors.New("the route is not in the table after it was added")

// confirm reads the table and checks that this instance's route to p for owner is
// in it.
func (c *Client) confirm(ctx context.Context, p netip.Prefix, owner string) error {
	t, err := c.api.showRouteTable(ctx, c.tableID)
	if err != nil {
		return fmt.Errorf("confirm the route to %s: %w", p, err)
	}
	if slices.ContainsFunc(t.Routes, func(r route) bool {
		d, ok := r.destination()
		return ok && d == p && r.ownedBy(c.id.InstanceID, owner)
	}) {
		return nil
	}
	return errNotConfirmed
}

// pick chooses the subnet to write (spread > 0 skips that many free subnets, as
// long as there are more): the one asked for, or Pick's choice among what
// no table, no write of this client in flight and no unsettled write has. It marks
// the subnet in flight; end unmarks it. retry, when valid, is the subnet this claim
// wrote last without an answer: it is written again unless a route now has it.
func (c *Client) pick(req cloud.ClaimRequest, tables map[string][]route, avoid []netip.Prefix, retry netip.Prefix, spread int) (want netip.Prefix, end func(), err error) {
	if req.Want.IsValid() {
		return req.Want, c.begin(req.Want), nil
	}
	if retry.IsValid() && !slices.ContainsFunc(c.taken(tables, nil), retry.Overlaps) {
		return retry, c.begin(retry), nil
	}
	c.pickMu.Lock()
	defer c.pickMu.Unlock()
	taken := c.taken(tables, append(avoid, c.busyPrefixes()...))
	want, err = req.Pick(taken)
	for ; spread > 0 && err == nil; spread-- {
		if next, nerr := req.Pick(append(taken, want)); nerr == nil {
			taken, want = append(taken, want), next
		} else {
			spread = 0
			want, err = req.Pick(taken)
		}
	}
	if err != nil {
		return netip.Prefix{}, nil, fmt.Errorf("claim a subnet in VPC %s: %w", c.id.VPCID, err)
	}
	want = want.Masked()
	return want, c.begin(want), nil
}

// claimCut is the error of a claim whose time ran out after a write the API did not
// answer: the route may be there, or land later, and the caller must give it back.
func (c *Client) claimCut(req cloud.ClaimRequest, cause, last error) error {
	return fmt.Errorf("claim a subnet for %s: the route write got no answer within %s (%w); a route that lands late is given back: %w",
		req.Owner, c.t.opTimeout, cause, last)
}

// alreadyClaimed settles a claim from what the tables show: done with the
// prefix when this instance already holds a route for req.Owner (the wanted one,
// for explicit claims), or a *cloud.ConflictError when the wanted subnet
// overlaps someone else's route.
func (c *Client) alreadyClaimed(req cloud.ClaimRequest, tables map[string][]route) (netip.Prefix, bool, error) {
	if !req.Want.IsValid() {
		for _, r := range tables[c.tableID] {
			if p, ok := r.destination(); ok && r.ownedBy(c.id.InstanceID, req.Owner) {
				return p, true, nil
			}
		}
		return netip.Prefix{}, false, nil
	}
	var conflict *cloud.ConflictError
	mine := false
	others := 0 // routes of others that overlap Want
	for _, id := range slices.Sorted(maps.Keys(tables)) {
		for _, r := range tables[id] {
			p, ok := r.destination()
			if !ok || p.Bits() == 0 || !p.Overlaps(req.Want) {
				continue
			}
			if id == c.tableID && p == req.Want && r.ownedBy(c.id.InstanceID, req.Owner) {
				mine = true
				continue
			}
			others++
			if conflict == nil {
				_, marked := parseDescription(r.Description)
				conflict = &cloud.ConflictError{Want: req.Want, Existing: p, NextHop: r.NextHop, Description: r.Description,
					Takeover: req.Takeover,
					Takeable: id == c.tableID && p == req.Want && marked && r.Type == routeTypeECS && r.NextHop != c.id.InstanceID}
			}
		}
	}
	if conflict != nil {
		// A takeover moves one route: the subnet must have no other.
		conflict.Takeable = conflict.Takeable && others == 1
		return netip.Prefix{}, true, conflict
	}
	if mine {
		return req.Want, true, nil
	}
	for _, p := range c.id.VPCCIDRs {
		if p.Overlaps(req.Want) {
			return netip.Prefix{}, true, &cloud.ConflictError{Want: req.Want, Existing: p, NextHop: "local"}
		}
	}
	return netip.Prefix{}, false, nil
}

// subnetConflict explains a VPC.2809 refusal: the subnet overlaps one of the VPC's.
func (c *Client) subnetConflict(want netip.Prefix, tables map[string][]route) error {
	for _, r := range tables[c.tableID] {
		if p, ok := r.destination(); ok && r.isLocal() && p.Overlaps(want) {
			return &cloud.ConflictError{Want: want, Existing: p, NextHop: "local"}
		}
	}
	for _, p := range c.id.VPCCIDRs {
		if p.Overlaps(want) {
			return &cloud.ConflictError{Want: want, Existing: p, NextHop: "local"}
		}
	}
	return &cloud.ConflictError{Want: want, Existing: want, NextHop: "local", Description: "a subnet of the VPC"}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Release removes this instance's route to prefix if vpcroute holds it for
// owner. A route that is gone, or that someone else now holds, is left alone.
func (c *Client) Release(ctx context.Context, prefix netip.Prefix, owner string) error {
	prefix = prefix.Masked()
	ctx, cancel := context.WithTimeout(ctx, c.t.opTimeout)
	defer cancel()
	warned := false
	err := c.deleteRoute(ctx, prefix, "release subnet "+prefix.String(), func(r route) bool {
		if r.ownedBy(c.id.InstanceID, owner) {
			return true
		}
		if !warned {
			warned = true
			c.log.Warn("not removing a route vpcroute does not hold for this owner on this host", "subnet", prefix,
				"owner", owner, "nexthop", r.NextHop, "description", r.Description)
		}
		return false
	}, nil)
	if err != nil {
		return err
	}
	c.log.Info("released subnet", "subnet", prefix, "owner", owner, "route_table", c.tableID)
	return nil
}

// Owned lists the routes vpcroute holds for this instance in its route table.
func (c *Client) Owned(ctx context.Context) ([]cloud.Route, error) {
	ctx, cancel := context.WithTimeout(ctx, c.t.opTimeout)
	defer cancel()
	t, err := c.api.showRouteTable(ctx, c.tableID)
	if err != nil {
		return nil, fmt.Errorf("list this host's routes: %w", err)
	}
	var out []cloud.Route
	for _, r := range t.Routes {
		p, ok := r.destination()
		if !ok || r.Type != routeTypeECS || r.NextHop != c.id.InstanceID {
			continue
		}
		if d, ok := parseDescription(r.Description); ok {
			out = append(out, cloud.Route{Destination: p, Owner: d.Owner})
		}
	}
	return out, nil
}

// Table reads the route table this host writes to (one request) and the quota.
func (c *Client) Table(ctx context.Context) (cloud.Table, error) {
	ctx, cancel := context.WithTimeout(ctx, c.t.opTimeout)
	defer cancel()
	t, err := c.api.showRouteTable(ctx, c.tableID)
	if err != nil {
		return cloud.Table{}, fmt.Errorf("read route table %s: %w", c.tableID, err)
	}
	out := cloud.Table{ID: c.tableID, Quota: c.quota, Used: customCount(t.Routes)}
	gone, err := c.goneHops(ctx, t.Routes)
	if err != nil {
		c.log.Debug("tell routes to deleted instances", "err", err)
	}
	for _, r := range t.Routes {
		p, ok := r.destination()
		if !ok {
			continue
		}
		tr := cloud.TableRoute{Destination: p, Type: r.Type, NextHop: r.NextHop, Description: r.Description,
			Mine: r.Type == routeTypeECS && r.NextHop == c.id.InstanceID}
		if d, ok := parseDescription(r.Description); ok {
			tr.Owner, tr.Gone = d.Owner, gone[r.NextHop]
		}
		out.Routes = append(out.Routes, tr)
	}
	return out, nil
}

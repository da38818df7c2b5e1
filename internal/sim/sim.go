package sim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// SystemRanges are the system routes that Huawei puts, as type "local", in every
// route table besides the subnets' own. They are not the VPC's address space.
var SystemRanges = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("198.19.128.0/20"),
}

// Route types as the API shows them.
const (
	RouteTypeLocal = "local" // system route of a subnet or of SystemRanges, next hop "-"
	RouteTypeECS   = "ecs"   // next hop is an ECS instance ID of the VPC
)

// Defaults applied by New to a zero Config field.
const (
	DefaultRouteQuota    = 200
	DefaultCredentialTTL = 24 * time.Hour
	DefaultRegion        = "cn-north-4"
)

// Subnet is a subnet of the emulated VPC. Its ID is the subnet's network ID, the
// value a port shows as network_id and a route table lists in its subnets.
type Subnet struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CIDR      string `json:"cidr"`
	GatewayIP string `json:"gateway_ip"`
}

// ECS is an instance of the emulated VPC: the next hop of ecs routes and the
// identity served by the metadata endpoints to requests from its IP.
type ECS struct {
	ID       string `json:"id"` // instance uuid
	Name     string `json:"name"`
	IP       string `json:"ip"`
	PortID   string `json:"port_id"`   // primary NIC port
	SubnetID string `json:"subnet_id"` // default: the subnet holding IP
	// SrcDstCheck true means the check is on: the port's allowed_address_pairs
	// lack 1.1.1.1/0, so the VPC drops the containers' traffic of this ECS.
	SrcDstCheck bool `json:"src_dst_check"`
	// Agency true means the ECS has an agency, so the metadata securitykey
	// endpoint serves temporary credentials; without one it answers 404.
	Agency           bool   `json:"agency"`
	AvailabilityZone string `json:"availability_zone"`
	// SecurityGroups are the IDs of the primary port's security groups; default
	// the VPC's default group.
	SecurityGroups []string `json:"security_groups"`
	// Deny lists IAM actions (vpc:routeTables:update, ...) the ECS's agency lacks:
	// the API answers them 403 VPC.2201.
	Deny []string `json:"deny"`
	// Status is the instance's state as the ECS API shows it: ACTIVE (the
	// default), SHUTOFF, ERROR, REBOOT, ...
	Status string `json:"status"`
}

// Route is a route of a route table as the API shows it.
type Route struct {
	Type        string `json:"type"`
	Destination string `json:"destination"`
	NextHop     string `json:"nexthop"`
	Description string `json:"description"`
}

// Config describes the emulated project, VPC and instances. Its JSON form
// (snake_case keys) is the vpcroute-sim config file; credential_ttl is a Go
// duration string such as "24h" (or nanoseconds).
type Config struct {
	Region    string   `json:"region"`
	ProjectID string   `json:"project_id"`
	VPCID     string   `json:"vpc_id"`
	VPCCIDR   string   `json:"vpc_cidr"`
	Subnets   []Subnet `json:"subnets"`
	ECSs      []ECS    `json:"ecss"`
	// AK and SK are the permanent credential the API accepts.
	AK string `json:"ak"`
	SK string `json:"sk"`
	// RouteQuota is routetableContainRoutes: custom routes per route table.
	RouteQuota int `json:"route_quota"`
	// Routes are pre-existing custom routes of the default table (a peering
	// route, another team's ECS route), validated like an API request.
	Routes []Route `json:"routes"`
	// CredentialTTL is the lifetime of the agency temporary credentials.
	CredentialTTL time.Duration `json:"credential_ttl"`
	// SecurityGroups are the VPC's security groups. Default: one group "default"
	// with Huawei's default rules (inbound from members of the group, outbound to
	// anywhere).
	SecurityGroups []SecurityGroup `json:"security_groups"`
	// Deny lists IAM actions the permanent AK/SK lacks, as ECS.Deny for agencies.
	Deny []string `json:"deny"`
	// Now is the emulator's clock (signature skew, credential expiry, created_at).
	// Nil means time.Now; tests move it to simulate skew and expiry.
	Now func() time.Time `json:"-"`
}

// UnmarshalJSON accepts credential_ttl as a duration string or as nanoseconds,
// so that config files can say "1h".
func (c *Config) UnmarshalJSON(b []byte) error {
	type plain Config
	var aux struct {
		plain
		CredentialTTL json.RawMessage `json:"credential_ttl"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*c = Config(aux.plain)
	c.CredentialTTL = 0
	if len(aux.CredentialTTL) == 0 || string(aux.CredentialTTL) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(aux.CredentialTTL, &s); err == nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("credential_ttl %q: %w", s, err)
		}
		c.CredentialTTL = d
		return nil
	}
	var n int64
	if err := json.Unmarshal(aux.CredentialTTL, &n); err != nil {
		return fmt.Errorf("credential_ttl must be a duration such as \"24h\": %w", err)
	}
	c.CredentialTTL = time.Duration(n)
	return nil
}

// SecurityGroup is a security group of the VPC.
type SecurityGroup struct {
	ID    string              `json:"id"`
	Name  string              `json:"name"`
	Rules []SecurityGroupRule `json:"rules"`
}

// SecurityGroupRule is one rule of a security group, as the v1 API shows it.
type SecurityGroupRule struct {
	ID        string `json:"id"`
	Direction string `json:"direction"` // ingress or egress
	Ethertype string `json:"ethertype"` // IPv4 or IPv6
	// Protocol is tcp, udp, icmp, or "" for any.
	Protocol       string `json:"protocol"`
	PortRangeMin   int    `json:"port_range_min"`
	PortRangeMax   int    `json:"port_range_max"`
	RemoteIPPrefix string `json:"remote_ip_prefix"`
	RemoteGroupID  string `json:"remote_group_id"`
}

// RequestLog is one request the handler served, for tests that count cloud
// calls. Path has no query string; Status 0 means the connection was dropped.
type RequestLog struct {
	Method string
	Path   string
	Query  string
	Status int
}

// Sim is the emulated cloud. It is safe for concurrent use; each API request is
// applied atomically.
type Sim struct {
	cfg Config
	now func() time.Time

	// Lock order: watchMu before mu. watchMu serializes watcher callbacks so each
	// sees the state after the change that triggered it; mu guards the state.
	watchMu   sync.Mutex
	watchers  []watcher
	nextWatch int

	mu      sync.Mutex
	vpcCIDR netip.Prefix
	subnets []subnetState
	ecss    []*ecsState
	tables  []*routeTable // default table first
	creds   map[string]tempCredential
	faults  []Fault
	// late counts the late writes taken and not yet applied (under mu); lateDone
	// is signalled when it falls.
	late     int
	lateCond *sync.Cond
	// faultsHit counts the requests faults hit.
	faultsHit int
	log       []RequestLog
	created   time.Time
	// hold, when set, holds route table writes for a test (HoldWrites).
	hold *WriteHold
}

type watcher struct {
	id int
	fn func([]Route)
}

type subnetState struct {
	Subnet
	prefix netip.Prefix
}

type ecsState struct {
	ECS
	addr           netip.Addr
	mac            string
	portName       string
	securityGroups []string
	pairs          []addressPair
	dhcpOpts       []dhcpOpt
}

// routeTable keeps custom routes only; local routes are derived from the subnets.
type routeTable struct {
	id, name, description string
	isDefault             bool
	subnetIDs             []string // explicitly associated (custom tables)
	routes                []Route
	created, updated      time.Time
}

// New builds the emulated VPC, its subnets, its default route table (with
// cfg.Routes) and its instances. It rejects an inconsistent Config with an error
// naming the faulty object.
func New(cfg Config) (*Sim, error) {
	s := &Sim{cfg: cfg, creds: map[string]tempCredential{}}
	s.now = cfg.Now
	if s.now == nil {
		s.now = time.Now
	}
	c := &s.cfg
	if c.AK == "" || c.SK == "" {
		return nil, errors.New("sim config: ak and sk are required: they are the permanent credential the emulated API accepts")
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.ProjectID == "" {
		c.ProjectID = newHexID()
	}
	if c.VPCID == "" {
		c.VPCID = newUUID()
	}
	if c.RouteQuota <= 0 {
		c.RouteQuota = DefaultRouteQuota
	}
	if c.CredentialTTL <= 0 {
		c.CredentialTTL = DefaultCredentialTTL
	}
	vpcCIDR, err := netip.ParsePrefix(c.VPCCIDR)
	if err != nil || !vpcCIDR.Addr().Is4() || vpcCIDR.Masked() != vpcCIDR {
		return nil, fmt.Errorf("sim config: vpc_cidr %q is not an IPv4 network such as 192.168.0.0/16", c.VPCCIDR)
	}
	s.vpcCIDR = vpcCIDR

	c.Subnets = slices.Clone(c.Subnets)
	for i := range c.Subnets {
		sn := &c.Subnets[i]
		p, err := netip.ParsePrefix(sn.CIDR)
		if err != nil || !p.Addr().Is4() || p.Masked() != p {
			return nil, fmt.Errorf("sim config: subnet %q: cidr %q is not an IPv4 network", sn.Name, sn.CIDR)
		}
		if !vpcCIDR.Contains(p.Addr()) || p.Bits() < vpcCIDR.Bits() {
			return nil, fmt.Errorf("sim config: subnet %q: %s is outside vpc_cidr %s", sn.Name, p, vpcCIDR)
		}
		for _, o := range s.subnets {
			if o.prefix.Overlaps(p) {
				return nil, fmt.Errorf("sim config: subnet %q (%s) overlaps subnet %q (%s)", sn.Name, p, o.Name, o.prefix)
			}
		}
		if sn.ID == "" {
			sn.ID = newUUID()
		}
		if sn.Name == "" {
			sn.Name = fmt.Sprintf("subnet-%d", i+1)
		}
		if sn.GatewayIP == "" {
			sn.GatewayIP = p.Addr().Next().String()
		}
		s.subnets = append(s.subnets, subnetState{Subnet: *sn, prefix: p})
	}

	c.SecurityGroups = slices.Clone(c.SecurityGroups)
	if len(c.SecurityGroups) == 0 {
		id := newUUID()
		c.SecurityGroups = []SecurityGroup{{ID: id, Name: "default", Rules: []SecurityGroupRule{
			{Direction: "ingress", Ethertype: "IPv4", RemoteGroupID: id},
			{Direction: "egress", Ethertype: "IPv4"},
		}}}
	}
	for i := range c.SecurityGroups {
		g := &c.SecurityGroups[i]
		if g.ID == "" {
			g.ID = newUUID()
		}
		g.Rules = slices.Clone(g.Rules)
		for j := range g.Rules {
			r := &g.Rules[j]
			if r.ID == "" {
				r.ID = newUUID()
			}
			if r.Ethertype == "" {
				r.Ethertype = "IPv4"
			}
			if r.Direction != "ingress" && r.Direction != "egress" {
				return nil, fmt.Errorf("sim config: security group %q: rule direction %q is not ingress or egress", g.Name, r.Direction)
			}
		}
	}

	c.ECSs = slices.Clone(c.ECSs)
	seen := map[string]bool{}
	for i := range c.ECSs {
		e := &c.ECSs[i]
		if e.Name == "" {
			return nil, fmt.Errorf("sim config: ecs #%d has no name; metadata paths /ecs/{name}/ need one", i+1)
		}
		addr, err := netip.ParseAddr(e.IP)
		if err != nil || !addr.Is4() {
			return nil, fmt.Errorf("sim config: ecs %q: ip %q is not an IPv4 address", e.Name, e.IP)
		}
		var sn *subnetState
		for j := range s.subnets {
			if s.subnets[j].prefix.Contains(addr) && (e.SubnetID == "" || e.SubnetID == s.subnets[j].ID) {
				sn = &s.subnets[j]
			}
		}
		if sn == nil {
			return nil, fmt.Errorf("sim config: ecs %q: ip %s is in no subnet of the VPC (subnet_id %q)", e.Name, addr, e.SubnetID)
		}
		e.SubnetID = sn.ID
		if e.ID == "" {
			e.ID = newUUID()
		}
		if e.PortID == "" {
			e.PortID = newUUID()
		}
		if e.AvailabilityZone == "" {
			e.AvailabilityZone = c.Region + "a"
		}
		if len(e.SecurityGroups) == 0 {
			e.SecurityGroups = []string{c.SecurityGroups[0].ID}
		}
		for _, k := range []string{"name:" + e.Name, "id:" + e.ID, "ip:" + e.IP, "port:" + e.PortID} {
			if seen[k] {
				return nil, fmt.Errorf("sim config: ecs %q: duplicate %s", e.Name, k)
			}
			seen[k] = true
		}
		st := &ecsState{ECS: *e, addr: addr, securityGroups: slices.Clone(e.SecurityGroups)}
		a4 := addr.As4()
		st.mac = fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", a4[1], a4[2], a4[3])
		if !e.SrcDstCheck {
			st.pairs = []addressPair{{IPAddress: srcDstOffPair}}
		}
		s.ecss = append(s.ecss, st)
	}

	s.created = s.now().UTC()
	def := &routeTable{id: newUUID(), name: "rtb-" + shortID(c.VPCID), isDefault: true, created: s.created, updated: s.created}
	s.tables = []*routeTable{def}
	if len(c.Routes) > 0 {
		add := make([]routeChange, len(c.Routes))
		for i, r := range c.Routes {
			d := r.Description
			add[i] = routeChange{Type: r.Type, Destination: r.Destination, NextHop: r.NextHop, Description: &d}
		}
		if apiErr := s.applyLocked(def, routeDelta{Add: add}); apiErr != nil {
			return nil, fmt.Errorf("sim config: routes: %s: %s", apiErr.Code, apiErr.Message)
		}
	}
	return s, nil
}

// Config returns the effective configuration, with the defaults and generated
// IDs filled in, so a test or the CLI can tell a plugin which IDs to expect.
func (s *Sim) Config() Config {
	c := s.cfg
	c.Subnets = slices.Clone(c.Subnets)
	c.ECSs = slices.Clone(c.ECSs)
	c.Routes = slices.Clone(c.Routes)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range c.ECSs {
		c.ECSs[i].SrcDstCheck = s.ecss[i].srcDstCheckLocked()
	}
	return c
}

// DefaultRouteTableID returns the ID of the VPC's default route table.
func (s *Sim) DefaultRouteTableID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tables[0].id
}

// RouteTable returns a snapshot of a table's routes as the API shows them: local
// routes first, then custom routes in insertion order.
func (s *Sim) RouteTable(id string) (routes []Route, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tableLocked(id)
	if t == nil {
		return nil, false
	}
	return s.routesLocked(t), true
}

// AddRouteTable creates a custom route table of the VPC and associates the given
// subnets with it (a subnet belongs to one table, so they leave their previous
// one). Unknown subnet IDs are ignored. It returns the new table's ID.
func (s *Sim) AddRouteTable(name string, subnetIDs ...string) string {
	s.mu.Lock()
	now := s.now().UTC()
	t := &routeTable{id: newUUID(), name: name, created: now, updated: now}
	for _, id := range subnetIDs {
		if s.subnetLocked(id) == nil {
			continue
		}
		for _, o := range s.tables {
			o.subnetIDs = slices.DeleteFunc(o.subnetIDs, func(x string) bool { return x == id })
		}
		t.subnetIDs = append(t.subnetIDs, id)
	}
	s.tables = append(s.tables, t)
	s.mu.Unlock()
	s.notify()
	return t.id
}

// Watch registers fn to be called with the routes of all route tables (each
// table's local routes included, tables in creation order) once now and then
// after every change of any table. Calls are serial and in order of change, and
// run before the API answers the request that made the change, so a client that
// got its answer finds a synced router already updated. fn must not call Watch.
func (s *Sim) Watch(fn func(routes []Route)) {
	s.watch(fn)
}

// watch is Watch with a cancel; once cancel returns, fn is never called again.
// fn must not call cancel.
func (s *Sim) watch(fn func(routes []Route)) (cancel func()) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	id := s.nextWatch
	s.nextWatch++
	s.watchers = append(s.watchers, watcher{id: id, fn: fn})
	fn(s.allRoutes())
	return func() {
		s.watchMu.Lock()
		defer s.watchMu.Unlock()
		s.watchers = slices.DeleteFunc(s.watchers, func(w watcher) bool { return w.id == id })
	}
}

// notify calls the watchers with the current state. Called without mu held.
func (s *Sim) notify() {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if len(s.watchers) == 0 {
		return
	}
	routes := s.allRoutes()
	for _, w := range s.watchers {
		w.fn(slices.Clone(routes))
	}
}

func (s *Sim) allRoutes() []Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []Route
	for _, t := range s.tables {
		all = append(all, s.routesLocked(t)...)
	}
	return all
}

// Requests returns the log of every request served so far, in order.
func (s *Sim) Requests() []RequestLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// ResetRequests clears the request log, so a test can count the calls of one step.
func (s *Sim) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}

// SetRouteQuota changes the route quota, as raising it in the console does.
func (s *Sim) SetRouteQuota(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.RouteQuota = n
}

// ConsoleAddRoute adds a route to the default route table as a person does in the
// console: no credentials, the API's own checks.
func (s *Sim) ConsoleAddRoute(r Route) error {
	d := r.Description
	return s.consoleChange(routeDelta{Add: []routeChange{{Type: r.Type, Destination: r.Destination, NextHop: r.NextHop, Description: &d}}})
}

// ConsoleDeleteRoute deletes the default route table's route to destination as a
// person does in the console.
func (s *Sim) ConsoleDeleteRoute(destination string) error {
	return s.consoleChange(routeDelta{Del: []routeChange{{Destination: destination}}})
}

func (s *Sim) consoleChange(d routeDelta) error {
	s.mu.Lock()
	apiErr := s.applyLocked(s.tables[0], d)
	if apiErr == nil {
		s.tables[0].updated = s.now().UTC()
	}
	s.mu.Unlock()
	if apiErr != nil {
		return apiErr
	}
	s.notify()
	return nil
}

// SetSrcDstCheck turns the source/destination check of an ECS's primary port on
// or off, as a person would in the console. Unknown IDs are ignored.
func (s *Sim) SetSrcDstCheck(ecsID string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.ecsByIDLocked(ecsID)
	if e == nil {
		return
	}
	e.pairs = slices.DeleteFunc(e.pairs, func(p addressPair) bool { return p.IPAddress == srcDstOffPair })
	if !on {
		e.pairs = append(e.pairs, addressPair{IPAddress: srcDstOffPair})
	}
}

// SrcDstCheck reports whether the source/destination check of an ECS's primary
// port is on (its allowed_address_pairs lack 1.1.1.1/0). Unknown IDs report true.
func (s *Sim) SrcDstCheck(ecsID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.ecsByIDLocked(ecsID)
	if e == nil {
		return true
	}
	return e.srcDstCheckLocked()
}

// SetECSStatus sets an instance's state as the ECS API shows it (ACTIVE, SHUTOFF,
// ERROR, ...), as stopping or starting it in the console does. Unknown IDs are
// ignored. The instance keeps its port and its routes.
func (s *Sim) SetECSStatus(ecsID, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.ecsByIDLocked(ecsID); e != nil {
		e.Status = status
	}
}

// SetDeny replaces the IAM actions the permanent AK/SK lacks (Config.Deny), as
// editing its policy does.
func (s *Sim) SetDeny(actions ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.Deny = actions
}

// ECSByName returns an instance of the configuration by name.
func (s *Sim) ECSByName(name string) (ECS, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.ecss {
		if e.Name == name {
			return e.ECS, true
		}
	}
	return ECS{}, false
}

func (e *ecsState) srcDstCheckLocked() bool {
	return !slices.ContainsFunc(e.pairs, func(p addressPair) bool { return p.IPAddress == srcDstOffPair })
}

func (s *Sim) tableLocked(id string) *routeTable {
	for _, t := range s.tables {
		if t.id == id {
			return t
		}
	}
	return nil
}

func (s *Sim) subnetLocked(id string) *subnetState {
	for i := range s.subnets {
		if s.subnets[i].ID == id {
			return &s.subnets[i]
		}
	}
	return nil
}

// DeleteECS deletes an instance as a person does in the console: its port and its
// metadata go; routes that lead to it stay in the route tables.
func (s *Sim) DeleteECS(id string) {
	s.mu.Lock()
	s.ecss = slices.DeleteFunc(s.ecss, func(e *ecsState) bool { return e.ID == id })
	s.mu.Unlock()
	s.notify()
}

func (s *Sim) ecsByIDLocked(id string) *ecsState {
	for _, e := range s.ecss {
		if e.ID == id {
			return e
		}
	}
	return nil
}

// tableSubnetsLocked lists the subnets associated with t: the default table holds
// every subnet that no custom table claimed.
func (s *Sim) tableSubnetsLocked(t *routeTable) []string {
	if !t.isDefault {
		return slices.Clone(t.subnetIDs)
	}
	claimed := map[string]bool{}
	for _, o := range s.tables {
		if !o.isDefault {
			for _, id := range o.subnetIDs {
				claimed[id] = true
			}
		}
	}
	var ids []string
	for _, sn := range s.subnets {
		if !claimed[sn.ID] {
			ids = append(ids, sn.ID)
		}
	}
	return ids
}

// localRoutesLocked returns the system routes every table shows.
func (s *Sim) localRoutesLocked() []Route {
	var rs []Route
	for _, sn := range s.subnets {
		rs = append(rs, Route{Type: RouteTypeLocal, Destination: sn.prefix.String(), NextHop: "-"})
	}
	for _, p := range SystemRanges {
		rs = append(rs, Route{Type: RouteTypeLocal, Destination: p.String(), NextHop: "-"})
	}
	return rs
}

func (s *Sim) routesLocked(t *routeTable) []Route {
	return append(s.localRoutesLocked(), t.routes...)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func newHexID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

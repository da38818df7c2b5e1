// Package controller is the one owner of every vpcroute network's life: its pool and
// its route in the VPC, its bridge, rules and published ports, and its records in the
// state file. Packages ipam and driver only translate Docker's two plugin APIs into
// calls of the Controller, and the Controller's loop (loop.go) brings the host back in
// line with what Docker, the VPC and the kernel really hold, using the plan that
// package reconcile computes.
//
// A network's life, and who moves it along (docs/architecture.md draws it):
//
//	RequestPool    pool Claiming → route claimed → pool Held      (IPAM, Docker call)
//	CreateNetwork  network Creating → [route claimed] → bridge, rules → Ready
//	Join/Leave     veths and published ports; no cloud call
//	ReleasePool    pool Releasing → route released → forgotten
//	DeleteNetwork  network Deleting → rules, bridge gone → [route released] → forgotten
//	the loop       finishes what a crash or a failed call left Claiming, Creating,
//	               Releasing or Deleting; tears down what Docker removed while
//	               vpcroute was not serving; rebuilds what Docker has and vpcroute
//	               lost; re-claims deleted routes; releases unowned ones; repairs the
//	               kernel.
//
// Every step records its intent before it acts, so that a plugin killed at any point
// leaves a record that says what to finish.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/dockerapi"
	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/link"
	"github.com/vpcroute/vpcroute/state"
)

// Links is the host's link layer as the controller uses it (link.Host).
type Links interface {
	EnsureBridge(link.BridgeSpec) error
	DeleteBridge(name, networkID string) error
	Bridges() (map[string]string, error)
	EnsureVeth(hostName, peerName, bridge string, mtu int) error
	AttachVeth(hostName, bridge string, mtu int) (bool, error)
	DeleteVeth(hostName string) error
	Veths() ([]string, error)
	UplinkMTU() int
	Uplink() string
	Prefixes() ([]netip.Prefix, error)
	OthersIn(within netip.Prefix) ([]netip.Prefix, error)
	BridgesOutOfLine([]link.BridgeSpec) ([]string, error)
}

// Firewall is the host's packet filter as the controller uses it (firewall.Firewall).
type Firewall interface {
	EnsureNetwork(firewall.NetworkRules) error
	DeleteNetwork(firewall.NetworkRules) error
	EnsurePort(firewall.PortMap) error
	DeletePort(firewall.PortMap) error
	Prune(keep map[string]bool) error
	Owners() (map[string]bool, error)
	PublishedPorts() ([]firewall.PortMap, error)
	Forward() (firewall.Forward, error)
	RemoveAll() error
	Backend() string
	Check(firewall.Want) (firewall.Drift, error)
	Sync(firewall.Want) (firewall.Drift, error)
	// Generation changes whenever any rule may have changed; ok is false when
	// the backend cannot tell (iptables-legacy).
	Generation() (gen uint32, ok bool)
}

// Docker is Docker's own view of its networks (dockerapi.Client).
type Docker interface {
	Networks(ctx context.Context) ([]dockerapi.Network, error)
	Network(ctx context.Context, id string) (dockerapi.Network, error)
}

// Config is the controller's policy.
type Config struct {
	Pool       netip.Prefix // VPCROUTE_POOL
	SubnetSize int          // VPCROUTE_SUBNET_SIZE
	// HostBlock is VPCROUTE_HOST_BLOCK: the prefix length of the blocks this ECS
	// claims and carves its networks from; 0 for a route per network.
	HostBlock int
	// BlockGrace is how long a block with no network stays (VPCROUTE_BLOCK_GRACE).
	BlockGrace time.Duration
	Masquerade bool // VPCROUTE_MASQUERADE
	// NoNAT lists destinations never masqueraded: the VPC's ranges and the pool.
	NoNAT []netip.Prefix
	// ForwardAccept sets FORWARD's policy to ACCEPT (VPCROUTE_FORWARD=accept).
	ForwardAccept bool
	// Routed says the cloud routes subnets (VPCROUTE_CLOUD=huaweicloud): the loop
	// reads the VPC route table. In none mode there is no route to read.
	Routed bool
	// Timeout bounds one Docker call's cloud work, well inside Docker's 30 s.
	Timeout time.Duration
	// KernelInterval and CloudInterval are how often the loop repairs the kernel
	// and reads the VPC route table (VPCROUTE_KERNEL_INTERVAL,
	// VPCROUTE_CLOUD_INTERVAL).
	KernelInterval, CloudInterval time.Duration
	// Grace is how old a record must be before its absence from Docker's list
	// counts; OrphanGrace how long an unowned route of this ECS stays
	// (VPCROUTE_ORPHAN_GRACE).
	Grace, OrphanGrace time.Duration
	// DriverName is how users name the plugin in -d and --ipam-driver ("vpcroute",
	// "vpcroute:latest"): error hints say it so. Networks whose driver is it, or it
	// with another tag or repository, are vpcroute's.
	DriverName string
	// SrcDstCheckOn makes network creation warn that other hosts cannot reach the
	// containers.
	SrcDstCheckOn bool
	// Ports checks that a host port is free before it is published.
	Ports PortChecker
	// LinkChanges, when set, tells whether links or addresses may have changed
	// (link.Watcher): the loop then reads them only after a change. Nil: every pass
	// reads them.
	LinkChanges interface{ Gen() uint64 }
	// OthersInPool, when set, is signalled when an address of another owner than
	// vpcroute appears inside the pool (link.Watcher.Others): the loop then runs a
	// kernel pass at once, so that the pool's shortcut stops skipping that owner's
	// masquerade before its first connections, not a KernelInterval later.
	OthersInPool <-chan struct{}
	Log          *slog.Logger
	// Now is the clock (tests set it).
	Now func() time.Time
	// Version is vpcroute's, for status.
	Version string
}

// Controller owns vpcroute's networks. Its methods are safe for concurrent use.
//
// Lock order, the only one in vpcroute: Controller.mu, then the firewall's and the
// state file's own locks. mu guards the records, the kernel objects and the maps
// below, and is never held across a call to the cloud or to Docker's API: those can
// take seconds, and Join and Leave of other networks must not wait for them. While
// such a call is in flight its record is marked busy, which keeps the loop away from
// it. The cloud client's own lock is taken with mu free, and the claim's Pick
// callback takes mu inside it (cloud lock → mu), never the other way round.
type Controller struct {
	cfg    Config
	store  *state.DB
	links  Links
	fw     Firewall
	vpc    cloud.VPC
	docker Docker // nil: Docker's list cannot be read
	log    *slog.Logger

	mu sync.Mutex
	// uplink is the host's default route device as the last look found it
	// (Links.Uplink), for the networks' rules. Every kernel pass that runs looks
	// again (after a link or address change, which a new default route device
	// comes with, after Docker's calls, and at least every CloudInterval), and a
	// change is drift that the same pass repairs. A stale name never makes the
	// rules wrong, only slower (firewall.NetworkRules.Uplink).
	uplink string
	// busy counts the Docker calls (or loop actions) working on a record with mu
	// let go, by network or pool ID.
	busy map[string]int
	// forgotten holds network IDs removed and pool subnets released lately, with
	// when: Docker may still list them for a moment.
	forgotten map[string]time.Time
	// released holds the route owners given up lately (released, or a claim cut
	// short), with when: a route of theirs that appears landed late.
	released map[string]time.Time
	// orphanSince says since when each unowned route has been seen.
	orphanSince map[string]time.Time
	// blockEmpty says since when each host block has had no network.
	blockEmpty map[string]time.Time
	// blockFlight is closed when the host block being claimed is claimed (or not);
	// nil when none is. Under mu.
	blockFlight chan struct{}
	// driverNames are the driver names of Docker's networks that are vpcroute's.
	driverNames map[string]bool
	// held are the messages of the plan's Held list already logged.
	held map[string]bool
	// dockerWarned is set once the lack of Docker's list has been logged.
	dockerWarned bool
	// full asks the loop's next cycle to read and repair everything.
	full bool
	// lastCycle is what the loop's last cycle did, for status.
	lastCycle CycleReport
	// uninstalled is set by Uninstall: the loop stops, nothing is made again.
	uninstalled bool
	// seen is what the loop last read of the links, each with the LinkChanges
	// generation it read at: the marked bridges, and that the bridges of the
	// live networks (as printed in want) were in line.
	seen struct {
		bridgesGen uint64
		bridges    map[string]string // nil: not read
		inLineGen  uint64
		inLine     bool
		want       string
	}
	// dockerBridges are the custom-named bridges of Docker's own networks, from
	// Docker's last list: vpcroute's networks are isolated from them.
	dockerBridges []string
	// poolOthers are the host's address ranges inside the pool that are not
	// vpcroute's bridges (firewall.Base.PoolOthers), as last read.
	poolOthers []netip.Prefix
	// lastKernel is what the last kernel-only cycle saw (see kernelToken), and
	// whether it found everything in line and had nothing to do.
	lastKernel      kernelToken
	lastKernelClean bool
	// linkEdits counts vpcroute's own edits of bridges (see editedLinks).
	linkEdits atomic.Uint64

	kick chan struct{}
}

// New returns the controller. Call Start before serving Docker's calls, then Run.
func New(cfg Config, store *state.DB, links Links, fw Firewall, vpc cloud.VPC, docker Docker) *Controller {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Ports == nil {
		cfg.Ports = BindChecker{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Second
	}
	if cfg.KernelInterval == 0 {
		cfg.KernelInterval = 30 * time.Second
	}
	if cfg.CloudInterval == 0 {
		cfg.CloudInterval = 5 * time.Minute
	}
	if cfg.Grace == 0 {
		cfg.Grace = 30 * time.Second
	}
	if cfg.OrphanGrace == 0 {
		cfg.OrphanGrace = 10 * time.Minute
	}
	if cfg.DriverName == "" {
		cfg.DriverName = "vpcroute"
	}
	if cfg.BlockGrace == 0 {
		cfg.BlockGrace = 10 * time.Minute
	}
	c := &Controller{
		cfg: cfg, store: store, links: links, fw: fw, vpc: vpc, docker: docker, log: cfg.Log,
		busy: map[string]int{}, forgotten: map[string]time.Time{}, released: map[string]time.Time{}, orphanSince: map[string]time.Time{}, blockEmpty: map[string]time.Time{},
		driverNames: map[string]bool{}, held: map[string]bool{},
		kick: make(chan struct{}, 1),
	}
	if cfg.LinkChanges != nil {
		c.links = editedLinks{Links: links, edits: &c.linkEdits}
	}
	c.uplink = links.Uplink()
	return c
}

// SetIdentity takes the host's identity once the cloud answers (it was the one saved
// by the last run until then): the VPC's ranges, which traffic is never masqueraded
// to, and the NIC's source/destination check. Every network's rules are then
// rewritten where they differ, and the VPC route table is read at once.
func (c *Controller) SetIdentity(id cloud.Identity) {
	c.mu.Lock()
	c.cfg.NoNAT = append([]netip.Prefix{c.cfg.Pool}, id.VPCCIDRs...)
	c.cfg.SrcDstCheckOn = id.SrcDstCheckOn
	c.full = true
	c.saveDataPlane()
	c.mu.Unlock()
	c.Kick()
}

func (c *Controller) isUninstalled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uninstalled
}

// markBusy and unbusy bracket work on a record done with mu let go. Call with mu held.
func (c *Controller) markBusy(id string) { c.busy[id]++ }

func (c *Controller) unbusy(id string) {
	if c.busy[id]--; c.busy[id] <= 0 {
		delete(c.busy, id)
	}
}

// outside runs fn (a cloud call) with mu let go and id marked busy. Call with mu held.
func (c *Controller) outside(id string, fn func()) {
	c.markBusy(id)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.unbusy(id)
	}()
	fn()
}

// forget remembers that a network or pool subnet went, so that Docker's list, which
// may still show it for a moment, does not bring it back. Call with mu held.
func (c *Controller) forget(key string) { c.forgotten[key] = c.cfg.Now() }

// gaveUp remembers that the route of owner was released or its claim abandoned: a
// route of owner that shows up later is a write the cloud applied late. Call with
// mu held.
func (c *Controller) gaveUp(owner string) { c.released[owner] = c.cfg.Now() }

// Kick asks the loop for a cycle soon: a Docker call left work to finish.
func (c *Controller) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// cloudCtx bounds the cloud work of one Docker call: by Docker's own request (it
// ends when Docker stops waiting) and by Timeout, well inside Docker's 30 s, so that
// the call is refused in time rather than finished for nobody.
func (c *Controller) cloudCtx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, c.cfg.Timeout)
}

// ErrSlow marks a Docker call whose cloud work did not finish in time.
var ErrSlow = errors.New("the VPC API is slow")

// slow turns a failure caused by time running out into a message that says so: the
// cloud did not answer in time, the user should try again, and vpcroute gives back
// whatever the unfinished call may still have made. ctx is the call's cloud context.
func (c *Controller) slow(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var why string
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		why = "Docker stopped waiting for it"
	case ctx.Err() != nil:
		why = fmt.Sprintf("it did not answer within %s", c.cfg.Timeout.Round(100*time.Millisecond))
	case errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrSlow):
		why = "it did not answer in time"
	default:
		return err
	}
	return fmt.Errorf("%w (%s): try again; vpcroute gives back whatever the unfinished call made: %w", ErrSlow, why, err)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// baseName is a driver name without its tag and repository: "vpcroute" for
// "vpcroute/vpcroute:1.2".
func baseName(driver string) string {
	name := driver
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	return path.Base(name)
}

// hintDriver fills in a cloud conflict's hint: the driver name users know, and how
// they give options on the call that failed (flag: -o or --ipam-opt).
func (c *Controller) hintDriver(err error, flag string) error {
	var conflict *cloud.ConflictError
	if errors.As(err, &conflict) {
		conflict.Driver, conflict.Flag = c.cfg.DriverName, flag
	}
	return err
}

// label names a network in logs and errors: its Docker name when known.
func label(n state.Network) string {
	if n.Name != "" {
		return fmt.Sprintf("%s (%s)", n.Name, short(n.ID))
	}
	return short(n.ID)
}

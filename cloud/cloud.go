// Package cloud defines what vpcroute needs from the cloud that routes container
// subnets between hosts: a claim of a subnet for this host, its release, the routes
// it holds, and this host's identity. The controller depends only on this package;
// the Huawei Cloud implementation lives in cloud/huawei and is wired in main.go.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vpcroute/vpcroute/check"
)

// Identity is this host as the cloud sees it.
type Identity struct {
	InstanceID string // ECS ID, the next hop of this host's routes
	Hostname   string // shown in route descriptions
	VPCID      string
	// VPCCIDRs are the VPC's own ranges (its subnets): traffic to them is never
	// masqueraded, so the VPC sees container source addresses.
	VPCCIDRs []netip.Prefix
	// SrcDstCheckOn says that the NIC's source/destination check was on after
	// start-up: the VPC then drops container traffic from other hosts.
	SrcDstCheckOn bool
}

// ClaimRequest asks for a subnet to be routed to this host.
type ClaimRequest struct {
	// Owner identifies the claim (vpcroute's pool ID). A route already held by this
	// host with the same Owner counts as a successful claim, which makes retries
	// after a crash idempotent.
	Owner string
	// Want is the subnet the user asked for (--subnet). Zero means automatic: Pick
	// chooses among the free ranges.
	Want netip.Prefix
	// Pick returns the first acceptable subnet that overlaps none of taken. It is
	// called again, with a longer taken list, when another host wins a race for
	// the subnet it picked. Unused when Want is set.
	Pick func(taken []netip.Prefix) (netip.Prefix, error)
	// Name is the Docker network's name when it is known (Docker tells neither
	// driver a name; vpcroute learns it from Docker's list): routes claimed again
	// or rebuilt carry it in their description.
	Name string
	// Takeover lets an explicit claim move Want's route from another ECS to this
	// one, when that route is vpcroute's (vpcroute.takeover).
	Takeover Takeover
}

// Takeover says whether a claim may move a subnet's route from another ECS.
type Takeover int

const (
	// NoTakeover: a subnet routed to another ECS is a conflict.
	NoTakeover Takeover = iota
	// TakeoverStopped moves vpcroute's route of the subnet from an ECS that is not
	// running (stopped, in error, or deleted), in one route table update.
	TakeoverStopped
	// TakeoverForce moves it from a running ECS as well.
	TakeoverForce
)

func (t Takeover) String() string {
	switch t {
	case TakeoverStopped:
		return "true"
	case TakeoverForce:
		return "force"
	}
	return "false"
}

// Route is a route of the VPC that belongs to vpcroute on this host.
type Route struct {
	Destination netip.Prefix
	Owner       string
}

// VPC is the cloud as the controller uses it. Implementations must be safe for
// concurrent use and must never touch routes that are not vpcroute's own on this host.
type VPC interface {
	// Identity returns this host's identity; it does not call the cloud.
	Identity() Identity
	// Claim routes a subnet to this host and returns it. When Want overlaps a route
	// of someone else it returns a *ConflictError.
	Claim(ctx context.Context, req ClaimRequest) (netip.Prefix, error)
	// Release removes this host's route for prefix if it is vpcroute's for owner.
	// Releasing what is already gone is not an error.
	Release(ctx context.Context, prefix netip.Prefix, owner string) error
	// Owned lists the routes vpcroute holds for this host, for reconciliation.
	Owned(ctx context.Context) ([]Route, error)
	// Table reads the route table this host writes to, for status and doctor.
	Table(ctx context.Context) (Table, error)
	// Checks reads what doctor checks of the cloud (reachability, credentials,
	// permissions, the NIC, the security groups for the container pool, the
	// quota, the clock); it never writes.
	Checks(ctx context.Context, pool netip.Prefix) []check.Result
	// ReleaseGone removes a vpcroute route whose next hop is an instance that no
	// longer exists (Table marks it Gone), after checking that again.
	ReleaseGone(ctx context.Context, r TableRoute) error
	// Unsettled says until when a route write the cloud did not answer (or
	// answered with a server error) may still be applied; zero when none may. The
	// controller reads the route table again then, to put right what landed late.
	Unsettled() time.Time
}

// Table is the route table a host writes to, as `vpcroute status` shows it.
type Table struct {
	ID string
	// Quota is how many custom routes the table may hold, 0 when unknown; Used how
	// many it holds.
	Quota, Used int
	Routes      []TableRoute
}

// TableRoute is one route of a Table.
type TableRoute struct {
	Destination netip.Prefix
	Type        string // ecs, local, peering, ...
	NextHop     string
	Description string
	// Owner is the claim owner of a vpcroute route ("" for others'); Mine says its
	// next hop is this host; Gone that it is a vpcroute route to an instance that
	// no longer exists.
	Owner string
	Mine  bool
	Gone  bool
}

// ErrQuotaFull means the route table holds as many routes as its quota allows: a
// claim refused for it changed nothing.
var ErrQuotaFull = errors.New("route table is full")

// Refused tells whether a failed Claim certainly changed nothing: the subnet is
// someone else's, or the route table is full. Any other failure (a timeout, a 5xx)
// may be a write that lands later, and the caller must be ready to give the route
// back.
func Refused(err error) bool {
	var conflict *ConflictError
	return errors.As(err, &conflict) || errors.Is(err, ErrQuotaFull)
}

// ConflictError says that a wanted subnet overlaps a range someone else holds.
type ConflictError struct {
	Want     netip.Prefix
	Existing netip.Prefix
	// NextHop is the owning instance (or "local" for a VPC subnet, or another
	// next hop type's target).
	NextHop     string
	Description string
	// Driver is how the user names the plugin (vpcroute, vpcroute:latest), for the
	// hint; default vpcroute.
	Driver string
	// Takeable says the route is vpcroute's, of exactly Want, to another ECS, in
	// this host's route table: a takeover can move it here.
	Takeable bool
	// Takeover is what the claim asked (see ClaimRequest); Running, when set, is
	// the state of the ECS that holds the route, which a takeover without force
	// refused to take it from.
	Takeover Takeover
	Running  string
	// StateErr says why the state of the ECS that holds the route could not be
	// read, which a takeover without force needs.
	StateErr error
	// Flag is how the user gives the takeover option on the call that failed:
	// "-o" (the network's options) or "--ipam-opt"; default "-o".
	Flag string
}

func (e *ConflictError) Unwrap() error { return e.StateErr }

func (e *ConflictError) Error() string {
	what := fmt.Sprintf("route %s to %s", e.Existing, e.NextHop)
	if e.NextHop == "local" || e.NextHop == "-" {
		what = fmt.Sprintf("VPC subnet %s", e.Existing)
	}
	if e.Description != "" {
		what += fmt.Sprintf(" (%q)", e.Description)
	}
	driver := e.Driver
	if driver == "" {
		driver = "vpcroute"
	}
	flag := e.Flag
	if flag == "" {
		flag = "-o"
	}
	switch {
	case e.Takeable && e.StateErr != nil:
		return fmt.Sprintf("subnet %s is routed to ECS %s, whose state vpcroute could not read (%v): a takeover without force moves a subnet only from an ECS that is stopped or deleted; grant the IAM permission ecs:cloudServers:get (vpcroute doctor checks it), or add %s vpcroute.takeover=force",
			e.Want, e.NextHop, e.StateErr, flag)
	case e.Takeable && e.Running != "":
		return fmt.Sprintf("subnet %s is routed to ECS %s, which is running (%s): vpcroute.takeover=true moves a subnet only from an ECS that is stopped or deleted; stop that ECS first, or add %s vpcroute.takeover=force to take the route from it while it runs",
			e.Want, e.NextHop, e.Running, flag)
	case e.Takeable && e.Takeover == NoTakeover:
		return fmt.Sprintf("subnet %s overlaps %s in the VPC route table, vpcroute's network on another ECS; to move it to this ECS add %s vpcroute.takeover=true (once that ECS is stopped or deleted; =force takes it from a running one), or choose a free --subnet, or let vpcroute pick one with --ipam-driver %s",
			e.Want, what, flag, driver)
	case !e.Takeable && e.Takeover != NoTakeover:
		return fmt.Sprintf("subnet %s overlaps %s in the VPC route table, which vpcroute.takeover cannot move: it moves only vpcroute's own route of exactly this subnet, to another ECS, in this ECS's route table; choose a free --subnet or let vpcroute pick one with --ipam-driver %s",
			e.Want, what, driver)
	}
	return fmt.Sprintf("subnet %s overlaps %s in the VPC route table; choose a free --subnet or let vpcroute pick one with --ipam-driver %s", e.Want, what, driver)
}

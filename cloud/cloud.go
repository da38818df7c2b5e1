// Package cloud defines what vpcroute needs from the cloud that routes container
// subnets between hosts: which ranges are taken in the VPC, a claim of a subnet for
// this host, its release, and this host's identity. The drivers depend only on this
// package; the Huawei Cloud implementation lives in cloud/huawei and is wired in main.go.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// Identity is this host as the cloud sees it.
type Identity struct {
	InstanceID string // ECS ID, the next hop of this host's routes
	Hostname   string // shown in route descriptions
	VPCID      string
	// VPCCIDRs are the VPC's own ranges (its subnets): traffic to them is never
	// masqueraded, so the VPC sees container source addresses.
	VPCCIDRs []netip.Prefix
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
}

// Route is a route of the VPC that belongs to vpcroute on this host.
type Route struct {
	Destination netip.Prefix
	Owner       string
}

// VPC is the cloud as the IPAM driver uses it. Implementations must be safe for
// concurrent use and must never touch routes that are not vpcroute's own on this host.
type VPC interface {
	// Identity returns this host's identity; it does not call the cloud.
	Identity() Identity
	// Taken returns every range in use in the VPC: the destinations of all routes of
	// all its route tables, including the local routes of its subnets.
	Taken(ctx context.Context) ([]netip.Prefix, error)
	// Claim routes a subnet to this host and returns it. When Want overlaps a route
	// of someone else it returns a *ConflictError.
	Claim(ctx context.Context, req ClaimRequest) (netip.Prefix, error)
	// Release removes this host's route for prefix if it is vpcroute's for owner.
	// Releasing what is already gone is not an error.
	Release(ctx context.Context, prefix netip.Prefix, owner string) error
	// Owned lists the routes vpcroute holds for this host, for reconciliation.
	Owned(ctx context.Context) ([]Route, error)
}

// ErrNoSpace means no free subnet of the wanted size is left.
var ErrNoSpace = errors.New("no free subnet")

// ConflictError says that a wanted subnet overlaps a range someone else holds.
type ConflictError struct {
	Want     netip.Prefix
	Existing netip.Prefix
	// NextHop is the owning instance (or "local" for a VPC subnet, or another
	// next hop type's target).
	NextHop     string
	Description string
}

func (e *ConflictError) Error() string {
	what := fmt.Sprintf("route %s to %s", e.Existing, e.NextHop)
	if e.NextHop == "local" || e.NextHop == "-" {
		what = fmt.Sprintf("VPC subnet %s", e.Existing)
	}
	if e.Description != "" {
		what += fmt.Sprintf(" (%q)", e.Description)
	}
	return fmt.Sprintf("subnet %s overlaps %s in the VPC route table; choose a free --subnet or let vpcroute pick one with --ipam-driver vpcroute", e.Want, what)
}

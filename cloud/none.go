package cloud

import (
	"context"
	"net/netip"
	"time"

	"github.com/vpcroute/vpcroute/check"
)

// None is the cloud for VPCROUTE_CLOUD=none: a single host, or routes managed
// elsewhere. Only the VPC's own ranges (Identity.VPCCIDRs) are taken; no route is made.
type None struct{ ID Identity }

var _ VPC = None{}

// Identity returns the configured identity.
func (n None) Identity() Identity { return n.ID }

// Claim returns the wanted subnet unless it overlaps the VPC, or the first one Pick
// chooses outside the VPC.
func (n None) Claim(_ context.Context, req ClaimRequest) (netip.Prefix, error) {
	if req.Want.IsValid() {
		for _, v := range n.ID.VPCCIDRs {
			if v.Overlaps(req.Want) {
				return netip.Prefix{}, &ConflictError{Want: req.Want, Existing: v, NextHop: "local"}
			}
		}
		return req.Want, nil
	}
	return req.Pick(append([]netip.Prefix(nil), n.ID.VPCCIDRs...))
}

// Release does nothing.
func (None) Release(context.Context, netip.Prefix, string) error { return nil }

// Owned returns nothing.
func (None) Owned(context.Context) ([]Route, error) { return nil, nil }

// Table returns an empty table: there is none.
func (None) Table(context.Context) (Table, error) { return Table{}, nil }

// Checks says there is no cloud to check.
func (None) Checks(context.Context, netip.Prefix) []check.Result {
	return []check.Result{{Name: "cloud", Status: check.Skip, Detail: "VPCROUTE_CLOUD=none: no VPC routes to check"}}
}

// ReleaseGone does nothing: there are no routes.
func (None) ReleaseGone(context.Context, TableRoute) error { return nil }

// Unsettled is zero: no write is made.
func (None) Unsettled() time.Time { return time.Time{} }

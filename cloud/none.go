package cloud

import (
	"context"
	"net/netip"
)

// None is the cloud for VPCROUTE_CLOUD=none: a single host, or routes managed
// elsewhere. Nothing is taken in a VPC and claims always succeed.
type None struct{ ID Identity }

var _ VPC = None{}

// Identity returns the configured identity.
func (n None) Identity() Identity { return n.ID }

// Taken returns no ranges.
func (None) Taken(context.Context) ([]netip.Prefix, error) { return nil, nil }

// Claim returns the wanted subnet, or the first one Pick chooses.
func (None) Claim(_ context.Context, req ClaimRequest) (netip.Prefix, error) {
	if req.Want.IsValid() {
		return req.Want, nil
	}
	return req.Pick(nil)
}

// Release does nothing.
func (None) Release(context.Context, netip.Prefix, string) error { return nil }

// Owned returns nothing.
func (None) Owned(context.Context) ([]Route, error) { return nil, nil }

package cloud

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

func TestNoneKeepsOutOfTheVPC(t *testing.T) {
	n := None{ID: Identity{VPCCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}}}
	var conflict *ConflictError
	if _, err := n.Claim(context.Background(), ClaimRequest{Want: netip.MustParsePrefix("10.0.2.0/24")}); !errors.As(err, &conflict) {
		t.Fatalf("claim inside VPCROUTE_VPC_CIDRS = %v; want a ConflictError", err)
	}
	got, err := n.Claim(context.Background(), ClaimRequest{Pick: func(taken []netip.Prefix) (netip.Prefix, error) {
		if len(taken) != 1 || taken[0].String() != "10.0.0.0/16" {
			t.Errorf("Pick got taken = %v; want the VPC's range", taken)
		}
		return netip.MustParsePrefix("10.1.0.0/24"), nil
	}})
	if err != nil || got.String() != "10.1.0.0/24" {
		t.Fatalf("automatic claim = %v, %v", got, err)
	}
	if got, err := n.Claim(context.Background(), ClaimRequest{Want: netip.MustParsePrefix("10.9.0.0/24")}); err != nil || got.String() != "10.9.0.0/24" {
		t.Fatalf("claim outside the VPC = %v, %v", got, err)
	}
}

// Package ipam is vpcroute's Docker IPAM driver: a thin adapter of Docker's IPAM
// plugin API to the controller, which claims each subnet in the VPC before Docker gets
// it and hands out the addresses inside it. This package only reads Docker's requests
// and writes its answers.
package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	dipam "github.com/docker/go-plugins-helpers/ipam"

	"github.com/vpcroute/vpcroute/alloc"
	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/server"
	"github.com/vpcroute/vpcroute/state"
)

// Address spaces vpcroute reports to Docker. Docker only echoes them back, to the
// network driver too, which tells by them that the subnet is vpcroute's.
const (
	LocalSpace  = "vpcroute-local"
	GlobalSpace = "vpcroute-global"
)

// Docker marks the gateway request with this option.
const (
	requestAddressType = "RequestAddressType"
	gatewayOption      = "com.docker.network.gateway"
)

// Pools is what the IPAM driver needs of the controller.
type Pools interface {
	RequestPool(context.Context, controller.PoolRequest) (state.Pool, error)
	ReleasePool(ctx context.Context, ref string) error
	RequestAddress(ref string, asked netip.Addr, gateway bool) (netip.Prefix, error)
	ReleaseAddress(ref string, a netip.Addr) error
}

// Driver implements Docker's IPAM plugin API.
type Driver struct{ pools Pools }

var (
	_ dipam.Ipam         = (*Driver)(nil)
	_ server.ContextIPAM = (*Driver)(nil)
)

// New returns the IPAM driver.
func New(pools Pools) *Driver { return &Driver{pools: pools} }

// Capabilities says vpcroute needs no MAC address to allocate.
func Capabilities() *dipam.CapabilitiesResponse {
	return &dipam.CapabilitiesResponse{RequiresMACAddress: false}
}

// AddressSpaces names vpcroute's address spaces.
func AddressSpaces() *dipam.AddressSpacesResponse {
	return &dipam.AddressSpacesResponse{LocalDefaultAddressSpace: LocalSpace, GlobalDefaultAddressSpace: GlobalSpace}
}

// IsOwnSpace tells whether an address space is vpcroute's.
func IsOwnSpace(space string) bool { return space == LocalSpace || space == GlobalSpace }

// GetCapabilities returns Capabilities.
func (d *Driver) GetCapabilities() (*dipam.CapabilitiesResponse, error) { return Capabilities(), nil }

// GetDefaultAddressSpaces returns AddressSpaces.
func (d *Driver) GetDefaultAddressSpaces() (*dipam.AddressSpacesResponse, error) {
	return AddressSpaces(), nil
}

// ParseSubnet reads a user's --subnet: an IPv4 network address, from /16 to /29.
func ParseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("subnet %q is not an IPv4 CIDR: give --subnet like 10.0.2.0/24", s)
	}
	return p, alloc.CheckSubnet(p)
}

// RequestPool is RequestPoolContext without a deadline of Docker's.
func (d *Driver) RequestPool(req *dipam.RequestPoolRequest) (*dipam.RequestPoolResponse, error) {
	return d.RequestPoolContext(context.Background(), req)
}

// RequestPoolContext hands Docker a subnet claimed in the VPC: the one asked for when
// it is free, else the first free one of the configured size. The claim stops when
// ctx (Docker's request) ends.
func (d *Driver) RequestPoolContext(ctx context.Context, req *dipam.RequestPoolRequest) (*dipam.RequestPoolResponse, error) {
	if req.V6 {
		return nil, errors.New("vpcroute routes IPv4 subnets only: create the network without --ipv6")
	}
	var pr controller.PoolRequest
	for k, v := range req.Options {
		switch {
		case k == controller.OptOutsidePool:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("--ipam-opt %s=%q: give true or false", k, v)
			}
			pr.OutsidePool = b
		case k == controller.OptTakeover:
			t, err := controller.ParseTakeover(v)
			if err != nil {
				return nil, fmt.Errorf("--ipam-opt %s: %w", k, err)
			}
			pr.Takeover = t
		case strings.HasPrefix(k, "com.docker."):
			// Docker's own, for its default IPAM.
		default:
			return nil, fmt.Errorf("--ipam-opt %q is not known to vpcroute: remove it; known ones are %s=true (use a --subnet outside VPCROUTE_POOL) and %s=true|force (move the --subnet's route here from another ECS)", k, controller.OptOutsidePool, controller.OptTakeover)
		}
	}
	if req.Pool != "" {
		p, err := ParseSubnet(req.Pool)
		if err != nil {
			return nil, err
		}
		pr.Subnet = p
	}
	if req.SubPool != "" {
		if !pr.Subnet.IsValid() {
			return nil, errors.New("--ip-range needs --subnet: give the subnet it belongs to")
		}
		r, err := netip.ParsePrefix(req.SubPool)
		if err != nil || !r.Addr().Is4() || r.Masked() != r || !pr.Subnet.Contains(r.Addr()) || r.Bits() < pr.Subnet.Bits() {
			return nil, fmt.Errorf("ip-range %q is not a CIDR inside subnet %s: give an --ip-range such as %s", req.SubPool, pr.Subnet, netip.PrefixFrom(pr.Subnet.Addr(), min(pr.Subnet.Bits()+1, 32)))
		}
		pr.Range = r
	}
	p, err := d.pools.RequestPool(ctx, pr)
	if err != nil {
		return nil, err
	}
	return &dipam.RequestPoolResponse{PoolID: controller.PoolRef(p), Pool: p.Subnet.String()}, nil
}

// ReleasePool gives the subnet's route back. Releasing an unknown pool succeeds, so
// Docker's retries are harmless.
func (d *Driver) ReleasePool(req *dipam.ReleasePoolRequest) error {
	return d.ReleasePoolContext(context.Background(), req)
}

// ReleasePoolContext is ReleasePool bound to Docker's request.
func (d *Driver) ReleasePoolContext(ctx context.Context, req *dipam.ReleasePoolRequest) error {
	return d.pools.ReleasePool(ctx, req.PoolID)
}

// RequestAddress reserves an address: the gateway (Docker asks for it first), an
// address the user named (--ip, --aux-address, --gateway), or the next free one.
func (d *Driver) RequestAddress(req *dipam.RequestAddressRequest) (*dipam.RequestAddressResponse, error) {
	var asked netip.Addr
	if req.Address != "" {
		a, err := netip.ParseAddr(req.Address)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("address %q is not an IPv4 address: give an address like 10.0.2.10", req.Address)
		}
		asked = a
	}
	a, err := d.pools.RequestAddress(req.PoolID, asked, req.Options[requestAddressType] == gatewayOption)
	if err != nil {
		return nil, err
	}
	return &dipam.RequestAddressResponse{Address: a.String()}, nil
}

// ReleaseAddress frees an address; freeing a free one succeeds.
func (d *Driver) ReleaseAddress(req *dipam.ReleaseAddressRequest) error {
	a, err := netip.ParseAddr(req.Address)
	if err != nil {
		return fmt.Errorf("address %q is not an IP address", req.Address)
	}
	return d.pools.ReleaseAddress(req.PoolID, a)
}

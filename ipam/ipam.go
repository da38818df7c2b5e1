// Package ipam is vpcroute's Docker IPAM driver: it hands Docker subnets that are safe
// to route through the VPC (claimed in the cloud before they are returned) and the
// addresses inside them. Policy lives in package alloc, storage in package state.
package ipam

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	dipam "github.com/docker/go-plugins-helpers/ipam"

	"github.com/vpcroute/vpcroute/alloc"
	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/state"
)

// Address spaces vpcroute reports to Docker. Docker only echoes them back.
const (
	LocalSpace  = "vpcroute-local"
	GlobalSpace = "vpcroute-global"
)

// Docker marks the gateway request with this option.
const (
	requestAddressType = "RequestAddressType"
	gatewayOption      = "com.docker.network.gateway"
)

// Store is the persistence the IPAM driver needs.
type Store interface {
	PutPool(state.Pool) error
	Pool(id string) (state.Pool, error)
	Pools() ([]state.Pool, error)
	DeletePool(id string) error
	Allocate(poolID string, pick func(*state.Pool, func(netip.Addr) bool) (netip.Addr, error)) (netip.Addr, error)
	Free(poolID string, a netip.Addr) error
	Networks() ([]state.Network, error)
}

// Config is the IPAM driver's policy.
type Config struct {
	Pool       netip.Prefix // VPCROUTE_POOL
	SubnetSize int          // VPCROUTE_SUBNET_SIZE
	// HostPrefixes returns the routes and address subnets of this host, which a new
	// subnet must not overlap.
	HostPrefixes func() ([]netip.Prefix, error)
	// Timeout bounds one Docker request's cloud work, well inside Docker's plugin timeout.
	Timeout time.Duration
	Log     *slog.Logger
}

// Driver implements Docker's IPAM plugin API.
type Driver struct {
	cfg   Config
	store Store
	vpc   cloud.VPC
	// mu serialises pool requests, releases and reconciliation on this host, so two
	// networks created at once never pick the same subnet. Lock order: driver.Driver.mu
	// (held when the network driver claims a subnet) before mu; mu is held across the
	// cloud call of one claim or release.
	mu sync.Mutex
}

var _ dipam.Ipam = (*Driver)(nil)

// New returns the IPAM driver.
func New(cfg Config, store Store, vpc cloud.VPC) *Driver {
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.HostPrefixes == nil {
		cfg.HostPrefixes = func() ([]netip.Prefix, error) { return nil, nil }
	}
	return &Driver{cfg: cfg, store: store, vpc: vpc}
}

// Capabilities says vpcroute needs no MAC address to allocate.
func Capabilities() *dipam.CapabilitiesResponse {
	return &dipam.CapabilitiesResponse{RequiresMACAddress: false}
}

// AddressSpaces names vpcroute's address spaces.
func AddressSpaces() *dipam.AddressSpacesResponse {
	return &dipam.AddressSpacesResponse{LocalDefaultAddressSpace: LocalSpace, GlobalDefaultAddressSpace: GlobalSpace}
}

// GetCapabilities returns Capabilities.
func (d *Driver) GetCapabilities() (*dipam.CapabilitiesResponse, error) { return Capabilities(), nil }

// GetDefaultAddressSpaces returns AddressSpaces.
func (d *Driver) GetDefaultAddressSpaces() (*dipam.AddressSpacesResponse, error) {
	return AddressSpaces(), nil
}

func newPoolID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "vr-" + hex.EncodeToString(b)
}

// ParseSubnet validates a user's --subnet for vpcroute: IPv4, a network address,
// from /16 to /29.
func ParseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("subnet %q is not an IPv4 CIDR: give --subnet like 10.0.2.0/24", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("subnet %s is not a network address: use --subnet %s", p, p.Masked())
	}
	if p.Bits() < 16 || p.Bits() > 29 {
		return netip.Prefix{}, fmt.Errorf("subnet %s has a /%d prefix: vpcroute routes subnets from /16 to /29; give a --subnet in that range", p, p.Bits())
	}
	return p, nil
}

// localTaken is what a new subnet must not overlap on this host: the ranges a VPC
// reserves, the host's routes and addresses, and every vpcroute pool and network.
// skip names a pool or network to leave out (the one being checked).
func (d *Driver) localTaken(skip string) ([]netip.Prefix, []string, error) {
	host, err := d.cfg.HostPrefixes()
	if err != nil {
		return nil, nil, fmt.Errorf("read this host's routes: %w", err)
	}
	taken := append([]netip.Prefix{}, alloc.Reserved...)
	why := make([]string, 0, len(taken)+len(host))
	for _, r := range alloc.Reserved {
		why = append(why, "the range "+r.String()+" that the VPC reserves")
	}
	for _, h := range host {
		taken = append(taken, h)
		why = append(why, "the route or address "+h.String()+" on this host")
	}
	pools, err := d.store.Pools()
	if err != nil {
		return nil, nil, err
	}
	for _, p := range pools {
		if p.ID != skip {
			taken = append(taken, p.Subnet)
			why = append(why, "vpcroute subnet "+p.Subnet.String()+" of another network on this host")
		}
	}
	nets, err := d.store.Networks()
	if err != nil {
		return nil, nil, err
	}
	for _, n := range nets {
		if n.ID != skip && n.ClaimOwner != skip {
			taken = append(taken, n.Subnet)
			why = append(why, "subnet "+n.Subnet.String()+" of network "+short(n.ID)+" on this host")
		}
	}
	return taken, why, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// checkLocal returns an error naming what subnet overlaps on this host.
func (d *Driver) checkLocal(subnet netip.Prefix, skip string) error {
	taken, why, err := d.localTaken(skip)
	if err != nil {
		return err
	}
	return overlapError(subnet, taken, why)
}

// overlapError names the first of taken (explained by why) that subnet overlaps.
func overlapError(subnet netip.Prefix, taken []netip.Prefix, why []string) error {
	for i, t := range taken {
		if t.Overlaps(subnet) {
			return fmt.Errorf("subnet %s overlaps %s: choose a free --subnet, or leave --subnet out and use --ipam-driver vpcroute to get a free one", subnet, why[i])
		}
	}
	return nil
}

// RequestPool hands Docker a subnet: the one asked for when it is free, else the
// first free one of the configured size. Either way it is claimed in the VPC before
// it is returned, so no other host can get it.
func (d *Driver) RequestPool(req *dipam.RequestPoolRequest) (*dipam.RequestPoolResponse, error) {
	if req.V6 {
		return nil, errors.New("vpcroute routes IPv4 subnets only: create the network without --ipv6")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Timeout)
	defer cancel()

	pool := state.Pool{ID: newPoolID(), Claiming: true, Created: time.Now().UTC()}
	var want netip.Prefix
	if req.Pool != "" {
		p, err := ParseSubnet(req.Pool)
		if err != nil {
			return nil, err
		}
		want = p
	}
	if req.SubPool != "" {
		if want == (netip.Prefix{}) {
			return nil, errors.New("--ip-range needs --subnet: give the subnet it belongs to")
		}
		r, err := netip.ParsePrefix(req.SubPool)
		if err != nil || !r.Addr().Is4() || r.Masked() != r || !want.Contains(r.Addr()) || r.Bits() < want.Bits() {
			return nil, fmt.Errorf("ip-range %q is not a CIDR inside subnet %s: give an --ip-range such as %s", req.SubPool, want, netip.PrefixFrom(want.Addr(), min(want.Bits()+1, 32)))
		}
		pool.Range = r
	}
	taken, why, err := d.localTaken("")
	if err != nil {
		return nil, err
	}
	if want.IsValid() {
		if err := overlapError(want, taken, why); err != nil {
			return nil, err
		}
	}
	// Record the claim before making it: if the plugin dies before Docker hears the
	// answer, start-up finds the pool still Claiming and gives the route back.
	pool.Subnet = want
	if err := d.store.PutPool(pool); err != nil {
		return nil, fmt.Errorf("save pool %s: %w", pool.ID, err)
	}
	got, err := d.vpc.Claim(ctx, cloud.ClaimRequest{
		Owner: pool.ID,
		Want:  want,
		Pick: func(cloudTaken []netip.Prefix) (netip.Prefix, error) {
			return alloc.FirstFree(d.cfg.Pool, d.cfg.SubnetSize, append(cloudTaken, taken...))
		},
	})
	if err != nil {
		if derr := d.store.DeletePool(pool.ID); derr != nil {
			d.cfg.Log.Error("forget failed pool", "pool", pool.ID, "err", derr)
		}
		return nil, fmt.Errorf("claim a subnet in the VPC: %w", err)
	}
	pool.Subnet = got
	pool.Claiming = false
	if err := d.store.PutPool(pool); err != nil {
		// Leave nothing behind: the route goes back, the pool is forgotten.
		if rerr := d.vpc.Release(ctx, got, pool.ID); rerr != nil {
			d.cfg.Log.Error("release route after failed save", "subnet", got, "err", rerr)
		}
		_ = d.store.DeletePool(pool.ID)
		return nil, fmt.Errorf("save pool %s: %w", pool.ID, err)
	}
	d.cfg.Log.Info("pool claimed", "pool", pool.ID, "subnet", got, "requested", req.Pool)
	d.warnOutsidePool(got)
	return &dipam.RequestPoolResponse{PoolID: pool.ID, Pool: got.String()}, nil
}

// ReleasePool gives the subnet's route back and forgets the pool. Releasing an
// unknown pool succeeds, so Docker's retries are harmless.
func (d *Driver) ReleasePool(req *dipam.ReleasePoolRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, err := d.store.Pool(req.PoolID)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// Docker ignores ReleasePool errors and never asks again: mark the pool first, so
	// that a failed or interrupted release is finished by the reconcile loop.
	if !p.Releasing {
		p.Releasing = true
		if err := d.store.PutPool(p); err != nil {
			return fmt.Errorf("save pool %s: %w", p.ID, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Timeout)
	defer cancel()
	return d.finishRelease(ctx, p)
}

// finishRelease gives back the route of a pool marked Releasing and forgets the pool.
func (d *Driver) finishRelease(ctx context.Context, p state.Pool) error {
	if p.Subnet.IsValid() {
		if err := d.vpc.Release(ctx, p.Subnet, p.ID); err != nil {
			return fmt.Errorf("release route of %s in the VPC (vpcroute retries it): %w", p.Subnet, err)
		}
	}
	if err := d.store.DeletePool(p.ID); err != nil {
		return fmt.Errorf("forget pool %s: %w", p.ID, err)
	}
	d.cfg.Log.Info("pool released", "pool", p.ID, "subnet", p.Subnet)
	return nil
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
	gateway := req.Options[requestAddressType] == gatewayOption
	var subnet netip.Prefix
	a, err := d.store.Allocate(req.PoolID, func(p *state.Pool, used func(netip.Addr) bool) (netip.Addr, error) {
		subnet = p.Subnet
		ap := alloc.AddrPool{Subnet: p.Subnet, Range: p.Range, Gateway: p.Gateway}
		if gateway {
			if !asked.IsValid() {
				asked = alloc.DefaultGateway(p.Subnet)
			}
			ap.Gateway = netip.Addr{}
		}
		if asked.IsValid() {
			if err := ap.Check(asked, used); err != nil {
				return netip.Addr{}, err
			}
			if gateway {
				p.Gateway = asked
			}
			return asked, nil
		}
		return ap.Next(p.LastAddr, used)
	})
	if errors.Is(err, state.ErrNotFound) {
		return nil, fmt.Errorf("pool %s is unknown to vpcroute: remove and re-create the network", req.PoolID)
	}
	if err != nil {
		return nil, err
	}
	return &dipam.RequestAddressResponse{Address: netip.PrefixFrom(a, subnet.Bits()).String()}, nil
}

// ReleaseAddress frees an address; freeing a free one succeeds.
func (d *Driver) ReleaseAddress(req *dipam.ReleaseAddressRequest) error {
	a, err := netip.ParseAddr(req.Address)
	if err != nil {
		return fmt.Errorf("address %q is not an IP address", req.Address)
	}
	return d.store.Free(req.PoolID, a)
}

// ClaimForNetwork claims, for the network driver, a subnet that Docker's default
// IPAM chose (a network created with `-d vpcroute` but without `--ipam-driver
// vpcroute`, as the guide's `--subnet 10.0.2.0/24` does), on behalf of owner. The
// network being created is saved already, under its own subnet: it is not checked
// against itself.
func (d *Driver) ClaimForNetwork(ctx context.Context, owner string, subnet netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	hint := " (Docker's default IPAM picked it: add --ipam-driver vpcroute to get a free subnet, or give a free --subnet)"
	if _, err := ParseSubnet(subnet.String()); err != nil {
		return fmt.Errorf("%w%s", err, hint)
	}
	if err := d.checkLocal(subnet, owner); err != nil {
		return fmt.Errorf("%w%s", err, hint)
	}
	if _, err := d.vpc.Claim(ctx, cloud.ClaimRequest{Owner: owner, Want: subnet}); err != nil {
		return fmt.Errorf("claim %s in the VPC: %w%s", subnet, err, hint)
	}
	d.warnOutsidePool(subnet)
	return nil
}

// warnOutsidePool says when a subnet lies outside VPCROUTE_POOL: every host masquerades
// traffic to destinations outside the VPC and the pool, so containers elsewhere reach
// this subnet's containers under their host's address instead of their own.
func (d *Driver) warnOutsidePool(subnet netip.Prefix) {
	if !d.cfg.Pool.Contains(subnet.Addr()) || subnet.Bits() < d.cfg.Pool.Bits() {
		d.cfg.Log.Warn("subnet is outside VPCROUTE_POOL: traffic from containers on other hosts arrives masqueraded; use a subnet inside the pool, or widen VPCROUTE_POOL on every host",
			"subnet", subnet, "pool", d.cfg.Pool)
	}
}

// ReleaseForNetwork gives back a claim made by ClaimForNetwork.
func (d *Driver) ReleaseForNetwork(ctx context.Context, subnet netip.Prefix, owner string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.vpc.Release(ctx, subnet, owner)
}

// Package driver is vpcroute's Docker network driver: a Linux bridge per network,
// a veth per container, FORWARD and NAT rules per network and DNAT per published port.
// It makes no cloud call on the container path (Join/Leave): the subnet's VPC route is
// claimed by the IPAM driver when the network is created.
package driver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	dnet "github.com/docker/go-plugins-helpers/network"

	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/ipam"
	"github.com/vpcroute/vpcroute/link"
	"github.com/vpcroute/vpcroute/state"
)

// Links is the host's link layer as the driver uses it (package hostnet in production).
type Links interface {
	EnsureBridge(link.BridgeSpec) error
	DeleteBridge(name, networkID string) error
	Bridges() (map[string]string, error)
	EnsureVeth(hostName, peerName, bridge string, mtu int) error
	DeleteVeth(hostName string) error
	UplinkMTU() int
}

// Firewall is the host's packet filter as the driver uses it.
type Firewall interface {
	EnsureBase(firewall.Base) error
	EnsureNetwork(firewall.NetworkRules) error
	DeleteNetwork(firewall.NetworkRules) error
	EnsurePort(firewall.PortMap) error
	DeletePort(firewall.PortMap) error
	Prune(keep map[string]bool) error
}

// Store is the persistence the driver needs.
type Store interface {
	PutNetwork(state.Network) error
	Network(id string) (state.Network, error)
	Networks() ([]state.Network, error)
	DeleteNetwork(id string) error
	PutEndpoint(state.Endpoint) error
	Endpoint(networkID, id string) (state.Endpoint, error)
	Endpoints(networkID string) ([]state.Endpoint, error)
	DeleteEndpoint(networkID, id string) error
	PortBindings(proto string, port uint16) ([]state.PortBinding, error)
	Pools() ([]state.Pool, error)
}

// Claimer claims a subnet that Docker's default IPAM chose, so a network created
// with `-d vpcroute` alone is routed like one with `--ipam-driver vpcroute`.
type Claimer interface {
	ClaimForNetwork(ctx context.Context, owner string, subnet netip.Prefix) error
	ReleaseForNetwork(ctx context.Context, subnet netip.Prefix, owner string) error
}

// Config is the driver's policy.
type Config struct {
	ForwardAccept bool           // VPCROUTE_FORWARD=accept
	Masquerade    bool           // VPCROUTE_MASQUERADE
	NoNAT         []netip.Prefix // VPC CIDRs and the container pool
	// Pool is the container pool (VPCROUTE_POOL): the base rules accept packets of
	// established connections to and from it before any network's rules.
	Pool netip.Prefix
	// SrcDstCheckOn, when set and true, makes network creation warn that other
	// hosts cannot reach the containers.
	SrcDstCheckOn func() bool
	Ports         PortChecker
	Log           *slog.Logger
}

// Driver implements Docker's network driver plugin API.
type Driver struct {
	cfg     Config
	links   Links
	fw      Firewall
	store   Store
	claimer Claimer
	// mu serialises every operation that changes networks, endpoints or port
	// reservations. Lock order: Driver.mu before ipam.Driver.mu (taken by the
	// Claimer) and anything in hostnet or state. CreateNetwork lets go of it
	// during its cloud claim.
	mu sync.Mutex
}

var _ dnet.Driver = (*Driver)(nil)

// New returns the driver. Call Restore before serving.
func New(cfg Config, links Links, fw Firewall, store Store, claimer Claimer) *Driver {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Ports == nil {
		cfg.Ports = BindChecker{}
	}
	return &Driver{cfg: cfg, links: links, fw: fw, store: store, claimer: claimer}
}

// Capabilities: networks are local to a host; the VPC does the routing.
func Capabilities() *dnet.CapabilitiesResponse {
	return &dnet.CapabilitiesResponse{Scope: dnet.LocalScope, ConnectivityScope: dnet.LocalScope}
}

// GetCapabilities returns Capabilities.
func (d *Driver) GetCapabilities() (*dnet.CapabilitiesResponse, error) { return Capabilities(), nil }

// AllocateNetwork is for swarm's global scope, which vpcroute does not serve.
func (d *Driver) AllocateNetwork(*dnet.AllocateNetworkRequest) (*dnet.AllocateNetworkResponse, error) {
	return nil, errors.New("vpcroute is a local-scope driver: swarm-scoped networks are not supported; create the network without --scope swarm")
}

// FreeNetwork is the counterpart of AllocateNetwork.
func (d *Driver) FreeNetwork(*dnet.FreeNetworkRequest) error { return nil }

// DiscoverNew is not used by local-scope drivers.
func (d *Driver) DiscoverNew(*dnet.DiscoveryNotification) error { return nil }

// DiscoverDelete is not used by local-scope drivers.
func (d *Driver) DiscoverDelete(*dnet.DiscoveryNotification) error { return nil }

func (d *Driver) rules(n state.Network) firewall.NetworkRules {
	return firewall.NetworkRules{
		NetworkID:  n.ID,
		Bridge:     n.Bridge,
		Subnet:     n.Subnet,
		Masquerade: n.Masquerade,
		Internal:   n.Internal,
		NoNAT:      d.cfg.NoNAT,
	}
}

func (d *Driver) bridge(n state.Network) link.BridgeSpec {
	return link.BridgeSpec{Name: n.Bridge, NetworkID: n.ID, Gateway: n.Gateway, MTU: n.MTU}
}

// ensureNetwork makes the kernel objects of a saved network exist.
func (d *Driver) ensureNetwork(n state.Network) error {
	if err := d.links.EnsureBridge(d.bridge(n)); err != nil {
		return fmt.Errorf("bridge %s: %w", n.Bridge, err)
	}
	if err := d.fw.EnsureNetwork(d.rules(n)); err != nil {
		return fmt.Errorf("firewall rules of %s: %w", n.Subnet, err)
	}
	return nil
}

// teardownNetwork removes what ensureNetwork made and tolerates it being gone.
func (d *Driver) teardownNetwork(n state.Network) error {
	var errs []error
	if err := d.fw.DeleteNetwork(d.rules(n)); err != nil {
		errs = append(errs, fmt.Errorf("firewall rules of %s: %w", n.Subnet, err))
	}
	if err := d.links.DeleteBridge(n.Bridge, n.ID); errors.Is(err, link.ErrNotOwned) {
		// Not vpcroute's (or made by a plugin killed before it could mark it):
		// never delete it, and do not retry forever either.
		d.cfg.Log.Warn("leaving a link that is not marked as vpcroute's; remove it with `ip link del` if it is a leftover", "bridge", n.Bridge, "network", short(n.ID))
	} else if err != nil {
		errs = append(errs, fmt.Errorf("bridge %s: %w", n.Bridge, err))
	}
	return errors.Join(errs...)
}

// CreateNetwork builds the bridge and opens FORWARD and NAT for the subnet. On any
// failure it leaves nothing behind.
func (d *Driver) CreateNetwork(req *dnet.CreateNetworkRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	opts, err := parseNetworkOptions(req.Options)
	if err != nil {
		return err
	}
	if len(req.IPv6Data) > 0 {
		return errors.New("vpcroute routes IPv4 only: create the network without --ipv6")
	}
	if len(req.IPv4Data) != 1 {
		return fmt.Errorf("a vpcroute network has exactly one IPv4 subnet, got %d: give one --subnet (or none)", len(req.IPv4Data))
	}
	data := req.IPv4Data[0]
	subnet, err := netip.ParsePrefix(data.Pool)
	if err != nil {
		return fmt.Errorf("subnet %q from IPAM is not a CIDR: %w", data.Pool, err)
	}
	gw, err := netip.ParsePrefix(data.Gateway)
	if err != nil {
		return fmt.Errorf("gateway %q from IPAM is not an address with prefix length: give --gateway inside the subnet", data.Gateway)
	}

	if old, err := d.store.Network(req.NetworkID); err == nil && !old.Creating && !old.Deleting {
		// Docker retried: make sure everything is there.
		return d.ensureNetwork(old)
	}
	nets, err := d.store.Networks()
	if err != nil {
		return err
	}
	n := state.Network{
		ID:         req.NetworkID,
		Bridge:     opts.bridge,
		Subnet:     subnet,
		Gateway:    gw,
		MTU:        opts.mtu,
		Masquerade: d.cfg.Masquerade && opts.masquerade,
		Internal:   opts.internal,
		Creating:   true,
		Created:    time.Now().UTC(),
	}
	if n.Bridge == "" {
		n.Bridge = "vr-" + short(req.NetworkID)
	}
	if n.MTU == 0 {
		n.MTU = d.links.UplinkMTU()
	}
	for _, o := range nets {
		if o.ID != n.ID && o.Bridge == n.Bridge {
			return fmt.Errorf("bridge name %s is already used by network %s: choose another com.docker.network.bridge.name", n.Bridge, short(o.ID))
		}
	}

	ours, err := d.fromOurIPAM(data.AddressSpace, subnet)
	if err != nil {
		return err
	}
	if !ours {
		n.ClaimOwner = "net-" + short(req.NetworkID)
	}
	// Saved before the claim and the kernel, so a crash mid-way is cleaned up at
	// start, and the reconcile loop never takes the claim for an orphan.
	if err := d.store.PutNetwork(n); err != nil {
		return fmt.Errorf("save network %s: %w", short(n.ID), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if n.ClaimOwner != "" {
		// The cloud may take seconds: let Join and Leave of other networks go on
		// meanwhile. The saved Creating record keeps this network's name and subnet.
		d.mu.Unlock()
		err := d.claimer.ClaimForNetwork(ctx, n.ClaimOwner, subnet)
		d.mu.Lock()
		if err != nil {
			_ = d.store.DeleteNetwork(n.ID)
			return err
		}
	}
	if err := d.ensureNetwork(n); err != nil {
		if terr := d.teardownNetwork(n); terr != nil {
			d.cfg.Log.Error("undo half-made network", "network", short(n.ID), "err", terr)
		}
		d.releaseClaim(ctx, n)
		_ = d.store.DeleteNetwork(n.ID)
		return fmt.Errorf("create network %s: %w", short(n.ID), err)
	}
	n.Creating = false
	if err := d.store.PutNetwork(n); err != nil {
		_ = d.teardownNetwork(n)
		d.releaseClaim(ctx, n)
		_ = d.store.DeleteNetwork(n.ID)
		return fmt.Errorf("save network %s: %w", short(n.ID), err)
	}
	if d.cfg.SrcDstCheckOn != nil && d.cfg.SrcDstCheckOn() {
		d.cfg.Log.Warn("source/destination check is ON for this ECS's NIC: containers of this network will not be reachable from other hosts; turn it off in the ECS console (NIC > Source/Destination Check) or set VPCROUTE_SRC_DST_CHECK=disable", "network", short(n.ID), "subnet", n.Subnet)
	}
	d.cfg.Log.Info("network created", "network", short(n.ID), "subnet", n.Subnet, "bridge", n.Bridge, "mtu", n.MTU)
	return nil
}

// fromOurIPAM tells whether vpcroute's IPAM handed out this subnet (and so already
// claimed it).
func (d *Driver) fromOurIPAM(space string, subnet netip.Prefix) (bool, error) {
	if space != ipam.LocalSpace && space != ipam.GlobalSpace {
		return false, nil
	}
	pools, err := d.store.Pools()
	if err != nil {
		return false, fmt.Errorf("read pools: %w", err)
	}
	for _, p := range pools {
		if p.Subnet == subnet && !p.Releasing {
			return true, nil
		}
	}
	return false, nil
}

func (d *Driver) releaseClaim(ctx context.Context, n state.Network) {
	if n.ClaimOwner == "" {
		return
	}
	if err := d.claimer.ReleaseForNetwork(ctx, n.Subnet, n.ClaimOwner); err != nil {
		d.cfg.Log.Error("release route (the reconcile loop retries)", "subnet", n.Subnet, "err", err)
	}
}

// DeleteNetwork removes the bridge, the network's rules and its leftovers. An unknown
// network succeeds, so Docker's retries are harmless.
func (d *Driver) DeleteNetwork(req *dnet.DeleteNetworkRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.store.Network(req.NetworkID)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// Docker forgets the network whatever we answer: mark it first, so that a
	// teardown that fails or is cut short is finished by the repair loop.
	if !n.Deleting {
		n.Deleting = true
		if err := d.store.PutNetwork(n); err != nil {
			return fmt.Errorf("save network %s: %w", short(n.ID), err)
		}
	}
	if err := d.finishDelete(n); err != nil {
		return fmt.Errorf("delete network %s (vpcroute retries it): %w", short(n.ID), err)
	}
	d.cfg.Log.Info("network deleted", "network", short(n.ID), "subnet", n.Subnet)
	return nil
}

// finishDelete removes a network's endpoints' leftovers, its rules and bridge, gives
// back a claim the driver made, and forgets it.
func (d *Driver) finishDelete(n state.Network) error {
	eps, err := d.store.Endpoints(n.ID)
	if err != nil {
		return err
	}
	var errs []error
	for _, ep := range eps {
		errs = append(errs, d.removeEndpointObjects(n, ep))
	}
	errs = append(errs, d.teardownNetwork(n))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A release that fails leaves an orphan route, which the IPAM's reconcile loop
	// gives back once the network is forgotten.
	d.releaseClaim(ctx, n)
	return d.store.DeleteNetwork(n.ID)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

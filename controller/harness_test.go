package controller_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/dockerapi"
	"github.com/vpcroute/vpcroute/internal/fakecloud"
	"github.com/vpcroute/vpcroute/internal/fakehost"
	"github.com/vpcroute/vpcroute/state"
)

var (
	_ controller.Links    = (*fakehost.Host)(nil)
	_ controller.Firewall = (*fakehost.Host)(nil)
	_ controller.Docker   = (*fakeDocker)(nil)
)

// fakeDocker is Docker's list of networks, kept by the test as Docker would keep it.
type fakeDocker struct {
	mu   sync.Mutex
	nets map[string]dockerapi.Network
	fail error
}

func newFakeDocker() *fakeDocker { return &fakeDocker{nets: map[string]dockerapi.Network{}} }

func (d *fakeDocker) Networks(context.Context) ([]dockerapi.Network, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return nil, d.fail
	}
	var out []dockerapi.Network
	for _, n := range d.nets {
		n.Containers = nil // the list does not carry them
		out = append(out, n)
	}
	return out, nil
}

func (d *fakeDocker) Network(_ context.Context, id string) (dockerapi.Network, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return dockerapi.Network{}, d.fail
	}
	n, ok := d.nets[id]
	if !ok {
		return n, fmt.Errorf("network %s: %w", id, dockerapi.ErrNotFound)
	}
	return n, nil
}

func (d *fakeDocker) put(n dockerapi.Network) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nets[n.ID] = n
}

func (d *fakeDocker) remove(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.nets, id)
}

// clock is the controller's time, moved by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// busyPorts says every port is free except those listed.
type busyPorts map[uint16]bool

func (b busyPorts) Free(_ string, _ netip.Addr, port uint16) error {
	if b[port] {
		return errors.New("address already in use")
	}
	return nil
}

const instance = "ecs-1"

// harness is one host: a controller over a fake kernel, a fake route table (shared
// with other hosts' routes), Docker's list and a state file.
type harness struct {
	t      *testing.T
	c      *controller.Controller
	host   *fakehost.Host
	vpc    *fakecloud.VPC
	docker *fakeDocker
	db     *state.DB
	dir    string
	clock  *clock
	logs   *syncBuffer
	cfg    controller.Config
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, host: fakehost.New(), vpc: fakecloud.New(instance), docker: newFakeDocker(),
		dir: t.TempDir(), clock: &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}, logs: &syncBuffer{}}
	h.cfg = controller.Config{
		Pool:        netip.MustParsePrefix("10.0.0.0/8"),
		SubnetSize:  24,
		Masquerade:  true,
		Routed:      true,
		Grace:       30 * time.Second,
		OrphanGrace: 10 * time.Minute,
		Ports:       busyPorts{22: true},
		Log:         slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:         h.clock.now,
	}
	h.open()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller log:\n%s", h.logs)
		}
	})
	return h
}

// open starts a controller on the harness's state directory, as a plugin (re)start
// does.
func (h *harness) open() {
	h.t.Helper()
	if h.db != nil {
		h.db.Close()
	}
	db, err := state.Open(h.dir)
	if err != nil {
		h.t.Fatal(err)
	}
	h.db = db
	h.t.Cleanup(func() { db.Close() })
	h.c = controller.New(h.cfg, db, h.host, h.host, h.vpc, h.docker)
	if err := h.c.Start(); err != nil {
		h.t.Fatalf("Start: %v", err)
	}
}

// loseState restarts the plugin with an empty state directory.
func (h *harness) loseState() {
	h.t.Helper()
	h.db.Close()
	h.db = nil
	h.dir = h.t.TempDir()
	h.open()
}

func (h *harness) reconcile() { h.c.ReconcileNow(context.Background()) }

// network creates a network the way Docker does: a pool from vpcroute's IPAM (subnet
// "" for an automatic one), its gateway, the network; and records it in Docker's list.
func (h *harness) network(id, name, subnet string) (state.Pool, netip.Prefix) {
	h.t.Helper()
	var req controller.PoolRequest
	if subnet != "" {
		req.Subnet = netip.MustParsePrefix(subnet)
	}
	p, err := h.c.RequestPool(ctx0, req)
	if err != nil {
		h.t.Fatalf("RequestPool %s: %v", subnet, err)
	}
	ref := controller.PoolRef(p)
	gw, err := h.c.RequestAddress(ref, netip.Addr{}, true)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.c.CreateNetwork(ctx0, controller.NetworkSpec{ID: id, Subnet: p.Subnet, Gateway: gw, FromVpcroute: true, Masquerade: true}); err != nil {
		h.t.Fatalf("CreateNetwork %s: %v", id, err)
	}
	h.docker.put(dockerapi.Network{ID: id, Name: name, Driver: "vpcroute", Created: h.clock.now(),
		IPAM: dockerapi.IPAM{Driver: "vpcroute", Config: []dockerapi.IPAMConfig{{Subnet: p.Subnet.String(), Gateway: gw.Addr().String()}}}})
	return p, gw
}

// defaultIPAMNetwork creates a network on Docker's default IPAM (`-d vpcroute` alone).
func (h *harness) defaultIPAMNetwork(id, name, subnet string) {
	h.t.Helper()
	s := netip.MustParsePrefix(subnet)
	gw := netip.PrefixFrom(s.Addr().Next(), s.Bits())
	if err := h.c.CreateNetwork(ctx0, controller.NetworkSpec{ID: id, Subnet: s, Gateway: gw, Masquerade: true}); err != nil {
		h.t.Fatalf("CreateNetwork %s: %v", id, err)
	}
	h.docker.put(dockerapi.Network{ID: id, Name: name, Driver: "vpcroute", Created: h.clock.now(),
		IPAM: dockerapi.IPAM{Driver: "default", Config: []dockerapi.IPAMConfig{{Subnet: subnet, Gateway: gw.Addr().String()}}}})
}

// container attaches a container the way Docker does: an address from the pool, an
// endpoint, a join, published ports; and shows it in Docker's inspect.
func (h *harness) container(netID, ref, epID string, ports ...controller.PortRequest) netip.Prefix {
	h.t.Helper()
	a, err := h.c.RequestAddress(ref, netip.Addr{}, false)
	if err != nil {
		h.t.Fatal(err)
	}
	h.attach(netID, epID, a, ports...)
	return a
}

// attach is container with an address from elsewhere (Docker's default IPAM).
func (h *harness) attach(netID, epID string, a netip.Prefix, ports ...controller.PortRequest) {
	h.t.Helper()
	if err := h.c.CreateEndpoint(netID, epID, a); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.c.Join(netID, epID); err != nil {
		h.t.Fatal(err)
	}
	if err := h.c.PublishPorts(netID, epID, ports); err != nil {
		h.t.Fatal(err)
	}
	h.docker.mu.Lock()
	n := h.docker.nets[netID]
	if n.Containers == nil {
		n.Containers = map[string]dockerapi.Endpoint{}
	}
	n.Containers["c-"+epID] = dockerapi.Endpoint{Name: "c-" + epID, EndpointID: epID, IPv4Address: a.String()}
	h.docker.nets[netID] = n
	h.docker.mu.Unlock()
}

// removeNetwork removes a network the way Docker does: pool first, then the network.
func (h *harness) removeNetwork(id string, p state.Pool) {
	h.t.Helper()
	if err := h.c.ReleasePool(ctx0, controller.PoolRef(p)); err != nil {
		h.t.Fatal(err)
	}
	if err := h.c.DeleteNetwork(ctx0, id); err != nil {
		h.t.Fatal(err)
	}
	h.docker.remove(id)
}

// empty fails unless nothing of vpcroute is left: no bridge, rule, port, veth, route
// of this host, pool, network or endpoint.
func (h *harness) empty(when string) {
	h.t.Helper()
	h.host.Lock()
	kernel := fmt.Sprintf("bridges %v rules %d ports %v veths %v", h.host.Marked, len(h.host.Rules), h.host.Ports, h.host.Attached)
	dirty := len(h.host.Marked)+len(h.host.Rules)+len(h.host.Ports)+len(h.host.Attached) > 0
	h.host.Unlock()
	owned, _ := h.vpc.Owned(context.Background())
	pools, _ := h.db.Pools()
	nets, _ := h.db.Networks()
	eps, _ := h.db.Endpoints("")
	if dirty || len(owned)+len(pools)+len(nets)+len(eps) > 0 {
		h.t.Fatalf("%s: left behind: %s; routes %v; pools %+v; networks %+v; endpoints %+v", when, kernel, owned, pools, nets, eps)
	}
}

func wantErr(t *testing.T, err error, substr string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), substr) {
		t.Fatalf("error = %v; want one containing %q", err, substr)
	}
}

// ctx0 is the context of a Docker call that never gives up.
var ctx0 = context.Background()

//go:build linux

package sim

import (
	"fmt"
	"net"
	"slices"
	"testing"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/vpc/v2/model"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vpcroute/vpcroute/internal/netnstest"
)

// throwawayNetns creates an unnamed network namespace that disappears with its
// last handle, and returns a path to it and a netlink handle in it.
func throwawayNetns(t *testing.T) (string, *netlink.Handle) {
	t.Helper()
	ns := netnstest.New(t)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return netnstest.Path(ns), h
}

// kernelRoutes lists the namespace's IPv4 main-table routes with a gateway as
// "DEST via GW proto P".
func kernelRoutes(t *testing.T, h *netlink.Handle) []string {
	t.Helper()
	rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		if r.Gw == nil || r.Dst == nil {
			continue
		}
		out = append(out, fmt.Sprintf("%s via %s proto %#x", r.Dst, r.Gw, int(r.Protocol)))
	}
	slices.Sort(out)
	return out
}

func TestSyncRouter(t *testing.T) {
	path, h := throwawayNetns(t)
	la := netlink.NewLinkAttrs()
	la.Name = "vpc0"
	// A veth pair rather than a dummy: the dummy module may be missing.
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "vpc0p"}); err != nil {
		t.Fatal(err)
	}
	peer, err := h.LinkByName("vpc0p")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(peer); err != nil {
		t.Fatal(err)
	}
	link, err := h.LinkByName("vpc0")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("192.168.0.1/24")
	if err := h.AddrAdd(link, addr); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	// A route someone else made: SyncRouter must never touch it.
	_, foreign, _ := net.ParseCIDR("10.9.9.0/24")
	if err := h.RouteAdd(&netlink.Route{Dst: foreign, Gw: net.ParseIP("192.168.0.3"), LinkIndex: link.Attrs().Index, Protocol: unix.RTPROT_STATIC}); err != nil {
		t.Fatal(err)
	}
	const foreignRoute = "10.9.9.0/24 via 192.168.0.3 proto 0x4"

	e := newEnv(t, func(c *Config) {
		c.Routes = []Route{
			{Type: "ecs", Destination: "10.0.2.0/24", NextHop: ecs1ID},
			{Type: "peering", Destination: "172.16.0.0/16", NextHop: "peer-1"},
		}
	})
	stop, err := SyncRouter(e.sim, path)
	if err != nil {
		t.Fatalf("SyncRouter: %v", err)
	}
	defer stop()
	if got, want := kernelRoutes(t, h), []string{"10.0.2.0/24 via 192.168.0.2 proto 0xbb", foreignRoute}; !slices.Equal(got, want) {
		t.Fatalf("at start:\n got %q\nwant %q", got, want)
	}

	c := e.sdk(t)
	table := e.sim.DefaultRouteTableID()
	if _, err := update(c, table, []model.AddRouteTableRoute{add("ecs", "10.0.3.0/24", ecs2ID, "")},
		[]model.ModRouteTableRoute{{Type: "ecs", Destination: "10.0.2.0/24", Nexthop: ecs2ID}}, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.2.0/24 via 192.168.0.3 proto 0xbb", "10.0.3.0/24 via 192.168.0.3 proto 0xbb", foreignRoute}
	if got := kernelRoutes(t, h); !slices.Equal(got, want) {
		t.Fatalf("after add+mod:\n got %q\nwant %q", got, want)
	}

	// A custom table's ecs routes are installed too.
	custom := e.sim.AddRouteTable("rtb-2")
	if _, err := update(c, custom, []model.AddRouteTableRoute{add("ecs", "10.0.4.0/24", ecs1ID, "")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := update(c, table, nil, nil, []model.DelRouteTableRoute{{Destination: "10.0.3.0/24"}}); err != nil {
		t.Fatal(err)
	}
	want = []string{"10.0.2.0/24 via 192.168.0.3 proto 0xbb", "10.0.4.0/24 via 192.168.0.2 proto 0xbb", foreignRoute}
	if got := kernelRoutes(t, h); !slices.Equal(got, want) {
		t.Fatalf("after del and custom table:\n got %q\nwant %q", got, want)
	}

	stop()
	if got := kernelRoutes(t, h); !slices.Equal(got, []string{foreignRoute}) {
		t.Fatalf("after stop: %q", got)
	}
	// No resync after stop.
	if _, err := update(c, table, []model.AddRouteTableRoute{add("ecs", "10.0.5.0/24", ecs1ID, "")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := kernelRoutes(t, h); !slices.Equal(got, []string{foreignRoute}) {
		t.Fatalf("resynced after stop: %q", got)
	}
}

func TestSyncRouterUnreachableNextHop(t *testing.T) {
	path, _ := throwawayNetns(t) // no link: 192.168.0.2 is unreachable
	e := newEnv(t, func(c *Config) {
		c.Routes = []Route{{Type: "ecs", Destination: "10.0.2.0/24", NextHop: ecs1ID}}
	})
	if stop, err := SyncRouter(e.sim, path); err == nil {
		stop()
		t.Fatal("SyncRouter succeeded though the next hop is unreachable in the namespace")
	}
}

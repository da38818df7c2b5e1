//go:build linux

package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vpcroute/vpcroute/internal/netnstest"
)

// dialIn dials from inside ns.
func dialIn(ns netns.NsHandle) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = netnstest.Do(ns, func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

func TestRunInNetns(t *testing.T) {
	ns := netnstest.New(t)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, _ := h.LinkByName("lo")
	la := netlink.NewLinkAttrs()
	la.Name = "vpc0"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "vpc0p"}); err != nil {
		t.Fatal(err)
	}
	vpc0, _ := h.LinkByName("vpc0")
	peer, _ := h.LinkByName("vpc0p")
	addr, _ := netlink.ParseAddr("192.168.0.1/24")
	for _, err := range []error{h.AddrAdd(vpc0, addr), h.LinkSetUp(lo), h.LinkSetUp(vpc0), h.LinkSetUp(peer)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	path := netnstest.Path(ns)

	url, stop := start(t, "--listen", "127.0.0.1:0", "--listen-netns", path, "--router-netns", path, "--config", writeConfig(t, testConfig))
	ownRoutes := func() []string {
		rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: 0xbb, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.Dst.String()+" via "+r.Gw.String())
		}
		return out
	}
	if got := ownRoutes(); len(got) != 1 || got[0] != "10.0.2.0/24 via 192.168.0.2" {
		t.Fatalf("router routes %q", got)
	}

	// The listener lives in the namespace: reachable from inside, not from here.
	c := &http.Client{Transport: &http.Transport{DialContext: dialIn(ns)}}
	resp, err := c.Get(url + "/ecs/ecs2/openstack/latest/meta_data.json")
	if err != nil {
		t.Fatalf("from inside the namespace: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"name":"ecs2"`) {
		t.Fatalf("metadata %s", b)
	}
	if r, err := http.Get(url + "/_sim/routetables"); err == nil {
		r.Body.Close()
		t.Fatalf("listener in netns %s also reachable from the test's namespace", path)
	}

	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if got := ownRoutes(); len(got) != 0 {
		t.Fatalf("routes left after shutdown: %q", got)
	}
}

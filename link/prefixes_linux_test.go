//go:build linux

package link

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vpcroute/vpcroute/internal/netnstest"
	"github.com/vpcroute/vpcroute/sysctl"
)

func TestUplinkAndHostPrefixes(t *testing.T) {
	tests := []struct {
		name          string
		setup         func(t *testing.T)
		wantMTU       int
		wantName      string // Uplink
		wantUplink    []string
		wantHost      []string // must be included
		wantNotInHost []string
	}{
		{
			name:          "no default route",
			wantMTU:       1500,
			wantHost:      []string{"127.0.0.0/8"},
			wantNotInHost: []string{"0.0.0.0/0"},
		},
		{
			name: "uplink, extra table, second address",
			setup: func(t *testing.T) {
				addOther(t, "eth0", "")
				mustDo(t, netlink.LinkSetMTU(netnstest.Link(t, "eth0"), 1450))
				netnstest.AddAddr(t, "eth0", "192.168.0.2/24")
				netnstest.AddAddr(t, "eth0", "172.31.5.9/20")
				mustDo(t, netnstest.LinkUp("eth0"))
				mustDo(t, netnstest.LinkUp("eth0-p"))
				eth0 := netnstest.Link(t, "eth0").Attrs().Index
				mustDo(t, netlink.RouteAdd(&netlink.Route{Gw: net.ParseIP("192.168.0.1"), LinkIndex: eth0}))
				_, peering, _ := net.ParseCIDR("10.9.0.0/16")
				mustDo(t, netlink.RouteAdd(&netlink.Route{Dst: peering, Gw: net.ParseIP("192.168.0.1"), LinkIndex: eth0, Table: 100}))
				mustDo(t, host.EnsureBridge(BridgeSpec{Name: "vr-a", NetworkID: "neta", Gateway: netip.MustParsePrefix("10.0.2.1/24")}))
			},
			wantMTU:       1450,
			wantName:      "eth0",
			wantUplink:    []string{"172.31.0.0/20", "192.168.0.0/24"},
			wantHost:      []string{"10.9.0.0/16", "10.0.2.0/24", "192.168.0.0/24", "172.31.0.0/20", "127.0.0.0/8", "192.168.0.2/32"},
			wantNotInHost: []string{"0.0.0.0/0"},
		},
		{
			// A host whose NIC sits in a bridge: the rules must not take that
			// bridge for an uplink (firewall.NetworkRules.Uplink).
			name: "default route through a bridge",
			setup: func(t *testing.T) {
				mustDo(t, host.EnsureBridge(BridgeSpec{Name: "br0", NetworkID: "lan", Gateway: netip.MustParsePrefix("192.168.0.2/24")}))
				mustDo(t, netlink.RouteAdd(&netlink.Route{Gw: net.ParseIP("192.168.0.1"), LinkIndex: netnstest.Link(t, "br0").Attrs().Index}))
			},
			wantMTU:       1500,
			wantName:      "",
			wantUplink:    []string{"192.168.0.0/24"},
			wantHost:      []string{"192.168.0.0/24"},
			wantNotInHost: []string{"0.0.0.0/0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			netnstest.Enter(t)
			if tc.setup != nil {
				tc.setup(t)
			}
			if got := host.UplinkMTU(); got != tc.wantMTU {
				t.Errorf("UplinkMTU = %d, want %d", got, tc.wantMTU)
			}
			if got := host.Uplink(); got != tc.wantName {
				t.Errorf("Uplink = %q, want %q", got, tc.wantName)
			}
			up, err := host.UplinkPrefixes()
			mustDo(t, err)
			if got := strs(up); !slices.Equal(got, tc.wantUplink) {
				t.Errorf("UplinkPrefixes = %v, want %v", got, tc.wantUplink)
			}
			host, err := host.Prefixes()
			mustDo(t, err)
			got := strs(host)
			for _, w := range tc.wantHost {
				if !slices.Contains(got, w) {
					t.Errorf("HostPrefixes = %v, missing %s", got, w)
				}
			}
			for _, w := range tc.wantNotInHost {
				if slices.Contains(got, w) {
					t.Errorf("HostPrefixes = %v, must not contain %s", got, w)
				}
			}
		})
	}
}

func strs(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func TestEnsureForwarding(t *testing.T) {
	netnstest.Enter(t)
	mustDo(t, sysctl.Set("net/ipv4/ip_forward", "0"))
	for range 2 { // idempotent
		mustDo(t, host.EnsureForwarding())
		if got, err := sysctl.Get("net/ipv4/ip_forward"); err != nil || got != "1" {
			t.Fatalf("ip_forward = %s after EnsureForwarding", got)
		}
	}
}

//go:build linux

package link

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vpcroute/vpcroute/internal/netnstest"
)

// driftSpecs are two bridges as EnsureBridge makes them.
var driftSpecs = []BridgeSpec{
	{Name: "vr-a", NetworkID: "net-a", Gateway: netip.MustParsePrefix("10.0.2.1/24"), MTU: 1400},
	{Name: "vr-b", NetworkID: "net-b", Gateway: netip.MustParsePrefix("10.0.3.1/24")},
}

// bridgeDrifts are the ways a bridge can drift from what EnsureBridge made (driftSpecs).
var bridgeDrifts = []struct {
	name  string
	drift func(t *testing.T)
	want  []string
}{
	{"in line", func(t *testing.T) {}, nil},
	{"deleted", func(t *testing.T) { mustDo(t, netlink.LinkDel(netnstest.Link(t, "vr-a"))) }, []string{"vr-a"}},
	{"set down", func(t *testing.T) { mustDo(t, netlink.LinkSetDown(netnstest.Link(t, "vr-b"))) }, []string{"vr-b"}},
	{"MTU changed", func(t *testing.T) { mustDo(t, netlink.LinkSetMTU(netnstest.Link(t, "vr-a"), 1300)) }, []string{"vr-a"}},
	{"gateway removed", func(t *testing.T) {
		l := netnstest.Link(t, "vr-b")
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
		mustDo(t, netlink.AddrDel(l, &addrs[0]))
	}, []string{"vr-b"}},
	{"a second address", func(t *testing.T) {
		mustDo(t, netlink.AddrAdd(netnstest.Link(t, "vr-a"), &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("10.9.9.1"), Mask: net.CIDRMask(24, 32)}}))
	}, []string{"vr-a"}},
	{"mark changed", func(t *testing.T) { mustDo(t, netlink.LinkSetAlias(netnstest.Link(t, "vr-b"), "someone")) }, []string{"vr-b"}},
}

// BridgesOutOfLine sees every way a bridge can drift from what EnsureBridge made, and
// nothing when none did.
func TestBridgesOutOfLine(t *testing.T) {
	tests := bridgeDrifts
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			netnstest.Enter(t)
			for _, s := range driftSpecs {
				mustDo(t, host.EnsureBridge(s))
			}
			tc.drift(t)
			got, err := host.BridgesOutOfLine(driftSpecs)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("BridgesOutOfLine = %v, %v; want %v", got, err, tc.want)
			}
			if tc.want == nil || tc.name == "mark changed" {
				return
			}
			for _, s := range driftSpecs {
				mustDo(t, host.EnsureBridge(s))
			}
			if got, _ := host.BridgesOutOfLine(driftSpecs); len(got) != 0 {
				t.Fatalf("after EnsureBridge: %v still out of line", got)
			}
		})
	}
}

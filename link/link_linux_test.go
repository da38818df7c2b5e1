//go:build linux

package link

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vpcroute/vpcroute/internal/netnstest"
)

func addrsOf(t *testing.T, name string) []string {
	t.Helper()
	addrs, err := netlink.AddrList(netnstest.Link(t, name), netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.IPNet.String())
	}
	return out
}

// addOther adds a link that is not a bridge (a veth: this kernel may lack
// the dummy driver), marked with alias unless it is empty.
func addOther(t *testing.T, name, alias string) netlink.Link {
	t.Helper()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: name + "-p"}); err != nil {
		t.Fatalf("add veth %s: %v", name, err)
	}
	return setAlias(t, name, alias)
}

// setAlias marks a link; the kernel ignores an alias in the creating message.
func setAlias(t *testing.T, name, alias string) netlink.Link {
	t.Helper()
	if alias != "" {
		if err := netlink.LinkSetAlias(netnstest.Link(t, name), alias); err != nil {
			t.Fatal(err)
		}
	}
	return netnstest.Link(t, name)
}

func addBridge(t *testing.T, name, alias string, mtu int, addr string) netlink.Link {
	t.Helper()
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.Alias, attrs.MTU = name, alias, mtu
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		t.Fatalf("add bridge %s: %v", name, err)
	}
	l := setAlias(t, name, alias)
	if addr != "" {
		a, err := netlink.ParseAddr(addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func TestEnsureBridge(t *testing.T) {
	spec := BridgeSpec{Name: "vr-test", NetworkID: "net1", Gateway: netip.MustParsePrefix("10.0.2.1/24"), MTU: 1450}
	tests := []struct {
		name    string
		before  func(t *testing.T) // what is on the host before EnsureBridge
		wantErr error              // nil: expect a correct bridge afterwards
		after   func(t *testing.T) // extra checks
	}{
		{name: "create"},
		{name: "idempotent", before: func(t *testing.T) {
			if err := host.EnsureBridge(spec); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "repair down, wrong MTU, stale address", before: func(t *testing.T) {
			addBridge(t, spec.Name, "vpcroute:net1", 1500, "10.9.9.1/24")
		}},
		{name: "repair marked link of wrong type", before: func(t *testing.T) {
			addOther(t, spec.Name, "vpcroute:net1")
		}},
		{name: "refuse unmarked bridge", before: func(t *testing.T) {
			addBridge(t, spec.Name, "", 1500, "")
		}, wantErr: ErrNotOwned, after: func(t *testing.T) {
			if got := addrsOf(t, spec.Name); len(got) != 0 {
				t.Errorf("foreign bridge got addresses %v", got)
			}
		}},
		{name: "refuse other network's bridge", before: func(t *testing.T) {
			addBridge(t, spec.Name, "vpcroute:net2", 1500, "")
		}, wantErr: ErrNotOwned},
		{name: "refuse foreign link of other type", before: func(t *testing.T) {
			addOther(t, spec.Name, "")
		}, wantErr: ErrNotOwned, after: func(t *testing.T) {
			if _, ok := netnstest.Link(t, spec.Name).(*netlink.Veth); !ok {
				t.Error("foreign veth was replaced")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			netnstest.Enter(t)
			if tc.before != nil {
				tc.before(t)
			}
			before, _ := netlink.LinkByName(spec.Name)
			err := host.EnsureBridge(spec)
			if tc.after != nil {
				defer tc.after(t)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("EnsureBridge = %v, want %v", err, tc.wantErr)
				}
				if after := netnstest.Link(t, spec.Name); after.Attrs().Index != before.Attrs().Index {
					t.Error("refused link was replaced")
				}
				return
			}
			if err != nil {
				t.Fatalf("EnsureBridge: %v", err)
			}
			checkBridge(t, spec)
		})
	}
}

func checkBridge(t *testing.T, s BridgeSpec) {
	t.Helper()
	l := netnstest.Link(t, s.Name)
	if _, ok := l.(*netlink.Bridge); !ok {
		t.Fatalf("%s is a %s, want bridge", s.Name, l.Type())
	}
	a := l.Attrs()
	if a.Alias != "vpcroute:"+s.NetworkID {
		t.Errorf("alias = %q", a.Alias)
	}
	if a.MTU != s.MTU {
		t.Errorf("MTU = %d, want %d", a.MTU, s.MTU)
	}
	if a.Flags&net.FlagUp == 0 {
		t.Error("bridge is down")
	}
	if got := addrsOf(t, s.Name); len(got) != 1 || got[0] != s.Gateway.String() {
		t.Errorf("addresses = %v, want only %v", got, s.Gateway)
	}
}

func TestBridgeMACDoesNotFollowPorts(t *testing.T) {
	netnstest.Enter(t)
	spec := BridgeSpec{Name: "vr-mac", NetworkID: "net1", Gateway: netip.MustParsePrefix("10.0.2.1/24")}
	if err := host.EnsureBridge(spec); err != nil {
		t.Fatal(err)
	}
	mac := netnstest.Link(t, spec.Name).Attrs().HardwareAddr.String()
	if err := host.EnsureVeth("vr-h1", "vr-p1", spec.Name, 1500); err != nil {
		t.Fatal(err)
	}
	low, _ := net.ParseMAC("02:00:00:00:00:01")
	if err := netlink.LinkSetHardwareAddr(netnstest.Link(t, "vr-h1"), low); err != nil {
		t.Fatal(err)
	}
	if got := netnstest.Link(t, spec.Name).Attrs().HardwareAddr.String(); got != mac {
		t.Errorf("bridge MAC changed from %s to %s when a port with a lower MAC joined", mac, got)
	}
}

func TestDeleteBridge(t *testing.T) {
	tests := []struct {
		name     string
		alias    string // "" = unmarked; "-" = no link at all
		wantErr  error
		wantGone bool
	}{
		{name: "owned", alias: "vpcroute:net1", wantGone: true},
		{name: "already gone", alias: "-", wantGone: true},
		{name: "unmarked", alias: "", wantErr: ErrNotOwned},
		{name: "other network", alias: "vpcroute:net2", wantErr: ErrNotOwned},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			netnstest.Enter(t)
			if tc.alias != "-" {
				addBridge(t, "vr-del", tc.alias, 1500, "")
			}
			err := host.DeleteBridge("vr-del", "net1")
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("DeleteBridge = %v, want %v", err, tc.wantErr)
			}
			_, lerr := netlink.LinkByName("vr-del")
			if gone := lerr != nil; gone != tc.wantGone {
				t.Errorf("bridge gone = %v, want %v", gone, tc.wantGone)
			}
		})
	}
}

func TestOwnedBridges(t *testing.T) {
	netnstest.Enter(t)
	for _, s := range []BridgeSpec{
		{Name: "vr-a", NetworkID: "neta", Gateway: netip.MustParsePrefix("10.0.2.1/24")},
		{Name: "vr-b", NetworkID: "netb", Gateway: netip.MustParsePrefix("10.0.3.1/24")},
	} {
		if err := host.EnsureBridge(s); err != nil {
			t.Fatal(err)
		}
	}
	addBridge(t, "foreign", "", 1500, "")
	addOther(t, "vr-other", "vpcroute:netc") // marked but not a bridge
	if err := host.EnsureVeth("vr-h", "vr-p", "vr-a", 1500); err != nil {
		t.Fatal(err)
	}
	got, err := host.Bridges()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"vr-a": "neta", "vr-b": "netb"}
	if len(got) != len(want) || got["vr-a"] != "neta" || got["vr-b"] != "netb" {
		t.Errorf("OwnedBridges = %v, want %v", got, want)
	}
}

func TestEnsureVeth(t *testing.T) {
	const br = "vr-br"
	tests := []struct {
		name    string
		before  func(t *testing.T)
		wantErr error
	}{
		{name: "create"},
		{name: "idempotent", before: func(t *testing.T) {
			if err := host.EnsureVeth("vr-h", "vr-p", br, 1400); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "repair hairpin off, detached and down", before: func(t *testing.T) {
			if err := host.EnsureVeth("vr-h", "vr-p", br, 1400); err != nil {
				t.Fatal(err)
			}
			h := netnstest.Link(t, "vr-h")
			for _, err := range []error{netlink.LinkSetHairpin(h, false), netlink.LinkSetNoMaster(h), netlink.LinkSetDown(h)} {
				if err != nil {
					t.Fatal(err)
				}
			}
		}},
		{name: "refuse foreign link", before: func(t *testing.T) { addOther(t, "vr-h", "") }, wantErr: ErrNotOwned},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			netnstest.Enter(t)
			if err := host.EnsureBridge(BridgeSpec{Name: br, NetworkID: "net1", Gateway: netip.MustParsePrefix("10.0.2.1/24"), MTU: 1400}); err != nil {
				t.Fatal(err)
			}
			if tc.before != nil {
				tc.before(t)
			}
			err := host.EnsureVeth("vr-h", "vr-p", br, 1400)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("EnsureVeth = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("EnsureVeth: %v", err)
			}
			h := netnstest.Link(t, "vr-h")
			if _, ok := h.(*netlink.Veth); !ok {
				t.Fatalf("vr-h is %s", h.Type())
			}
			a := h.Attrs()
			if a.Alias != "vpcroute:veth" || a.MasterIndex != netnstest.Link(t, br).Attrs().Index || a.Flags&net.FlagUp == 0 || a.MTU != 1400 {
				t.Errorf("host end: alias %q master %d up %v MTU %d", a.Alias, a.MasterIndex, a.Flags&net.FlagUp != 0, a.MTU)
			}
			if pi, err := netlink.LinkGetProtinfo(h); err != nil || !pi.Hairpin {
				t.Errorf("host end hairpin = %v (%v), want on", pi.Hairpin, err)
			}
			p := netnstest.Link(t, "vr-p") // the peer stays here for Docker to move
			if p.Attrs().MTU != 1400 {
				t.Errorf("peer MTU = %d", p.Attrs().MTU)
			}
		})
	}
}

func TestDeleteVeth(t *testing.T) {
	netnstest.Enter(t)
	if err := host.EnsureBridge(BridgeSpec{Name: "vr-br", NetworkID: "net1", Gateway: netip.MustParsePrefix("10.0.2.1/24")}); err != nil {
		t.Fatal(err)
	}
	if err := host.EnsureVeth("vr-h", "vr-p", "vr-br", 0); err != nil {
		t.Fatal(err)
	}
	if err := host.DeleteVeth("vr-h"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"vr-h", "vr-p"} {
		if _, err := netlink.LinkByName(n); err == nil {
			t.Errorf("%s still exists", n)
		}
	}
	if err := host.DeleteVeth("vr-h"); err != nil {
		t.Errorf("DeleteVeth of a gone veth = %v", err)
	}
	addOther(t, "foreign", "")
	if err := host.DeleteVeth("foreign"); !errors.Is(err, ErrNotOwned) {
		t.Errorf("host.DeleteVeth(foreign) = %v, want ErrNotOwned", err)
	}
	if err := host.DeleteBridge("vr-br", "net1"); err != nil {
		t.Fatal(err)
	}
}

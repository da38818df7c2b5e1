package alloc

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func TestFirstFree(t *testing.T) {
	tests := []struct {
		name  string
		pool  string
		bits  int
		taken []netip.Prefix
		want  string // "" = exhausted
	}{
		{"empty pool gives first", "10.0.0.0/8", 24, nil, "10.0.0.0/24"},
		{"skips taken", "10.0.0.0/8", 24, pfx("10.0.0.0/24", "10.0.1.0/24"), "10.0.2.0/24"},
		{"skips larger taken range", "10.0.0.0/8", 24, pfx("10.0.0.0/16"), "10.1.0.0/24"},
		{"smaller taken blocks whole candidate", "10.0.0.0/8", 24, pfx("10.0.0.128/25"), "10.0.1.0/24"},
		{"host route inside", "10.0.0.0/8", 24, pfx("10.0.0.5/32"), "10.0.1.0/24"},
		{"gap between taken", "10.0.0.0/8", 24, pfx("10.0.0.0/24", "10.0.2.0/24"), "10.0.1.0/24"},
		{"taken outside pool ignored", "10.0.0.0/8", 24, pfx("192.168.0.0/16"), "10.0.0.0/24"},
		{"unsorted taken", "10.0.0.0/8", 24, pfx("10.0.1.0/24", "10.0.0.0/24"), "10.0.2.0/24"},
		{"covering taken exhausts", "10.0.0.0/16", 24, pfx("10.0.0.0/8"), ""},
		{"pool full", "10.0.0.0/23", 24, pfx("10.0.0.0/24", "10.0.1.0/24"), ""},
		{"last subnet of pool", "10.0.0.0/23", 24, pfx("10.0.0.0/24"), "10.0.1.0/24"},
		{"the guide's ECS2 after ECS1", "10.0.2.0/23", 24, pfx("10.0.2.0/24"), "10.0.3.0/24"},
		{"size 28", "172.16.0.0/12", 28, pfx("172.16.0.0/28", "172.16.0.16/28"), "172.16.0.32/28"},
		{"top of address space", "255.255.255.0/24", 25, pfx("255.255.255.0/25"), "255.255.255.128/25"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FirstFree(netip.MustParsePrefix(tt.pool), tt.bits, tt.taken)
			if tt.want == "" {
				if !errors.Is(err, ErrPoolExhausted) {
					t.Fatalf("FirstFree = %v, %v; want ErrPoolExhausted", got, err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("FirstFree = %v, %v; want %s", got, err, tt.want)
			}
			if _, bad := Overlapping(got, tt.taken); bad {
				t.Fatalf("FirstFree returned %v which overlaps taken", got)
			}
		})
	}
}

// A pool with many taken ranges: every result is free and distinct.
func TestFirstFreeManyNeverOverlap(t *testing.T) {
	pool := netip.MustParsePrefix("10.0.0.0/8")
	taken := pfx("10.0.3.0/24", "10.0.0.0/23", "10.0.7.64/26", "10.0.9.0/30")
	seen := map[netip.Prefix]bool{}
	for i := 0; i < 300; i++ {
		p, err := FirstFree(pool, 24, taken)
		if err != nil {
			t.Fatal(err)
		}
		if o, bad := Overlapping(p, taken); bad || seen[p] {
			t.Fatalf("step %d: %v overlaps %v (seen=%v)", i, p, o, seen[p])
		}
		seen[p] = true
		taken = append(taken, p)
	}
}

func BenchmarkFirstFreeCrowded(b *testing.B) {
	pool := netip.MustParsePrefix("10.0.0.0/8")
	var taken []netip.Prefix
	for i := 0; i < 2000; i++ {
		taken = append(taken, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := FirstFree(pool, 24, taken); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAddrPool(t *testing.T) {
	a := netip.MustParseAddr
	base := AddrPool{Subnet: netip.MustParsePrefix("10.0.2.0/29"), Gateway: a("10.0.2.1")}
	none := func(netip.Addr) bool { return false }
	usedSet := func(s ...string) func(netip.Addr) bool {
		m := map[netip.Addr]bool{}
		for _, x := range s {
			m[a(x)] = true
		}
		return func(x netip.Addr) bool { return m[x] }
	}
	tests := []struct {
		name string
		pool AddrPool
		last string
		used func(netip.Addr) bool
		want string // "" = exhausted
	}{
		{"first after gateway", base, "", none, "10.0.2.2"},
		{"after last", base, "10.0.2.3", none, "10.0.2.4"},
		{"wraps, skips network and gateway", base, "10.0.2.6", none, "10.0.2.2"},
		{"skips used", base, "", usedSet("10.0.2.2", "10.0.2.3"), "10.0.2.4"},
		{"ip-range", AddrPool{Subnet: netip.MustParsePrefix("10.0.2.0/24"), Range: netip.MustParsePrefix("10.0.2.128/25"), Gateway: a("10.0.2.1")}, "", none, "10.0.2.128"},
		{"ip-range skips broadcast", AddrPool{Subnet: netip.MustParsePrefix("10.0.2.0/24"), Range: netip.MustParsePrefix("10.0.2.254/31"), Gateway: a("10.0.2.1")}, "10.0.2.254", usedSet("10.0.2.254"), ""},
		{"full", base, "", usedSet("10.0.2.2", "10.0.2.3", "10.0.2.4", "10.0.2.5", "10.0.2.6"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var last netip.Addr
			if tt.last != "" {
				last = a(tt.last)
			}
			got, err := tt.pool.Next(last, tt.used)
			if tt.want == "" {
				if !errors.Is(err, ErrAddressesExhausted) {
					t.Fatalf("Next = %v, %v; want exhausted", got, err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("Next = %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestAddrPoolCheck(t *testing.T) {
	a := netip.MustParseAddr
	p := AddrPool{Subnet: netip.MustParsePrefix("10.0.2.0/24"), Gateway: a("10.0.2.1")}
	used := func(x netip.Addr) bool { return x == a("10.0.2.7") }
	tests := []struct {
		addr, wantErr string
	}{
		{"10.0.2.50", ""},
		{"10.0.3.5", "outside"},
		{"10.0.2.0", "network address"},
		{"10.0.2.255", "broadcast"},
		{"10.0.2.1", "gateway"},
		{"10.0.2.7", "already in use"},
	}
	for _, tt := range tests {
		err := p.Check(a(tt.addr), used)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("Check(%s) = %v; want error containing %q", tt.addr, err, tt.wantErr)
		}
	}
}

func TestDefaultGateway(t *testing.T) {
	if g := DefaultGateway(netip.MustParsePrefix("10.0.2.0/24")); g.String() != "10.0.2.1" {
		t.Fatalf("DefaultGateway = %v", g)
	}
}

func TestCheckSubnet(t *testing.T) {
	for _, tt := range []struct {
		subnet, want string // want "" = valid
	}{
		{"10.0.2.0/24", ""},
		{"172.31.0.0/16", ""},
		{"224.0.0.0/24", "not a unicast range"},
		{"255.255.255.248/29", "not a unicast range"},
		{"240.1.0.0/24", "not a unicast range"},
		{"127.1.0.0/24", "not a unicast range"},
		{"0.0.1.0/24", "not a unicast range"},
		{"10.0.2.7/24", "use --subnet 10.0.2.0/24"},
		{"10.0.0.0/8", "/16 to /29"},
	} {
		err := CheckSubnet(netip.MustParsePrefix(tt.subnet))
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckSubnet(%s) = %v; want %q", tt.subnet, err, tt.want)
		}
	}
}

func TestCheckGateway(t *testing.T) {
	s := netip.MustParsePrefix("10.0.58.0/24")
	for _, tt := range []struct {
		gw, want string
	}{
		{"10.0.58.1/24", ""},
		{"10.0.58.254/24", ""},
		{"10.0.58.1/8", "/8 length"},
		{"192.168.0.2/24", "outside the subnet"},
		{"10.0.58.0/24", "network or broadcast"},
		{"10.0.58.255/24", "network or broadcast"},
	} {
		err := CheckGateway(s, netip.MustParsePrefix(tt.gw))
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckGateway(%s) = %v; want %q", tt.gw, err, tt.want)
		}
	}
}

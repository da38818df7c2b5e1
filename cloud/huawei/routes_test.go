package huawei

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDescribeParse(t *testing.T) {
	tests := []struct {
		owner, net, host string
		want             string
		wantHost         string
	}{
		{"pool1", "", "ecs1", "vpcroute owner=pool1 host=ecs1", "ecs1"},
		{"pool1", "my-net", "ecs1", "vpcroute owner=pool1 net=my-net host=ecs1", "ecs1"},
		{"pool1", "", "web <prod>", "vpcroute owner=pool1 host=web prod", "web prod"},
		{"pool1", "", "a\nb", "vpcroute owner=pool1 host=a b", "a b"},
		{"pool1", "", "", "vpcroute owner=pool1 host=", ""},
	}
	for _, tt := range tests {
		d := describe(tt.owner, tt.net, tt.host)
		if d != tt.want {
			t.Errorf("describe(%q, %q, %q) = %q, want %q", tt.owner, tt.net, tt.host, d, tt.want)
		}
		p, ok := parseDescription(d)
		if !ok || p.Owner != tt.owner || p.Network != tt.net || p.Host != tt.wantHost {
			t.Errorf("parseDescription(%q) = %+v, %v", d, p, ok)
		}
	}
}

func TestDescribeLimits(t *testing.T) {
	d := describe("pool1", "", strings.Repeat("é", 300))
	if len(d) > maxDescription || !utf8.ValidString(d) || strings.ContainsAny(d, "<>") {
		t.Errorf("describe with a long host name = %d bytes, valid UTF-8 %v", len(d), utf8.ValidString(d))
	}
	if p, ok := parseDescription(d); !ok || p.Owner != "pool1" {
		t.Errorf("truncated description lost the owner: %+v", p)
	}
}

func TestParseDescriptionForeign(t *testing.T) {
	for _, d := range []string{"", "peering to office", "vpcroute", "vpcroutes owner=x", "vpcroute host=h", "VPCROUTE owner=x"} {
		if p, ok := parseDescription(d); ok {
			t.Errorf("parseDescription(%q) = %+v, want not vpcroute's", d, p)
		}
	}
}

func TestOwnedBy(t *testing.T) {
	r := route{Type: "ecs", Destination: "10.0.2.0/24", NextHop: "i-1", Description: "vpcroute owner=p1 host=h"}
	tests := []struct {
		r               route
		instance, owner string
		want            bool
	}{
		{r, "i-1", "p1", true},
		{r, "i-2", "p1", false},
		{r, "i-1", "p2", false},
		{route{Type: "vip", Destination: r.Destination, NextHop: "i-1", Description: r.Description}, "i-1", "p1", false},
		{route{Type: "ecs", Destination: r.Destination, NextHop: "i-1", Description: "owner=p1"}, "i-1", "p1", false},
	}
	for _, tt := range tests {
		if got := tt.r.ownedBy(tt.instance, tt.owner); got != tt.want {
			t.Errorf("%+v.ownedBy(%s, %s) = %v, want %v", tt.r, tt.instance, tt.owner, got, tt.want)
		}
	}
}

func TestValidOwner(t *testing.T) {
	for _, o := range []string{"", "a b", "a<b", strings.Repeat("x", 129)} {
		if validOwner(o) == nil {
			t.Errorf("validOwner(%q) accepted it", o)
		}
	}
	if err := validOwner("f3b9c1d2e4a5"); err != nil {
		t.Error(err)
	}
}

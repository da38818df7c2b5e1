package ipam

import (
	"strings"
	"testing"

	dipam "github.com/docker/go-plugins-helpers/ipam"

	"github.com/vpcroute/vpcroute/internal/testctl"
)

// What Docker may send that vpcroute refuses, and why; the controller's own checks
// (overlaps, the VPC) are tested in package controller.
func TestRequestPoolRefusals(t *testing.T) {
	tests := []struct {
		name    string
		req     dipam.RequestPoolRequest
		wantErr string
	}{
		{name: "garbage subnet", req: dipam.RequestPoolRequest{Pool: "ten"}, wantErr: "not an IPv4 CIDR"},
		{name: "ipv6 subnet", req: dipam.RequestPoolRequest{Pool: "fd00::/64"}, wantErr: "not an IPv4 CIDR"},
		{name: "not a network address", req: dipam.RequestPoolRequest{Pool: "10.0.3.7/24"}, wantErr: "use --subnet 10.0.3.0/24"},
		{name: "too big", req: dipam.RequestPoolRequest{Pool: "10.0.0.0/15"}, wantErr: "/16 to /29"},
		{name: "ip-range outside", req: dipam.RequestPoolRequest{Pool: "10.0.3.0/24", SubPool: "10.0.4.0/25"}, wantErr: "inside subnet"},
		{name: "ip-range without subnet", req: dipam.RequestPoolRequest{SubPool: "10.0.4.0/25"}, wantErr: "needs --subnet"},
		{name: "ipv6", req: dipam.RequestPoolRequest{V6: true}, wantErr: "IPv4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := testctl.New(t)
			res, err := New(e.C).RequestPool(&tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("RequestPool = %+v, %v; want error containing %q", res, err, tt.wantErr)
			}
			if pools, _ := e.DB.Pools(); len(pools) != 0 || e.VPC.Len() != 0 {
				t.Fatalf("a refused request left pools %v, routes %v", pools, e.VPC.Routes)
			}
		})
	}
}

func TestPoolAndAddresses(t *testing.T) {
	e := testctl.New(t)
	d := New(e.C)
	res, err := d.RequestPool(&dipam.RequestPoolRequest{Pool: "10.0.2.0/24", SubPool: "10.0.2.128/25"})
	if err != nil || res.Pool != "10.0.2.0/24" || !strings.HasPrefix(res.PoolID, "vr-") || !strings.HasSuffix(res.PoolID, "/10.0.2.0/24") {
		t.Fatalf("RequestPool = %+v, %v; want 10.0.2.0/24 under an ID that names it", res, err)
	}
	gw, err := d.RequestAddress(&dipam.RequestAddressRequest{PoolID: res.PoolID, Address: "10.0.2.254",
		Options: map[string]string{"RequestAddressType": "com.docker.network.gateway"}})
	if err != nil || gw.Address != "10.0.2.254/24" {
		t.Fatalf("--gateway 10.0.2.254 = %+v, %v", gw, err)
	}
	a, err := d.RequestAddress(&dipam.RequestAddressRequest{PoolID: res.PoolID})
	if err != nil || a.Address != "10.0.2.128/24" {
		t.Fatalf("first address = %+v, %v; want the first of --ip-range", a, err)
	}
	if _, err := d.RequestAddress(&dipam.RequestAddressRequest{PoolID: res.PoolID, Address: "x"}); err == nil || !strings.Contains(err.Error(), "not an IPv4 address") {
		t.Fatalf("garbage address: %v", err)
	}
	if err := d.ReleaseAddress(&dipam.ReleaseAddressRequest{PoolID: res.PoolID, Address: "x"}); err == nil {
		t.Fatal("releasing garbage succeeded")
	}
	if err := d.ReleasePool(&dipam.ReleasePoolRequest{PoolID: res.PoolID}); err != nil || e.VPC.Len() != 0 {
		t.Fatalf("ReleasePool = %v; routes %v", err, e.VPC.Routes)
	}
}

func TestIPAMOptions(t *testing.T) {
	e := testctl.New(t)
	d := New(e.C)
	if _, err := d.RequestPool(&dipam.RequestPoolRequest{Options: map[string]string{"foo": "bar"}}); err == nil || !strings.Contains(err.Error(), `"foo" is not known`) {
		t.Fatalf("--ipam-opt foo=bar: %v", err)
	}
	if _, err := d.RequestPool(&dipam.RequestPoolRequest{Pool: "172.20.0.0/24"}); err == nil || !strings.Contains(err.Error(), "outside VPCROUTE_POOL") {
		t.Fatalf("--subnet outside the pool: %v", err)
	}
	res, err := d.RequestPool(&dipam.RequestPoolRequest{Pool: "172.20.0.0/24", Options: map[string]string{"vpcroute.outside-pool": "true"}})
	if err != nil || res.Pool != "172.20.0.0/24" {
		t.Fatalf("--subnet outside the pool with --ipam-opt vpcroute.outside-pool=true: %+v, %v", res, err)
	}
}

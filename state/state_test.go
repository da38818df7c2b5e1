package state

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestPoolsAndAddresses(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := Pool{ID: "p1", Subnet: netip.MustParsePrefix("10.0.2.0/24"), Gateway: netip.MustParseAddr("10.0.2.1")}
	if err := db.PutPool(p); err != nil {
		t.Fatal(err)
	}
	next := func(p *Pool, used func(netip.Addr) bool) (netip.Addr, error) {
		a := p.Gateway.Next()
		for used(a) {
			a = a.Next()
		}
		return a, nil
	}
	for _, want := range []string{"10.0.2.2", "10.0.2.3"} {
		got, err := db.Allocate("p1", next)
		if err != nil || got.String() != want {
			t.Fatalf("Allocate = %v, %v; want %s", got, err, want)
		}
	}
	if err := db.Free("p1", netip.MustParseAddr("10.0.2.2")); err != nil {
		t.Fatal(err)
	}
	if err := db.Free("p1", netip.MustParseAddr("10.0.2.2")); err != nil {
		t.Fatalf("second Free: %v", err)
	}
	// Survives a reopen, as after kill -9.
	db.Close()
	db, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	addrs, _ := db.Addresses("p1")
	if len(addrs) != 1 || addrs[0].String() != "10.0.2.3" {
		t.Fatalf("after reopen addresses = %v; want [10.0.2.3]", addrs)
	}
	got, _ := db.Pool("p1")
	if got.LastAddr.String() != "10.0.2.3" || got.Subnet != p.Subnet {
		t.Fatalf("after reopen pool = %+v", got)
	}
	if err := db.DeletePool("p1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool("p1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted pool: %v", err)
	}
	if addrs, _ := db.Addresses("p1"); len(addrs) != 0 {
		t.Fatalf("deleted pool kept addresses %v", addrs)
	}
}

func TestNetworksAndEndpoints(t *testing.T) {
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, id := range []string{"n1", "n2"} {
		if err := db.PutNetwork(Network{ID: id, Bridge: "vr-" + id}); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []Endpoint{{NetworkID: "n1", ID: "e1"}, {NetworkID: "n1", ID: "e2"}, {NetworkID: "n2", ID: "e3", Ports: []Port{{Proto: "tcp", HostPort: 8080, ContainerPort: 80}}}} {
		if err := db.PutEndpoint(e); err != nil {
			t.Fatal(err)
		}
	}
	if eps, _ := db.Endpoints("n1"); len(eps) != 2 {
		t.Fatalf("n1 endpoints = %v", eps)
	}
	if eps, _ := db.Endpoints(""); len(eps) != 3 {
		t.Fatalf("all endpoints = %v", eps)
	}
	e, err := db.Endpoint("n2", "e3")
	if err != nil || len(e.Ports) != 1 || e.Ports[0].HostPort != 8080 {
		t.Fatalf("endpoint e3 = %+v, %v", e, err)
	}
	if b, _ := db.PortBindings("tcp", 8080); len(b) != 1 || b[0].Endpoint != "n2/e3" {
		t.Fatalf("bindings of 8080/tcp = %+v; want n2/e3's", b)
	}
	// Re-saving an endpoint without ports drops its index entries.
	e.Ports = nil
	if err := db.PutEndpoint(e); err != nil {
		t.Fatal(err)
	}
	if b, _ := db.PortBindings("tcp", 8080); len(b) != 0 {
		t.Fatalf("bindings after unpublishing = %+v", b)
	}
	e.Ports = []Port{{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, ContainerPort: 80}}
	_ = db.PutEndpoint(e)
	if b, _ := db.PortBindings("tcp", 8080); len(b) != 1 || b[0].HostIP.String() != "127.0.0.1" {
		t.Fatalf("bindings = %+v; want one on 127.0.0.1", b)
	}
	if err := db.DeleteNetwork("n2"); err != nil {
		t.Fatal(err)
	}
	if b, _ := db.PortBindings("tcp", 8080); len(b) != 0 {
		t.Fatalf("bindings after deleting the network = %+v", b)
	}
	_ = db.PutNetwork(Network{ID: "n2", Bridge: "vr-n2"})
	_ = db.PutEndpoint(Endpoint{NetworkID: "n2", ID: "e3"})
	if err := db.DeleteNetwork("n1"); err != nil {
		t.Fatal(err)
	}
	if eps, _ := db.Endpoints(""); len(eps) != 1 || eps[0].ID != "e3" {
		t.Fatalf("after deleting n1, endpoints = %v", eps)
	}
	if nets, _ := db.Networks(); len(nets) != 1 || nets[0].ID != "n2" {
		t.Fatalf("networks = %v", nets)
	}
	if err := db.DeleteEndpoint("n2", "missing"); err != nil {
		t.Fatalf("deleting a missing endpoint: %v", err)
	}
}

func TestOpenLockedStateSaysWhatToDo(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := Open(dir); err == nil {
		t.Fatal("second Open of a locked state file succeeded")
	} else if want := "another vpcroute is running"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

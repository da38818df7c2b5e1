package dockerapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// listJSON and inspectJSON are what Docker 20.10 answered for a vpcroute network
// created with `docker network create -d vpcroute:latest --ipam-driver vpcroute:latest
// -o com.docker.network.bridge.name=br-web web` and one container on it (trimmed of
// fields vpcroute does not read). The end-to-end tests read a live Engine.
const listJSON = `[{"Name":"web","Id":"5a1c6ab1f57d2a0c3f5e1c33c7f0d2e8a1b2c3d4e5f60718293a4b5c6d7e8f90","Created":"2026-11-30T10:00:00.123456789Z","Scope":"local","Driver":"vpcroute:latest","EnableIPv6":false,
"IPAM":{"Driver":"vpcroute:latest","Options":{},"Config":[{"Subnet":"10.0.2.0/24","Gateway":"10.0.2.1"}]},
"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},
"Options":{"com.docker.network.bridge.name":"br-web"},"Labels":{}},
{"Name":"bridge","Id":"f1e2d3c4b5a69788","Created":"2026-11-30T09:00:00Z","Scope":"local","Driver":"bridge",
"IPAM":{"Driver":"default","Options":null,"Config":[{"Subnet":"172.17.0.0/16","Gateway":"172.17.0.1"}]},
"Internal":false,"ConfigOnly":false,"Containers":{},"Options":{"com.docker.network.bridge.default_bridge":"true"},"Labels":{}}]`

const inspectJSON = `{"Name":"web","Id":"5a1c6ab1f57d2a0c3f5e1c33c7f0d2e8a1b2c3d4e5f60718293a4b5c6d7e8f90","Scope":"local","Driver":"vpcroute:latest",
"IPAM":{"Driver":"vpcroute:latest","Options":{},"Config":[{"Subnet":"10.0.2.0/24","IPRange":"10.0.2.128/25","Gateway":"10.0.2.1","AuxiliaryAddresses":{"nas":"10.0.2.5"}}]},
"Internal":true,"ConfigOnly":false,
"Containers":{"9b8c7d6e5f4a":{"Name":"web1","EndpointID":"e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f","MacAddress":"02:42:0a:00:02:80","IPv4Address":"10.0.2.128/24","IPv6Address":""}},
"Options":{"com.docker.network.bridge.name":"br-web"},"Labels":{}}`

// serve answers like an Engine on a unix socket and returns its address.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("cannot listen on a unix socket here: %v", err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock
}

func TestNetworks(t *testing.T) {
	var paths []string
	host := serve(t, func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.Method+" "+r.URL.Path)
		switch {
		case r.URL.Path == "/networks":
			_, _ = w.Write([]byte(listJSON))
		case strings.HasPrefix(r.URL.Path, "/networks/5a1c"):
			_, _ = w.Write([]byte(inspectJSON))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"network x not found"}`))
		}
	})
	c, err := New(host)
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.Networks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "web" || list[0].Driver != "vpcroute:latest" || list[0].IPAM.Driver != "vpcroute:latest" ||
		list[0].IPAM.Config[0].Subnet != "10.0.2.0/24" || list[0].Options["com.docker.network.bridge.name"] != "br-web" || list[0].Created.IsZero() {
		t.Fatalf("Networks = %+v", list)
	}
	n, err := c.Network(context.Background(), list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	ep := n.Containers["9b8c7d6e5f4a"]
	if !n.Internal || ep.EndpointID == "" || ep.IPv4Address != "10.0.2.128/24" || n.IPAM.Config[0].AuxAddress["nas"] != "10.0.2.5" || n.IPAM.Config[0].IPRange != "10.0.2.128/25" {
		t.Fatalf("Network = %+v", n)
	}
	if _, err := c.Network(context.Background(), "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inspect of a missing network = %v; want ErrNotFound", err)
	}
	// No API version in the path: every Engine serves its own.
	if paths[0] != "GET /networks" {
		t.Fatalf("first request %q", paths[0])
	}
}

func TestErrorsSayWhere(t *testing.T) {
	host := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"message":"daemon is shutting down"}`))
	})
	c, _ := New(host)
	_, err := c.Networks(context.Background())
	if err == nil || !strings.Contains(err.Error(), "daemon is shutting down") || !strings.Contains(err.Error(), host) {
		t.Fatalf("error = %v; want Docker's message and the address", err)
	}
	missing, _ := New("unix://" + filepath.Join(t.TempDir(), "none.sock"))
	if _, err := missing.Networks(context.Background()); err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("error without an Engine = %v; want the socket named", err)
	}
}

func TestNew(t *testing.T) {
	for _, good := range []string{DefaultHost, "/var/run/docker.sock", "tcp://127.0.0.1:2375"} {
		if _, err := New(good); err != nil {
			t.Errorf("New(%q) = %v", good, err)
		}
	}
	for _, bad := range []string{"docker.sock", "unix://relative.sock", "http://x"} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	dnet "github.com/docker/go-plugins-helpers/network"
)

type stubNet struct{ dnet.Driver }

func (stubNet) CreateNetwork(r *dnet.CreateNetworkRequest) error {
	if r.NetworkID == "bad" {
		return errors.New("subnet overlaps: choose another")
	}
	return nil
}

type stubIPAM struct{ dipam.Ipam }

func (stubIPAM) RequestPool(r *dipam.RequestPoolRequest) (*dipam.RequestPoolResponse, error) {
	return &dipam.RequestPoolResponse{PoolID: "vr-1", Pool: r.Pool}, nil
}

func client(sock string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
}

func post(t *testing.T, c *http.Client, path, body string) (int, string) {
	t.Helper()
	resp, err := c.Post("http://plugin"+path, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBothAPIsOnOneSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vpcroute.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	gate := NewGate()
	caps := Capabilities{Network: &dnet.CapabilitiesResponse{Scope: "local"}}
	srv := &http.Server{Handler: Handler(caps, gate, slog.New(slog.NewTextHandler(io.Discard, nil)))}
	go srv.Serve(l)
	defer srv.Close()
	c := client(sock)

	// Activate answers before start-up is done.
	code, body := post(t, c, "/Plugin.Activate", "")
	var m struct{ Implements []string }
	if code != 200 || json.Unmarshal([]byte(body), &m) != nil || strings.Join(m.Implements, ",") != "NetworkDriver,IpamDriver" {
		t.Fatalf("Activate = %d %s", code, body)
	}
	// Capabilities are answered at once: Docker asks right after Activate.
	if _, body := post(t, c, "/NetworkDriver.GetCapabilities", "{}"); !strings.Contains(body, `"Scope":"local"`) {
		t.Fatalf("GetCapabilities before ready = %s", body)
	}
	// Other API calls wait for ready.
	done := make(chan string, 1)
	go func() {
		_, body := post(t, c, "/IpamDriver.RequestPool", `{"Pool":"10.0.9.0/24"}`)
		done <- body
	}()
	select {
	case b := <-done:
		t.Fatalf("call answered before ready: %s", b)
	case <-time.After(100 * time.Millisecond):
	}
	gate.Open(Drivers{Network: stubNet{}, IPAM: stubIPAM{}})
	if b := <-done; !strings.Contains(b, `"Pool":"10.0.9.0/24"`) {
		t.Fatalf("RequestPool after ready = %s", b)
	}
	if code, body := post(t, c, "/IpamDriver.RequestPool", `{"Pool":"10.0.2.0/24"}`); code != 200 || !strings.Contains(body, `"PoolID":"vr-1"`) {
		t.Fatalf("RequestPool = %d %s", code, body)
	}
	if code, body := post(t, c, "/NetworkDriver.CreateNetwork", `{"NetworkID":"bad"}`); code != 500 || !strings.Contains(body, `"Err":"subnet overlaps: choose another"`) {
		t.Fatalf("failing CreateNetwork = %d %s", code, body)
	}
	if code, _ := post(t, c, "/IpamDriver.RequestPool", `{not json`); code != 400 {
		t.Fatalf("bad JSON = %d", code)
	}
	if code, body := post(t, c, "/IpamDriver.RequestPool", `{"Pool":"10.0.2.0/24"} trailing`); code != 400 || !strings.Contains(body, "after the JSON") {
		t.Fatalf("trailing data = %d %s", code, body)
	}
	// A second instance refuses to steal the socket.
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "another vpcroute") {
		t.Fatalf("second Listen = %v", err)
	}
}

// A plugin that cannot start (a bad setting) still answers: Docker enables it, and
// every call says what to fix.
func TestFailedGate(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vpcroute.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	gate := NewGate()
	caps := Capabilities{Network: &dnet.CapabilitiesResponse{Scope: "local"}, IPAM: &dipam.CapabilitiesResponse{}}
	srv := &http.Server{Handler: Handler(caps, gate, slog.New(slog.NewTextHandler(io.Discard, nil)))}
	go srv.Serve(l)
	defer srv.Close()
	gate.Fail(errors.New(`vpcroute is not ready: setting VPCROUTE_POOL="banana" is not valid: use an IPv4 CIDR such as 10.0.0.0/8`))
	c := client(sock)
	if code, _ := post(t, c, "/Plugin.Activate", ""); code != 200 {
		t.Fatalf("Activate = %d", code)
	}
	if code, _ := post(t, c, "/IpamDriver.GetCapabilities", "{}"); code != 200 {
		t.Fatalf("GetCapabilities = %d", code)
	}
	code, body := post(t, c, "/IpamDriver.RequestPool", "{}")
	if code == 200 || !strings.Contains(body, `VPCROUTE_POOL=\"banana\"`) {
		t.Fatalf("RequestPool on a failed start = %d %s; want the setting's message", code, body)
	}
	// A huge body is refused, not read into memory.
	big := `{"Pool":"` + strings.Repeat("x", 2<<20) + `"}`
	if code, body := post(t, c, "/IpamDriver.RequestPool", big); code != 400 || !strings.Contains(body, "larger than") {
		t.Fatalf("2 MB body = %d %s; want 400 saying it is too large", code, body)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vpcroute.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	// A killed process leaves the file but nobody listens.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l, err = Listen(sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l.Close()
}

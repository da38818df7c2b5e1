package cli

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/check"
	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/firewall"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cli -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (if intended, run go test ./cli -update):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb strings.Builder
	serve := Command{Name: "serve", Short: "serve", Run: func(*Env, []string) error { panic("serve must not run") }}
	code = Main(args, &Env{Stdout: &out, Stderr: &errb, Version: "test"}, append([]Command{serve}, Tools()...))
	return code, out.String(), errb.String()
}

// Help starts nothing: no socket, no file, for every command and every way to ask.
func TestHelpStartsNothing(t *testing.T) {
	pluginsDir = t.TempDir()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"help", "status"}, {"status", "--help"}, {"doctor", "-h"},
		{"gc", "--help"}, {"uninstall", "--help"}, {"serve", "--help"}, {"version", "--help"}} {
		code, out, _ := run(args...)
		if code != 0 || !strings.Contains(out, "Usage: vpcroute") {
			t.Errorf("%v: exit %d, output %q", args, code, out)
		}
	}
	if entries, _ := os.ReadDir(pluginsDir); len(entries) != 0 {
		t.Errorf("help created %v", entries)
	}
	if code, _, errOut := run("bogus"); code != 2 || !strings.Contains(errOut, `unknown command "bogus"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	if code, _, errOut := run("status", "--bogus"); code != 2 || !strings.Contains(errOut, "bogus") {
		t.Errorf("unknown flag: exit %d, %q", code, errOut)
	}
	if code, out, _ := run("version"); code != 0 || out != "vpcroute test\n" {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

func TestFindSocket(t *testing.T) {
	pluginsDir = t.TempDir()
	t.Setenv("VPCROUTE_SOCKET", "")
	if _, err := findSocket(""); err == nil || !strings.Contains(err.Error(), "no running vpcroute") {
		t.Fatalf("no plugin: %v", err)
	}
	managed := filepath.Join(pluginsDir, "0123abcd", "vpcroute.sock")
	_ = os.MkdirAll(filepath.Dir(managed), 0o755)
	_ = os.WriteFile(managed, nil, 0o600)
	if s, err := findSocket(""); err != nil || s != managed {
		t.Fatalf("managed plugin: %q, %v", s, err)
	}
	other := filepath.Join(pluginsDir, "4567ef01", "vpcroute.sock")
	_ = os.MkdirAll(filepath.Dir(other), 0o755)
	_ = os.WriteFile(other, nil, 0o600)
	if _, err := findSocket(""); err == nil || !strings.Contains(err.Error(), "--socket") {
		t.Fatalf("two plugins: %v", err)
	}
	hostService := filepath.Join(pluginsDir, "vpcroute.sock")
	_ = os.WriteFile(hostService, nil, 0o600)
	if s, _ := findSocket(""); s != hostService {
		t.Fatalf("host service first: %q", s)
	}
	if s, _ := findSocket("/x.sock"); s != "/x.sock" {
		t.Fatalf("--socket: %q", s)
	}
}

func TestPrintStatus(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	st := controller.Status{
		Version: "v1.2.0", Hostname: "ecs1",
		Networks: []controller.NetworkStatus{
			{ID: "5a1c6ab1f57d2a0c", Name: "web", Subnet: netip.MustParsePrefix("10.0.2.0/24"), Gateway: netip.MustParseAddr("10.0.2.1"),
				Bridge: "vr-5a1c6ab1f57d", State: "ready", BridgeUp: true, Route: controller.RouteStatus{State: controller.RouteOK},
				Containers: []controller.EndpointStatus{{ID: "e1", Address: netip.MustParseAddr("10.0.2.2"), Ports: []string{"0.0.0.0:8080->80/tcp"}}}},
			{ID: "9b8c7d6e5f4a3b2c", Subnet: netip.MustParsePrefix("10.0.3.0/24"), Gateway: netip.MustParseAddr("10.0.3.1"),
				Bridge: "vr-9b8c7d6e5f4a", State: "ready", Route: controller.RouteStatus{State: controller.RouteDrifted, Description: "edited"}},
		},
		Unowned: []cloud.TableRoute{{Destination: netip.MustParsePrefix("10.0.9.0/24"), Owner: "vr-0123456789ab", Description: "vpcroute owner=vr-0123456789ab host=ecs1"}},
		Cloud:   controller.CloudStatus{Mode: "huaweicloud", Ready: true, InstanceID: "i-1", RouteTable: "rtb-1", Used: 3, Quota: 200},
		Host:    controller.HostStatus{Iptables: "nft", IPForward: true, Forward: firewall.Forward{Policy: "DROP", Hook: 1, Rules: 9}, Bridges: 2, Docker: "ok"},
		Cycle:   controller.CycleReport{At: now.Add(-3 * time.Second), Done: []string{"claim web 10.0.2.0/24 (missing)"}},
	}
	var b strings.Builder
	printStatus(&b, st, now)
	golden(t, "status", b.String())
}

func TestPrintChecks(t *testing.T) {
	var b strings.Builder
	printChecks(&b, []check.Result{
		{Name: "credentials", Status: check.Pass, Detail: "accepted"},
		{Name: "permission vpc:quotas:list", Status: check.Fail, Detail: "HTTP 403", Fix: "grant vpc:quotas:list"},
		{Name: "security groups", Status: check.Warn, Detail: "no inbound rule for 10.0.0.0/8", Fix: "add one"},
		{Name: "metadata service", Status: check.Skip, Detail: "not used"},
	})
	golden(t, "doctor", b.String())
}

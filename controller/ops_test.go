package controller_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vpcroute/vpcroute/check"
	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/internal/fakecloud"
)

func results(t *testing.T, h *harness) map[string]check.Result {
	t.Helper()
	rs, err := h.c.Doctor(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]check.Result{}
	for _, r := range rs {
		out[r.Name] = r
	}
	return out
}

func TestStatusAndDoctor(t *testing.T) {
	h := newHarness(t)
	p, _ := h.network(netID, "web", "10.0.2.0/24")
	h.container(netID, controller.PoolRef(p), "ep1", controller.PortRequest{Proto: "tcp", ContainerPort: 80, HostPort: 8080})
	h.reconcile()
	st, err := h.c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Networks) != 1 {
		t.Fatalf("status networks = %+v", st.Networks)
	}
	n := st.Networks[0]
	if n.Name != "web" || n.Subnet.String() != "10.0.2.0/24" || !n.BridgeUp || n.Route.State != controller.RouteOK ||
		len(n.Containers) != 1 || n.Containers[0].Ports[0] != "0.0.0.0:8080->80/tcp" {
		t.Fatalf("status of web = %+v", n)
	}
	if got := results(t, h); got["network routes"].Status != check.Pass || got["routes of no network"].Status != check.Pass || got["bridges"].Status != check.Pass {
		t.Fatalf("doctor on a healthy host = %+v", got)
	}

	// Drift: the route went; a bridge went; someone else's route leads here.
	h.vpc.Delete("10.0.2.0/24")
	delete(h.host.Marked, "vr-0123456789ab")
	h.vpc.Add("10.0.9.0/24", fakecloud.Route{Instance: instance, Owner: "vr-gone"})
	h.vpc.Add("10.7.0.0/16", fakecloud.Route{Instance: instance}) // a person's own, in the pool
	st, _ = h.c.Status(context.Background())
	if st.Networks[0].Route.State != controller.RouteMissing || st.Networks[0].BridgeUp || len(st.Unowned) != 1 {
		t.Fatalf("status after drift = %+v, unowned %+v", st.Networks[0], st.Unowned)
	}
	got := results(t, h)
	for name, want := range map[string]string{"network routes": check.Warn, "routes of no network": check.Warn, "bridges": check.Warn, "other routes to this ECS": check.Warn} {
		if got[name].Status != want || got[name].Fix == "" {
			t.Errorf("doctor %s = %+v; want %s with a fix", name, got[name], want)
		}
	}
}

// gc lists what is stale, changes nothing without --apply, and with it removes the
// stale and puts drifted routes right, without waiting for the grace periods.
func TestGC(t *testing.T) {
	h := newHarness(t)
	p, _ := h.network(netID, "web", "10.0.2.0/24")
	h.vpc.Add("10.0.9.0/24", fakecloud.Route{Instance: instance, Owner: "vr-stale"}) // of no network
	h.vpc.Delete("10.0.2.0/24")                                                      // drifted: another owner now
	h.vpc.Add("10.0.2.0/24", fakecloud.Route{Instance: instance, Owner: "vr-edited"})
	h.host.Marked["vr-old"] = "old0123456789abc" // a bridge of no network

	dry, err := h.c.GC(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(dry.Stale, "\n")
	for _, want := range []string{"release-route 10.0.9.0/24", "release-route 10.0.2.0/24", "delete-bridge", "claim web 10.0.2.0/24"} {
		if !strings.Contains(text, want) {
			t.Errorf("gc lists:\n%s\nwant %q in it", text, want)
		}
	}
	if r, _ := h.vpc.Get("10.0.9.0/24"); r.Owner != "vr-stale" || h.host.Marked["vr-old"] == "" {
		t.Fatal("gc without --apply changed something")
	}
	done, err := h.c.GC(context.Background(), true)
	if err != nil || len(done.Failed) > 0 {
		t.Fatalf("gc --apply = %+v, %v", done, err)
	}
	if _, ok := h.vpc.Get("10.0.9.0/24"); ok {
		t.Error("the stale route is still there")
	}
	if r, _ := h.vpc.Get("10.0.2.0/24"); r.Owner != p.ID {
		t.Errorf("web's route = %+v; want vpcroute's own back (owner %s)", r, p.ID)
	}
	if _, ok := h.host.Marked["vr-old"]; ok {
		t.Error("the bridge of no network is still there")
	}
	if again, _ := h.c.GC(context.Background(), false); len(again.Stale) != 0 {
		t.Errorf("after gc --apply, gc still finds %q", again.Stale)
	}
}

func TestUninstall(t *testing.T) {
	h := newHarness(t)
	p, _ := h.network(netID, "web", "10.0.2.0/24")
	h.container(netID, controller.PoolRef(p), "ep1", controller.PortRequest{Proto: "tcp", ContainerPort: 80, HostPort: 8080})
	h.vpc.Add("10.0.7.0/24", fakecloud.Route{Instance: "ecs-2", Owner: "vr-theirs"})

	_, err := h.c.Uninstall(context.Background(), true, false)
	wantErr(t, err, "docker network rm web")
	if h.vpc.Len() != 2 || len(h.host.Marked) != 1 {
		t.Fatal("a refused uninstall changed something")
	}
	dry, err := h.c.Uninstall(context.Background(), false, true)
	if err != nil || len(dry.Removes) < 4 || !strings.Contains(strings.Join(dry.Removes, ","), "route 10.0.2.0/24") {
		t.Fatalf("uninstall --force (dry) = %+v, %v", dry, err)
	}
	done, err := h.c.Uninstall(context.Background(), true, true)
	if err != nil || len(done.Failed) > 0 {
		t.Fatalf("uninstall --apply --force = %+v, %v", done, err)
	}
	if _, ok := h.vpc.Get("10.0.2.0/24"); ok || h.vpc.Len() != 1 {
		t.Fatalf("routes after uninstall: %v; want only the other ECS's", h.vpc.Routes)
	}
	if len(h.host.Marked)+len(h.host.Attached)+len(h.host.Rules)+len(h.host.Ports) != 0 {
		t.Fatalf("kernel after uninstall: %v %v %v %v", h.host.Marked, h.host.Attached, h.host.Rules, h.host.Ports)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "vpcroute.db")); !os.IsNotExist(err) {
		t.Fatalf("state file after uninstall: %v", err)
	}
	h.db = nil // closed and removed by Uninstall
	h.reconcile()
	if len(h.host.Marked)+h.vpc.Len() != 1 || h.host.BaseCalls != 0 {
		t.Fatal("the loop made something again after uninstall")
	}
}

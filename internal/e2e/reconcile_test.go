//go:build linux

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/sim"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// Fast reconcile cycles for the tests: the kernel and Docker's list every second, the
// VPC route table every 5 s, unowned routes released after 10 s.
var fastCycles = []string{"VPCROUTE_KERNEL_INTERVAL=1s", "VPCROUTE_CLOUD_INTERVAL=5s", "VPCROUTE_ORPHAN_GRACE=10s"}

// cycleWait is how long the tests give vpcroute to bring the host in line: a few of
// the cycles above.
const cycleWait = 30 * time.Second

// leftovers lists what ECS e still holds of network id, as a user would look for it:
// its bridge in `ip link`, its rules and chains in iptables-save.
func leftovers(t *testing.T, e *testbed.ECS, id string) []string {
	t.Helper()
	var out []string
	links, err := e.Exec(ctxT(t), "ip", "-br", "link")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(links, "\n") {
		if strings.HasPrefix(l, "vr-"+id[:12]) {
			out = append(out, l)
		}
	}
	rules, err := e.Exec(ctxT(t), "iptables-save")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(rules, "\n") {
		if strings.Contains(l, id[:16]) || strings.Contains(l, "vpcroute:"+id) {
			out = append(out, l)
		}
	}
	return out
}

func networkID(t *testing.T, e *testbed.ECS, name string) string {
	t.Helper()
	return docker(t, e, "network", "inspect", "-f", "{{.Id}}", name)
}

// vpcRoutes lists the custom routes of the emulated VPC as "destination nexthop".
func vpcRoutes(env *cloudbed.Env) []string {
	var out []string
	for _, r := range env.CustomRoutes() {
		out = append(out, r.Destination+" "+r.NextHop)
	}
	return out
}

func hasRoute(env *cloudbed.Env, dest string) (sim.Route, bool) {
	for _, r := range env.CustomRoutes() {
		if r.Destination == dest {
			return r, true
		}
	}
	return sim.Route{}, false
}

// TestDockerIsTheTruth runs the host service against Docker's own view: a network
// removed while the plugin was down goes within a cycle; a lost state file is rebuilt
// from Docker's list while containers keep their traffic; a route deleted in the
// console comes back; an unowned vpcroute route to this ECS goes after the grace
// period; what is not vpcroute's is never touched.
func TestDockerIsTheTruth(t *testing.T) {
	needBed(t)
	env, err := cloudbed.Start(ctxT(t), cloudbed.Options{Bed: testbed.Config{Prefix: bedPrefix("vrr")}, Plugin: vpcrouteBin,
		Env: append([]string{"VPCROUTE_LOG_LEVEL=debug"}, fastCycles...)})
	if err != nil {
		t.Fatalf("cloud bed: %v", err)
	}
	t.Cleanup(func() { _ = env.Close() })
	ecs1, ecs2 := ecsOf(t, env, "ecs1"), ecsOf(t, env, "ecs2")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plugin log on ecs1:\n%s", env.Plugins["ecs1"].Logs())
		}
	})
	// What is not vpcroute's: a bridge of the user's, and a route of theirs to ECS 1.
	if _, err := ecs1.Exec(ctxT(t), "ip", "link", "add", "vr-unmarked", "type", "bridge"); err != nil {
		t.Fatal(err)
	}
	if err := env.Sim.ConsoleAddRoute(sim.Route{Type: "ecs", Destination: "10.0.8.0/24", NextHop: cloudbed.InstanceID("ecs1"), Description: "office VPN"}); err != nil {
		t.Fatal(err)
	}

	t.Run("network removed while the plugin is down", func(t *testing.T) {
		docker(t, ecs1, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "--subnet", "10.0.3.0/24", "o3")
		id := networkID(t, ecs1, "o3")
		if _, ok := hasRoute(env, "10.0.3.0/24"); !ok || len(leftovers(t, ecs1, id)) == 0 {
			t.Fatalf("o3 is not set up: routes %v, on ECS 1 %q", vpcRoutes(env), leftovers(t, ecs1, id))
		}
		if err := env.Plugins["ecs1"].Stop(); err != nil {
			t.Fatal(err)
		}
		out, err := dockerErr(t, ecs1, "network", "rm", "o3")
		t.Logf("docker network rm o3 with the plugin down: %v %s", err, out)
		if _, err := dockerErr(t, ecs1, "network", "inspect", "o3"); err == nil {
			t.Skip("this Docker keeps a network whose host-service plugin is down; the managed plugin test covers the case")
		}
		if err := env.Plugins["ecs1"].Restart(); err != nil {
			t.Fatal(err)
		}
		if !waitFor(ctxT(t), cycleWait, func() bool {
			_, routed := hasRoute(env, "10.0.3.0/24")
			return !routed && len(leftovers(t, ecs1, id)) == 0
		}) {
			t.Fatalf("a cycle after restart: routes %v; on ECS 1 %q", vpcRoutes(env), leftovers(t, ecs1, id))
		}
		docker(t, ecs1, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "--subnet", "10.0.3.0/24", "o3")
		docker(t, ecs1, "network", "rm", "o3")
	})

	t.Run("state file lost while containers run", func(t *testing.T) {
		docker(t, ecs1, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "web")
		docker(t, ecs2, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "app")
		docker(t, ecs1, "run", "-d", "--name", "web1", "--net", "web", "-p", "8080:80", testbed.ImageName)
		docker(t, ecs2, "run", "-d", "--name", "app1", "--net", "app", testbed.ImageName)
		webIP := containerIP(t, ecs1, "web1", "web").String()
		routesBefore := vpcRoutes(env)

		// Pings across the loss, the restart and the rebuild.
		pingDone := make(chan string, 1)
		go func() {
			out, _ := ecs2.Docker(context.Background(), "exec", "app1", "ping", "-c", "50", "-i", "0.2", "-W", "1", webIP)
			pingDone <- out
		}()
		time.Sleep(time.Second)
		if err := env.Plugins["ecs1"].Kill9(); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(ecs1.Dir, "vpcroute")); err != nil {
			t.Fatal(err)
		}
		if err := env.Plugins["ecs1"].Restart(); err != nil {
			t.Fatal(err)
		}
		if err := ecs1.WaitPlugin(ctxT(t), "vpcroute"); err != nil {
			t.Fatal(err)
		}
		out := <-pingDone
		m := regexp.MustCompile(`(\d+) packets received`).FindStringSubmatch(out)
		if m == nil || atoi(m[1]) < 49 {
			t.Errorf("ping from ECS 2 to web1 across the lost state file lost packets:\n%s", out)
		}
		if got := vpcRoutes(env); strings.Join(got, ",") != strings.Join(routesBefore, ",") {
			t.Errorf("routes changed across the loss: %v, before %v", got, routesBefore)
		}
		// The rebuilt network serves Docker again: a new container joins and reaches
		// the other ECS; the published port answers.
		appIP := containerIP(t, ecs2, "app1", "app").String()
		if !waitFor(ctxT(t), cycleWait, func() bool {
			out, err := dockerErr(t, ecs1, "run", "--rm", "--net", "web", testbed.ImageName, "ping", "-c", "1", "-W", "2", appIP)
			return err == nil && strings.Contains(out, "1 packets received")
		}) {
			t.Fatalf("a new container on the rebuilt network cannot reach %s:\n%s", appIP, env.Plugins["ecs1"].Logs())
		}
		if out, err := dockerErr(t, ecs2, append([]string{"exec", "app1"}, testbed.HTTPGetCmd(ecs1.IP.String(), 8080)...)...); err != nil || !strings.Contains(out, "200 OK") {
			t.Errorf("published port 8080 of the rebuilt network: %v %q", err, out)
		}
		if logs := env.Plugins["ecs1"].Logs(); !strings.Contains(logs, "rebuilt from Docker's network list") || !strings.Contains(logs, "network=web") {
			t.Errorf("the plugin does not say it rebuilt web:\n%s", logs)
		}
		// Removal cleans up what the rebuilt records hold.
		webSubnet, webID := subnetOf(t, ecs1, "web").String(), networkID(t, ecs1, "web")
		docker(t, ecs1, "rm", "-f", "web1")
		docker(t, ecs1, "network", "rm", "web")
		if _, ok := hasRoute(env, webSubnet); ok {
			t.Errorf("route of the rebuilt network is still there after network rm: %v", vpcRoutes(env))
		}
		if left := leftovers(t, ecs1, webID); len(left) > 0 {
			t.Errorf("left on ECS 1 after network rm: %q", left)
		}
		docker(t, ecs2, "rm", "-f", "app1")
		docker(t, ecs2, "network", "rm", "app")
	})

	t.Run("routes: deleted in the console, unowned, not vpcroute's", func(t *testing.T) {
		docker(t, ecs1, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "--subnet", "10.0.5.0/24", "shop")
		t.Cleanup(func() { _, _ = dockerErr(t, ecs1, "network", "rm", "shop") })
		if err := env.Sim.ConsoleDeleteRoute("10.0.5.0/24"); err != nil {
			t.Fatal(err)
		}
		orphan := sim.Route{Type: "ecs", Destination: "10.0.9.0/24", NextHop: cloudbed.InstanceID("ecs1"), Description: "vpcroute owner=vr-0123456789ab host=ecs1"}
		if err := env.Sim.ConsoleAddRoute(orphan); err != nil {
			t.Fatal(err)
		}
		added := time.Now()
		if !waitFor(ctxT(t), cycleWait, func() bool { _, ok := hasRoute(env, "10.0.5.0/24"); return ok }) {
			t.Fatalf("the route deleted in the console did not come back: %v", vpcRoutes(env))
		}
		if r, _ := hasRoute(env, "10.0.5.0/24"); r.NextHop != cloudbed.InstanceID("ecs1") || !strings.Contains(r.Description, "net=shop") {
			t.Errorf("route claimed again = %+v; want ECS 1's, naming the network", r)
		}
		if !waitFor(ctxT(t), cycleWait, func() bool { _, ok := hasRoute(env, "10.0.9.0/24"); return !ok }) {
			t.Fatalf("the unowned vpcroute route was not released: %v", vpcRoutes(env))
		}
		if held := time.Since(added); held < 10*time.Second {
			t.Errorf("the unowned route went after %v, before the 10 s grace period", held)
		}
		if _, ok := hasRoute(env, "10.0.8.0/24"); !ok {
			t.Error("the user's own route to ECS 1 was removed")
		}
		if out, err := ecs1.Exec(ctxT(t), "ip", "link", "show", "vr-unmarked"); err != nil {
			t.Errorf("the user's bridge vr-unmarked (named like vpcroute's, but not marked) was removed: %v %s", err, out)
		}
	})
	t.Run("dockerd restarts and new Docker networks put Docker's rules on top", func(t *testing.T) {
		docker(t, ecs1, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "edge")
		t.Cleanup(func() { _, _ = dockerErr(t, ecs1, "network", "rm", "edge") })
		if err := env.Bed.RestartDocker(ctxT(t), "ecs1"); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"b1", "b2", "b3", "b4", "b5"} {
			docker(t, ecs1, "network", "create", n)
			t.Cleanup(func() { _, _ = dockerErr(t, ecs1, "network", "rm", n) })
		}
		var forward []string
		if !waitFor(ctxT(t), cycleWait, func() bool {
			forward = forwardJumps(t, ecs1)
			return len(forward) > 1 && forward[0] == "DOCKER-USER" && forward[1] == "VPCROUTE-FORWARD"
		}) {
			t.Fatalf("FORWARD's jumps %v: vpcroute's must come right after DOCKER-USER", forward)
		}
		// Containers of the vpcroute network still reach the other ECS.
		docker(t, ecs2, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "edge2")
		t.Cleanup(func() { _, _ = dockerErr(t, ecs2, "network", "rm", "edge2") })
		docker(t, ecs2, "run", "-d", "--rm", "--name", "edge2c", "--net", "edge2", testbed.ImageName, "sleep", "60")
		t.Cleanup(func() { _, _ = dockerErr(t, ecs2, "rm", "-f", "edge2c") })
		peer := containerIP(t, ecs2, "edge2c", "edge2").String()
		run(t, ecs1, "edge", "ping", "-c", "2", "-W", "2", peer)
	})
}

// forwardJumps lists the targets of filter FORWARD's rules on e, in order.
func forwardJumps(t *testing.T, e *testbed.ECS) []string {
	t.Helper()
	out, err := e.Exec(ctxT(t), "iptables", "-S", "FORWARD")
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && f[0] == "-A" {
			targets = append(targets, f[len(f)-1])
			for i := range f {
				if f[i] == "-j" && i+1 < len(f) {
					targets[len(targets)-1] = f[i+1]
				}
			}
		}
	}
	return targets
}

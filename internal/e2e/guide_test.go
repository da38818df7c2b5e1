//go:build linux

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// startCloud builds a two-ECS bed with the emulated cloud and a vpcroute on each ECS.
func startCloud(t *testing.T, prefix string, opts cloudbed.Options) *cloudbed.Env {
	t.Helper()
	needBed(t)
	opts.Bed.Prefix = bedPrefix(prefix)
	if opts.Plugin == "" {
		opts.Plugin = vpcrouteBin
	}
	env, err := cloudbed.Start(ctxT(t), opts)
	if err != nil {
		t.Fatalf("cloud bed: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for name, p := range env.Plugins {
				t.Logf("plugin log of %s:\n%s", name, p.Logs())
			}
		}
		_ = env.Close()
	})
	return env
}

func ecsOf(t *testing.T, env *cloudbed.Env, name string) *testbed.ECS {
	t.Helper()
	e, err := env.Bed.ECS(name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestGuide is Huawei's guide, literally, with vpcroute doing the by-hand steps: the
// subnets, the VPC routes and FORWARD.
func TestGuide(t *testing.T) {
	// ECS 2 opens FORWARD the guide's way (policy ACCEPT); ECS 1 with rules of its own.
	env := startCloud(t, "vrg", cloudbed.Options{ECSEnv: map[string][]string{"ecs2": {"VPCROUTE_FORWARD=accept"}}})
	ecs1, ecs2 := ecsOf(t, env, "ecs1"), ecsOf(t, env, "ecs2")
	docker(t, ecs2, "network", "ls") // returns once the plugin finished start-up
	for e, want := range map[*testbed.ECS]string{ecs1: "-P FORWARD DROP", ecs2: "-P FORWARD ACCEPT"} {
		var out string
		ok := waitFor(ctxT(t), 5*time.Second, func() bool {
			out, _ = e.Exec(ctxT(t), "iptables", "-S", "FORWARD")
			return strings.HasPrefix(out, want)
		})
		if !ok {
			t.Errorf("%s: FORWARD policy: want %q, got %q", e.Name, want, firstLine(out))
		}
	}
	before := env.CustomRoutes()

	docker(t, ecs1, "network", "create", "-d", "vpcroute", "--subnet", "10.0.2.0/24", "my-net")
	docker(t, ecs2, "network", "create", "-d", "vpcroute", "--subnet", "10.0.3.0/24", "my-net")
	for _, e := range []*testbed.ECS{ecs1, ecs2} {
		docker(t, e, "run", "-d", "--name", "nginx", "--net", "my-net", "-p", "8080:80", testbed.ImageName)
	}

	out := docker(t, ecs1, "exec", "nginx", "ping", "-c", "3", "-W", "2", "10.0.3.2")
	if !strings.Contains(out, "3 packets received") || !strings.Contains(out, "ttl=62") {
		t.Errorf("ping 10.0.3.2 from ECS 1's container: want 3 replies with ttl=62:\n%s", out)
	}
	out = docker(t, ecs1, "exec", "nginx", "traceroute", "-n", "-w", "2", "-q", "1", "10.0.3.2")
	if hops := testbed.TraceHops(out); strings.Join(hops, " ") != "10.0.2.1 192.168.0.3 10.0.3.2" {
		t.Errorf("traceroute -n 10.0.3.2: hops %v; want [10.0.2.1 192.168.0.3 10.0.3.2]:\n%s", hops, out)
	}
	for _, target := range [][2]string{{"10.0.3.2", "80"}, {"192.168.0.3", "8080"}} {
		out := docker(t, ecs1, append([]string{"exec", "nginx"}, testbed.HTTPGetCmd(target[0], atoi(target[1]))...)...)
		if !strings.Contains(out, "200 OK") || !strings.Contains(out, "ecs2") {
			t.Errorf("HTTP GET %s:%s from ECS 1's container: %q", target[0], target[1], out)
		}
	}

	added := cloudbed.AddedRoutes(before, env.CustomRoutes())
	want := map[string]string{"10.0.2.0/24": cloudbed.InstanceID("ecs1"), "10.0.3.0/24": cloudbed.InstanceID("ecs2")}
	if len(added) != 2 {
		t.Errorf("route table gained %d routes; want exactly 2: %+v", len(added), added)
	}
	for _, r := range added {
		if want[r.Destination] != r.NextHop || r.Type != "ecs" || !strings.HasPrefix(r.Description, "vpcroute") {
			t.Errorf("route %+v: want type ecs, next hop %q, a vpcroute description", r, want[r.Destination])
		}
	}

	// A container on two networks answers on both: the reply from its second
	// address leaves through the bridge of its default route.
	// (On ECS 1, whose FORWARD policy is Docker's DROP.)
	docker(t, ecs1, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "second")
	docker(t, ecs1, "network", "connect", "second", "nginx")
	second := containerIP(t, ecs1, "nginx", "second")
	if out, err := dockerErr(t, ecs2, "exec", "nginx", "ping", "-c", "2", "-W", "2", second.String()); err != nil || !strings.Contains(out, "2 packets received") {
		t.Errorf("ping of ECS 1's container on its second network (%s): %v\n%s", second, err, out)
	}
	docker(t, ecs1, "network", "disconnect", "second", "nginx")
	docker(t, ecs1, "network", "rm", "second")

	// Removal gives everything back.
	for _, e := range []*testbed.ECS{ecs1, ecs2} {
		docker(t, e, "rm", "-f", "nginx")
		docker(t, e, "network", "rm", "my-net")
	}
	if added := cloudbed.AddedRoutes(before, env.CustomRoutes()); len(added) != 0 {
		t.Errorf("after network rm the route table still has %+v", added)
	}
}

func firstLine(s string) string { return strings.SplitN(s, "\n", 2)[0] }

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

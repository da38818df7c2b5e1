//go:build linux

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// TestTakeover moves a network's subnet from ECS 1 to ECS 2, as the guide's warning
// asks of whoever moves a container: refused while ECS 1 runs (and without the
// option), then, with ECS 1 stopped, one route table update moves the route, the
// same address answers from ECS 2, and ECS 1 notices and lets go.
func TestTakeover(t *testing.T) {
	env := startCloud(t, "vrt", cloudbed.Options{ECSEnv: map[string][]string{"ecs1": {"VPCROUTE_CLOUD_INTERVAL=5s"}}})
	ecs1, ecs2 := ecsOf(t, env, "ecs1"), ecsOf(t, env, "ecs2")
	get := func() string { return tcpGet(t, env.Bed.RouterNetns, "10.0.2.2:80", "GET / HTTP/1.0\r\n\r\n") }

	docker(t, ecs1, "network", "create", "-d", "vpcroute", "--subnet", "10.0.2.0/24", "my-net")
	docker(t, ecs1, "run", "-d", "--name", "web", "--net", "my-net", "--ip", "10.0.2.2", testbed.ImageName)
	if out := get(); !strings.Contains(out, "vrbox on ecs1") {
		t.Fatalf("HTTP to 10.0.2.2 from the VPC before the move: %q", out)
	}

	// Refusals: nothing is made, the route stays ECS 1's.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-o vpcroute.takeover=true"},
		{[]string{"-o", "vpcroute.takeover=true"}, "running (ACTIVE)"},
		{[]string{"--ipam-driver", "vpcroute"}, "--ipam-opt vpcroute.takeover=true"},
	} {
		args := append([]string{"network", "create", "-d", "vpcroute", "--subnet", "10.0.2.0/24"}, tc.args...)
		out, err := dockerErr(t, ecs2, append(args, "my-net")...)
		if err == nil || !strings.Contains(out+err.Error(), tc.want) {
			t.Errorf("network create %v on ECS 2: %v; want a refusal saying %q:\n%s", tc.args, err, tc.want, out)
		}
		if out := docker(t, ecs2, "network", "ls", "-q", "-f", "name=my-net"); strings.TrimSpace(out) != "" {
			t.Fatalf("a refused create left network %s", out)
		}
	}
	if r, ok := hasRoute(env, "10.0.2.0/24"); !ok || r.NextHop != cloudbed.InstanceID("ecs1") {
		t.Fatalf("after the refusals the route is %+v; want ECS 1's", r)
	}

	env.Sim.SetECSStatus(cloudbed.InstanceID("ecs1"), "SHUTOFF")
	env.Sim.ResetRequests()
	docker(t, ecs2, "network", "create", "-d", "vpcroute", "--subnet", "10.0.2.0/24", "-o", "vpcroute.takeover=true", "my-net")
	var puts []string
	for _, r := range env.Sim.Requests() {
		if r.Method == "PUT" {
			puts = append(puts, r.Path)
		}
	}
	if len(puts) != 1 || !strings.Contains(puts[0], "/routetables/") {
		t.Errorf("route table updates for the move: %v; want one", puts)
	}
	var to []string
	for _, r := range env.CustomRoutes() {
		if r.Destination == "10.0.2.0/24" {
			to = append(to, r.NextHop)
		}
	}
	if len(to) != 1 || to[0] != cloudbed.InstanceID("ecs2") {
		t.Errorf("routes of 10.0.2.0/24 lead to %v; want one, to ECS 2", to)
	}
	docker(t, ecs2, "run", "-d", "--name", "web", "--net", "my-net", "--ip", "10.0.2.2", testbed.ImageName)
	if out := get(); !strings.Contains(out, "vrbox on ecs2") {
		t.Errorf("HTTP to 10.0.2.2 from the VPC after the move: %q; want ECS 2's container", out)
	}

	// ECS 1 notices in its next cloud cycle, stops claiming, and says so.
	var status string
	if !waitFor(ctxT(t), 30*time.Second, func() bool {
		status, _ = vr(t, ecs1, "status")
		return strings.Contains(status, "moved to "+cloudbed.InstanceID("ecs2"))
	}) {
		t.Fatalf("ECS 1's status does not say the network moved:\n%s", status)
	}
	if out := docker(t, ecs1, "exec", "web", "ping", "-c", "1", "-W", "2", "10.0.2.1"); !strings.Contains(out, "1 packets received") {
		t.Errorf("ECS 1's container lost its local traffic:\n%s", out)
	}
	docker(t, ecs1, "rm", "-f", "web")
	docker(t, ecs1, "network", "rm", "my-net")
	time.Sleep(6 * time.Second) // a cloud cycle of ECS 1
	if r, ok := hasRoute(env, "10.0.2.0/24"); !ok || r.NextHop != cloudbed.InstanceID("ecs2") {
		t.Errorf("after network rm on ECS 1 the route is %+v (present %v); want ECS 2's, untouched", r, ok)
	}
	if out := get(); !strings.Contains(out, "vrbox on ecs2") {
		t.Errorf("HTTP to 10.0.2.2 after ECS 1 removed its network: %q", out)
	}
}

//go:build linux

package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/sim"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// TestGuideHostBlocks is the guide's scenario with VPCROUTE_HOST_BLOCK=20 on both
// ECSs: each ECS's first network claims a /20 with one route, the containers reach
// each other across the VPC as in the guide (ttl=62, gateway → other ECS →
// container), a second network costs no API request at all, one is made while the
// VPC API answers 503, and once every network is gone the blocks go back after
// VPCROUTE_BLOCK_GRACE.
func TestGuideHostBlocks(t *testing.T) {
	// No periodic read of the route table (an hour apart): the request log then
	// shows exactly what the creates cost.
	env := startCloud(t, "vrk", cloudbed.Options{Env: []string{"VPCROUTE_HOST_BLOCK=20", "VPCROUTE_BLOCK_GRACE=3s",
		"VPCROUTE_KERNEL_INTERVAL=1s", "VPCROUTE_CLOUD_INTERVAL=1h"}})
	ecs1, ecs2 := ecsOf(t, env, "ecs1"), ecsOf(t, env, "ecs2")
	docker(t, ecs2, "network", "ls")
	before := env.CustomRoutes()

	for _, e := range []*testbed.ECS{ecs1, ecs2} {
		docker(t, e, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "my-net")
		docker(t, e, "run", "-d", "--name", "nginx", "--net", "my-net", "-p", "8080:80", testbed.ImageName)
	}
	ip1, ip2 := containerIP(t, ecs1, "nginx", "my-net"), containerIP(t, ecs2, "nginx", "my-net")
	added := cloudbed.AddedRoutes(before, env.CustomRoutes())
	blocks := map[string]netip.Prefix{}
	for _, r := range added {
		p := netip.MustParsePrefix(r.Destination)
		if p.Bits() != 20 || !strings.Contains(r.Description, "owner=vb-") {
			t.Errorf("route %+v: want a /20 host block", r)
		}
		blocks[r.NextHop] = p
	}
	if len(added) != 2 || !blocks[cloudbed.InstanceID("ecs1")].Contains(ip1) || !blocks[cloudbed.InstanceID("ecs2")].Contains(ip2) {
		t.Fatalf("route table gained %+v; want one /20 per ECS holding its container (%s, %s)", added, ip1, ip2)
	}

	out := docker(t, ecs1, "exec", "nginx", "ping", "-c", "3", "-W", "2", ip2.String())
	if !strings.Contains(out, "3 packets received") || !strings.Contains(out, "ttl=62") {
		t.Errorf("ping %s from ECS 1's container: want 3 replies with ttl=62:\n%s", ip2, out)
	}
	gw1 := netip.PrefixFrom(ip1, 24).Masked().Addr().Next()
	out = docker(t, ecs1, "exec", "nginx", "traceroute", "-n", "-w", "2", "-q", "1", ip2.String())
	if hops, want := strings.Join(testbed.TraceHops(out), " "), gw1.String()+" 192.168.0.3 "+ip2.String(); hops != want {
		t.Errorf("traceroute -n %s: hops %s; want %s:\n%s", ip2, hops, want, out)
	}
	out = docker(t, ecs1, append([]string{"exec", "nginx"}, testbed.HTTPGetCmd("192.168.0.3", 8080)...)...)
	if !strings.Contains(out, "200 OK") {
		t.Errorf("published port 192.168.0.3:8080 from ECS 1's container: %q", out)
	}

	// A second network: carved from the block, not one API request.
	env.Sim.ResetRequests()
	docker(t, ecs1, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "second")
	if reqs := env.Sim.Requests(); len(reqs) != 0 {
		t.Errorf("the second network made %d VPC API requests (%+v); want none", len(reqs), reqs)
	}
	// The VPC API down: a network is still made while the block has room.
	env.Sim.InjectFault(sim.Fault{Status: 503, Rate: 1})
	docker(t, ecs1, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "while-down")
	docker(t, ecs1, "run", "-d", "--name", "down", "--net", "while-down", testbed.ImageName)
	ipDown := containerIP(t, ecs1, "down", "while-down")
	env.Sim.ClearFaults()
	if !blocks[cloudbed.InstanceID("ecs1")].Contains(ipDown) {
		t.Errorf("network made while the API was down got %s, outside ECS 1's block", ipDown)
	}
	if out, err := dockerErr(t, ecs2, "exec", "nginx", "ping", "-c", "2", "-W", "2", ipDown.String()); err != nil || !strings.Contains(out, "2 packets received") {
		t.Errorf("ECS 2 pings the container of the network made while the API was down (%s): %v\n%s", ipDown, err, out)
	}

	for _, e := range []*testbed.ECS{ecs1, ecs2} {
		docker(t, e, "rm", "-f", "nginx")
		docker(t, e, "network", "rm", "my-net")
	}
	docker(t, ecs1, "rm", "-f", "down")
	docker(t, ecs1, "network", "rm", "second", "while-down")
	if got := cloudbed.AddedRoutes(before, env.CustomRoutes()); len(got) != 2 {
		t.Errorf("right after the networks went the blocks should stay for the grace: %+v", got)
	}
	// The loop looks at empty blocks after each Docker call that changes a network
	// and every VPCROUTE_CLOUD_INTERVAL (here an hour): past the grace, a network
	// made and removed elsewhere (a route of its own) makes it look.
	time.Sleep(4 * time.Second)
	for _, e := range []*testbed.ECS{ecs1, ecs2} {
		docker(t, e, "network", "create", "-d", "vpcroute", "--subnet", "10.99.0.0/24", "trigger")
		docker(t, e, "network", "rm", "trigger")
	}
	if !waitFor(ctxT(t), 40*time.Second, func() bool { return len(cloudbed.AddedRoutes(before, env.CustomRoutes())) == 0 }) {
		t.Errorf("blocks still routed 40 s after their last network went (grace 3 s): %+v", cloudbed.AddedRoutes(before, env.CustomRoutes()))
	}
}

//go:build linux

package e2e

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/sim"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// swarmTasks returns the addresses on netName of the tasks of service on an ECS.
func swarmTasks(t *testing.T, e *testbed.ECS, service, netName string) []netip.Addr {
	t.Helper()
	ids, err := e.Docker(ctxT(t), "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+service)
	if err != nil {
		t.Fatalf("docker ps on %s: %v", e.Name, err)
	}
	var out []netip.Addr
	for _, id := range strings.Fields(ids) {
		out = append(out, containerIP(t, e, id, netName))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// swarmBed is the two ECSs as one swarm (ECS 1 the manager, ECS 2 a worker), each
// with the managed plugin (Swarm takes no other kind of network plugin) and a
// config-only network asking vpcroute's IPAM for a subnet of its own.
func swarmBed(t *testing.T, prefix string) (*cloudbed.Env, *testbed.ECS, *testbed.ECS) {
	t.Helper()
	env, ecs1, ecs2 := managedBed(t, cloudbed.Options{Bed: testbed.Config{Prefix: bedPrefix(prefix)}})
	if err := env.FormSwarm(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, e := range []*testbed.ECS{ecs2, ecs1} {
			_, _ = dockerErr(t, e, "swarm", "leave", "--force")
		}
	})
	for _, e := range []*testbed.ECS{ecs1, ecs2} {
		docker(t, e, "network", "create", "--config-only", "--ipam-driver", managedPlugin, "vpc-conf")
	}
	docker(t, ecs1, "network", "create", "-d", managedPlugin, "--scope", "swarm", "--config-from", "vpc-conf", "svc-net")
	return env, ecs1, ecs2
}

// runningTasks counts the service's tasks that run, by node.
func runningTasks(t *testing.T, manager *testbed.ECS, service string) map[string]int {
	out, err := manager.Docker(ctxT(t), "service", "ps", service, "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}")
	if err != nil {
		return nil
	}
	n := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[1] == "Running" {
			n[f[0]]++
		}
	}
	return n
}

// TestSwarmService (issue 11): a service of 4 replicas on a vpcroute swarm network
// has tasks on both ECSs, each ECS's in its own subnet with its own VPC route; a task
// on ECS 1 reaches one on ECS 2 by address (ttl=62) and by the service's name; ports
// published in host mode answer on each node's address; a node
// that leaves the swarm gives its route back; scaling to 0 and removing the service
// and the network gives every route back.
func TestSwarmService(t *testing.T) {
	env, ecs1, ecs2 := swarmBed(t, "vrw")
	before := env.CustomRoutes()
	docker(t, ecs1, "service", "create", "--name", "web", "--network", "svc-net", "--replicas", "4",
		"--endpoint-mode", "dnsrr", "--no-resolve-image", "--detach", testbed.ImageName)
	var tasks map[string]int
	if !waitFor(ctxT(t), 90*time.Second, func() bool {
		tasks = runningTasks(t, ecs1, "web")
		return sum(tasks) == 4 // every ECS has the machine's host name: count them all
	}) {
		out, _ := ecs1.Docker(ctxT(t), "service", "ps", "--no-trunc", "web")
		t.Fatalf("4 running tasks not reached in 90 s: %v\n%s", tasks, out)
	}
	a1, a2 := swarmTasks(t, ecs1, "web", "svc-net"), swarmTasks(t, ecs2, "web", "svc-net")
	if len(a1) == 0 || len(a2) == 0 || len(a1)+len(a2) != 4 {
		t.Fatalf("tasks: %v on ECS 1, %v on ECS 2; want 4, on both", a1, a2)
	}
	added := cloudbed.AddedRoutes(before, env.CustomRoutes())
	routeOf := map[string]netip.Prefix{}
	for _, r := range added {
		routeOf[r.NextHop] = netip.MustParsePrefix(r.Destination)
	}
	s1, s2 := routeOf[cloudbed.InstanceID("ecs1")], routeOf[cloudbed.InstanceID("ecs2")]
	if len(added) != 2 || !s1.IsValid() || !s2.IsValid() {
		t.Fatalf("route table gained %+v; want one route per ECS", added)
	}
	for _, a := range a1 {
		if !s1.Contains(a) {
			t.Errorf("task %s on ECS 1 is outside ECS 1's route %s", a, s1)
		}
	}
	for _, a := range a2 {
		if !s2.Contains(a) {
			t.Errorf("task %s on ECS 2 is outside ECS 2's route %s", a, s2)
		}
	}

	ids, _ := ecs1.Docker(ctxT(t), "ps", "-q", "--filter", "label=com.docker.swarm.service.name=web")
	task1 := strings.Fields(ids)[0]
	out := docker(t, ecs1, "exec", task1, "ping", "-c", "3", "-W", "2", a2[0].String())
	if !strings.Contains(out, "3 packets received") || !strings.Contains(out, "ttl=62") {
		t.Errorf("ping %s (a task on ECS 2) from a task on ECS 1: want 3 replies with ttl=62:\n%s", a2[0], out)
	}
	// The service's name resolves, in a task on ECS 1, to every task's address,
	// those on ECS 2 included (Docker's DNS, fed across nodes by the swarm).
	var names string
	if !waitFor(ctxT(t), 30*time.Second, func() bool {
		names, _ = ecs1.Docker(ctxT(t), "exec", task1, "nslookup", "tasks.web")
		return slices.IndexFunc(a2, func(a netip.Addr) bool { return !strings.Contains(names, a.String()) }) < 0
	}) {
		t.Errorf("nslookup tasks.web in a task on ECS 1 does not list ECS 2's tasks %v:\n%s", a2, names)
	}
	out, err := dockerErr(t, ecs1, "exec", task1, "ping", "-c", "1", "-W", "2", "web")
	if err != nil || !strings.Contains(out, "1 packets received") {
		t.Errorf("ping web (the service's name) from a task: %v\n%s", err, out)
	}

	// Ports published in host mode: vpcroute publishes them on each node.
	docker(t, ecs1, "service", "create", "--name", "front", "--network", "svc-net", "--mode", "global",
		"--endpoint-mode", "dnsrr", "--publish", "mode=host,published=8080,target=80", "--no-resolve-image", "--detach", testbed.ImageName)
	var page string
	if !waitFor(ctxT(t), 90*time.Second, func() bool {
		page, _ = ecs1.Docker(ctxT(t), append([]string{"exec", task1}, testbed.HTTPGetCmd("192.168.0.3", 8080)...)...)
		return strings.Contains(page, "200 OK")
	}) {
		t.Errorf("HTTP to ECS 2's port 8080 (published in host mode by a global service) from a task on ECS 1: %q", page)
	}
	docker(t, ecs1, "service", "rm", "front")

	// What Swarm does not do on a node-local network, as the README says: no
	// virtual IP for a service (endpoint mode vip), and the routing mesh refuses
	// DNS round robin.
	docker(t, ecs1, "service", "create", "--name", "vip", "--network", "svc-net", "--replicas", "1", "--no-resolve-image", "--detach", testbed.ImageName)
	netID := docker(t, ecs1, "network", "inspect", "-f", "{{.Id}}", "svc-net")
	vips := docker(t, ecs1, "service", "inspect", "-f", "{{json .Endpoint.VirtualIPs}}", "vip")
	if !strings.Contains(vips, netID) || strings.Contains(vips, `"NetworkID":"`+netID+`","Addr"`) {
		t.Errorf("virtual IPs of a vip-mode service: %s; want an entry for svc-net (%s) without an address", vips, netID)
	}
	docker(t, ecs1, "service", "rm", "vip")
	if out, err := dockerErr(t, ecs1, "service", "create", "--name", "mesh", "--network", "svc-net", "--endpoint-mode", "dnsrr",
		"--publish", "published=8082,target=80", "--no-resolve-image", "--detach", testbed.ImageName); err == nil || !strings.Contains(out+err.Error(), "dnsrr") {
		t.Errorf("dnsrr with a routing-mesh port: %v %s; want Docker's refusal", err, out)
	}

	// A node that leaves the swarm gives its route back when its networks go
	// (the manager moves its tasks to ECS 1, whose route stays).
	docker(t, ecs2, "swarm", "leave", "--force")
	routedTo := func(ecs string) bool {
		return slices.ContainsFunc(cloudbed.AddedRoutes(before, env.CustomRoutes()), func(r sim.Route) bool { return r.NextHop == cloudbed.InstanceID(ecs) })
	}
	if !waitFor(ctxT(t), 60*time.Second, func() bool { return !routedTo("ecs2") }) {
		t.Errorf("ECS 2 left the swarm; its route is still there 60 s later: %+v", cloudbed.AddedRoutes(before, env.CustomRoutes()))
	}
	if out, _ := ecs2.Docker(ctxT(t), "network", "ls", "--filter", "name=svc-net", "-q"); out != "" {
		t.Errorf("ECS 2 left the swarm and still has network svc-net (%s)", out)
	}
	if !routedTo("ecs1") {
		t.Errorf("ECS 1's route went when ECS 2 left")
	}

	docker(t, ecs1, "service", "scale", "--detach", "web=0")
	if !waitFor(ctxT(t), 60*time.Second, func() bool { return len(cloudbed.AddedRoutes(before, env.CustomRoutes())) == 0 }) {
		t.Logf("routes after scaling to 0 (Docker keeps a node's network while it may get tasks): %+v", cloudbed.AddedRoutes(before, env.CustomRoutes()))
	}
	docker(t, ecs1, "service", "rm", "web")
	docker(t, ecs1, "network", "rm", "svc-net")
	if !waitFor(ctxT(t), 60*time.Second, func() bool { return len(cloudbed.AddedRoutes(before, env.CustomRoutes())) == 0 }) {
		t.Errorf("routes left 60 s after the service and the network went: %+v", cloudbed.AddedRoutes(before, env.CustomRoutes()))
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

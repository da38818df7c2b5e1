//go:build linux

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/sim"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// TestTwoECSAutomatic: both ECSs create networks with --ipam-driver at the same time;
// every subnet differs and is routed to its own ECS; every container reaches every
// other across hosts; restarts of the plugin and of dockerd keep it so; removal gives
// the route table back.
func TestTwoECSAutomatic(t *testing.T) {
	env := startCloud(t, "vra", cloudbed.Options{})
	ecss := []*testbed.ECS{ecsOf(t, env, "ecs1"), ecsOf(t, env, "ecs2")}
	before := env.CustomRoutes()
	const perECS = 3

	var wg sync.WaitGroup
	errs := make(chan error, 2*perECS)
	for _, e := range ecss {
		for i := 0; i < perECS; i++ {
			wg.Add(1)
			go func(e *testbed.ECS, i int) {
				defer wg.Done()
				name := fmt.Sprintf("auto%d", i)
				if out, err := e.Docker(ctxT(t), "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", name); err != nil {
					errs <- fmt.Errorf("%s: create %s: %v %s", e.Name, name, err, out)
				}
			}(e, i)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	subnets := map[netip.Prefix]string{}
	type member struct {
		ecs  *testbed.ECS
		name string
		ip   netip.Addr
	}
	var members []member
	for _, e := range ecss {
		for i := 0; i < perECS; i++ {
			net := fmt.Sprintf("auto%d", i)
			s := subnetOf(t, e, net)
			if other, dup := subnets[s]; dup {
				t.Fatalf("subnet %s given to both %s and %s/%s", s, other, e.Name, net)
			}
			subnets[s] = e.Name + "/" + net
			c := "c" + net
			docker(t, e, "run", "-d", "--restart", "always", "--name", c, "--net", net, testbed.ImageName)
			members = append(members, member{e, c, containerIP(t, e, c, net)})
		}
	}
	checkRoutes := func(when string) {
		t.Helper()
		routes := cloudbed.AddedRoutes(before, env.CustomRoutes())
		if len(routes) != len(subnets) {
			t.Errorf("%s: route table gained %d routes; want %d: %+v", when, len(routes), len(subnets), routes)
		}
		for _, r := range routes {
			owner, ok := subnets[netip.MustParsePrefix(r.Destination)]
			if !ok {
				t.Errorf("%s: unexpected route %+v", when, r)
				continue
			}
			ecs := strings.Split(owner, "/")[0]
			if r.NextHop != cloudbed.InstanceID(ecs) || r.Type != "ecs" {
				t.Errorf("%s: route %s goes to %s (%s); want %s's instance", when, r.Destination, r.NextHop, r.Type, ecs)
			}
		}
	}
	checkRoutes("after create")
	crossPing := func(when string) {
		t.Helper()
		for _, from := range members {
			for _, to := range members {
				if from.ecs == to.ecs {
					continue
				}
				out, err := from.ecs.Docker(ctxT(t), "exec", from.name, "ping", "-c", "1", "-W", "2", to.ip.String())
				if err != nil || !strings.Contains(out, "1 packets received") {
					t.Errorf("%s: %s/%s cannot ping %s/%s (%s): %v\n%s", when, from.ecs.Name, from.name, to.ecs.Name, to.name, to.ip, err, out)
				}
			}
		}
	}
	crossPing("after create")
	rulesBefore := map[string]string{}
	for _, e := range ecss {
		rulesBefore[e.Name] = vpcrouteRules(t, e)
		for i := 0; i < perECS; i++ {
			if s := subnetOf(t, e, fmt.Sprintf("auto%d", i)); !strings.Contains(rulesBefore[e.Name], s.String()) {
				t.Fatalf("%s: no vpcroute rule for %s in iptables-save:\n%s", e.Name, s, rulesBefore[e.Name])
			}
		}
	}

	// kill -9 the plugins, then restart them; then restart each dockerd.
	for _, e := range ecss {
		p := env.Plugins[e.Name]
		if err := p.Kill9(); err != nil {
			t.Fatal(err)
		}
		if err := p.Restart(); err != nil {
			t.Fatal(err)
		}
		if err := e.WaitPlugin(ctxT(t), "vpcroute"); err != nil {
			t.Fatal(err)
		}
	}
	crossPing("after plugin kill -9")
	for _, e := range ecss {
		if err := env.Bed.RestartDocker(ctxT(t), e.Name); err != nil {
			t.Fatal(err)
		}
	}
	// Containers come back (--restart always) and rejoin their networks.
	for _, m := range members {
		ok := waitFor(ctxT(t), 30*time.Second, func() bool {
			out, err := m.ecs.Docker(ctxT(t), "inspect", "-f", "{{.State.Running}}", m.name)
			return err == nil && out == "true"
		})
		if !ok {
			t.Fatalf("container %s on %s did not come back after dockerd restart", m.name, m.ecs.Name)
		}
	}
	for i := range members {
		m := &members[i]
		m.ip = containerIP(t, m.ecs, m.name, strings.TrimPrefix(m.name, "c"))
	}
	crossPing("after dockerd restart")
	checkRoutes("after restarts")
	for _, e := range ecss {
		if got := vpcrouteRules(t, e); got != rulesBefore[e.Name] {
			t.Errorf("%s: vpcroute rules changed across restarts:\nbefore:\n%s\nafter:\n%s", e.Name, rulesBefore[e.Name], got)
		}
	}

	// Removal: the route table is back as it was; no bridge, rule or state is left.
	for _, e := range ecss {
		for i := 0; i < perECS; i++ {
			docker(t, e, "rm", "-f", fmt.Sprintf("cauto%d", i))
			docker(t, e, "network", "rm", fmt.Sprintf("auto%d", i))
		}
	}
	if left := cloudbed.AddedRoutes(before, env.CustomRoutes()); len(left) != 0 {
		t.Errorf("after removal the route table keeps %+v", left)
	}
	for _, e := range ecss {
		rules := vpcrouteRules(t, e)
		for s := range subnets {
			if strings.Contains(rules, s.String()) {
				t.Errorf("%s: rules for removed subnet %s remain:\n%s", e.Name, s, rules)
			}
		}
		if links, _ := e.Exec(ctxT(t), "ip", "-o", "link", "show", "type", "bridge"); strings.Contains(links, "vr-") {
			t.Errorf("%s: bridges remain:\n%s", e.Name, links)
		}
	}
}

// vpcrouteRules returns the ECS's iptables rules that are vpcroute's, sorted
// as iptables-save prints them.
func vpcrouteRules(t *testing.T, e *testbed.ECS) string {
	t.Helper()
	out, err := e.Exec(ctxT(t), "iptables-save")
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		// vpcroute's rules: marked, or in (or into) one of its chains, whose
		// names say whose a rule is where it carries no comment.
		if (strings.Contains(l, "vpcroute") || strings.Contains(l, "VPCROUTE-")) && strings.HasPrefix(l, "-A") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestUserErrors: the errors a user meets on a real VPC, each saying what to do.
func TestUserErrors(t *testing.T) {
	env := startCloud(t, "vre", cloudbed.Options{
		RouteQuota:    3,
		Routes:        []sim.Route{{Type: "peering", Destination: "172.31.0.0/16", NextHop: "peering-0001", Description: "peering to shared services"}},
		SrcDstCheckOn: []string{"ecs2"},
	})
	ecs1, ecs2 := ecsOf(t, env, "ecs1"), ecsOf(t, env, "ecs2")

	t.Run("subnet routed to the other ECS", func(t *testing.T) {
		docker(t, ecs1, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "--subnet", "10.0.2.0/24", "n1")
		defer docker(t, ecs1, "network", "rm", "n1")
		out, err := dockerErr(t, ecs2, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "--subnet", "10.0.2.0/24", "n1")
		if err == nil {
			t.Fatalf("ECS 2 got ECS 1's subnet: %s", out)
		}
		if !strings.Contains(err.Error(), cloudbed.InstanceID("ecs1")) || !strings.Contains(err.Error(), "--subnet") {
			t.Errorf("error %q does not name ECS 1's instance and what to do", err)
		}
		// Automatic allocation on ECS 2 simply skips it.
		docker(t, ecs2, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "n2")
		if s := subnetOf(t, ecs2, "n2"); s.String() == "10.0.2.0/24" {
			t.Errorf("automatic subnet on ECS 2 is ECS 1's %s", s)
		}
		docker(t, ecs2, "network", "rm", "n2")
	})

	t.Run("route table full", func(t *testing.T) {
		// Quota 3: the peering route plus two networks fill it.
		docker(t, ecs1, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "f1")
		defer docker(t, ecs1, "network", "rm", "f1")
		docker(t, ecs1, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "f2")
		defer docker(t, ecs1, "network", "rm", "f2")
		out, err := dockerErr(t, ecs1, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "f3")
		if err == nil {
			t.Fatalf("a network was created in a full route table: %s", out)
		}
		for _, want := range []string{"3", "quota", "VPCROUTE_ROUTE_TABLE_ID"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("full table error %q does not mention %q", err, want)
			}
		}
		if links, _ := ecs1.Exec(ctxT(t), "ip", "-o", "link", "show", "type", "bridge"); strings.Count(links, "vr-") != 2 {
			t.Errorf("failed create left a bridge or lost one:\n%s", links)
		}
	})

	t.Run("source/destination check on", func(t *testing.T) {
		logs := env.Plugins["ecs2"].Logs()
		if !strings.Contains(logs, "source/destination check") {
			t.Errorf("plugin on ECS 2 (check on) did not warn at start:\n%s", logs)
		}
		docker(t, ecs2, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "sd")
		defer docker(t, ecs2, "network", "rm", "sd")
		if !strings.Contains(env.Plugins["ecs2"].Logs()[len(logs):], "VPCROUTE_SRC_DST_CHECK=disable") {
			t.Errorf("network create on ECS 2 did not say how to turn the check off")
		}
	})

	t.Run("wrong credentials", func(t *testing.T) {
		// The plugin serves anyway, and Docker's own error says what to fix.
		p, err := ecs1.StartPlugin(vpcrouteBin, append(env.PluginEnv("ecs1"),
			"HUAWEICLOUD_SDK_AK="+cloudbed.AK, "HUAWEICLOUD_SDK_SK=wrong-secret-key-0123456789",
			"VPCROUTE_SOCKET=/run/docker/plugins/vpcroute-bad.sock", "VPCROUTE_STATE_DIR=/tmp/vpcroute-bad-creds"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Stop(); _ = os.RemoveAll("/tmp/vpcroute-bad-creds") })
		if err := ecs1.WaitPlugin(ctxT(t), "vpcroute-bad"); err != nil {
			t.Fatal(err)
		}
		out, err := dockerErr(t, ecs1, "network", "create", "-d", "vpcroute-bad", "--ipam-driver", "vpcroute-bad", "bad-creds")
		if err == nil {
			t.Fatalf("a network was created with a wrong SK: %s", out)
		}
		if !strings.Contains(err.Error(), "HUAWEICLOUD_SDK_SK") || strings.Contains(err.Error(), "wrong-secret-key") {
			t.Errorf("docker network create with a wrong SK: want an error naming HUAWEICLOUD_SDK_SK and never the key itself: %v", err)
		}
		if !p.Running() {
			t.Errorf("the plugin exited on a wrong SK; it must serve and say what to fix:\n%s", p.Logs())
		}
		if strings.Contains(p.Logs(), "wrong-secret-key") {
			t.Errorf("the plugin logged the secret key:\n%s", p.Logs())
		}
	})
}

//go:build linux

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// composeBin is Debian's docker-compose: 1.29 on Debian 12, Compose v2 in the Debian
// 13 root of the second release's run (VPCROUTE_BED_ROOT), where it runs inside the ECS.
const composeBin = "/usr/bin/docker-compose"

// composeCmd is docker-compose on examples/docker-compose.yml against an ECS's engine.
func composeCmd(ctx context.Context, e *testbed.ECS, project string, args ...string) *exec.Cmd {
	// Absolute: in an ECS's namespaces (a Debian 13 root) the command runs from /.
	file, _ := filepath.Abs("../../examples/docker-compose.yml")
	argv := append([]string{composeBin, "-f", file, "-p", project}, args...)
	cmd := e.Command(ctx, argv...)
	cmd.Env = append(cmd.Env, "DOCKER_HOST="+e.DockerHost, "COMPOSE_INTERACTIVE_NO_CLI=1")
	return cmd
}

// compose runs docker-compose on examples/docker-compose.yml against an ECS's engine.
func compose(t *testing.T, e *testbed.ECS, project string, args ...string) string {
	t.Helper()
	out, err := composeCmd(ctxT(t), e, project, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose %s on %s: %v\n%s", strings.Join(args, " "), e.Name, err, out)
	}
	return string(out)
}

// serviceContainer returns the ID of a Compose service's container.
func serviceContainer(t *testing.T, e *testbed.ECS, project, service string) string {
	t.Helper()
	id := docker(t, e, "ps", "-q",
		"--filter", "label=com.docker.compose.project="+project,
		"--filter", "label=com.docker.compose.service="+service)
	if id == "" || strings.Contains(id, "\n") {
		t.Fatalf("service %s of project %s: containers %q; want one", service, project, id)
	}
	return id
}

// TestCompose brings examples/docker-compose.yml up, as written, on ECS 1 with the
// managed plugin and Debian's docker-compose: its networks become routed VPC subnets,
// its services find each other by name, a container on ECS 2 reaches the web service
// across hosts, and `down` returns the routes.
func TestCompose(t *testing.T) {
	needBed(t)
	if _, err := os.Stat(filepath.Join(os.Getenv(testbed.RootEnv), composeBin)); err != nil {
		t.Skipf("needs Debian's docker-compose (apt-get install docker-compose): %v", err)
	}
	env, ecs1, ecs2 := managedBed(t, cloudbed.Options{Bed: testbed.Config{Prefix: bedPrefix("vrc")}})
	// The file names busybox:latest, which no registry serves here: the bed's busybox
	// image stands in.
	docker(t, ecs1, "tag", testbed.ImageName, "busybox:latest")
	const project = "shop"
	before := env.CustomRoutes()

	compose(t, ecs1, project, "up", "-d")
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := composeCmd(context.Background(), ecs1, project, "logs", "--no-color").CombinedOutput()
			t.Logf("compose logs:\n%s", out)
		}
	})

	front := subnetOf(t, ecs1, project+"_front")
	if got := subnetOf(t, ecs1, project+"_data"); got.String() != "10.0.50.0/24" {
		t.Errorf("network %s_data has subnet %s; the file asks for 10.0.50.0/24", project, got)
	}
	for _, n := range []string{"front", "data"} {
		if d := docker(t, ecs1, "network", "inspect", "-f", "{{.Driver}} {{.IPAM.Driver}}", project+"_"+n); d != managedPlugin+" "+managedPlugin {
			t.Errorf("network %s_%s: drivers %q; want %s twice", project, n, d, managedPlugin)
		}
	}
	added := cloudbed.AddedRoutes(before, env.CustomRoutes())
	want := map[string]bool{front.String(): true, "10.0.50.0/24": true}
	if len(added) != len(want) {
		t.Errorf("up -d added %d routes; want %d (%v): %+v", len(added), len(want), want, added)
	}
	for _, r := range added {
		if !want[r.Destination] || r.NextHop != cloudbed.InstanceID("ecs1") || !strings.HasPrefix(r.Description, "vpcroute") {
			t.Errorf("route %+v: want one of %v to ECS 1 (%s), owned by vpcroute", r, want, cloudbed.InstanceID("ecs1"))
		}
	}

	// The client finds the web service by its Compose name.
	client := serviceContainer(t, ecs1, project, "client")
	out := docker(t, ecs1, append([]string{"exec", client}, testbed.HTTPGetCmd("web", 80)...)...)
	if !strings.Contains(out, "200 OK") || !strings.Contains(out, "web on") {
		t.Errorf("client -> http://web/: %q", out)
	}
	web := serviceContainer(t, ecs1, project, "web")
	if ip := containerIP(t, ecs1, web, project+"_data").String(); ip != "10.0.50.10" {
		t.Errorf("web on %s_data has address %s; the file fixes 10.0.50.10", project, ip)
	}

	// A container on ECS 2, on a vpcroute network there, reaches web across hosts by
	// its fixed address and the published port on ECS 1, and the client on the
	// automatic subnet. (web itself answers on the network holding its default route:
	// data; replies for front would leave through data's bridge.)
	docker(t, ecs2, "network", "create", "-d", managedPlugin, "--ipam-driver", managedPlugin, "remote")
	for _, target := range [][2]string{{"10.0.50.10", "80"}, {ecs1.IP.String(), "8080"}} {
		out := run(t, ecs2, "remote", testbed.HTTPGetCmd(target[0], atoi(target[1]))...)
		if !strings.Contains(out, "200 OK") || !strings.Contains(out, "web on") {
			t.Errorf("ECS 2 container -> http://%s:%s/: %q", target[0], target[1], out)
		}
	}
	clientIP := containerIP(t, ecs1, client, project+"_front").String()
	if !front.Contains(containerIP(t, ecs1, client, project+"_front")) {
		t.Errorf("client's address %s is not in %s_front (%s)", clientIP, project, front)
	}
	if out := run(t, ecs2, "remote", "ping", "-c", "1", "-W", "2", clientIP); !strings.Contains(out, "1 packets received") {
		t.Errorf("ECS 2 container -> ping %s (client on %s_front): %q", clientIP, project, out)
	}
	docker(t, ecs2, "network", "rm", "remote")

	compose(t, ecs1, project, "down")
	if nets := docker(t, ecs1, "network", "ls", "-q", "--filter", "name="+project+"_"); nets != "" {
		t.Errorf("after down, networks %q remain", nets)
	}
	if added := cloudbed.AddedRoutes(before, env.CustomRoutes()); len(added) != 0 {
		t.Errorf("after down the route table still has %+v", added)
	}
}

// The README shows the example's networks as the file has them.
func TestComposeExampleInREADME(t *testing.T) {
	file, err := os.ReadFile("../../examples/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(file), "networks:\n  #")
	if i < 0 {
		t.Fatal("examples/docker-compose.yml has no top-level networks block")
	}
	if !strings.Contains(string(readme), string(file[i:])) {
		t.Errorf("README.md does not show the networks of examples/docker-compose.yml as the file has them:\n%s", file[i:])
	}
}

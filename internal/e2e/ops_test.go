//go:build linux

package e2e

import (
	"flag"
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

var update = flag.Bool("update", false, "rewrite testdata/*.golden from what the plugin prints")

// vr runs the vpcroute command line on an ECS, as an operator there would: the same
// binary the host service runs (a managed plugin's is in its rootfs), finding the
// plugin's socket itself. It returns standard output, and the error with standard
// error when the exit status is not 0.
func vr(t *testing.T, e *testbed.ECS, args ...string) (string, error) {
	t.Helper()
	return e.Exec(ctxT(t), append([]string{vpcrouteBin}, args...)...)
}

// Parts of the tools' output that change from run to run: IDs the emulator and
// Docker make up, times.
var unstable = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<uuid>"},
	{regexp.MustCompile(`vr-[0-9a-f]{12}`), "vr-<id>"},
	{regexp.MustCompile(`\b[0-9a-f]{12}\b`), "<id>"},
	{regexp.MustCompile(`\b\d+(\.\d+)?(ms|s|m)( ago| off)`), "<t>$3"},
	{regexp.MustCompile(`request ID [0-9a-f]+`), "request ID <id>"},
}

// goldenOutput compares the tools' output, with what changes from run to run
// replaced, to testdata/NAME.golden (go test ./internal/e2e -run ... -update
// rewrites it).
func goldenOutput(t *testing.T, name, out string) {
	t.Helper()
	if os.Getenv("VPCROUTE_E2E_SHOW") != "" {
		t.Logf("%s:\n%s", name, out)
	}
	// What the loop's last cycle did depends on when it ran: it is checked apart.
	if i := strings.Index(out, "\nlast reconcile cycle"); i >= 0 {
		out = out[:i+1]
	}
	for _, u := range unstable {
		out = u.re.ReplaceAllString(out, u.with)
	}
	// Column widths follow the IDs' lengths: compare words, not spaces.
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	out = strings.Join(lines, "\n") + "\n"
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if out != string(want) {
		t.Errorf("output differs from %s (if intended, run the test with -update):\n--- got\n%s--- want\n%s", path, out, want)
	}
}

// TestOperatorsTools is Day 2 on the host service: status and doctor on a host with
// a drifted route and a stale one, gc listing and then removing them, the cloud
// coming late at boot, and uninstall leaving nothing.
func TestOperatorsTools(t *testing.T) {
	needBed(t)
	// Slow cycles: the drift made below must still be there when the tools look.
	env, err := cloudbed.Start(ctxT(t), cloudbed.Options{Bed: testbed.Config{Prefix: bedPrefix("vro")}, Plugin: vpcrouteBin,
		Env: []string{"VPCROUTE_CLOUD_INTERVAL=1h", "VPCROUTE_ORPHAN_GRACE=1h"}})
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
	docker(t, ecs1, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "--subnet", "10.0.2.0/24", "web")
	docker(t, ecs1, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "--subnet", "10.0.3.0/24", "shop")
	docker(t, ecs1, "run", "-d", "--name", "web1", "--net", "web", "-p", "8080:80", testbed.ImageName)
	docker(t, ecs2, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "--subnet", "10.0.4.0/24", "app")
	docker(t, ecs2, "run", "-d", "--name", "app1", "--net", "app", testbed.ImageName)
	// Let the loop learn the names from Docker's list.
	waitFor(ctxT(t), cycleWait, func() bool {
		out, _ := vr(t, ecs1, "status")
		return strings.Contains(out, "web ") && strings.Contains(out, "shop ")
	})

	drift(t, env, "10.0.3.0/24")

	t.Run("help starts nothing", func(t *testing.T) {
		sockets := func() string {
			out, _ := ecs1.Exec(ctxT(t), "ls", "-R", "/run/docker/plugins")
			return out
		}
		_, stateErr := os.Stat("/var/lib/vpcroute")
		before := sockets()
		for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"help", "gc"}, {"status", "--help"}, {"doctor", "-h"},
			{"gc", "--help"}, {"uninstall", "--help"}, {"serve", "--help"}, {"version"}} {
			out, err := vr(t, ecs1, args...)
			if err != nil || !strings.Contains(out, "vpcroute") {
				t.Errorf("vpcroute %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		if after := sockets(); after != before {
			t.Errorf("--help changed /run/docker/plugins:\n%s\nwas:\n%s", after, before)
		}
		if _, err := os.Stat("/var/lib/vpcroute"); (err == nil) != (stateErr == nil) {
			t.Errorf("--help created or removed /var/lib/vpcroute (%v, was %v)", err, stateErr)
		}
		docker(t, ecs1, "network", "ls") // the plugin still serves
	})

	t.Run("status and doctor", func(t *testing.T) {
		out, err := vr(t, ecs1, "status")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "\nlast reconcile cycle ") {
			t.Errorf("status does not say what the last cycle did:\n%s", out)
		}
		goldenOutput(t, "status-host", out)
		out, err = vr(t, ecs1, "doctor")
		if err == nil {
			t.Error("doctor found the drifted route but exited 0")
		}
		goldenOutput(t, "doctor-host", out)
		js, err := vr(t, ecs1, "status", "--json")
		if err != nil || !strings.Contains(js, `"name":"web"`) {
			t.Errorf("status --json: %v %s", err, js)
		}
	})

	t.Run("gc", func(t *testing.T) {
		out, err := vr(t, ecs1, "gc")
		if err != nil {
			t.Fatal(err)
		}
		goldenOutput(t, "gc-host", out)
		if _, ok := hasRoute(env, "10.0.9.0/24"); !ok {
			t.Fatal("gc without --apply removed the stale route")
		}
		if out, err := vr(t, ecs1, "gc", "--apply"); err != nil {
			t.Fatalf("gc --apply: %v\n%s", err, out)
		}
		if _, ok := hasRoute(env, "10.0.9.0/24"); ok {
			t.Error("gc --apply left the stale route")
		}
		if r, _ := hasRoute(env, "10.0.3.0/24"); !strings.Contains(r.Description, "net=shop") {
			t.Errorf("shop's route after gc --apply = %+v; want vpcroute's own, naming the network", r)
		}
		out, err = vr(t, ecs1, "doctor")
		if err != nil {
			t.Errorf("doctor after gc --apply still fails:\n%s", out)
		}
		goldenOutput(t, "doctor-host-after-gc", out)
	})

	t.Run("cloud late at boot", func(t *testing.T) {
		// ECS 2 restarts while the metadata service does not answer (an ECS at boot).
		if err := env.Plugins["ecs2"].Stop(); err != nil {
			t.Fatal(err)
		}
		block := []string{"iptables", "-I", "OUTPUT", "-d", testbed.MetadataIP, "-j", "DROP"}
		if _, err := ecs2.Exec(ctxT(t), block...); err != nil {
			t.Fatal(err)
		}
		blocked := time.Now()
		if err := env.Plugins["ecs2"].Restart(); err != nil {
			t.Fatal(err)
		}
		if err := ecs2.WaitPlugin(ctxT(t), "vpcroute"); err != nil {
			t.Fatal(err)
		}
		app1 := containerIP(t, ecs2, "app1", "app").String()
		out, err := dockerErr(t, ecs1, "exec", "web1", "ping", "-c", "10", "-i", "0.3", "-W", "1", app1)
		if err != nil || !strings.Contains(out, "10 packets received") {
			t.Errorf("ECS 2's container lost traffic while its plugin waits for the cloud: %v\n%s", err, out)
		}
		if out, err := dockerErr(t, ecs2, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "late"); err == nil {
			t.Errorf("a network was created without the cloud: %s", out)
		} else if !strings.Contains(err.Error(), "not reachable yet") || !strings.Contains(err.Error(), "169.254.169.254") {
			t.Errorf("create without the cloud: %v; want why, naming the metadata service", err)
		}
		time.Sleep(time.Until(blocked.Add(20 * time.Second)))
		unblock := append([]string{"iptables", "-D"}, block[2:]...)
		if _, err := ecs2.Exec(ctxT(t), unblock...); err != nil {
			t.Fatal(err)
		}
		if !waitFor(ctxT(t), time.Minute, func() bool {
			_, err := dockerErr(t, ecs2, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "late")
			return err == nil
		}) {
			t.Fatalf("the plugin did not come up by itself once the metadata service answered:\n%s", env.Plugins["ecs2"].Logs())
		}
		docker(t, ecs2, "network", "rm", "late")
	})

	t.Run("uninstall", func(t *testing.T) {
		out, err := vr(t, ecs1, "uninstall", "--apply")
		if err == nil || !strings.Contains(err.Error(), "docker network rm shop web") {
			t.Fatalf("uninstall with networks left: %v\n%s", err, out)
		}
		docker(t, ecs1, "rm", "-f", "web1")
		docker(t, ecs1, "network", "rm", "web", "shop")
		out, err = vr(t, ecs1, "uninstall")
		if err != nil {
			t.Fatal(err)
		}
		goldenOutput(t, "uninstall-host", out)
		if out, err := vr(t, ecs1, "uninstall", "--apply"); err != nil {
			t.Fatalf("uninstall --apply: %v\n%s", err, out)
		}
		links, _ := ecs1.Exec(ctxT(t), "ip", "-d", "link")
		rules, _ := ecs1.Exec(ctxT(t), "iptables-save")
		if strings.Contains(links, "vpcroute:") || strings.Contains(rules, "vpcroute") || strings.Contains(rules, "VPCROUTE") {
			t.Errorf("left after uninstall:\n%s\n%s", grep(links, "vpcroute"), grep(rules, "vpcroute", "VPCROUTE"))
		}
		for _, r := range env.CustomRoutes() {
			if r.NextHop == cloudbed.InstanceID("ecs1") && strings.HasPrefix(r.Description, "vpcroute") {
				t.Errorf("route left after uninstall: %+v", r)
			}
		}
		if _, err := os.Stat(filepath.Join(ecs1.Dir, "vpcroute", "vpcroute.db")); !os.IsNotExist(err) {
			t.Errorf("state file left after uninstall: %v", err)
		}
		_, err = dockerErr(t, ecs1, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "after")
		if err == nil || !strings.Contains(err.Error(), "uninstalled") {
			t.Errorf("docker network create after uninstall: %v; want it refused, saying vpcroute was uninstalled", err)
		}
		// ECS 2's networks are untouched.
		if out := docker(t, ecs2, "exec", "app1", "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(out, "10.0.4.") {
			t.Errorf("ECS 2's container lost its address: %s", out)
		}
		if _, ok := hasRoute(env, "10.0.4.0/24"); !ok {
			t.Error("ECS 2's route went with ECS 1's uninstall")
		}
	})
}

// drift makes two mistakes in the console, as people make them: the route of
// subnet (ECS 1's) edited to another owner, and a vpcroute route 10.0.9.0/24 to
// ECS 1 that no network has.
func drift(t *testing.T, env *cloudbed.Env, subnet string) {
	t.Helper()
	if err := env.Sim.ConsoleDeleteRoute(subnet); err != nil {
		t.Fatal(err)
	}
	for _, r := range []sim.Route{
		{Type: "ecs", Destination: subnet, NextHop: cloudbed.InstanceID("ecs1"), Description: "vpcroute owner=vr-edited000000 host=ecs1"},
		{Type: "ecs", Destination: "10.0.9.0/24", NextHop: cloudbed.InstanceID("ecs1"), Description: "vpcroute owner=vr-stale0000000 host=ecs1"},
	} {
		if err := env.Sim.ConsoleAddRoute(r); err != nil {
			t.Fatal(err)
		}
	}
}

// grep returns the lines of s that hold any of words.
func grep(s string, words ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

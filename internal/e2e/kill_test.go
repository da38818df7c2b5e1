//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/killpoint"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// killRounds is how many times TestKillAtEveryStep goes through every step: once in
// `make test`, more in `make chaos`.
var killRounds = flag.Int("kill-rounds", 1, "rounds of TestKillAtEveryStep")

var (
	chaosBinOnce sync.Once
	chaosBin     string
	chaosBinErr  error
)

// chaosBinary builds vpcroute with the "chaos" tag: it stops at the step named in
// VPCROUTE_KILLPOINT_FILE, for the test to kill it there.
func chaosBinary(t *testing.T) string {
	t.Helper()
	chaosBinOnce.Do(func() {
		chaosBin = filepath.Join(filepath.Dir(vpcrouteBin), "vpcroute-chaos")
		build := exec.Command("go", "build", "-tags", "chaos", "-o", chaosBin, "github.com/vpcroute/vpcroute")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			chaosBinErr = fmt.Errorf("build vpcroute -tags chaos: %v\n%s", err, out)
		}
	})
	if chaosBinErr != nil {
		t.Fatal(chaosBinErr)
	}
	return chaosBin
}

// killCase is one step to kill the plugin at, in one IPAM mode.
type killCase struct {
	step     string
	vpcIPAM  bool // --ipam-driver vpcroute; else Docker's default IPAM with --subnet
	deleting bool // the kill lands in `docker network rm`
}

func killCases() []killCase {
	var out []killCase
	for _, vpcIPAM := range []bool{true, false} {
		for _, step := range killpoint.Create {
			if (step == killpoint.PoolRecorded || step == killpoint.PoolClaimed) && !vpcIPAM || step == killpoint.NetworkClaimed && vpcIPAM {
				continue
			}
			out = append(out, killCase{step: step, vpcIPAM: vpcIPAM})
		}
		for _, step := range killpoint.Delete {
			if (step == killpoint.PoolReleasing || step == killpoint.PoolReleased) && !vpcIPAM || step == killpoint.NetworkReleased && vpcIPAM {
				continue
			}
			out = append(out, killCase{step: step, vpcIPAM: vpcIPAM, deleting: true})
		}
	}
	return out
}

// TestKillAtEveryStep kills the plugin (kill -9) inside every step of a network's
// creation and removal, in both IPAM modes, restarts it, and checks what a user
// would: whatever `docker network create` or `rm` answered, once a cycle has run the
// VPC routes to this ECS, its bridges, its iptables rules and vpcroute's records are
// exactly those of Docker's networks, and a network Docker kept works (and can be
// removed). Issue 12.
func TestKillAtEveryStep(t *testing.T) {
	needBed(t)
	bin := chaosBinary(t)
	killFile := filepath.Join(t.TempDir(), "killpoint")
	env, err := cloudbed.Start(ctxT(t), cloudbed.Options{Bed: testbed.Config{Prefix: bedPrefix("vrk"), ECSCount: 1}, Plugin: bin,
		Env: append([]string{"VPCROUTE_KILLPOINT_FILE=" + killFile}, fastCycles...)})
	if err != nil {
		t.Fatalf("cloud bed: %v", err)
	}
	t.Cleanup(func() { _ = env.Close() })
	ecs := ecsOf(t, env, "ecs1")
	plugin := env.Plugins["ecs1"]
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plugin log:\n%s", plugin.Logs())
		}
	})

	landed := map[string]int{}
	var rows []string
	for round := 0; round < *killRounds; round++ {
		for i, kc := range killCases() {
			name := fmt.Sprintf("k%d", i)
			subnet := fmt.Sprintf("10.0.%d.0/24", 100+i)
			create := []string{"network", "create", "-d", "vpcroute", "--subnet", subnet, name}
			if kc.vpcIPAM {
				create = []string{"network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", name}
			}
			if kc.deleting {
				docker(t, ecs, create...)
			}
			if err := os.WriteFile(killFile, []byte(kc.step), 0o644); err != nil {
				t.Fatal(err)
			}
			before := strings.Count(plugin.Logs(), killpoint.Reached(kc.step))
			cmd := create
			if kc.deleting {
				cmd = []string{"network", "rm", name}
			}
			done := make(chan error, 1)
			go func() {
				_, err := ecs.Docker(context.Background(), cmd...)
				done <- err
			}()
			if !waitFor(ctxT(t), 30*time.Second, func() bool {
				return strings.Count(plugin.Logs(), killpoint.Reached(kc.step)) > before
			}) {
				t.Fatalf("%s (ipam vpcroute %v): the plugin never reached the step", kc.step, kc.vpcIPAM)
			}
			if err := plugin.Kill9(); err != nil {
				t.Fatal(err)
			}
			landed[kc.step]++
			if err := plugin.Restart(); err != nil {
				t.Fatal(err)
			}
			if err := ecs.WaitPlugin(ctxT(t), "vpcroute"); err != nil {
				t.Fatal(err)
			}
			answer := "ok"
			if err := <-done; err != nil {
				answer = "refused"
			}
			start := time.Now()
			diffs := converge(t, env, ecs)
			if len(diffs) > 0 {
				t.Fatalf("kill -9 at %s (ipam vpcroute %v, docker %s): after %s:\n  %s", kc.step, kc.vpcIPAM, strings.Join(cmd, " "), cycleWait, strings.Join(diffs, "\n  "))
			}
			took := time.Since(start)
			// A network Docker kept is whole: it takes a container and goes cleanly.
			if _, err := dockerErr(t, ecs, "network", "inspect", name); err == nil {
				docker(t, ecs, "run", "--rm", "--net", name, testbed.ImageName, "true")
				docker(t, ecs, "network", "rm", name)
				if diffs := converge(t, env, ecs); len(diffs) > 0 {
					t.Fatalf("after removing %s (killed at %s):\n  %s", name, kc.step, strings.Join(diffs, "\n  "))
				}
			}
			if round == 0 {
				rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s |", kc.step, ipamName(kc.vpcIPAM), answer, took.Round(100*time.Millisecond)))
			}
		}
	}
	summary := fmt.Sprintf("%s: %d rounds, kills landed per step %v\n| step | IPAM | docker answered | in line after |\n|---|---|---|---|\n%s",
		t.Name(), *killRounds, landed, strings.Join(rows, "\n"))
	t.Log(summary)
	if path := os.Getenv("VPCROUTE_CHAOS_REPORT"); path != "" {
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(f, summary)
			f.Close()
		}
	}
}

func ipamName(vpc bool) string {
	if vpc {
		return "vpcroute"
	}
	return "default"
}

// converge waits up to cycleWait for the inventory to agree and returns what still
// differs.
func converge(t *testing.T, env *cloudbed.Env, ecs *testbed.ECS) []string {
	t.Helper()
	var diffs []string
	waitFor(ctxT(t), cycleWait, func() bool {
		diffs = inventory(t, env, ecs)
		return len(diffs) == 0
	})
	return diffs
}

var ruleOwner = regexp.MustCompile(`vpcroute:([0-9a-f]{12,64})`)

// inventory compares Docker's vpcroute networks on ecs with the VPC routes to it, its
// vpcroute bridges and rules, and vpcroute's records (`vpcroute status --json`).
func inventory(t *testing.T, env *cloudbed.Env, ecs *testbed.ECS) []string {
	t.Helper()
	var diffs []string
	ids, err := ecs.Docker(ctxT(t), "network", "ls", "-q", "--no-trunc", "--filter", "driver=vpcroute")
	if err != nil {
		return []string{"docker network ls: " + err.Error()}
	}
	docker := map[string]string{} // ID -> subnet
	for _, id := range strings.Fields(ids) {
		s, err := ecs.Docker(ctxT(t), "network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", id)
		if err != nil {
			return []string{"docker network inspect: " + err.Error()}
		}
		docker[id] = strings.TrimSpace(s)
	}
	subnets := map[string]bool{}
	for _, s := range docker {
		subnets[s] = true
	}
	for _, r := range env.CustomRoutes() {
		if r.NextHop != cloudbed.InstanceID(ecs.Name) {
			continue
		}
		if !subnets[r.Destination] {
			diffs = append(diffs, fmt.Sprintf("route %s (%s) of no network of Docker's", r.Destination, r.Description))
		}
		delete(subnets, r.Destination)
	}
	for s := range subnets {
		diffs = append(diffs, "no route for Docker's network on "+s)
	}

	links, err := ecs.Exec(ctxT(t), "ip", "-br", "link", "show", "type", "bridge")
	if err != nil {
		t.Fatal(err)
	}
	var bridges []string
	for _, l := range strings.Split(links, "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "vr-") {
			bridges = append(bridges, f[0])
		}
	}
	rules, err := ecs.Exec(ctxT(t), "iptables-save")
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]bool{}
	for _, m := range ruleOwner.FindAllStringSubmatch(rules, -1) {
		owners[m[1][:12]] = true
	}
	for id := range docker {
		if !slices.Contains(bridges, "vr-"+id[:12]) {
			diffs = append(diffs, "no bridge for Docker's network "+id[:12])
		}
		if !owners[id[:12]] {
			diffs = append(diffs, "no rules for Docker's network "+id[:12])
		}
		bridges = slices.DeleteFunc(bridges, func(b string) bool { return b == "vr-"+id[:12] })
		delete(owners, id[:12])
	}
	for _, b := range bridges {
		diffs = append(diffs, "bridge "+b+" of no network of Docker's")
	}
	for o := range owners {
		diffs = append(diffs, "iptables rules of network "+o+" that Docker does not have")
	}

	js, err := vr(t, ecs, "status", "--json")
	if err != nil {
		return append(diffs, "vpcroute status: "+err.Error())
	}
	var st struct {
		Networks []struct{ ID, State string } `json:"networks"`
		Unowned  []json.RawMessage            `json:"unowned_routes"`
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, js)
	}
	for _, n := range st.Networks {
		if _, ok := docker[n.ID]; !ok {
			diffs = append(diffs, fmt.Sprintf("record of network %s (%s) that Docker does not have", n.ID[:12], n.State))
		} else if n.State != "ready" {
			diffs = append(diffs, fmt.Sprintf("network %s is %s", n.ID[:12], n.State))
		}
		delete(docker, n.ID)
	}
	for id := range docker {
		diffs = append(diffs, "no record of Docker's network "+id[:12])
	}
	if len(st.Unowned) > 0 {
		diffs = append(diffs, fmt.Sprintf("%d unowned routes", len(st.Unowned)))
	}
	return diffs
}

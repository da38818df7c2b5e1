//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/vpcroute/vpcroute/config"
	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// managedPlugin is the name a managed plugin is addressed by: with a tag, since plain
// "vpcroute" would look for a host-service socket.
const managedPlugin = cloudbed.ManagedPlugin

// pluginConfig is the part of plugin/config.json the tests read.
type pluginConfig struct {
	Entrypoint []string `json:"entrypoint"`
	Interface  struct {
		Types  []string `json:"types"`
		Socket string   `json:"socket"`
	} `json:"interface"`
	Network struct {
		Type string `json:"type"`
	} `json:"network"`
	Linux struct {
		Capabilities []string `json:"capabilities"`
	} `json:"linux"`
	Mounts []struct {
		Name, Source, Destination, Type string
		Options, Settable               []string
	} `json:"mounts"`
	Env []struct {
		Name, Value string
		Settable    []string
	} `json:"env"`
}

func readPluginConfig(t *testing.T) pluginConfig {
	t.Helper()
	b, err := os.ReadFile("../../plugin/config.json")
	if err != nil {
		t.Fatal(err)
	}
	var c pluginConfig
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("plugin/config.json: %v", err)
	}
	return c
}

// TestPluginConfigSettings keeps plugin/config.json in step with package config: every
// setting vpcroute reads can be changed with `docker plugin set`, with the same default
// as the host service, and nothing else is declared.
func TestPluginConfigSettings(t *testing.T) {
	c := readPluginConfig(t)
	want := map[string]string{
		"HUAWEICLOUD_SDK_AK":             "",
		"HUAWEICLOUD_SDK_SK":             "",
		"HUAWEICLOUD_SDK_SECURITY_TOKEN": "",
	}
	packaging := map[string]bool{}
	for _, s := range config.All() {
		want[s.Name] = s.Default
		if s.PluginDefault != "" {
			want[s.Name] = s.PluginDefault
		}
		packaging[s.Name] = s.Packaging
	}
	got := map[string]bool{}
	for _, e := range c.Env {
		if got[e.Name] {
			t.Errorf("plugin/config.json declares %s twice", e.Name)
		}
		got[e.Name] = true
		def, ok := want[e.Name]
		switch {
		case !ok:
			t.Errorf("plugin/config.json declares %s, which vpcroute does not read (config.All)", e.Name)
		case e.Value != def:
			t.Errorf("plugin/config.json: %s=%q; the host service's default is %q", e.Name, e.Value, def)
		}
		switch {
		case packaging[e.Name] && len(e.Settable) != 0:
			t.Errorf("plugin/config.json: %s belongs to the packaging but is settable (%v)", e.Name, e.Settable)
		case !packaging[e.Name] && (len(e.Settable) != 1 || e.Settable[0] != "value"):
			t.Errorf("plugin/config.json: %s is not settable (settable %v; want [value])", e.Name, e.Settable)
		}
	}
	for name := range want {
		if !got[name] {
			t.Errorf("plugin/config.json lacks setting %s: `docker plugin set` cannot change it", name)
		}
	}

	// The rest of the file as the managed-plugin test proved it must be.
	if c.Network.Type != "host" {
		t.Errorf("network type %q: the plugin must run in the host's network namespace", c.Network.Type)
	}
	if c.Interface.Socket != "vpcroute.sock" || filepath.Base(config.All()[socketIndex(t)].Default) != c.Interface.Socket {
		t.Errorf("interface socket %q does not match VPCROUTE_SOCKET's default", c.Interface.Socket)
	}
	sort.Strings(c.Interface.Types)
	if strings.Join(c.Interface.Types, " ") != "docker.ipamdriver/1.0 docker.networkdriver/1.0" {
		t.Errorf("interface types %v: want the network and IPAM driver", c.Interface.Types)
	}
	mounts := map[string]string{}
	for _, m := range c.Mounts {
		mounts[m.Destination] = m.Source
	}
	for dst, src := range map[string]string{
		"/var/lib/vpcroute":  "/var/lib/vpcroute",
		"/run/xtables.lock":  "/run/xtables.lock",
		"/host/proc/sys/net": "/proc/sys/net",
		"/run/docker.sock":   "/run/docker.sock",
	} {
		if mounts[dst] != src {
			t.Errorf("mount at %s has source %q; want %q", dst, mounts[dst], src)
		}
	}
}

func socketIndex(t *testing.T) int {
	for i, s := range config.All() {
		if s.Name == "VPCROUTE_SOCKET" {
			return i
		}
	}
	t.Fatal("config.All has no VPCROUTE_SOCKET")
	return 0
}

// buildPluginDir runs scripts/plugin-rootfs.sh for the test's vpcroute binary and
// returns the plugin directory (config.json + rootfs).
func buildPluginDir(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/xtables-nft-multi", "/usr/sbin/xtables-legacy-multi"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs Debian's iptables for the plugin rootfs (apt-get install iptables): %v", err)
		}
	}
	dir := filepath.Join(t.TempDir(), "plugin")
	cmd := exec.Command("../../scripts/plugin-rootfs.sh", dir)
	cmd.Env = append(os.Environ(), "VPCROUTE_BIN="+vpcrouteBin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/plugin-rootfs.sh: %v\n%s", err, out)
	}
	return dir
}

// managedBed is a two-ECS bed with the emulated cloud and the managed plugin installed
// on both engines (no host service).
func managedBed(t *testing.T, opts cloudbed.Options) (env *cloudbed.Env, ecs1, ecs2 *testbed.ECS) {
	t.Helper()
	needBed(t)
	dir := buildPluginDir(t)
	env, err := cloudbed.Start(ctxT(t), opts)
	if err != nil {
		t.Fatalf("cloud bed: %v", err)
	}
	t.Cleanup(func() { _ = env.Close() })
	ecs1, ecs2 = ecsOf(t, env, "ecs1"), ecsOf(t, env, "ecs2")
	for _, e := range []*testbed.ECS{ecs1, ecs2} {
		installPlugin(t, env, e, dir)
	}
	return env, ecs1, ecs2
}

// installPlugin installs the managed plugin on an ECS's engine the way a user would
// (cloudbed.InstallManagedPlugin), and shows its log if the test fails.
func installPlugin(t *testing.T, env *cloudbed.Env, e *testbed.ECS, dir string) {
	t.Helper()
	if err := env.InstallManagedPlugin(ctxT(t), e, dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("managed plugin log on %s:\n%s", e.Name, managedPluginLog(t, e))
		}
	})
}

// managedPluginLog returns what the managed plugin printed: dockerd logs a plugin's
// output as its own lines tagged plugin=<ID>.
func managedPluginLog(t *testing.T, e *testbed.ECS) string {
	id, err := e.Docker(context.Background(), "plugin", "inspect", "-f", "{{.Id}}", managedPlugin)
	if err != nil {
		return fmt.Sprintf("(plugin inspect: %v)", err)
	}
	b, err := os.ReadFile(filepath.Join(e.Dir, "dockerd.log"))
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "plugin="+id) || strings.Contains(l, id) && strings.Contains(l, "level=error") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestManagedPlugin is the guide's scenario with vpcroute installed as Docker's managed
// plugin (built offline by scripts/plugin-rootfs.sh from plugin/config.json) instead of
// a host service: what `docker plugin install` users get.
func TestManagedPlugin(t *testing.T) {
	env, ecs1, ecs2 := managedBed(t, cloudbed.Options{Bed: testbed.Config{Prefix: bedPrefix("vrp")}, Env: fastCycles})
	before := env.CustomRoutes()

	// ECS 1 asks for the guide's subnet, ECS 2 lets vpcroute pick one.
	docker(t, ecs1, "network", "create", "-d", managedPlugin, "--ipam-driver", managedPlugin, "--subnet", "10.0.2.0/24", "my-net")
	docker(t, ecs2, "network", "create", "-d", managedPlugin, "--ipam-driver", managedPlugin, "my-net")
	remoteSubnet := subnetOf(t, ecs2, "my-net")
	for _, e := range []*testbed.ECS{ecs1, ecs2} {
		docker(t, e, "run", "-d", "--name", "nginx", "--net", "my-net", "-p", "8080:80", testbed.ImageName)
	}
	remote := containerIP(t, ecs2, "nginx", "my-net").String()

	out := docker(t, ecs1, "exec", "nginx", "ping", "-c", "3", "-W", "2", remote)
	if !strings.Contains(out, "3 packets received") || !strings.Contains(out, "ttl=62") {
		t.Errorf("ping %s from ECS 1's container: want 3 replies with ttl=62:\n%s", remote, out)
	}
	httpOK := func(when string) {
		t.Helper()
		for _, target := range [][2]string{{remote, "80"}, {ecs2.IP.String(), "8080"}} {
			out, err := dockerErr(t, ecs1, append([]string{"exec", "nginx"}, testbed.HTTPGetCmd(target[0], atoi(target[1]))...)...)
			if err != nil || !strings.Contains(out, "200 OK") || !strings.Contains(out, "ecs2") {
				t.Errorf("%s: HTTP GET %s:%s from ECS 1's container: %v %q", when, target[0], target[1], err, out)
			}
		}
	}
	httpOK("plugin enabled")

	// The operators' tools find the managed plugin's socket themselves.
	t.Run("status and doctor", func(t *testing.T) {
		if !waitFor(ctxT(t), cycleWait, func() bool {
			out, _ := vr(t, ecs1, "status")
			return strings.Contains(out, "my-net ")
		}) {
			out, err := vr(t, ecs1, "status")
			t.Fatalf("status of the managed plugin: %v\n%s", err, out)
		}
		out, _ := vr(t, ecs1, "status")
		goldenOutput(t, "status-managed", out)
		out, err := vr(t, ecs1, "doctor")
		if err != nil {
			t.Errorf("doctor on a healthy ECS failed: %v", err)
		}
		goldenOutput(t, "doctor-managed", out)
		// dockerd keeps the plugin's levels: info lines at info, not error.
		logs := managedPluginLog(t, ecs1)
		if !regexp.MustCompile(`level=info msg=".*level=INFO msg=ready`).MatchString(logs) {
			t.Errorf("dockerd does not log the plugin's info lines at level info:\n%s", logs)
		}
		if regexp.MustCompile(`level=error msg=".*level=INFO`).MatchString(logs) {
			t.Errorf("dockerd logs some of the plugin's info lines as errors:\n%s", logs)
		}
		// A drifted route (edited in the console) and a stale one: the managed
		// plugin's gc puts them right as the host service's does.
		drift(t, env, "10.0.2.0/24")
		out, _ = vr(t, ecs1, "status")
		goldenOutput(t, "status-managed-drift", out)
		out, _ = vr(t, ecs1, "gc")
		goldenOutput(t, "gc-managed", out)
		if out, err := vr(t, ecs1, "gc", "--apply"); err != nil {
			t.Fatalf("gc --apply: %v\n%s", err, out)
		}
		if _, ok := hasRoute(env, "10.0.9.0/24"); ok {
			t.Error("gc --apply left the stale route")
		}
		if r, _ := hasRoute(env, "10.0.2.0/24"); !strings.Contains(r.Description, "net=my-net") {
			t.Errorf("my-net's route after gc --apply = %+v; want vpcroute's own", r)
		}
		httpOK("after gc --apply")
	})

	added := cloudbed.AddedRoutes(before, env.CustomRoutes())
	want := map[string]string{"10.0.2.0/24": cloudbed.InstanceID("ecs1"), remoteSubnet.String(): cloudbed.InstanceID("ecs2")}
	if len(added) != 2 {
		t.Errorf("route table gained %d routes; want exactly 2 (%v): %+v", len(added), want, added)
	}
	for _, r := range added {
		if want[r.Destination] != r.NextHop || r.Type != "ecs" || !strings.HasPrefix(r.Description, "vpcroute") {
			t.Errorf("route %+v: want type ecs, next hop %q, a vpcroute description", r, want[r.Destination])
		}
	}

	// Disabling the plugin (as an upgrade does) and enabling it again leaves running
	// containers' traffic alone: a ping runs across both.
	t.Run("disable and enable keep traffic", func(t *testing.T) {
		var wg sync.WaitGroup
		var pingOut string
		var pingErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			pingOut, pingErr = dockerErr(t, ecs1, "exec", "nginx", "ping", "-c", "30", "-i", "0.2", "-W", "1", remote)
		}()
		docker(t, ecs2, "plugin", "disable", "-f", managedPlugin)
		httpOK("plugin disabled on ECS 2")
		docker(t, ecs1, "plugin", "disable", "-f", managedPlugin)
		httpOK("plugin disabled on both ECSs")
		for _, e := range []*testbed.ECS{ecs1, ecs2} {
			docker(t, e, "plugin", "enable", managedPlugin)
		}
		wg.Wait()
		if pingErr != nil || !strings.Contains(pingOut, "30 packets received") {
			t.Errorf("ping across plugin disable/enable lost packets: %v\n%s", pingErr, pingOut)
		}
		httpOK("plugin enabled again")
		// The re-enabled plugin serves Docker again: a new container gets an address.
		out := run(t, ecs1, "my-net", "sh", "-c", "ping -c 1 -W 2 "+remote+" >/dev/null && echo reached")
		if !strings.Contains(out, "reached") {
			t.Errorf("a new container after re-enable cannot reach %s: %q", remote, out)
		}
		if got := cloudbed.AddedRoutes(before, env.CustomRoutes()); len(got) != 2 {
			t.Errorf("after disable/enable the table has %d vpcroute routes; want 2: %+v", len(got), got)
		}
	})

	// The state file is lost while the plugin is disabled (an uninstall wiped
	// /var/lib/vpcroute, a disk was replaced): running containers keep their
	// traffic, and once enabled the plugin rebuilds my-net from Docker's list.
	t.Run("state file lost", func(t *testing.T) {
		var wg sync.WaitGroup
		var pingOut string
		wg.Add(1)
		go func() {
			defer wg.Done()
			pingOut, _ = dockerErr(t, ecs2, "exec", "nginx", "ping", "-c", "30", "-i", "0.2", "-W", "1", containerIP(t, ecs1, "nginx", "my-net").String())
		}()
		docker(t, ecs1, "plugin", "disable", "-f", managedPlugin)
		state := filepath.Join(ecs1.Dir, "vpcroute")
		entries, _ := os.ReadDir(state)
		for _, f := range entries {
			if err := os.RemoveAll(filepath.Join(state, f.Name())); err != nil {
				t.Fatal(err)
			}
		}
		docker(t, ecs1, "plugin", "enable", managedPlugin)
		wg.Wait()
		if !strings.Contains(pingOut, "30 packets received") {
			t.Errorf("ping to ECS 1's container across the lost state file lost packets:\n%s", pingOut)
		}
		if !waitFor(ctxT(t), cycleWait, func() bool {
			out, err := dockerErr(t, ecs1, "run", "--rm", "--net", "my-net", testbed.ImageName, "ping", "-c", "1", "-W", "2", remote)
			return err == nil && strings.Contains(out, "1 packets received")
		}) {
			t.Fatalf("a new container on my-net cannot reach %s after the rebuild:\n%s", remote, managedPluginLog(t, ecs1))
		}
		httpOK("state file lost and rebuilt")
	})

	for _, e := range []*testbed.ECS{ecs1, ecs2} {
		docker(t, e, "rm", "-f", "nginx")
		docker(t, e, "network", "rm", "my-net")
	}

	// A bad setting: Docker enables the plugin anyway, and its own error says what to
	// fix; the networks that exist keep working.
	t.Run("bad setting", func(t *testing.T) {
		docker(t, ecs1, "plugin", "disable", "-f", managedPlugin)
		docker(t, ecs1, "plugin", "set", managedPlugin, "VPCROUTE_POOL=banana")
		docker(t, ecs1, "plugin", "enable", managedPlugin)
		out, err := dockerErr(t, ecs1, "network", "create", "-d", managedPlugin, "--ipam-driver", managedPlugin, "bad")
		if err == nil {
			t.Fatalf("a network was created with VPCROUTE_POOL=banana: %s", out)
		}
		for _, want := range []string{`VPCROUTE_POOL="banana"`, "IPv4 CIDR such as 10.0.0.0/8", "docker plugin set"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("docker network create with a bad setting: %v; want %q in it", err, want)
			}
		}
		if out, err := vr(t, ecs1, "status"); err == nil || !strings.Contains(err.Error(), "VPCROUTE_POOL") {
			t.Errorf("status with a bad setting: %v\n%s", err, out)
		}
		docker(t, ecs1, "plugin", "disable", "-f", managedPlugin)
		docker(t, ecs1, "plugin", "set", managedPlugin, "VPCROUTE_POOL=10.0.0.0/8")
		docker(t, ecs1, "plugin", "enable", managedPlugin)
		docker(t, ecs1, "network", "create", "-d", managedPlugin, "--ipam-driver", managedPlugin, "good")
		docker(t, ecs1, "network", "rm", "good")
	})

	// Docker removes a network while the plugin is disabled: it retries for a while,
	// then forgets it. Once enabled, vpcroute gives everything of it back.
	t.Run("network removed while disabled", func(t *testing.T) {
		docker(t, ecs1, "network", "create", "-d", managedPlugin, "--ipam-driver", managedPlugin, "--subnet", "10.0.3.0/24", "o3")
		id := networkID(t, ecs1, "o3")
		docker(t, ecs1, "plugin", "disable", "-f", managedPlugin)
		out, err := dockerErr(t, ecs1, "network", "rm", "o3")
		t.Logf("docker network rm o3 with the plugin disabled: %v %s", err, out)
		if _, err := dockerErr(t, ecs1, "network", "inspect", "o3"); err == nil {
			t.Fatal("Docker kept o3 while its plugin was disabled; the test assumes it forgets it")
		}
		docker(t, ecs1, "plugin", "enable", managedPlugin)
		if !waitFor(ctxT(t), cycleWait, func() bool {
			_, routed := hasRoute(env, "10.0.3.0/24")
			return !routed && len(leftovers(t, ecs1, id)) == 0
		}) {
			t.Fatalf("a cycle after enable: routes %v; on ECS 1 %q\n%s", vpcRoutes(env), leftovers(t, ecs1, id), managedPluginLog(t, ecs1))
		}
		docker(t, ecs1, "network", "create", "-d", managedPlugin, "--ipam-driver", managedPlugin, "--subnet", "10.0.3.0/24", "o3")
		docker(t, ecs1, "network", "rm", "o3")
	})
	if added := cloudbed.AddedRoutes(before, env.CustomRoutes()); len(added) != 0 {
		t.Errorf("after network rm the route table still has %+v", added)
	}
	// Nothing of the network is left on the host.
	for _, e := range []*testbed.ECS{ecs1, ecs2} {
		links, _ := e.Exec(ctxT(t), "ip", "-br", "link")
		if regexp.MustCompile(`(?m)^vr-`).MatchString(links) {
			t.Errorf("%s still has a vpcroute bridge after network rm:\n%s", e.Name, links)
		}
	}
}

//go:build linux

package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakePluginEnv makes the test binary act as a minimal host-service network plugin, so that
// StartPlugin can be tested with a real engine without building anything.
const fakePluginEnv = "TESTBED_FAKE_PLUGIN"

func TestMain(m *testing.M) {
	if name := os.Getenv(fakePluginEnv); name != "" {
		if err := serveFakePlugin(name); err != nil {
			fmt.Fprintln(os.Stderr, "fake plugin:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveFakePlugin answers Docker's remote network driver protocol just enough for
// `docker network create -d NAME` and `docker network rm` to succeed, logging each call.
func serveFakePlugin(name string) error {
	sock := filepath.Join(PluginsDir, name+".sock")
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	fmt.Println("listening on", sock)
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("call", r.URL.Path)
		w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1+json")
		switch r.URL.Path {
		case "/Plugin.Activate":
			_ = json.NewEncoder(w).Encode(map[string][]string{"Implements": {"NetworkDriver"}})
		case "/NetworkDriver.GetCapabilities":
			_ = json.NewEncoder(w).Encode(map[string]string{"Scope": "local"})
		default:
			_, _ = w.Write([]byte("{}"))
		}
	}))
}

// upForTest builds a bed under a prefix of its own (so a bed made with `vpcroute-bed up` is
// left alone), and checks at the end, after Down, that nothing of it is left on the machine.
func upForTest(t *testing.T, ecs int) *Bed {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and runs dockerd")
	}
	cfg := Config{Prefix: "vrt", ECSCount: ecs, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	bed, err := Up(ctx, cfg)
	if errors.Is(err, ErrMissingTool) {
		t.Skipf("test bed unavailable: %v", err)
	}
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Logf("bed up in %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		start := time.Now()
		if err := bed.Down(context.Background()); err != nil {
			t.Errorf("Down: %v", err)
		}
		t.Logf("bed down in %s", time.Since(start).Round(time.Millisecond))
		assertNothingLeft(t, bed)
	})
	return bed
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// assertNothingLeft checks what a user would look for after `vpcroute-bed down`: no
// namespaces, no processes, no cgroups, no state directory, no mounts.
func assertNothingLeft(t *testing.T, bed *Bed) {
	t.Helper()
	if ns, _ := listNetns(bedNetnsRE(bed.Prefix)); len(ns) > 0 {
		t.Errorf("network namespaces left after Down: %v", ns)
	}
	if pids, _ := bedProcesses(map[uint64]bool{}, cgroupRE(bed.Prefix), os.Getpid()); len(pids) > 0 {
		t.Errorf("container processes left after Down: %v", pids)
	}
	if _, err := os.Stat(bed.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir %s left after Down (stat: %v)", bed.StateDir, err)
	}
	if roots, _ := cgroupRoots(); len(roots) > 0 {
		for _, r := range roots {
			if m, _ := filepath.Glob(filepath.Join(r, bed.Prefix+"-ecs*")); len(m) > 0 {
				t.Errorf("cgroups left after Down: %v", m)
			}
		}
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), bed.StateDir) {
		t.Errorf("mounts under %s left after Down", bed.StateDir)
	}
}

// must returns a function that fails t on a non-nil error and otherwise returns the output,
// so that a command's two results can be passed straight in.
func must(t *testing.T) func(string, error) string {
	return func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

// TestBedReproducesGuide is the bed's acceptance test: with Docker's own bridge driver, routes
// added by hand to the router and FORWARD policy ACCEPT, as in Huawei's guide, a container on
// ECS1 reaches the container on ECS2 exactly as the guide shows.
func TestBedReproducesGuide(t *testing.T) {
	bed := upForTest(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ecs1, ecs2 := bed.ECSs[0], bed.ECSs[1]

	must(t)(ecs1.Docker(ctx, "network", "create", "--subnet", "10.0.2.0/24", "my-net"))
	must(t)(ecs2.Docker(ctx, "network", "create", "--subnet", "10.0.3.0/24", "my-net"))
	for _, e := range bed.ECSs {
		must(t)(e.Exec(ctx, "iptables", "-w", "-P", "FORWARD", "ACCEPT"))
	}
	must(t)(ecs2.Docker(ctx, "run", "-d", "--name", "web", "--net", "my-net", "-p", "8080:80", ImageName))
	must(t)(ecs1.Docker(ctx, "run", "-d", "--name", "client", "--net", "my-net", ImageName, "sleep", "600"))
	ipOf := func(e *ECS, c string) string {
		return must(t)(e.Docker(ctx, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", c))
	}
	if got := ipOf(ecs2, "web"); got != "10.0.3.2" {
		t.Fatalf("web container on ecs2 got %s, want the guide's 10.0.3.2", got)
	}
	if got := ipOf(ecs1, "client"); got != "10.0.2.2" {
		t.Fatalf("client container on ecs1 got %s, want the guide's 10.0.2.2", got)
	}
	client := func(argv ...string) (string, error) {
		return ecs1.Docker(ctx, append([]string{"exec", "client"}, argv...)...)
	}

	// Without the VPC routes the router has nowhere to send container traffic: the routes,
	// not some leak between namespaces, are what connects the ECSs.
	if out, err := client("ping", "-c", "1", "-W", "1", "10.0.3.2"); err == nil {
		t.Fatalf("ping 10.0.3.2 succeeded before any VPC route existed:\n%s", out)
	}
	must(t)(bed.RouterExec(ctx, "ip", "route", "replace", "10.0.2.0/24", "via", ecs1.IP.String()))
	must(t)(bed.RouterExec(ctx, "ip", "route", "replace", "10.0.3.0/24", "via", ecs2.IP.String()))

	t.Run("ping ttl=62", func(t *testing.T) {
		out := must(t)(client("ping", "-c", "2", "-W", "2", "10.0.3.2"))
		ttls := regexp.MustCompile(`ttl=(\d+)`).FindAllStringSubmatch(out, -1)
		if len(ttls) != 2 {
			t.Fatalf("want 2 replies, got:\n%s", out)
		}
		for _, m := range ttls {
			if m[1] != "62" {
				t.Errorf("reply ttl=%s, want the guide's 62 (the VPC must not count as a hop):\n%s", m[1], out)
			}
		}
	})

	t.Run("traceroute", func(t *testing.T) {
		out := must(t)(client("traceroute", "-n", "-q", "1", "-w", "2", "10.0.3.2"))
		var hops []string
		for _, line := range strings.Split(out, "\n")[1:] {
			if f := strings.Fields(line); len(f) >= 2 {
				hops = append(hops, f[1])
			}
		}
		want := []string{"10.0.2.1", "192.168.0.3", "10.0.3.2"}
		if strings.Join(hops, " ") != strings.Join(want, " ") {
			t.Errorf("traceroute hops = %v, want the guide's %v:\n%s", hops, want, out)
		}
	})

	t.Run("http", func(t *testing.T) {
		for _, target := range []struct {
			host string
			port int
		}{{"10.0.3.2", 80}, {ecs2.IP.String(), 8080}} {
			out, err := client(HTTPGetCmd(target.host, target.port)...)
			if err != nil || !strings.Contains(out, "200 OK") || !strings.Contains(out, "vrbox on ecs2") {
				t.Errorf("GET http://%s:%d/ = %v:\n%s", target.host, target.port, err, out)
			}
		}
	})

	t.Run("no NAT inside the VPC", func(t *testing.T) {
		// Docker's bridge masquerades the guide's traffic to 192.168.0.2, so ECS2 answers ECS1
		// directly across the VPC bridge. vpcroute does not NAT inside the VPC: then replies
		// to a container address go back through the router, and ttl=62 holds only if the
		// router is transparent to TTL in both directions.
		must(t)(ecs1.Docker(ctx, "network", "create", "--subnet", "10.0.4.0/24",
			"-o", "com.docker.network.bridge.enable_ip_masquerade=false", "flat"))
		must(t)(ecs2.Docker(ctx, "network", "create", "--subnet", "10.0.5.0/24",
			"-o", "com.docker.network.bridge.enable_ip_masquerade=false", "flat"))
		must(t)(bed.RouterExec(ctx, "ip", "route", "replace", "10.0.4.0/24", "via", ecs1.IP.String()))
		must(t)(bed.RouterExec(ctx, "ip", "route", "replace", "10.0.5.0/24", "via", ecs2.IP.String()))
		must(t)(ecs2.Docker(ctx, "run", "-d", "--name", "flatweb", "--net", "flat", ImageName))
		must(t)(ecs1.Docker(ctx, "run", "-d", "--name", "flatclient", "--net", "flat", ImageName, "sleep", "600"))

		out := must(t)(ecs1.Docker(ctx, "exec", "flatclient", "ping", "-c", "2", "-W", "2", "10.0.5.2"))
		for _, m := range regexp.MustCompile(`ttl=(\d+)`).FindAllStringSubmatch(out, -1) {
			if m[1] != "62" {
				t.Errorf("reply ttl=%s, want 62:\n%s", m[1], out)
			}
		}
		out = must(t)(ecs1.Docker(ctx, append([]string{"exec", "flatclient"}, HTTPGetCmd("10.0.5.2", 80)...)...))
		if !strings.Contains(out, "vrbox on ecs2") {
			t.Errorf("GET http://10.0.5.2/ = %s", out)
		}
		// httpd -v logs each client's address: the container's own, not ECS1's.
		logs, err := ecs2.DockerCommand(ctx, "logs", "flatweb").CombinedOutput()
		if err != nil || !strings.Contains(string(logs), "10.0.4.2") {
			t.Errorf("flatweb did not see the client's container address 10.0.4.2 (%v):\n%s", err, logs)
		}
	})

	t.Run("outside sees the ECS address", func(t *testing.T) {
		// Docker's bridge driver masquerades container traffic leaving the ECS; the outside
		// host must see ECS1's VPC address, not the container's.
		seen := acceptOnce(t, bed.OutsideNetns, OutsideIP+":9000")
		must(t)(client("sh", "-c", "echo hello | nc -w 2 "+OutsideIP+" 9000"))
		if src := <-seen; src != ecs1.IP.String() {
			t.Errorf("outside host saw source %s, want ECS1's %s", src, ecs1.IP)
		}
	})

	t.Run("metadata address served from the router", func(t *testing.T) {
		// A metadata server listening on 169.254.169.254 in the router namespace tells ECSs
		// apart by source address, as Huawei's does.
		seen := acceptOnce(t, bed.RouterNetns, MetadataIP+":80")
		must(t)(ecs2.Docker(ctx, "run", "--rm", "--net", "my-net", ImageName, "sh", "-c", "echo hi | nc -w 2 "+MetadataIP+" 80"))
		if src := <-seen; src != ecs2.IP.String() {
			t.Errorf("metadata server saw source %s, want ECS2's %s", src, ecs2.IP)
		}
	})
}

// acceptOnce listens on addr inside the named network namespace and reports the source
// address of the first connection (or an error text), giving up after 10 seconds.
func acceptOnce(t *testing.T, netns, addr string) <-chan string {
	t.Helper()
	var ln net.Listener
	if err := InNetns(netns, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	seen := make(chan string, 1)
	go func() {
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
		c, err := ln.Accept()
		if err != nil {
			seen <- "no connection: " + err.Error()
			return
		}
		defer c.Close()
		seen <- c.RemoteAddr().(*net.TCPAddr).IP.String()
	}()
	return seen
}

// TestPluginSeenByItsEngineOnly checks the isolation plugins rely on: a plugin started on ECS1
// runs in ECS1's network namespace, only ECS1's engine finds its socket, and an engine restart
// keeps it.
func TestPluginSeenByItsEngineOnly(t *testing.T) {
	bed := upForTest(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ecs1, ecs2 := bed.ECSs[0], bed.ECSs[1]
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ecs1.StartPlugin(self, []string{fakePluginEnv + "=vrfake"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ecs1.WaitPlugin(ctx, "vrfake"); err != nil {
		t.Fatalf("%v\nplugin log:\n%s", err, p.Logs())
	}
	if _, err := os.Stat(filepath.Join(PluginsDir, "vrfake.sock")); err == nil {
		t.Error("the plugin socket appeared in the host's /run/docker/plugins")
	}
	if path, _ := ecs2.HostPath(filepath.Join(PluginsDir, "vrfake.sock")); fileExists(path) {
		t.Error("the plugin socket appeared on ecs2")
	}
	if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", p.PID())); ns != netnsLink(t, ecs1.NetnsPath) {
		t.Errorf("plugin runs in network namespace %s, want ecs1's %s", ns, netnsLink(t, ecs1.NetnsPath))
	}

	must(t)(ecs1.Docker(ctx, "network", "create", "-d", "vrfake", "n1"))
	if !strings.Contains(p.Logs(), "call /NetworkDriver.CreateNetwork") {
		t.Errorf("ecs1's engine did not call the plugin; plugin log:\n%s", p.Logs())
	}
	// An engine that finds a plugin answers at once; one that does not retries the lookup
	// for 15 s before saying "not found", which the short deadline cuts.
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	if out, err := ecs2.Docker(short, "network", "create", "-d", "vrfake", "n1"); err == nil {
		t.Errorf("ecs2's engine found ecs1's plugin: %s", out)
	}
	cancelShort()

	if err := ecs1.RestartDocker(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ecs1.WaitPlugin(ctx, "vrfake"); err != nil {
		t.Fatalf("plugin socket gone after an engine restart: %v", err)
	}
	must(t)(ecs1.Docker(ctx, "network", "rm", "n1"))

	if err := p.Kill9(); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Error("plugin still running after Kill9")
	}
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := ecs1.WaitPlugin(ctx, "vrfake"); err != nil {
		t.Fatalf("plugin did not come back after Restart: %v\n%s", err, p.Logs())
	}
	if n := strings.Count(p.Logs(), "listening on"); n != 2 {
		t.Errorf("plugin log shows %d starts, want 2 (logs must survive restarts):\n%s", n, p.Logs())
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}

	st := bed.Status(ctx)
	if len(st) != 2 || st[0].Err != nil || st[1].Err != nil || st[0].DockerdPID == 0 {
		t.Errorf("Status after restart = %v", st)
	}
	opened, err := Open(Config{Prefix: bed.Prefix})
	if err != nil || len(opened.ECSs) != 2 || opened.ECSs[1].DockerHost != ecs2.DockerHost {
		t.Errorf("Open found %+v, %v", opened, err)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func netnsLink(t *testing.T, path string) string {
	t.Helper()
	var link string
	if err := InNetns(filepath.Base(path), func() (err error) {
		link, err = os.Readlink(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return link
}

// TestUpRecoversFromCrashedRun kills a bed the hard way (engine and namespace holder SIGKILLed
// with a container running, no Down), as a crashed test run would leave it, and checks that
// the next Up cleans it up and works.
func TestUpRecoversFromCrashedRun(t *testing.T) {
	bed := upForTest(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ecs := bed.ECSs[0]
	must(t)(ecs.Docker(ctx, "run", "-d", "--name", "orphan", ImageName))
	orphan, err := strconv.Atoi(must(t)(ecs.Docker(ctx, "inspect", "-f", "{{.State.Pid}}", "orphan")))
	if err != nil || orphan == 0 {
		t.Fatalf("container pid: %v", err)
	}
	dockerd, err := ecs.DockerdPID()
	if err != nil {
		t.Fatal(err)
	}
	holder, err := ecs.HolderPID()
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{dockerd, holder} {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	if !processAlive(orphan) {
		t.Fatal("the container died with its engine; the crash left nothing to clean up")
	}

	again, err := Up(ctx, Config{Prefix: bed.Prefix, ECSCount: 1})
	if err != nil {
		t.Fatalf("Up over a crashed bed: %v", err)
	}
	if processAlive(orphan) {
		t.Errorf("container process %d of the crashed bed survived Up", orphan)
	}
	if out := must(t)(again.ECSs[0].Docker(ctx, "ps", "-aq")); out != "" {
		t.Errorf("new engine shows containers of the crashed bed: %q", out)
	}
	must(t)(again.ECSs[0].Docker(ctx, "run", "--rm", ImageName, "true"))
}

// TestFailedUpLeavesNothing makes the engines fail to start and checks that Up reports it
// and removes what it had built.
func TestFailedUpLeavesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	cfg := Config{Prefix: "vrt", Dockerd: "/bin/false"}
	_, err := Up(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "dockerd of ecs1 did not come up") {
		t.Fatalf("Up with a dockerd that exits = %v, want it to say the engine did not come up", err)
	}
	bed := newBed(Config{Prefix: "vrt", StateDir: "/var/lib/vrt-bed"}, 2)
	assertNothingLeft(t, bed)
	if err := Down(context.Background(), cfg); err != nil {
		t.Errorf("Down with nothing to remove: %v", err)
	}
}

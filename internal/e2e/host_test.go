//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/internal/testbed"
	"github.com/vpcroute/vpcroute/state"
)

// TestHostOnly is the plugin on one host with VPCROUTE_CLOUD=none: everything a user of
// Docker's bridge driver expects, on subnets that are safe to route through a VPC.
func TestHostOnly(t *testing.T) {
	needBed(t)
	ctx := ctxT(t)
	bed, err := testbed.Up(ctx, testbed.Config{Prefix: bedPrefix("vrh"), ECSCount: 1})
	if err != nil {
		t.Fatalf("test bed: %v", err)
	}
	t.Cleanup(func() { _ = bed.Down(context.Background()) })
	ecs := bed.ECSs[0]
	// As Docker leaves it on a fresh host: FORWARD dropped unless vpcroute opens it.
	if _, err := ecs.Exec(ctx, "iptables", "-P", "FORWARD", "DROP"); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(ecs.Dir, "vpcroute")
	env := []string{"VPCROUTE_CLOUD=none", "VPCROUTE_STATE_DIR=" + stateDir, "VPCROUTE_LOG_LEVEL=debug"}
	plugin, err := ecs.StartPlugin(vpcrouteBin, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("plugin log:\n%s", plugin.Logs())
		}
	})
	if err := ecs.WaitPlugin(ctx, "vpcroute"); err != nil {
		t.Fatal(err)
	}
	// A host route the allocator must avoid, as if a VPN or peering lived there.
	if _, err := ecs.Exec(ctx, "ip", "route", "add", "10.0.1.0/24", "via", testbed.RouterIP); err != nil {
		t.Fatal(err)
	}

	t.Run("automatic subnets never overlap", func(t *testing.T) {
		var got []netip.Prefix
		for i := 0; i < 4; i++ {
			name := fmt.Sprintf("auto%d", i)
			docker(t, ecs, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", name)
			got = append(got, subnetOf(t, ecs, name))
		}
		host := hostPrefixes(t, ecs)
		for i, p := range got {
			if p.Bits() != 24 || !netip.MustParsePrefix("10.0.0.0/8").Contains(p.Addr()) {
				t.Errorf("automatic subnet %s is not a /24 of VPCROUTE_POOL 10.0.0.0/8", p)
			}
			for j, q := range got {
				if i != j && p.Overlaps(q) {
					t.Errorf("networks auto%d (%s) and auto%d (%s) overlap", i, p, j, q)
				}
			}
			for _, h := range host {
				// The network's own bridge routes (subnet, gateway, broadcast) are expected.
				if h.Overlaps(p) && !(p.Contains(h.Addr()) && h.Bits() >= p.Bits()) {
					t.Errorf("automatic subnet %s overlaps host route %s", p, h)
				}
			}
			if p == netip.MustParsePrefix("10.0.1.0/24") {
				t.Errorf("automatic subnet took 10.0.1.0/24, which the host routes elsewhere")
			}
		}
		for i := 0; i < 4; i++ {
			docker(t, ecs, "network", "rm", fmt.Sprintf("auto%d", i))
		}
	})

	t.Run("subnet, ip-range, gateway, aux-address and ip", func(t *testing.T) {
		docker(t, ecs, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute",
			"--subnet", "10.20.0.0/24", "--ip-range", "10.20.0.128/25", "--gateway", "10.20.0.254",
			"--aux-address", "reserved=10.20.0.128", "fixed")
		defer docker(t, ecs, "network", "rm", "fixed")
		if s := subnetOf(t, ecs, "fixed"); s.String() != "10.20.0.0/24" {
			t.Fatalf("subnet = %s; want 10.20.0.0/24", s)
		}
		out := run(t, ecs, "fixed", "sh", "-c", "ip -4 -o addr show eth0; ip route show default")
		m := regexp.MustCompile(`inet (\S+)/24`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no address in container: %s", out)
		}
		a := netip.MustParseAddr(m[1])
		if !netip.MustParsePrefix("10.20.0.128/25").Contains(a) || a.String() == "10.20.0.128" {
			t.Errorf("container got %s; want an address of --ip-range 10.20.0.128/25 other than the aux address .128", a)
		}
		if !strings.Contains(out, "default via 10.20.0.254") {
			t.Errorf("container's default route is not the --gateway 10.20.0.254: %s", out)
		}
		out = docker(t, ecs, "run", "--rm", "--net", "fixed", "--ip", "10.20.0.50", testbed.ImageName, "ip", "-4", "-o", "addr", "show", "eth0")
		if !strings.Contains(out, "inet 10.20.0.50/24") {
			t.Errorf("--ip 10.20.0.50 not honoured: %s", out)
		}
		if out, err := dockerErr(t, ecs, "run", "--rm", "--net", "fixed", "--ip", "10.20.0.254", testbed.ImageName, "true"); err == nil {
			t.Errorf("--ip of the gateway was accepted: %s", out)
		} else if !strings.Contains(err.Error(), "gateway") {
			t.Errorf("--ip of the gateway: error %q does not say it is the gateway", err)
		}
	})

	t.Run("containers ping each other and resolve names", func(t *testing.T) {
		docker(t, ecs, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "app")
		defer docker(t, ecs, "network", "rm", "app")
		docker(t, ecs, "run", "-d", "--name", "web", "--net", "app", testbed.ImageName)
		defer docker(t, ecs, "rm", "-f", "web")
		out := run(t, ecs, "app", "ping", "-c", "2", "-W", "2", "web")
		if !strings.Contains(out, "2 packets received") {
			t.Fatalf("ping web by name failed:\n%s", out)
		}
		out = run(t, ecs, "app", testbed.HTTPGetCmd("web", 80)...)
		if !strings.Contains(out, "200 OK") {
			t.Fatalf("HTTP to web:80 failed:\n%s", out)
		}
	})

	t.Run("outside is masqueraded, the VPC is not", func(t *testing.T) {
		whoami(t, bed.RouterNetns, "7000")  // a VPC neighbour (192.168.0.1)
		whoami(t, bed.OutsideNetns, "7000") // the internet
		docker(t, ecs, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "out")
		defer docker(t, ecs, "network", "rm", "out")
		docker(t, ecs, "run", "-d", "--name", "client", "--net", "out", testbed.ImageName, "sleep", "600")
		defer docker(t, ecs, "rm", "-f", "client")
		cip := containerIP(t, ecs, "client", "out")
		// With VPCROUTE_CLOUD=none the VPC route is someone else's job: add it by hand.
		sub := subnetOf(t, ecs, "out")
		if _, err := testbed.Exec(ctx, bed.RouterNetns, "ip", "route", "replace", sub.String(), "via", ecs.IP.String()); err != nil {
			t.Fatal(err)
		}
		defer testbed.Exec(ctx, bed.RouterNetns, "ip", "route", "del", sub.String())
		seen := docker(t, ecs, "exec", "client", "nc", "-w", "3", testbed.RouterIP, "7000")
		if seen != cip.String() {
			t.Errorf("VPC neighbour saw %q; want the container's own address %s (no NAT inside the VPC)", seen, cip)
		}
		seen = docker(t, ecs, "exec", "client", "nc", "-w", "3", testbed.OutsideIP, "7000")
		if seen != ecs.IP.String() {
			t.Errorf("outside host saw %q; want the ECS address %s (masqueraded)", seen, ecs.IP)
		}
	})

	t.Run("published port answers from another host and from the host", func(t *testing.T) {
		docker(t, ecs, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "pub")
		defer docker(t, ecs, "network", "rm", "pub")
		docker(t, ecs, "run", "-d", "--name", "nginx", "--net", "pub", "-p", "8080:80", testbed.ImageName)
		defer docker(t, ecs, "rm", "-f", "nginx")
		get := "GET / HTTP/1.0\r\n\r\n"
		for _, from := range []string{bed.RouterNetns, bed.OutsideNetns} {
			if out := tcpGet(t, from, ecs.IP.String()+":8080", get); !strings.Contains(out, "200 OK") {
				t.Errorf("from %s, GET %s:8080 = %q", from, ecs.IP, out)
			}
		}
		for _, addr := range []string{"127.0.0.1", ecs.IP.String()} {
			out, err := ecs.Exec(ctx, "sh", "-c", fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 5 %s 8080`, addr))
			if err != nil || !strings.Contains(out, "200 OK") {
				t.Errorf("from the host, GET %s:8080 = %q, %v", addr, out, err)
			}
		}
		// Hairpin: a container on the same bridge reaches the published port.
		if out := run(t, ecs, "pub", testbed.HTTPGetCmd(ecs.IP.String(), 8080)...); !strings.Contains(out, "200 OK") {
			t.Errorf("hairpin GET %s:8080 from the same network = %q", ecs.IP, out)
		}
		// The same host port twice is a clear error.
		if out, err := dockerErr(t, ecs, "run", "-d", "--name", "clash", "--net", "pub", "-p", "8080:80", testbed.ImageName); err == nil {
			t.Errorf("a second -p 8080:80 was accepted: %s", out)
		} else if !strings.Contains(err.Error(), "8080") || !strings.Contains(err.Error(), "already") {
			t.Errorf("second -p 8080:80: error %q does not say the port is taken", err)
		}
		_, _ = dockerErr(t, ecs, "rm", "-f", "clash")
	})

	t.Run("kill -9 keeps traffic and later operations work", func(t *testing.T) {
		docker(t, ecs, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "keep")
		docker(t, ecs, "run", "-d", "--name", "srv", "--net", "keep", "-p", "8081:80", testbed.ImageName)
		docker(t, ecs, "run", "-d", "--name", "cli", "--net", "keep", testbed.ImageName, "sleep", "600")
		aIP := containerIP(t, ecs, "srv", "keep")
		// Ping across the kill and restart: not one packet may be lost.
		pingDone := make(chan string, 1)
		go func() {
			out, _ := ecs.Docker(context.Background(), "exec", "cli", "ping", "-c", "30", "-i", "0.1", "-W", "1", aIP.String())
			pingDone <- out
		}()
		time.Sleep(500 * time.Millisecond)
		if err := plugin.Kill9(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		if err := plugin.Restart(); err != nil {
			t.Fatal(err)
		}
		if err := ecs.WaitPlugin(ctx, "vpcroute"); err != nil {
			t.Fatal(err)
		}
		out := <-pingDone
		if !strings.Contains(out, "30 packets received") {
			t.Errorf("ping across plugin kill -9 lost packets:\n%s", out)
		}
		if out := tcpGet(t, bed.RouterNetns, ecs.IP.String()+":8081", "GET / HTTP/1.0\r\n\r\n"); !strings.Contains(out, "200 OK") {
			t.Errorf("published port after restart: %q", out)
		}
		docker(t, ecs, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "after")
		if out := run(t, ecs, "after", "ping", "-c", "1", "-W", "2", subnetOf(t, ecs, "after").Addr().Next().String()); !strings.Contains(out, "1 packets received") {
			t.Errorf("new network after restart: gateway ping failed: %s", out)
		}
		docker(t, ecs, "rm", "-f", "srv", "cli")
		docker(t, ecs, "network", "rm", "keep", "after")
	})

	t.Run("network rm leaves nothing behind", func(t *testing.T) {
		docker(t, ecs, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "gone")
		id := docker(t, ecs, "network", "inspect", "-f", "{{.ID}}", "gone")
		sub := subnetOf(t, ecs, "gone")
		docker(t, ecs, "run", "-d", "--name", "gone1", "--net", "gone", "-p", "9090:80", "-p", "9091:81/udp", testbed.ImageName)
		if out, _ := ecs.Exec(ctx, "iptables-save"); !strings.Contains(out, id) || !strings.Contains(out, "9090") {
			t.Fatalf("network %s has no rules while in use:\n%s", id[:12], out)
		}
		docker(t, ecs, "rm", "-f", "gone1")
		docker(t, ecs, "network", "rm", "gone")
		links, _ := ecs.Exec(ctx, "ip", "-o", "link")
		if strings.Contains(links, "vr-"+id[:12]) || strings.Contains(links, "vrh") {
			t.Errorf("bridge or veth left behind:\n%s", links)
		}
		rules, _ := ecs.Exec(ctx, "iptables-save")
		if strings.Contains(rules, id) || strings.Contains(rules, sub.String()) || strings.Contains(rules, "9090") {
			t.Errorf("rules of the removed network left behind:\n%s", rules)
		}
		// The state file, read with the plugin stopped.
		if err := plugin.Stop(); err != nil {
			t.Fatal(err)
		}
		db, err := state.Open(stateDir)
		if err != nil {
			t.Fatal(err)
		}
		nets, _ := db.Networks()
		pools, _ := db.Pools()
		eps, _ := db.Endpoints("")
		db.Close()
		if len(nets)+len(pools)+len(eps) != 0 {
			t.Errorf("state kept networks %v, pools %v, endpoints %v", nets, pools, eps)
		}
		if err := plugin.Restart(); err != nil {
			t.Fatal(err)
		}
		if err := ecs.WaitPlugin(ctx, "vpcroute"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("bad input says what to do and leaves nothing", func(t *testing.T) {
		tests := []struct {
			args []string
			want string
		}{
			{[]string{"--subnet", "10.0.1.0/24"}, "overlaps"},          // the host route added above
			{[]string{"--subnet", "192.168.0.0/24"}, "overlaps"},       // the VPC subnet itself
			{[]string{"--subnet", "10.16.0.0/12"}, "/16 to /29"},       // too large
			{[]string{"--subnet", "10.30.0.5/24"}, "10.30.0.0/24"},     // not a network address
			{[]string{"--subnet", "169.254.10.0/24"}, "VPC reserves"},  // link-local
			{[]string{"-o", "com.docker.network.driver.mtu=9"}, "MTU"}, // bad option
			{[]string{"-o", "bogus=1"}, "not known"},
		}
		for _, tt := range tests {
			args := append([]string{"network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute"}, tt.args...)
			args = append(args, "bad")
			out, err := dockerErr(t, ecs, args...)
			if err == nil {
				t.Errorf("%v accepted: %s", tt.args, out)
				_, _ = dockerErr(t, ecs, "network", "rm", "bad")
				continue
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%v: error %q does not say %q", tt.args, err, tt.want)
			}
		}
		links, err := ecs.Exec(ctx, "ip", "-o", "link", "show", "type", "bridge")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(links, "vr-") {
			t.Errorf("a failed create left a bridge:\n%s", links)
		}
	})
}

// hostPrefixes lists the ECS's IPv4 routes (all tables) as prefixes.
func hostPrefixes(t *testing.T, e *testbed.ECS) []netip.Prefix {
	t.Helper()
	out, err := e.Exec(ctxT(t), "ip", "-4", "route", "show", "table", "all")
	if err != nil {
		t.Fatal(err)
	}
	var ps []netip.Prefix
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "default" {
			continue
		}
		if f[0] == "local" || f[0] == "broadcast" {
			f = f[1:]
		}
		if p, err := netip.ParsePrefix(f[0]); err == nil {
			ps = append(ps, p)
		} else if a, err := netip.ParseAddr(f[0]); err == nil {
			ps = append(ps, netip.PrefixFrom(a, 32))
		}
	}
	return ps
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// demoOptions are the settings of `vpcroute-bed demo`.
type demoOptions struct {
	bed    testbed.Config
	plugin string // vpcroute binary
	keep   bool   // leave the bed up until interrupted
}

// defaultPlugin is the vpcroute binary next to this one (bin/vpcroute after `make build`).
func defaultPlugin() string {
	self, err := os.Executable()
	if err != nil {
		return "bin/vpcroute"
	}
	return filepath.Join(filepath.Dir(self), "vpcroute")
}

// demo replays Huawei's guide for routing container subnets through the VPC route table
// on a two-ECS bed with the emulated cloud, with vpcroute doing the by-hand steps. It
// prints every command as typed on the ECS with its output and the VPC route table as it
// changes, checks what the guide promises (routes, ping ttl=62, the three-hop
// traceroute, HTTP across hosts, routes given back), tears everything down (also on
// Ctrl-C) and fails when a step or a check does.
func demo(ctx context.Context, opts demoOptions, w io.Writer) error {
	if opts.plugin == "" {
		opts.plugin = defaultPlugin()
	}
	if _, err := os.Stat(opts.plugin); err != nil {
		return fmt.Errorf("vpcroute binary %s: %w (run `make build`, or pass -plugin)", opts.plugin, err)
	}
	opts.bed.ECSCount = 2
	d := &demoRun{out: w, start: time.Now()}
	err := d.run(ctx, cloudbed.Options{Bed: opts.bed, Plugin: opts.plugin}, opts.keep)
	if ctx.Err() != nil && !d.kept {
		err = errors.Join(errors.New("interrupted; the bed is torn down"), err)
	}
	if err != nil {
		return err
	}
	if d.failed > 0 {
		return fmt.Errorf("%d of %d checks failed", d.failed, d.failed+d.passed)
	}
	return nil
}

// demoRun prints the steps and counts the checks.
type demoRun struct {
	out            io.Writer
	start          time.Time
	env            *cloudbed.Env
	passed, failed int
	kept           bool // -keep: the user ended the demo with Ctrl-C after it passed
}

func (d *demoRun) run(ctx context.Context, opts cloudbed.Options, keep bool) (err error) {
	d.say("vpcroute demo: Huawei Cloud's guide \"routing container subnets through the VPC route table\",")
	d.say("with vpcroute creating the subnets, the VPC routes and the FORWARD rules.")
	d.say("")
	d.say("Building the bed: VPC 192.168.0.0/24 (router %s), ECS1 and ECS2 each with its own", testbed.RouterIP)
	d.say("Docker Engine, the emulated Huawei Cloud VPC API and metadata service, and vpcroute")
	d.say("running on both ECSs as a host service (plugin name \"vpcroute\")...")
	env, err := cloudbed.Start(ctx, opts)
	if err != nil {
		return fmt.Errorf("build the demo bed: %w", err)
	}
	d.env = env
	defer func() {
		if err != nil && ctx.Err() == nil {
			for name, p := range env.Plugins {
				d.say("\n# plugin log of %s:\n%s", name, p.Logs())
			}
		}
		if keep && err == nil && ctx.Err() == nil {
			d.say("")
			d.say("The bed stays up with the demo's containers and networks; try:")
			for _, e := range env.Bed.ECSs {
				d.say("  docker -H %s ps    # %s", e.DockerHost, strings.ToUpper(e.Name))
			}
			d.say("Ctrl-C tears it down.")
			<-ctx.Done()
			d.kept = true
		}
		d.say("")
		d.say("Tearing the bed down...")
		if cerr := env.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("tear down the demo bed: %w", cerr))
		}
	}()
	ecs1, _ := env.Bed.ECS("ecs1")
	ecs2, _ := env.Bed.ECS("ecs2")
	d.say("  ready after %.1fs: ECS1 %s (%s), ECS2 %s (%s)", time.Since(d.start).Seconds(),
		ecs1.IP, cloudbed.InstanceID("ecs1"), ecs2.IP, cloudbed.InstanceID("ecs2"))

	d.section("The VPC route table before")
	before := env.CustomRoutes()
	d.routeTable()

	d.section("1. Create the container networks (the guide's subnets, plus one vpcroute picks)")
	steps := []struct {
		ecs  *testbed.ECS
		args []string
	}{
		{ecs1, []string{"network", "create", "-d", "vpcroute", "--subnet", "10.0.2.0/24", "my-net"}},
		{ecs2, []string{"network", "create", "-d", "vpcroute", "--subnet", "10.0.3.0/24", "my-net"}},
		{ecs1, []string{"network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "auto-net"}},
		{ecs2, []string{"network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "auto-net"}},
	}
	for _, s := range steps {
		if _, err := d.docker(ctx, s.ecs, s.args...); err != nil {
			return err
		}
	}
	autos := map[string]string{}
	for _, e := range []*testbed.ECS{ecs1, ecs2} {
		sub, err := e.Docker(ctx, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "auto-net")
		if err != nil {
			return fmt.Errorf("inspect auto-net on %s: %w", e.Name, err)
		}
		autos[e.Name] = sub
		d.say("  auto-net on %s got %s", strings.ToUpper(e.Name), sub)
	}

	d.section("The VPC route table now: one route per container subnet, next hop its ECS")
	d.routeTable()
	want := map[string]string{
		"10.0.2.0/24": cloudbed.InstanceID("ecs1"), "10.0.3.0/24": cloudbed.InstanceID("ecs2"),
		autos["ecs1"]: cloudbed.InstanceID("ecs1"), autos["ecs2"]: cloudbed.InstanceID("ecs2"),
	}
	added := cloudbed.AddedRoutes(before, env.CustomRoutes())
	okRoutes := len(added) == len(want) && len(want) == 4
	for _, r := range added {
		okRoutes = okRoutes && want[r.Destination] == r.NextHop && r.Type == "ecs" && strings.HasPrefix(r.Description, "vpcroute")
	}
	d.check(okRoutes, "4 routes of type ecs, each to the ECS that holds the subnet, marked as vpcroute's")

	d.section("2. Run an nginx-like web server on each ECS (busybox httpd), publishing port 8080")
	for _, e := range []*testbed.ECS{ecs1, ecs2} {
		if _, err := d.docker(ctx, e, "run", "-d", "--name", "nginx", "--net", "my-net", "-p", "8080:80", testbed.ImageName); err != nil {
			return err
		}
	}

	d.section("3. From the container on ECS1 (10.0.2.2) to the one on ECS2 (10.0.3.2)")
	out, err := d.docker(ctx, ecs1, "exec", "nginx", "ping", "-c", "3", "-W", "2", "10.0.3.2")
	d.check(err == nil && strings.Contains(out, "3 packets received") && strings.Contains(out, "ttl=62"),
		"3 replies with ttl=62: two hops that route (ECS1, ECS2); the VPC fabric is not a hop")
	out, err = d.docker(ctx, ecs1, "exec", "nginx", "traceroute", "-n", "-q", "1", "-w", "2", "10.0.3.2")
	hops := testbed.TraceHops(out)
	okTrace := err == nil && strings.Join(hops, " ") == "10.0.2.1 192.168.0.3 10.0.3.2"
	d.check(okTrace, "hops 10.0.2.1 (ECS1's bridge) -> 192.168.0.3 (ECS2) -> 10.0.3.2: no NAT, no overlay%s",
		map[bool]string{true: "", false: " (got " + strings.Join(hops, " -> ") + ")"}[okTrace])
	for _, t := range []struct {
		host string
		port int
		what string
	}{
		{"10.0.3.2", 80, "the container's own address, routed by the VPC"},
		{ecs2.IP.String(), 8080, "ECS2's published port 8080"},
	} {
		out, err := d.docker(ctx, ecs1, append([]string{"exec", "nginx"}, testbed.HTTPGetCmd(t.host, t.port)...)...)
		d.check(err == nil && strings.Contains(out, "200 OK") && strings.Contains(out, "vrbox on ecs2"),
			"HTTP 200 from ECS2's web server via %s", t.what)
	}

	if keep {
		return nil
	}
	d.section("4. Remove the containers and networks")
	for _, e := range []*testbed.ECS{ecs1, ecs2} {
		if _, err := d.docker(ctx, e, "rm", "-f", "nginx"); err != nil {
			return err
		}
		if _, err := d.docker(ctx, e, "network", "rm", "my-net", "auto-net"); err != nil {
			return err
		}
	}
	d.section("The VPC route table after")
	d.routeTable()
	left := cloudbed.AddedRoutes(before, env.CustomRoutes())
	d.check(len(left) == 0, "the route table is back to how it was (%d routes left)", len(left))

	d.say("")
	d.say("%d checks passed, %d failed, in %.0fs.", d.passed, d.failed, time.Since(d.start).Seconds())
	return nil
}

func (d *demoRun) say(format string, a ...any) { fmt.Fprintf(d.out, format+"\n", a...) }

func (d *demoRun) section(title string) {
	d.say("")
	d.say("== %s ==", title)
}

// check prints one expectation and its outcome.
func (d *demoRun) check(ok bool, format string, a ...any) {
	mark := "ok  "
	if ok {
		d.passed++
	} else {
		d.failed++
		mark = "FAIL"
	}
	d.say("  %s %s", mark, fmt.Sprintf(format, a...))
}

// docker prints a docker command as a user on the ECS would type it, runs it against
// that ECS's engine and prints its output. A failing command is printed, not fatal;
// the caller decides.
func (d *demoRun) docker(ctx context.Context, e *testbed.ECS, args ...string) (string, error) {
	d.say("[%s %s]$ docker %s", strings.ToUpper(e.Name), e.IP, shellQuote(args))
	out, err := e.Docker(ctx, args...)
	if out != "" {
		d.say("%s", indent(out))
	}
	if err != nil {
		d.say("%s", indent(err.Error()))
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		return out, fmt.Errorf("docker %s on %s: %w", strings.Join(args, " "), e.Name, err)
	}
	return out, nil
}

// routeTable prints the VPC's default route table the way the console lists it, with
// each next hop's ECS.
func (d *demoRun) routeTable() {
	routes, _ := d.env.Sim.RouteTable(d.env.Sim.DefaultRouteTableID())
	sort.SliceStable(routes, func(i, j int) bool {
		if (routes[i].Type == "local") != (routes[j].Type == "local") {
			return routes[i].Type == "local"
		}
		return routes[i].Destination < routes[j].Destination
	})
	names := map[string]string{}
	for _, e := range d.env.Bed.ECSs {
		names[cloudbed.InstanceID(e.Name)] = fmt.Sprintf("%s %s", strings.ToUpper(e.Name), e.IP)
	}
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  DESTINATION\tTYPE\tNEXT HOP\tDESCRIPTION")
	for _, r := range routes {
		hop := r.NextHop
		if n, ok := names[hop]; ok {
			hop += " (" + n + ")"
		}
		if hop == "" {
			hop = "-"
		}
		desc := r.Description
		if desc == "" {
			desc = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", r.Destination, r.Type, hop, desc)
	}
	tw.Flush()
}

func indent(s string) string {
	s = strings.ReplaceAll(strings.TrimRight(s, "\r\n"), "\r\n", "\n")
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// shellQuote renders args as a user would type them.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		switch {
		case a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`|&;<>()*?"):
		case !strings.ContainsAny(a, "\"$`") && !strings.Contains(a, `\\`):
			// Double quotes read better around a command holding single quotes; sh keeps
			// a backslash before anything but $ ` " \ and newline.
			a = `"` + a + `"`
		default:
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"text/tabwriter"

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

// demo replays Huawei's guide on the emulated cloud with vpcroute doing the by-hand steps,
// printing every command as typed on the ECS and its output, and the VPC route table as
// it changes. It fails if a step fails.
func demo(ctx context.Context, opts demoOptions, w io.Writer) (err error) {
	if opts.plugin == "" {
		opts.plugin = defaultPlugin()
	}
	if _, statErr := os.Stat(opts.plugin); statErr != nil {
		return fmt.Errorf("vpcroute binary %s: %w (run `make build`, or pass -plugin)", opts.plugin, statErr)
	}
	opts.bed.ECSCount = 2
	fmt.Fprintf(w, "# Building two ECSs (192.168.0.2, 192.168.0.3) with the emulated Huawei VPC and vpcroute on each...\n")
	env, err := cloudbed.Start(ctx, cloudbed.Options{Bed: opts.bed, Plugin: opts.plugin})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			for name, p := range env.Plugins {
				fmt.Fprintf(w, "\n# plugin log of %s:\n%s", name, p.Logs())
			}
		}
		if opts.keep && err == nil {
			fmt.Fprintf(w, "\n# The bed stays up (DOCKER_HOST values above; `vpcroute-bed env ecs1`). Ctrl-C tears it down.\n")
			wait, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			<-wait.Done()
			stop()
		}
		err = errors.Join(err, env.Close())
	}()
	for _, st := range env.Bed.Status(ctx) {
		fmt.Fprintln(w, "#", st)
	}
	ecs1, err := env.Bed.ECS("ecs1")
	if err != nil {
		return err
	}
	ecs2, err := env.Bed.ECS("ecs2")
	if err != nil {
		return err
	}
	printRoutes(w, env, "before")

	step := func(e *testbed.ECS, args ...string) error {
		fmt.Fprintf(w, "\n[root@%s ~]# docker %s\n", e.Name, shellQuote(args))
		out, err := e.Docker(ctx, args...)
		if out != "" {
			fmt.Fprintln(w, out)
		}
		if err != nil {
			return fmt.Errorf("%s: docker %s: %w", e.Name, strings.Join(args, " "), err)
		}
		return nil
	}
	steps := []struct {
		ecs  *testbed.ECS
		args []string
	}{
		{ecs1, []string{"network", "create", "-d", "vpcroute", "--subnet", "10.0.2.0/24", "my-net"}},
		{ecs1, []string{"run", "-d", "--name", "nginx", "--net", "my-net", "-p", "8080:80", testbed.ImageName}},
		{ecs2, []string{"network", "create", "-d", "vpcroute", "--subnet", "10.0.3.0/24", "my-net"}},
		{ecs2, []string{"run", "-d", "--name", "nginx", "--net", "my-net", "-p", "8080:80", testbed.ImageName}},
	}
	for _, s := range steps {
		if err := step(s.ecs, s.args...); err != nil {
			return err
		}
	}
	printRoutes(w, env, "after the networks were created")
	fmt.Fprintf(w, "\n# No `iptables -P FORWARD ACCEPT`, no route added by hand: vpcroute did both.\n")
	for _, args := range [][]string{
		{"exec", "nginx", "traceroute", "-n", "-q", "1", "-w", "2", "10.0.3.2"},
		{"exec", "nginx", "ping", "-c", "3", "-W", "2", "10.0.3.2"},
		append([]string{"exec", "nginx"}, testbed.HTTPGetCmd("10.0.3.2", 80)...),
		append([]string{"exec", "nginx"}, testbed.HTTPGetCmd("192.168.0.3", 8080)...),
	} {
		if err := step(ecs1, args...); err != nil {
			return err
		}
	}
	for _, e := range []*testbed.ECS{ecs1, ecs2} {
		if err := step(e, "rm", "-f", "nginx"); err != nil {
			return err
		}
		if err := step(e, "network", "rm", "my-net"); err != nil {
			return err
		}
	}
	printRoutes(w, env, "after the networks were removed")
	return nil
}

func printRoutes(w io.Writer, env *cloudbed.Env, when string) {
	routes := env.CustomRoutes()
	fmt.Fprintf(w, "\n# VPC route table %s: %d custom route(s)\n", when, len(routes))
	if len(routes) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#   DESTINATION\tTYPE\tNEXT HOP\tDESCRIPTION")
	for _, r := range routes {
		fmt.Fprintf(tw, "#   %s\t%s\t%s\t%s\n", r.Destination, r.Type, r.NextHop, r.Description)
	}
	tw.Flush()
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

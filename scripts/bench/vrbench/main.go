//go:build linux

// Command vrbench measures vpcroute against its budgets on the two-ECS test bed with the
// emulated Huawei Cloud (internal/cloudbed) and writes docs/benchmarks.md:
//
//  1. the plugin socket answers Plugin.Activate within 100 ms of exec, in none mode and
//     in huaweicloud mode, before the cloud start-up finishes;
//  2. idle RSS under 25 MB, after start and after 20 networks and 50 containers;
//  3. a network create costs at most one cloud read and one cloud write, and under
//     20 ms of the plugin's own time;
//  4. container starts make no cloud call and add no iptables rule (rules grow per
//     network and per published port only); the Go benchmarks of package driver add
//     the per-call figures;
//  5. container-to-container TCP throughput across ECSs within 5% of a hand-built
//     veth + bridge + route path on the same bed.
//
// scripts/bench.sh runs it as root after the Go benchmarks, whose output it passes with
// -gobench. Everything runs in the bed's network namespaces (prefix -prefix, default
// "vrb") or in throwaway ones; nothing is changed in the root network namespace.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// options are the command's flags.
type options struct {
	plugin     string // vpcroute binary; empty builds one
	goBench    string // output of `go test -bench` for package driver
	out        string // markdown report
	prefix     string // bed prefix
	startRuns  int    // start-up measurements per mode
	networks   int
	containers int
	iperfRuns  int
	iperfSecs  int
	skipBed    bool // only the start-up in none mode and the Go benchmarks
	hold       bool // keep the bed up after measuring, until interrupted
}

func main() {
	var o options
	flag.StringVar(&o.plugin, "plugin", "", "vpcroute binary (default: build one from this checkout)")
	flag.StringVar(&o.goBench, "gobench", "", "file with the output of the driver Go benchmarks, to include in the report")
	flag.StringVar(&o.out, "out", "docs/benchmarks.md", "report to write")
	flag.StringVar(&o.prefix, "prefix", "vrb", "test bed prefix (namespaces vrb-vpc, vrb-ecs1, ...)")
	flag.IntVar(&o.startRuns, "start-runs", 20, "start-up measurements per mode")
	flag.IntVar(&o.networks, "networks", 20, "networks to create on ECS 1")
	flag.IntVar(&o.containers, "containers", 50, "containers to start on one network of ECS 1")
	flag.IntVar(&o.iperfRuns, "iperf-runs", 6, "iperf3 runs per path")
	flag.IntVar(&o.iperfSecs, "iperf-seconds", 5, "length of one iperf3 run")
	flag.BoolVar(&o.skipBed, "no-bed", false, "skip everything that needs the test bed")
	flag.BoolVar(&o.hold, "hold", false, "keep the test bed up after measuring until Ctrl-C, to look around")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "vrbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it builds network namespaces and runs dockerd; run it with sudo (or `sudo make bench`)")
	}
	// Under /tmp, which the ECSs' mount namespaces share (their /run is their own).
	work, err := os.MkdirTemp("/tmp", "vrbench-")
	if err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	defer os.RemoveAll(work)
	if o.plugin == "" {
		o.plugin = filepath.Join(work, "vpcroute")
		say("building vpcroute")
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", o.plugin, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build vpcroute: %w\n%s", err, out)
		}
	}
	r := &report{Started: time.Now()}

	say("start-up, none mode")
	if err := measureStartupNone(ctx, o, work, r); err != nil {
		return err
	}
	if !o.skipBed {
		if err := bedBenchmarks(ctx, o, work, r); err != nil {
			return err
		}
	}
	if o.goBench != "" {
		if err := r.readGoBench(o.goBench); err != nil {
			return err
		}
	}
	r.Took = time.Since(r.Started)
	if err := r.write(o.out); err != nil {
		return err
	}
	r.printSummary(os.Stdout)
	say("wrote " + o.out)
	return nil
}

// bedBenchmarks runs everything that needs the two-ECS bed: start-up in huaweicloud
// mode, RSS, network creates, container starts and the data path.
func bedBenchmarks(ctx context.Context, o options, work string, r *report) error {
	say("bringing up the test bed " + o.prefix)
	env, err := cloudbed.Start(ctx, cloudbed.Options{Bed: testbed.Config{Prefix: o.prefix,
		Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		return fmt.Errorf("test bed: %w", err)
	}
	defer func() {
		say("tearing down the test bed")
		if err := env.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "vrbench: tear down:", err)
		}
	}()

	// Start-up first, while no plugin runs on the bed: a second vpcroute on the same
	// ECS would prune the first one's rules.
	say("start-up, huaweicloud mode against the emulator")
	if err := measureStartupHuawei(ctx, o, work, env, r); err != nil {
		return err
	}
	if err := startPlugins(ctx, o, env); err != nil {
		return err
	}
	if err := measureHost(ctx, o, env, r); err != nil {
		return err
	}
	say("data path: iperf3 through vpcroute and through a hand-built path")
	err = measureDatapath(ctx, o, env, r)
	if o.hold {
		say("holding the test bed up until Ctrl-C (DOCKER_HOST=" + env.Bed.ECSs[0].DockerHost + ")")
		<-ctx.Done()
	}
	return err
}

// startPlugins starts vpcroute on every ECS as cloudbed does, with debug logs on ECS 1
// (the per-call took= lines), and waits until each has finished starting.
func startPlugins(ctx context.Context, o options, env *cloudbed.Env) error {
	for _, ecs := range env.Bed.ECSs {
		penv := env.PluginEnv(ecs.Name)
		if ecs.Name == "ecs1" {
			penv = append(penv, "VPCROUTE_LOG_LEVEL=debug")
		}
		p, err := ecs.StartPlugin(o.plugin, penv)
		if err != nil {
			return err
		}
		env.Plugins[ecs.Name] = p
	}
	for _, ecs := range env.Bed.ECSs {
		sock, err := ecs.HostPath(filepath.Join(testbed.PluginsDir, "vpcroute.sock"))
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = waitReady(wctx, sock)
		cancel()
		if err != nil {
			return fmt.Errorf("vpcroute on %s: %w\nits log:\n%s", ecs.Name, err, env.Plugins[ecs.Name].Logs())
		}
	}
	return nil
}

func say(msg string) {
	fmt.Fprintf(os.Stderr, "vrbench: %s %s\n", time.Now().Format("15:04:05"), msg)
}

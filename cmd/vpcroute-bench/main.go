//go:build linux

// Command vpcroute-bench measures vpcroute against its budgets on the two-ECS test bed with the
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
//  5. vpcroute's data path adds nothing beyond veth, bridge and routing: TCP across ECSs
//     between namespaces on vpcroute's bridges within 5% of a hand-built veth + bridge +
//     route path on the same bed; Docker containers on vpcroute, the hand-built path with
//     Docker's in-container rules, and Docker's own bridge driver (the guide's setup) are
//     measured alongside, to show what each part costs.
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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// options are the command's flags.
type options struct {
	plugin      string // vpcroute binary; empty builds one
	goBench     string // output of `go test -bench` for package driver
	out         string // markdown report
	prefix      string // bed prefix
	startRuns   int    // start-up measurements per mode
	networks    int
	containers  int
	iperfRuns   int
	iperfSecs   int
	iperfTurns  int
	profileSecs int             // perf profile of the data paths; 0 skips it
	skipBed     bool            // only the start-up in none mode and the Go benchmarks
	sections    map[string]bool // which parts to measure (-only)
	paths       map[string]bool // data paths to measure (-paths)
	hold        bool            // keep the bed up after measuring, until interrupted
	baseline    string          // an earlier git revision for the release path ("" leaves it out)
	work        string          // the run's scratch directory
	// The scale part: sizes (networks on ECS 2), idle window, restarts per size.
	scaleSizes    []int
	scaleWindow   time.Duration
	probeWindow   time.Duration
	scaleRestarts int
}

func main() {
	if connMain(os.Args[1:]) {
		return
	}
	var o options
	flag.StringVar(&o.plugin, "plugin", "", "vpcroute binary (default: build one from this checkout)")
	flag.StringVar(&o.goBench, "gobench", "", "file with the output of the driver Go benchmarks, to include in the report")
	flag.StringVar(&o.out, "out", "docs/benchmarks.md", "report to write")
	flag.StringVar(&o.prefix, "prefix", "vrb", "test bed prefix (namespaces vrb-vpc, vrb-ecs1, ...)")
	flag.IntVar(&o.startRuns, "start-runs", 20, "start-up measurements per mode")
	flag.IntVar(&o.networks, "networks", 20, "networks to create on ECS 1")
	flag.IntVar(&o.containers, "containers", 50, "containers to start on one network of ECS 1")
	flag.IntVar(&o.iperfRuns, "iperf-runs", 10, "iperf3 rounds: each runs every data path once, in rotating order")
	flag.IntVar(&o.iperfSecs, "iperf-seconds", 4, "length of one path's iperf3 run in a round")
	flag.IntVar(&o.iperfTurns, "iperf-turns", 4, "runs a path's iperf3 run in a round is split into, the paths taking turns (1: one run per path)")
	flag.IntVar(&o.profileSecs, "profile-seconds", 3, "after the rounds, profile one run of this length per vpcroute path and the hand-built one with perf (0: skip)")
	flag.BoolVar(&o.skipBed, "no-bed", false, "skip everything that needs the test bed")
	flag.BoolVar(&o.hold, "hold", false, "keep the test bed up after measuring until Ctrl-C, to look around")
	flag.DurationVar(&o.scaleWindow, "scale-window", 30*time.Second, "idle window at each size of the scale part")
	flag.DurationVar(&o.probeWindow, "probe-window", 10*time.Minute, "at the largest size of the scale part, how long calls are timed during background passes")
	flag.IntVar(&o.scaleRestarts, "scale-restarts", 3, "restarts (and reboots) measured at each size of the scale part")
	sizes := flag.String("scale-sizes", "1,100,200", "network counts of the scale part")
	only := flag.String("only", "startup,host,datapath,scale,swarm", "parts to measure, comma-separated: startup (none and huaweicloud modes), host (memory, network creates, containers, rules), datapath (iperf3), scale (idle CPU, call waits, restart at 1 to 200 networks), swarm (service to service over a vpcroute swarm network vs overlay, on a bed of its own)")
	defaults := slices.DeleteFunc(allPaths(), func(p string) bool { return p == pathRelease })
	paths := flag.String("paths", strings.Join(defaults, ","),
		"data paths to compare, comma-separated, of "+strings.Join(allPaths(), ", ")+"; hand is always measured, release with -baseline")
	flag.StringVar(&o.baseline, "baseline", "", "a git revision of vpcroute to measure beside this one on the data path (path release, on a bed of its own), e.g. the one before a change to the rules")
	flag.Parse()
	var err error
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "vrbench: -scale-sizes: give network counts such as 1,100,200")
			os.Exit(2)
		}
		o.scaleSizes = append(o.scaleSizes, n)
	}
	if o.sections, err = parseSet(*only, []string{"startup", "host", "datapath", "scale", "swarm"}); err != nil {
		fmt.Fprintln(os.Stderr, "vrbench: -only:", err)
		os.Exit(2)
	}
	if o.paths, err = parseSet(*paths, allPaths()); err != nil {
		fmt.Fprintln(os.Stderr, "vrbench: -paths:", err)
		os.Exit(2)
	}
	o.paths[pathHand] = true
	if o.baseline != "" {
		o.paths[pathRelease] = true
	} else if o.paths[pathRelease] {
		fmt.Fprintln(os.Stderr, "vrbench: -paths: release needs -baseline REVISION")
		os.Exit(2)
	}

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
	o.work = work
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
	r.Compat = probeCompat(ctx) // before any walk is counted

	if o.sections["startup"] {
		say("start-up, none mode")
		if err := measureStartupNone(ctx, o, work, r); err != nil {
			return err
		}
	}
	if !o.skipBed && (o.sections["startup"] || o.sections["host"] || o.sections["datapath"] || o.sections["scale"]) {
		if err := bedBenchmarks(ctx, o, work, r); err != nil {
			return err
		}
	}
	if !o.skipBed && o.sections["swarm"] {
		if err := measureSwarm(ctx, o, work, r); err != nil {
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
	// The scale part makes 200 networks on one ECS: a quota that holds them.
	env, err := cloudbed.Start(ctx, cloudbed.Options{Bed: testbed.Config{Prefix: o.prefix,
		Logger: slog.New(slog.DiscardHandler)}, RouteQuota: 1000})
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
	if o.sections["startup"] {
		say("start-up, huaweicloud mode against the emulator")
		if err := measureStartupHuawei(ctx, o, work, env, r); err != nil {
			return err
		}
	}
	if err := startPlugins(ctx, o, env); err != nil {
		return err
	}
	if o.sections["host"] {
		if err := measureHost(ctx, o, env, r); err != nil {
			return err
		}
	}
	if o.sections["datapath"] {
		say("data path: iperf3 over " + strings.Join(o.pathList(), ", "))
		err = measureDatapath(ctx, o, env, r)
	}
	if err == nil && o.sections["scale"] {
		err = measureScale(ctx, o, work, env, r)
	}
	if o.hold && !o.sections["datapath"] {
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

// allPaths are the keys of every data path, in report order.
func allPaths() []string {
	var out []string
	for _, p := range pathInfos {
		out = append(out, p.Key)
	}
	return out
}

// pathList are the data paths to measure, in report order.
func (o options) pathList() []string {
	var out []string
	for _, k := range allPaths() {
		if o.paths[k] {
			out = append(out, k)
		}
	}
	return out
}

// parseSet reads a comma-separated list of names out of known.
func parseSet(list string, known []string) (map[string]bool, error) {
	set := map[string]bool{}
	for _, x := range strings.Split(list, ",") {
		x = strings.TrimSpace(x)
		if x == "" {
			continue
		}
		if !slices.Contains(known, x) {
			return nil, fmt.Errorf("unknown %q; choose from %s", x, strings.Join(known, ", "))
		}
		set[x] = true
	}
	return set, nil
}

func say(msg string) {
	fmt.Fprintf(os.Stderr, "vrbench: %s %s\n", time.Now().Format("15:04:05"), msg)
}

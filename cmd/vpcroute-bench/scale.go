//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// The costs that grow with the number of networks on one ECS (issue 13), measured on
// ECS 2 at a few sizes: the idle plugin's CPU while its background repair runs, the
// worst wait of a Docker call during those passes, the time to be ready after a
// restart (the kernel in place) and after a reboot (the kernel empty), and, at the
// largest size, how many FORWARD rules a forwarded packet walks once dockerd has
// restarted and made networks of its own after vpcroute's.

// scaleInterval is the kernel repair interval during the idle windows: six times the
// default (30 s), so that a short window holds several passes and its CPU is an upper
// bound of the default's.
const scaleInterval = 5 * time.Second

// scaleSample is what one size measured.
type scaleSample struct {
	Networks int
	// CPUPerMin is the plugin's CPU-seconds per minute over Window, idle but for its
	// loop (a kernel pass every scaleInterval).
	CPUPerMin float64
	Window    time.Duration
	// Probes calls were made during ProbeWindow; Worst and P99 are their waits.
	Probes      int
	ProbeWindow time.Duration
	Worst, P99  time.Duration
	// Ready is exec → first answered call after a restart with the kernel in place;
	// Reboot the same with vpcroute's bridges and rules gone.
	Ready, Reboot []time.Duration
}

// scaleFigures are the scale measurements.
type scaleFigures struct {
	Samples []scaleSample
	// After dockerd restarted and made 5 networks: FORWARD rules an established
	// packet walks on a vpcroute network and on Docker's default bridge, and
	// where vpcroute's jump is.
	WalkVpcroute, WalkDocker int
	// XTVpcroute and XTDocker are the xtables matches those packets call (walkCost).
	XTVpcroute, XTDocker int
	Forward              []string
}

// measureScale grows ECS 2 to each size and measures there.
func measureScale(ctx context.Context, o options, work string, env *cloudbed.Env, r *report) error {
	ecs, err := env.Bed.ECS("ecs2")
	if err != nil {
		return err
	}
	sf := &scaleFigures{}
	r.Scale = sf
	regular := env.Plugins[ecs.Name]
	if err := regular.Stop(); err != nil {
		return err
	}
	// The plugin of the idle windows: the bed's, with a shorter repair interval.
	penv := append(env.PluginEnv(ecs.Name), "VPCROUTE_KERNEL_INTERVAL="+scaleInterval.String())
	for _, size := range o.scaleSizes {
		have, err := countNetworks(ctx, ecs)
		if err != nil {
			return err
		}
		p, err := ecs.StartPlugin(o.plugin, penv)
		if err != nil {
			return err
		}
		sock, err := ecs.HostPath(filepath.Join(testbed.PluginsDir, "vpcroute.sock"))
		if err != nil {
			return err
		}
		if err := waitReady(ctx, sock); err != nil {
			return err
		}
		if have < size {
			say(fmt.Sprintf("scale: creating networks %d to %d on ecs2", have+1, size))
		}
		for i := have + 1; i <= size; i++ {
			if out, err := ecs.Docker(ctx, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", fmt.Sprintf("sc%d", i)); err != nil {
				return fmt.Errorf("network create sc%d: %w %s", i, err, out)
			}
		}
		n, err := countNetworks(ctx, ecs)
		if err != nil {
			return err
		}
		s := scaleSample{Networks: n, Window: o.scaleWindow, ProbeWindow: o.scaleWindow}
		if size == o.scaleSizes[len(o.scaleSizes)-1] {
			s.ProbeWindow = o.probeWindow
		}
		say(fmt.Sprintf("scale: %d networks, idle for %s, then calls for %s, with a kernel pass every %s", n, s.Window, s.ProbeWindow, scaleInterval))
		time.Sleep(2*scaleInterval + 2*time.Second) // let the create burst's cycles, and the first kernel passes after them, pass
		if err := idleWindow(ctx, ecs, p.PID(), sock, &s); err != nil {
			return err
		}
		if err := p.Stop(); err != nil {
			return err
		}
		say(fmt.Sprintf("scale: %d networks, ready after restart and after reboot", n))
		for i := 0; i < o.scaleRestarts; i++ {
			d, err := restartOnce(ctx, o, work, env, ecs)
			if err != nil {
				return err
			}
			s.Ready = append(s.Ready, d)
		}
		for i := 0; i < o.scaleRestarts; i++ {
			if err := emptyKernel(ctx, ecs); err != nil {
				return err
			}
			d, err := restartOnce(ctx, o, work, env, ecs)
			if err != nil {
				return err
			}
			s.Reboot = append(s.Reboot, d)
		}
		sf.Samples = append(sf.Samples, s)
	}
	// dockerd restarts and makes networks after vpcroute's; one pass later the rules
	// a packet walks are read.
	p, err := ecs.StartPlugin(o.plugin, penv)
	if err != nil {
		return err
	}
	defer func() { _ = p.Stop(); _ = regular.Restart() }()
	say("scale: dockerd restart and 5 Docker networks after vpcroute's")
	if err := env.Bed.RestartDocker(ctx, ecs.Name); err != nil {
		return err
	}
	for i := 1; i <= 5; i++ {
		if out, err := ecs.Docker(ctx, "network", "create", fmt.Sprintf("dk%d", i)); err != nil {
			return fmt.Errorf("docker network create dk%d: %w %s", i, err, out)
		}
	}
	time.Sleep(scaleInterval + 2*time.Second)
	save, err := ecs.Exec(ctx, "iptables-save", "-t", "filter")
	if err != nil {
		return err
	}
	t := parseFilter(save)
	for _, rl := range t["FORWARD"] {
		for i := range rl {
			if rl[i] == "-j" && i+1 < len(rl) {
				sf.Forward = append(sf.Forward, rl[i+1])
			}
		}
	}
	// The newest vpcroute network's bridge, and docker0; each to the uplink.
	br, err := newestBridge(ctx, ecs)
	if err != nil {
		return err
	}
	sf.WalkVpcroute, sf.XTVpcroute, _ = t.walkCost("FORWARD", packet{src: br.addr, dst: "10.0.200.2", in: br.name, out: "eth0"})
	sf.WalkDocker, sf.XTDocker, _ = t.walkCost("FORWARD", packet{src: "172.17.0.2", dst: "10.0.200.2", in: "docker0", out: "eth0"})
	return nil
}

type bridgeAddr struct{ name, addr string }

// newestBridge is the bridge of the vpcroute network created last on ecs, with an
// address of its subnet.
func newestBridge(ctx context.Context, ecs *testbed.ECS) (bridgeAddr, error) {
	out, err := ecs.Exec(ctx, "ip", "-4", "-o", "addr", "show")
	if err != nil {
		return bridgeAddr{}, err
	}
	var last bridgeAddr
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && strings.HasPrefix(f[1], "vr-") {
			a, _, _ := strings.Cut(f[3], "/")
			last = bridgeAddr{name: f[1], addr: a}
		}
	}
	if last.name == "" {
		return last, fmt.Errorf("no vpcroute bridge on %s", ecs.Name)
	}
	return last, nil
}

func countNetworks(ctx context.Context, ecs *testbed.ECS) (int, error) {
	out, err := ecs.Docker(ctx, "network", "ls", "-q", "--filter", "driver=vpcroute")
	if err != nil {
		return 0, err
	}
	return len(strings.Fields(out)), nil
}

// cpuSeconds is a process's user and system CPU time, with that of the children it
// waited for (iptables-save and iptables-restore).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 15 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	total := 0.0
	for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
		v, _ := strconv.ParseFloat(f[i], 64)
		total += v
	}
	return total / 100, nil // USER_HZ
}

// idleWindow measures the plugin's CPU over s.Window with nothing calling it and
// nothing changing (its loop alone), then, over s.ProbeWindow, the waits of a call
// that needs its lock, made every 10 ms as Docker's calls would come, while a link
// of the ECS changes every scaleInterval: each change makes the next kernel pass
// read and check everything, as a container starting would.
func idleWindow(ctx context.Context, ecs *testbed.ECS, pid int, sock string, s *scaleSample) error {
	c0, err := cpuSeconds(pid)
	if err != nil {
		return err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(s.Window):
	}
	c1, err := cpuSeconds(pid)
	if err != nil {
		return err
	}
	s.CPUPerMin = (c1 - c0) / time.Since(t0).Minutes()
	if out, err := ecs.Exec(ctx, "ip", "link", "add", "vrbtick0", "type", "veth", "peer", "name", "vrbtick1"); err != nil {
		return fmt.Errorf("make the link the probe window changes: %w %s", err, out)
	}
	defer func() { _, _ = ecs.Exec(context.Background(), "ip", "link", "del", "vrbtick0") }()
	tctx, stopTicks := context.WithCancel(ctx)
	defer stopTicks()
	go func() {
		up := true
		for t := time.NewTicker(scaleInterval); ; {
			select {
			case <-tctx.Done():
				t.Stop()
				return
			case <-t.C:
				state := map[bool]string{true: "up", false: "down"}[up]
				_, _ = ecs.Exec(tctx, "ip", "link", "set", "vrbtick0", state)
				up = !up
			}
		}
	}()
	var waits []time.Duration
	for t1 := time.Now(); time.Since(t1) < s.ProbeWindow; {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := pluginCall(cctx, sock, "NetworkDriver.EndpointOperInfo", readyProbe)
		cancel()
		if err != nil {
			return fmt.Errorf("probe call: %w", err)
		}
		waits = append(waits, time.Since(start))
		time.Sleep(10 * time.Millisecond)
	}
	s.Probes = len(waits)
	s.Worst = maxDuration(waits)
	s.P99 = percentile(waits, 0.99)
	return nil
}

// restartOnce starts the plugin of ecs on a socket of its own (Docker keeps calling
// the regular one, which is stopped) with the ECS's state, and returns exec → first
// answered call.
func restartOnce(ctx context.Context, o options, work string, env *cloudbed.Env, ecs *testbed.ECS) (time.Duration, error) {
	dir, err := os.MkdirTemp(work, "scale-")
	if err != nil {
		return 0, err
	}
	sock := filepath.Join(dir, "vpcroute.sock")
	penv := append(baseEnv(), env.PluginEnv(ecs.Name)...)
	penv = append(penv, "VPCROUTE_SOCKET="+sock)
	s, err := startOnce(ctx, o.plugin, sock, penv, filepath.Join(work, "scale.log"), func(c *exec.Cmd) error {
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		return testbed.InNetns(ecs.Netns, c.Start)
	})
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(work, "scale.log"))
		return 0, fmt.Errorf("restart with the networks: %w\n%s", err, tail(string(log), 20))
	}
	return s.Ready, nil
}

// emptyKernel removes vpcroute's bridges and rules on ecs, as a reboot leaves it.
func emptyKernel(ctx context.Context, ecs *testbed.ECS) error {
	out, err := ecs.Exec(ctx, "ip", "-o", "link", "show", "type", "bridge")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if strings.HasPrefix(name, "vr-") {
				if _, err := ecs.Exec(ctx, "ip", "link", "del", name); err != nil {
					return err
				}
			}
		}
	}
	for _, table := range []string{"filter", "nat"} {
		save, err := ecs.Exec(ctx, "iptables-save", "-t", table)
		if err != nil {
			return err
		}
		var keep []string
		for _, l := range strings.Split(save, "\n") {
			if !strings.Contains(l, "VPCROUTE") && !strings.Contains(l, "vpcroute") {
				keep = append(keep, l)
			}
		}
		if _, err := ecs.ExecInput(ctx, strings.Join(keep, "\n")+"\n", "iptables-restore", "-T", table); err != nil {
			return err
		}
	}
	return nil
}

func maxDuration(v []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range v {
		m = max(m, d)
	}
	return m
}

func percentile(v []time.Duration, q float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

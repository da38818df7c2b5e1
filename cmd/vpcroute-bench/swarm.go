package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// swarmFigures are service-to-service figures on the two-ECS swarm: a vpcroute swarm
// network (routed by the VPC) beside Docker's overlay network (VXLAN), one task of
// each service per ECS, measured in alternating rounds.
type swarmFigures struct {
	Seconds int
	Rounds  int
	Samples []runSample // Path: swarmVpcroute or swarmOverlay
	From    map[string]string
	To      map[string]string
	Engine  string // the engines' version
}

const (
	swarmVpcroute = "vpcroute"
	swarmOverlay  = "overlay"
)

// measureSwarm builds its own bed (prefix o.prefix+"s") with the managed plugin on
// both ECSs, makes them one swarm, runs a global service on a vpcroute swarm network
// (config-from a config-only network per node) and one on an overlay network, and
// measures TCP throughput (iperf3) and connection rate from ECS 1's task to ECS 2's.
func measureSwarm(ctx context.Context, o options, work string, r *report) error {
	say("swarm: bringing up the bed " + o.prefix + "s with the managed plugin")
	env, err := cloudbed.Start(ctx, cloudbed.Options{Bed: testbed.Config{Prefix: o.prefix + "s", Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		return fmt.Errorf("swarm bed: %w", err)
	}
	defer func() {
		if err := env.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "vrbench: tear down the swarm bed:", err)
		}
	}()
	dir := filepath.Join(work, "plugin")
	build := exec.CommandContext(ctx, "./scripts/plugin-rootfs.sh", dir)
	build.Env = append(os.Environ(), "VPCROUTE_BIN="+o.plugin)
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("scripts/plugin-rootfs.sh: %w\n%s", err, out)
	}
	for _, ecs := range env.Bed.ECSs {
		if err := env.InstallManagedPlugin(ctx, ecs, dir); err != nil {
			return err
		}
	}
	if err := env.FormSwarm(ctx); err != nil {
		return err
	}
	ecs1, ecs2 := env.Bed.ECSs[0], env.Bed.ECSs[1]
	for _, ecs := range env.Bed.ECSs {
		if _, err := ecs.Docker(ctx, "network", "create", "--config-only", "--ipam-driver", cloudbed.ManagedPlugin, "vpc-conf"); err != nil {
			return fmt.Errorf("config-only network on %s: %w", ecs.Name, err)
		}
	}
	for _, args := range [][]string{
		{"network", "create", "-d", cloudbed.ManagedPlugin, "--scope", "swarm", "--config-from", "vpc-conf", "svc-vpc"},
		{"network", "create", "-d", "overlay", "svc-ovl"},
		{"service", "create", "--name", swarmVpcroute, "--network", "svc-vpc", "--mode", "global", "--endpoint-mode", "dnsrr", "--no-resolve-image", "--detach", testbed.ImageName},
		{"service", "create", "--name", swarmOverlay, "--network", "svc-ovl", "--mode", "global", "--no-resolve-image", "--detach", testbed.ImageName},
	} {
		if out, err := ecs1.Docker(ctx, args...); err != nil {
			return fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	d := &swarmFigures{Seconds: o.iperfSecs, Rounds: o.iperfRuns, From: map[string]string{}, To: map[string]string{}}
	d.Engine, _ = ecs1.Docker(ctx, "version", "--format", "{{.Server.Version}}")
	ns := map[string][2]string{} // path -> client netns, server netns
	for _, svc := range []struct{ name, net string }{{swarmVpcroute, "svc-vpc"}, {swarmOverlay, "svc-ovl"}} {
		var paths [2]string
		for i, ecs := range []*testbed.ECS{ecs1, ecs2} {
			id, addr, err := waitTask(ctx, ecs, svc.name, svc.net)
			if err != nil {
				return err
			}
			pid, err := containerPID(ctx, ecs, id)
			if err != nil {
				return err
			}
			paths[i] = "/proc/" + pid + "/ns/net"
			if i == 0 {
				d.From[svc.name] = addr
			} else {
				d.To[svc.name] = addr
			}
		}
		ns[svc.name] = paths
	}
	order := []string{swarmVpcroute, swarmOverlay}
	for _, p := range order {
		stopI, err := iperfServer(ns[p][1])
		if err != nil {
			return err
		}
		defer stopI()
		stopC, err := connServer(ns[p][1])
		if err != nil {
			return err
		}
		defer stopC()
	}
	say(fmt.Sprintf("swarm: %d rounds of %d s per path, vpcroute (%s → %s) and overlay (%s → %s)", o.iperfRuns, o.iperfSecs,
		d.From[swarmVpcroute], d.To[swarmVpcroute], d.From[swarmOverlay], d.To[swarmOverlay]))
	for round := 0; round < o.iperfRuns; round++ {
		for slot := range order {
			p := order[(round+slot)%len(order)]
			s := runSample{Round: round, Slot: slot, Path: p, LoadBefore: readLoadAvg()}
			if s.Bps, err = iperfRun(ctx, ns[p][0], d.To[p], o.iperfSecs); err != nil {
				return err
			}
			if s.ConnPerSec, err = connRate(ns[p][0], d.To[p], connWindow); err != nil {
				return err
			}
			s.LoadAfter = readLoadAvg()
			d.Samples = append(d.Samples, s)
		}
	}
	r.Swarm = d
	return nil
}

// waitTask waits for the service's task on an ECS to run and returns its container
// and its address on netName.
func waitTask(ctx context.Context, ecs *testbed.ECS, service, netName string) (string, string, error) {
	deadline := time.Now().Add(90 * time.Second)
	for {
		id, _ := ecs.Docker(ctx, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+service)
		if id != "" && !strings.Contains(id, "\n") {
			addr, err := ecs.Docker(ctx, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+netName+"\").IPAddress}}", id)
			if err == nil && addr != "" {
				return id, addr, nil
			}
		}
		if time.Now().After(deadline) {
			return "", "", fmt.Errorf("no running task of service %s on %s after 90 s", service, ecs.Name)
		}
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// series is one figure of one path's samples, round by round.
func (d *swarmFigures) series(path string, figure func(runSample) float64) []float64 {
	return seriesOf(d.Samples, d.Rounds, path, figure)
}

func (r *report) writeSwarm(p func(string, ...any)) {
	d := r.Swarm
	if d == nil || len(d.Samples) == 0 {
		return
	}
	bps := func(s runSample) float64 { return s.Bps }
	cps := func(s runSample) float64 { return s.ConnPerSec }
	p("## 6. Swarm services: a vpcroute swarm network vs Docker's overlay")
	p("")
	p("Two ECSs as one swarm (Docker Engine %s, ECS 1 the manager), the managed plugin on both. Service `%s` runs globally (one task per ECS) on a vpcroute swarm network (`--config-from` a `--config-only` network asking vpcroute's IPAM for each node's subnet; `--endpoint-mode dnsrr`), service `%s` globally on an overlay network (VXLAN). From ECS 1's task to ECS 2's by address: iperf3 for %d s, then TCP connections opened and closed one after the other for %s; %d rounds, the order alternating.",
		d.Engine, swarmVpcroute, swarmOverlay, d.Seconds, connWindow, d.Rounds)
	p("")
	p("| Path | From → to | Throughput, median (runs) | Connections/s, median (runs) |")
	p("|---|---|---|---|")
	for _, k := range []string{swarmVpcroute, swarmOverlay} {
		p("| %s | %s → %s | %s (%s) | %.0f (%s) |", k, d.From[k], d.To[k], gbits([]float64{median(d.series(k, bps))}), gbits(d.series(k, bps)),
			median(d.series(k, cps)), rates(d.series(k, cps)))
	}
	p("")
	p("Paired by round, vpcroute over overlay: throughput %s (median %.1f %%), connections/s %s (median %.1f %%).",
		percents(pairRatios(d.series(swarmVpcroute, bps), d.series(swarmOverlay, bps))), 100*median(pairRatios(d.series(swarmVpcroute, bps), d.series(swarmOverlay, bps))),
		percents(pairRatios(d.series(swarmVpcroute, cps), d.series(swarmOverlay, cps))), 100*median(pairRatios(d.series(swarmVpcroute, cps), d.series(swarmOverlay, cps))))
	p("")
	p("The overlay wraps each packet in VXLAN (50 bytes, an MTU of 1450 on the bed's 1500) and runs it through a VXLAN device and Docker's overlay namespace on both ends; vpcroute's tasks send plain IP that the VPC routes.")
	p("")
}

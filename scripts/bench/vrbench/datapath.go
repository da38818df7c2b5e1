//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// datapathFigures are the iperf3 results, in bit/s, run by run.
type datapathFigures struct {
	Vpcroute, Hand []float64
	Seconds        int
	VpcrouteFrom   string // client and server addresses, for the report
	VpcrouteTo     string
	HandFrom       string
	HandTo         string
}

// Hand-built path: one plain network namespace per ECS as the "container", on a bridge
// made by hand, with a route in the VPC router as the guide adds by hand.
const (
	handBridge = "vrbhand"
	handVeth   = "vrbhv"
	handCIDR   = "10.250.0.0/16"
	iperfPort  = "5201"
)

// ratios are vpcroute / hand-built for each pair of back-to-back runs.
func (d *datapathFigures) ratios() []float64 {
	var out []float64
	for i := range min(len(d.Vpcroute), len(d.Hand)) {
		if d.Hand[i] > 0 {
			out = append(out, d.Vpcroute[i]/d.Hand[i])
		}
	}
	return out
}

func handNetns(prefix string, i int) string { return fmt.Sprintf("%s-hand%d", prefix, i) }

// handSubnet is the hand-built subnet of the i-th ECS: 10.250.i.0/24.
func handAddr(i, host int) string { return fmt.Sprintf("10.250.%d.%d", i, host) }

// buildHandPath makes the hand-built path on every ECS and returns its teardown.
func buildHandPath(ctx context.Context, env *cloudbed.Env, prefix string) (func(), error) {
	var undo []func()
	teardown := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	for i, ecs := range env.Bed.ECSs {
		n := i + 1
		ns := handNetns(prefix, n)
		_, _ = exec.CommandContext(ctx, "ip", "netns", "del", ns).CombinedOutput() // a crashed run's
		if out, err := exec.CommandContext(ctx, "ip", "netns", "add", ns).CombinedOutput(); err != nil {
			teardown()
			return nil, fmt.Errorf("ip netns add %s: %w %s", ns, err, out)
		}
		undo = append(undo, func() { _, _ = exec.Command("ip", "netns", "del", ns).CombinedOutput() })
		steps := []struct {
			netns string
			argv  []string
		}{
			{ecs.Netns, []string{"ip", "link", "add", handBridge, "type", "bridge"}},
			{ecs.Netns, []string{"ip", "addr", "add", handAddr(n, 1) + "/24", "dev", handBridge}},
			{ecs.Netns, []string{"ip", "link", "set", handBridge, "up"}},
			{ecs.Netns, []string{"ip", "link", "add", handVeth, "type", "veth", "peer", "name", "eth0", "netns", ns}},
			{ecs.Netns, []string{"ip", "link", "set", handVeth, "master", handBridge, "up"}},
			{ns, []string{"ip", "link", "set", "lo", "up"}},
			{ns, []string{"ip", "addr", "add", handAddr(n, 2) + "/24", "dev", "eth0"}},
			{ns, []string{"ip", "link", "set", "eth0", "up"}},
			{ns, []string{"ip", "route", "add", "default", "via", handAddr(n, 1)}},
			{env.Bed.RouterNetns, []string{"ip", "route", "replace", handAddr(n, 0) + "/24", "via", ecs.IP.String()}},
		}
		for _, s := range steps {
			if _, err := testbed.Exec(ctx, s.netns, s.argv...); err != nil {
				teardown()
				return nil, err
			}
		}
		undo = append(undo, func() {
			_, _ = testbed.Exec(context.Background(), env.Bed.RouterNetns, "ip", "route", "del", handAddr(n, 0)+"/24")
		})
		// As the guide's `iptables -P FORWARD ACCEPT`, for the hand-built subnets only; in
		// the ECS's mount namespace, so that the engine's xtables lock is honoured.
		for _, dir := range []string{"-s", "-d"} {
			if _, err := ecs.Exec(ctx, "iptables", "-I", "FORWARD", "1", dir, handCIDR, "-j", "ACCEPT"); err != nil {
				teardown()
				return nil, err
			}
		}
	}
	if out, err := testbed.Exec(ctx, handNetns(prefix, 1), "busybox", "ping", "-c", "1", "-W", "2", handAddr(2, 2)); err != nil {
		teardown()
		return nil, fmt.Errorf("hand-built path does not carry traffic: %w %s", err, out)
	}
	return teardown, nil
}

// iperfServer runs iperf3 -s in a network namespace (a file such as /proc/PID/ns/net)
// and returns its stop function.
func iperfServer(nsPath string) (func(), error) {
	cmd := exec.Command("nsenter", "--net="+nsPath, "--", "iperf3", "-s", "-p", iperfPort)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start iperf3 -s in %s: %w", nsPath, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	time.Sleep(300 * time.Millisecond)
	select {
	case <-done:
		return nil, fmt.Errorf("iperf3 -s in %s exited at once", nsPath)
	default:
	}
	return func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}, nil
}

// iperfRun runs one iperf3 client from a network namespace and returns bit/s received.
func iperfRun(ctx context.Context, nsPath, server string, secs int) (float64, error) {
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+nsPath, "--",
		"iperf3", "-c", server, "-p", iperfPort, "-t", fmt.Sprint(secs), "-J").Output()
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return 0, fmt.Errorf("iperf3 -c %s from %s: %v (output %q)", server, nsPath, errors.Join(err, jerr), tail(string(out), 5))
	}
	if res.Error != "" || err != nil {
		return 0, fmt.Errorf("iperf3 -c %s from %s: %v %s", server, nsPath, err, res.Error)
	}
	return res.End.SumReceived.BitsPerSecond, nil
}

func containerPID(ctx context.Context, ecs *testbed.ECS, name string) (string, error) {
	pid, err := ecs.Docker(ctx, "inspect", "-f", "{{.State.Pid}}", name)
	if err != nil || pid == "" || pid == "0" {
		return "", fmt.Errorf("pid of container %s on %s: %v %q", name, ecs.Name, err, pid)
	}
	return pid, nil
}

// measureDatapath compares a container on ECS 1 talking to one on ECS 2 through
// vpcroute with the hand-built path, runs interleaved so that drift in the machine's
// load hits both alike.
func measureDatapath(ctx context.Context, o options, env *cloudbed.Env, r *report) error {
	ecs1, err := env.Bed.ECS("ecs1")
	if err != nil {
		return err
	}
	ecs2, err := env.Bed.ECS("ecs2")
	if err != nil {
		return err
	}
	if out, err := ecs2.Docker(ctx, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", "bdp"); err != nil {
		return fmt.Errorf("network create on ecs2: %w %s", err, out)
	}
	if out, err := ecs2.Docker(ctx, "run", "-d", "--name", "bsrv", "--net", "bdp", testbed.ImageName); err != nil {
		return fmt.Errorf("docker run on ecs2: %w %s", err, out)
	}
	srvIP, err := ecs2.Docker(ctx, "inspect", "-f", `{{(index .NetworkSettings.Networks "bdp").IPAddress}}`, "bsrv")
	if err != nil {
		return err
	}
	cliIP, err := ecs1.Docker(ctx, "inspect", "-f", `{{(index .NetworkSettings.Networks "bn1").IPAddress}}`, "bc1")
	if err != nil {
		return err
	}
	srvPID, err := containerPID(ctx, ecs2, "bsrv")
	if err != nil {
		return err
	}
	cliPID, err := containerPID(ctx, ecs1, "bc1")
	if err != nil {
		return err
	}
	teardown, err := buildHandPath(ctx, env, o.prefix)
	if err != nil {
		return err
	}
	defer teardown()

	stopV, err := iperfServer("/proc/" + srvPID + "/ns/net")
	if err != nil {
		return err
	}
	defer stopV()
	stopH, err := iperfServer(testbed.NetnsPath(handNetns(o.prefix, 2)))
	if err != nil {
		return err
	}
	defer stopH()

	d := &datapathFigures{Seconds: o.iperfSecs, VpcrouteFrom: strings.TrimSpace(cliIP), VpcrouteTo: strings.TrimSpace(srvIP),
		HandFrom: handAddr(1, 2), HandTo: handAddr(2, 2)}
	r.Datapath = d
	for i := 0; i < o.iperfRuns; i++ {
		var v, h float64
		vpcroute := func() (err error) {
			v, err = iperfRun(ctx, "/proc/"+cliPID+"/ns/net", d.VpcrouteTo, o.iperfSecs)
			return err
		}
		hand := func() (err error) {
			h, err = iperfRun(ctx, testbed.NetnsPath(handNetns(o.prefix, 1)), d.HandTo, o.iperfSecs)
			return err
		}
		// Alternate which goes first, so that neither always follows the other.
		first, second := vpcroute, hand
		if i%2 == 1 {
			first, second = hand, vpcroute
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
		say(fmt.Sprintf("iperf3 run %d: vpcroute %.2f Gbit/s, hand-built %.2f Gbit/s", i+1, v/1e9, h/1e9))
		d.Vpcroute, d.Hand = append(d.Vpcroute, v), append(d.Hand, h)
	}
	return nil
}

//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/sim"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// memSample is the plugin's memory as /proc/PID/status shows it, in kB.
type memSample struct {
	RSS, HWM int
}

func readMem(pid int) (memSample, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memSample{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	var m memSample
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "VmRSS:":
			m.RSS = n
		case "VmHWM:":
			m.HWM = n
		}
	}
	return m, nil
}

// createSample is one `docker network create --ipam-driver vpcroute`.
type createSample struct {
	Reads, Writes, Other int           // route table GETs, writes, any other request
	Took                 time.Duration // RequestPool + RequestAddress + CreateNetwork, as logged
	Calls                map[string]time.Duration
	RulesAdded           int
	Wall                 time.Duration // the docker command, end to end
}

// ruleCounts are the iptables rules of an ECS's network namespace.
type ruleCounts struct {
	All, Vpcroute int
}

func countRules(ctx context.Context, ecs *testbed.ECS) (ruleCounts, error) {
	var c ruleCounts
	out, err := ecs.Exec(ctx, "iptables-save")
	if err != nil {
		return c, err
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "-A ") {
			c.All++
			if strings.Contains(line, "vpcroute") {
				c.Vpcroute++
			}
		}
	}
	return c, nil
}

// tookRE matches the plugin's debug line for one API call.
var tookRE = regexp.MustCompile(`msg=request call=(\S+) took=(\S+)`)

// logReader reads what a log file gained since the last read.
type logReader struct {
	path string
	off  int64
}

func (l *logReader) skip() error {
	fi, err := os.Stat(l.path)
	if err != nil {
		return err
	}
	l.off = fi.Size()
	return nil
}

// calls returns the took= of every call logged since the last read, summed per call.
func (l *logReader) calls() (map[string]time.Duration, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(l.off, io.SeekStart); err != nil {
		return nil, err
	}
	out := map[string]time.Duration{}
	sc := bufio.NewScanner(f)
	var n int64
	for sc.Scan() {
		n += int64(len(sc.Bytes())) + 1
		m := tookRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		d, err := time.ParseDuration(m[2])
		if err != nil {
			return nil, fmt.Errorf("took=%q in the plugin log: %w", m[2], err)
		}
		out[m[1]] += d
	}
	l.off += n
	return out, sc.Err()
}

// classify counts route table reads and writes and every other request of a log.
func classify(log []sim.RequestLog) (reads, writes, other int) {
	for _, r := range log {
		switch {
		case strings.Contains(r.Path, "/routetables") && r.Method == http.MethodGet:
			reads++
		case strings.Contains(r.Path, "/routetables"):
			writes++
		default:
			other++
		}
	}
	return
}

// hostFigures are what measureHost found on ECS 1.
type hostFigures struct {
	MemStart, MemLoaded  memSample
	Networks, Containers int
	Creates              []createSample
	RulesBase            ruleCounts         // after start, before any network
	RulesAt              map[int]ruleCounts // containers on one network -> rules
	RulesPort            ruleCounts         // after one more container with -p
	RulesPort2           ruleCounts         // after a second one, with another port
	RequestsDuringRuns   int                // cloud requests while containers started
	ContainerStart       time.Duration      // median `docker run -d`
	RulesPerNetwork      []int              // rules added by each network create
}

// measureHost creates networks and containers on ECS 1 and measures the plugin's
// memory, the cloud requests and took= of each network create, and the iptables rules.
func measureHost(ctx context.Context, o options, env *cloudbed.Env, r *report) error {
	ecs, err := env.Bed.ECS("ecs1")
	if err != nil {
		return err
	}
	p := env.Plugins["ecs1"]
	h := &hostFigures{Networks: o.networks, Containers: o.containers, RulesAt: map[int]ruleCounts{}}
	r.Host = h
	time.Sleep(time.Second)
	if h.MemStart, err = readMem(p.PID()); err != nil {
		return err
	}
	if h.RulesBase, err = countRules(ctx, ecs); err != nil {
		return err
	}

	say(fmt.Sprintf("creating %d networks on ecs1", o.networks))
	logs := &logReader{path: p.LogPath()}
	prev := h.RulesBase
	for i := 1; i <= o.networks; i++ {
		if err := logs.skip(); err != nil {
			return err
		}
		before := len(env.Sim.Requests())
		t0 := time.Now()
		if out, err := ecs.Docker(ctx, "network", "create", "-d", "vpcroute", "--ipam-driver", "vpcroute", fmt.Sprintf("bn%d", i)); err != nil {
			return fmt.Errorf("network create bn%d: %w %s\nplugin log:\n%s", i, err, out, tail(p.Logs(), 20))
		}
		s := createSample{Wall: time.Since(t0)}
		s.Reads, s.Writes, s.Other = classify(env.Sim.Requests()[before:])
		if s.Calls, err = logs.calls(); err != nil {
			return err
		}
		s.Took = s.Calls["IpamDriver.RequestPool"] + s.Calls["IpamDriver.RequestAddress"] + s.Calls["NetworkDriver.CreateNetwork"]
		rules, err := countRules(ctx, ecs)
		if err != nil {
			return err
		}
		s.RulesAdded = rules.All - prev.All
		h.RulesPerNetwork = append(h.RulesPerNetwork, s.RulesAdded)
		prev = rules
		h.Creates = append(h.Creates, s)
	}

	say(fmt.Sprintf("starting %d containers on network bn1 of ecs1", o.containers))
	reqBefore := len(env.Sim.Requests())
	var runs []time.Duration
	for i := 1; i <= o.containers; i++ {
		t0 := time.Now()
		if out, err := ecs.Docker(ctx, "run", "-d", "--name", fmt.Sprintf("bc%d", i), "--net", "bn1", testbed.ImageName); err != nil {
			return fmt.Errorf("docker run bc%d: %w %s\nplugin log:\n%s", i, err, out, tail(p.Logs(), 20))
		}
		runs = append(runs, time.Since(t0))
		if i == 1 || i == 10 || i == o.containers {
			c, err := countRules(ctx, ecs)
			if err != nil {
				return err
			}
			h.RulesAt[i] = c
		}
	}
	h.RequestsDuringRuns = len(env.Sim.Requests()) - reqBefore
	h.ContainerStart = median(runs)
	if out, err := ecs.Docker(ctx, "run", "-d", "--name", "bport", "--net", "bn1", "-p", "8080:80", testbed.ImageName); err != nil {
		return fmt.Errorf("docker run -p 8080:80: %w %s", err, out)
	}
	if h.RulesPort, err = countRules(ctx, ecs); err != nil {
		return err
	}
	// The first port brings the jumps to published ports too: a second one shows
	// what each port costs.
	if out, err := ecs.Docker(ctx, "run", "-d", "--name", "bport2", "--net", "bn1", "-p", "8081:80", testbed.ImageName); err != nil {
		return fmt.Errorf("docker run -p 8081:80: %w %s", err, out)
	}
	if h.RulesPort2, err = countRules(ctx, ecs); err != nil {
		return err
	}
	// Idle: let the engine and the plugin settle.
	time.Sleep(3 * time.Second)
	h.MemLoaded, err = readMem(p.PID())
	return err
}

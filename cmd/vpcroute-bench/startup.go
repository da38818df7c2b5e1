//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/sim"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// pluginCall posts one plugin API call to a unix socket and returns the body; a fresh
// connection every time, as Docker's first contact is.
func pluginCall(ctx context.Context, sock, call, body string) (string, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://plugin/"+call, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/vnd.docker.plugins.v1.1+json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return string(answer), fmt.Errorf("%s: %s %s", call, resp.Status, strings.TrimSpace(string(answer)))
	}
	return string(answer), nil
}

// readyProbe is an API call that is answered only once start-up has finished (state,
// cloud, firewall), and changes nothing: the info of an endpoint that does not exist.
// Activate and the capabilities are answered at once, so they cannot tell.
const readyProbe = `{"NetworkID":"vrbench-probe","EndpointID":"vrbench-probe"}`

// waitReady waits until the plugin has finished starting.
func waitReady(ctx context.Context, sock string) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := pluginCall(cctx, sock, "NetworkDriver.EndpointOperInfo", readyProbe)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last: %v)", ctx.Err(), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// startSample is one start of the plugin: from exec to the first answered
// Plugin.Activate, and to the end of start-up (first answered API call).
type startSample struct {
	Activate, Ready time.Duration
}

// startOnce execs the plugin with start (which runs cmd.Start in the right namespace),
// polls its socket with Plugin.Activate, then waits for readiness, then stops it.
func startOnce(ctx context.Context, bin, sock string, env []string, logPath string, start func(*exec.Cmd) error) (startSample, error) {
	var s startSample
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return s, err
	}
	defer logf.Close()
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	exited := make(chan struct{})
	t0 := time.Now()
	if err := start(cmd); err != nil {
		return s, fmt.Errorf("start vpcroute: %w", err)
	}
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		body, err := pluginCall(actx, sock, "Plugin.Activate", "{}")
		cancel()
		if err == nil && strings.Contains(body, "NetworkDriver") {
			s.Activate = time.Since(t0)
			break
		}
		select {
		case <-exited:
			return s, fmt.Errorf("vpcroute exited during start-up; see %s", logPath)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return s, fmt.Errorf("socket %s did not answer Plugin.Activate within 10 s (last error %v); see %s", sock, err, logPath)
		}
		time.Sleep(200 * time.Microsecond)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := waitReady(rctx, sock); err != nil {
		return s, fmt.Errorf("%w; see %s", err, logPath)
	}
	s.Ready = time.Since(t0)
	return s, nil
}

// baseEnv is a minimal environment, as the bed gives its programs.
func baseEnv() []string {
	return []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
}

// measureStartupNone starts the plugin in none mode, each time in a fresh network
// namespace of its own (cloned with the process, so no extra exec is timed).
func measureStartupNone(ctx context.Context, o options, work string, r *report) error {
	for i := 0; i < o.startRuns; i++ {
		dir := filepath.Join(work, fmt.Sprintf("none-%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		sock := filepath.Join(dir, "vpcroute.sock")
		env := append(baseEnv(),
			"VPCROUTE_CLOUD=none",
			"VPCROUTE_SOCKET="+sock,
			"VPCROUTE_STATE_DIR="+filepath.Join(dir, "state"),
			"VPCROUTE_VPC_CIDRS=192.168.0.0/24",
			"VPCROUTE_HOSTNAME=bench")
		s, err := startOnce(ctx, o.plugin, sock, env, filepath.Join(work, "none.log"), func(c *exec.Cmd) error {
			c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Setsid: true}
			return c.Start()
		})
		if err != nil {
			return fmt.Errorf("start-up in none mode, run %d: %w", i+1, err)
		}
		r.StartNone = append(r.StartNone, s)
	}
	return nil
}

// slowCloud is the metadata latency injected to show that the socket answers before
// a slow cloud start-up is over.
const slowCloud = 300 * time.Millisecond

// measureStartupHuawei starts the plugin in huaweicloud mode on ECS 1 against the
// emulator (metadata, agency credentials, port, route tables, quota), first as is,
// then with the metadata service answering slowCloud late.
func measureStartupHuawei(ctx context.Context, o options, work string, env *cloudbed.Env, r *report) error {
	ecs, err := env.Bed.ECS("ecs1")
	if err != nil {
		return err
	}
	runs := []struct {
		n    int
		slow bool
		out  *[]startSample
	}{
		{o.startRuns, false, &r.StartHuawei},
		{max(3, o.startRuns/4), true, &r.StartHuaweiSlow},
	}
	for _, rn := range runs {
		for i := 0; i < rn.n; i++ {
			dir := filepath.Join(work, fmt.Sprintf("hw-%v-%d", rn.slow, i))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			sock := filepath.Join(dir, "vpcroute.sock")
			penv := append(baseEnv(), env.PluginEnv(ecs.Name)...)
			penv = append(penv, "VPCROUTE_SOCKET="+sock, "VPCROUTE_STATE_DIR="+filepath.Join(dir, "state"))
			if rn.slow {
				env.Sim.InjectFault(sim.Fault{Latency: slowCloud, PathContains: "meta_data.json"})
			}
			s, err := startOnce(ctx, o.plugin, sock, penv, filepath.Join(work, "huawei.log"), func(c *exec.Cmd) error {
				c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
				// Forked from a thread inside the ECS's network namespace.
				return testbed.InNetns(ecs.Netns, c.Start)
			})
			env.Sim.ClearFaults()
			if err != nil {
				log, _ := os.ReadFile(filepath.Join(work, "huawei.log"))
				return fmt.Errorf("start-up in huaweicloud mode, run %d: %w\n%s", i+1, err, tail(string(log), 20))
			}
			*rn.out = append(*rn.out, s)
		}
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

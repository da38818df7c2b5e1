//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The connection rate is measured by two processes of this program, a server and a
// client, each started with nsenter in its endpoint's namespace and pinned as iperf3
// is (client CPU 0, server CPU 1): run inside the benchmark's own process, both shared
// its goroutines, its garbage collector and whatever CPU the scheduler gave them, and
// single samples of the same path scattered by ±10%.

// connWindow is how long each connection-rate sample opens connections.
const connWindow = 2 * time.Second

// connSlice is one turn of a path's client in interleaved measurements: with connWindow
// per path and round, 20 turns each.
const connSlice = 100 * time.Millisecond

// Subcommands of this program for the connection-rate processes (see connMain).
const (
	subConnServe  = "conn-serve"
	subConnClient = "conn-client"
)

// pinned returns argv run on one CPU (taskset), or argv itself on a 1-CPU machine.
func pinned(cpu int, argv ...string) []string {
	if runtime.NumCPU() < 2 {
		return argv
	}
	return append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
}

// connMain runs a connection-rate subcommand when args name one, and reports whether
// it did.
func connMain(args []string) bool {
	if len(args) == 0 || (args[0] != subConnServe && args[0] != subConnClient) {
		return false
	}
	runtime.GOMAXPROCS(1)
	var err error
	switch args[0] {
	case subConnServe:
		err = serveConns()
	case subConnClient:
		if len(args) != 2 {
			err = fmt.Errorf("usage: %s ADDRESS (durations on standard input)", subConnClient)
			break
		}
		err = connSlices(args[1], os.Stdin, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vrbench:", args[0]+":", err)
		os.Exit(1)
	}
	return true
}

// serveConns accepts and closes TCP connections on connPort until killed; it says
// "ready" once listening.
func serveConns() error {
	l, err := net.Listen("tcp4", fmt.Sprintf(":%d", connPort))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		c.Close()
	}
}

// openConns opens and closes TCP connections to addr, one after the other, for d, and
// returns how many and how long it took. Each closes with a reset, so that no port
// waits in TIME_WAIT.
func openConns(addr string, d time.Duration) (n int, secs float64, err error) {
	start := time.Now()
	for time.Since(start) < d {
		c, err := net.DialTimeout("tcp4", addr, time.Second)
		if err != nil {
			return n, 0, fmt.Errorf("connect to %s: %w", addr, err)
		}
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
		n++
	}
	return n, time.Since(start).Seconds(), nil
}

// connSlices is the client of interleaved measurements: for each duration read from in,
// one per line, it opens connections to addr for that long and writes "N SECONDS" to
// out, until in ends.
func connSlices(addr string, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		d, err := time.ParseDuration(strings.TrimSpace(sc.Text()))
		if err != nil {
			return err
		}
		n, secs, err := openConns(addr, d)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintln(out, n, secs); err != nil {
			return err
		}
	}
	return sc.Err()
}

// sliceClient is a connection-rate client kept running in one path's client namespace
// (pinned to CPU 0), told over a pipe when to open connections and for how long: with
// one per path, the paths' clients take turns in slices of a fraction of a second.
type sliceClient struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	desc string
	err  *strings.Builder
}

// startSliceClient starts a sliceClient in the namespace at nsPath against server's
// connPort.
func startSliceClient(nsPath, server string) (*sliceClient, error) {
	exe, err := self()
	if err != nil {
		return nil, err
	}
	argv := append([]string{"--net=" + nsPath, "--"}, pinned(0, exe, subConnClient, net.JoinHostPort(server, strconv.Itoa(connPort)))...)
	c := &sliceClient{cmd: exec.Command("nsenter", argv...), desc: "connections from " + nsPath + " to " + server, err: &strings.Builder{}}
	c.cmd.Stderr = c.err
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.out = bufio.NewReader(out)
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", c.desc, err)
	}
	return c, nil
}

// slice opens connections for d and returns how many and over how many seconds.
func (c *sliceClient) slice(d time.Duration) (int, float64, error) {
	if _, err := fmt.Fprintln(c.in, d); err != nil {
		return 0, 0, fmt.Errorf("%s: %w %s", c.desc, err, c.err)
	}
	line, err := c.out.ReadString('\n')
	var n int
	var secs float64
	if _, serr := fmt.Sscan(line, &n, &secs); err != nil || serr != nil || secs <= 0 {
		return 0, 0, fmt.Errorf("%s: unreadable count %q (%v) %s", c.desc, line, err, c.err)
	}
	return n, secs, nil
}

// stop ends the client.
func (c *sliceClient) stop() {
	_ = c.in.Close()
	_ = c.cmd.Wait()
}

// interleavedRates measures the connection rate of each client's path in turns: slices
// rounds of every client for d each, the order rotated by one from slice to slice, and
// returns each path's connections per second over all its slices. A machine whose speed
// changes from one second to the next (this 2-core VM alternates between two rates for
// every path, for seconds or minutes at a time) then slows every path alike, where
// back-to-back windows of seconds each put whole windows on one side of a change.
func interleavedRates(clients []*sliceClient, slices int, d time.Duration) ([]float64, error) {
	n := make([]int, len(clients))
	secs := make([]float64, len(clients))
	for s := 0; s < slices; s++ {
		for k := range clients {
			i := (s + k) % len(clients)
			cn, cs, err := clients[i].slice(d)
			if err != nil {
				return nil, err
			}
			n[i], secs[i] = n[i]+cn, secs[i]+cs
		}
	}
	rates := make([]float64, len(clients))
	for i := range rates {
		rates[i] = float64(n[i]) / secs[i]
	}
	return rates, nil
}

// self is this program's binary, for the connection-rate processes.
func self() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this program to run the connection-rate processes: %w", err)
	}
	return exe, nil
}

// connServer starts the connection-rate server in the namespace at nsPath, pinned to
// CPU 1, and returns its stop function.
func connServer(nsPath string) (func(), error) {
	exe, err := self()
	if err != nil {
		return nil, err
	}
	argv := append([]string{"--net=" + nsPath, "--"}, pinned(1, exe, subConnServe)...)
	cmd := exec.Command("nsenter", argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("connection-rate server in %s: %w", nsPath, err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		stop()
		return nil, fmt.Errorf("connection-rate server in %s: %v %s", nsPath, err, stderr.String())
	}
	return stop, nil
}

// connRate runs a connection-rate client in the namespace at nsPath, pinned to CPU 0,
// against server's connPort for d, and returns connections per second.
func connRate(nsPath, server string, d time.Duration) (float64, error) {
	c, err := startSliceClient(nsPath, server)
	if err != nil {
		return 0, err
	}
	defer c.stop()
	n, secs, err := c.slice(d)
	if err != nil {
		return 0, err
	}
	return float64(n) / secs, nil
}

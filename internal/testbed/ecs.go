//go:build linux

package testbed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ECS is one emulated Elastic Cloud Server: a network namespace with a NIC on the VPC bridge,
// its own Docker Engine, and a private mount namespace shared by that engine and the plugins
// started on it.
type ECS struct {
	// Name is the ECS's name in the bed: "ecs1", "ecs2", ...
	Name string
	// IP is its VPC address (192.168.0.2 for ecs1).
	IP netip.Addr
	// Netns is the name of its network namespace ("vr-ecs1"), NetnsPath the file naming it.
	Netns, NetnsPath string
	// Dir is its state directory: data and exec roots, engine socket, logs. Plugins that
	// keep state can be given a subdirectory of it so that two ECSs never share files.
	Dir string
	// DockerHost is the engine's address for DOCKER_HOST or `docker -H`.
	DockerHost string

	cfg Config
}

// child is a process this package started and reaps.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once Wait returned
}

func startChild(cmd *exec.Cmd) (*child, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // reap; the exit status is in the process's log
		close(c.done)
	}()
	return c, nil
}

func newECS(cfg Config, i int) *ECS {
	name := ecsName(i)
	ns := ecsNetns(cfg.Prefix, name)
	return &ECS{
		Name:       name,
		IP:         ecsIP(i),
		Netns:      ns,
		NetnsPath:  NetnsPath(ns),
		Dir:        ecsDir(cfg.StateDir, name),
		DockerHost: "unix://" + socketPath(cfg.StateDir, name),
		cfg:        cfg,
	}
}

func (e *ECS) path(name string) string { return filepath.Join(e.Dir, name) }

// HolderPID is the process that keeps the ECS's mount namespace alive.
func (e *ECS) HolderPID() (int, error) { return readPIDFile(e.path("holder.pid")) }

// MountNS is the ECS's mount namespace (/proc/PID/ns/mnt), the one its dockerd and plugins
// run in: there /run/docker/plugins is the ECS's own.
func (e *ECS) MountNS() (string, error) {
	pid, err := e.HolderPID()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("/proc/%d/ns/mnt", pid), nil
}

// HostPath translates a path as the ECS's engine and plugins see it (for example
// /run/docker/plugins/vpcroute.sock) into one the caller can open.
func (e *ECS) HostPath(p string) (string, error) {
	pid, err := e.HolderPID()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("/proc/%d/root%s", pid, filepath.Clean("/"+p)), nil
}

// DockerdPID is the running engine's PID, from its pidfile.
func (e *ECS) DockerdPID() (int, error) {
	pid, err := readPIDFile(e.path("docker.pid"))
	if err != nil {
		return 0, err
	}
	if !processAlive(pid) {
		return 0, fmt.Errorf("dockerd of %s (pid %d) is not running; see %s", e.Name, pid, e.path("dockerd.log"))
	}
	return pid, nil
}

// DockerCommand prepares the docker CLI against this ECS's engine, for callers that need
// stdin or streaming output.
func (e *ECS) DockerCommand(ctx context.Context, args ...string) *exec.Cmd {
	return e.Command(ctx, append([]string{e.cfg.Docker, "--host", e.DockerHost}, args...)...)
}

// Command is a command running argv: on the machine, or, when the bed has a Root, in
// the ECS's namespaces, where the root's programs are (the CLI matches the engine).
func (e *ECS) Command(ctx context.Context, argv ...string) *exec.Cmd {
	if e.cfg.Root != "" {
		if pid, err := e.HolderPID(); err == nil {
			argv = e.nsenter(pid, argv...)
		}
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = baseEnv()
	return cmd
}

// Docker runs the docker CLI against this ECS's engine and returns its trimmed standard
// output; the error carries standard error.
func (e *ECS) Docker(ctx context.Context, args ...string) (string, error) {
	argv := append([]string{e.cfg.Docker, "--host", e.DockerHost}, args...)
	if e.cfg.Root != "" {
		pid, err := e.HolderPID()
		if err != nil {
			return "", err
		}
		argv = e.nsenter(pid, argv...)
	}
	out, err := run(ctx, nil, argv...)
	return strings.TrimSpace(out), err
}

// Root is the Debian root the ECS runs (Config.Root); "" for the machine's own.
func (e *ECS) Root() string { return e.cfg.Root }

// Exec runs argv on the ECS host: in its network namespace and its mount namespace, as a
// shell on a real ECS would (iptables there shares the engine's lock file, for example).
func (e *ECS) Exec(ctx context.Context, argv ...string) (string, error) {
	pid, err := e.HolderPID()
	if err != nil {
		return "", err
	}
	return run(ctx, nil, e.nsenter(pid, argv...)...)
}

// ExecInput is Exec with input on the program's standard input.
func (e *ECS) ExecInput(ctx context.Context, input string, argv ...string) (string, error) {
	pid, err := e.HolderPID()
	if err != nil {
		return "", err
	}
	return run(ctx, []byte(input), e.nsenter(pid, argv...)...)
}

func (e *ECS) nsenter(holder int, argv ...string) []string {
	return append([]string{"nsenter",
		fmt.Sprintf("--mount=/proc/%d/ns/mnt", holder),
		"--net=" + e.NetnsPath, "--"}, argv...)
}

// startHolder starts the process owning the ECS's mount namespace: a private copy of the
// host's mounts with a fresh tmpfs on /run (own /run/docker/plugins, no host containerd
// socket, own xtables lock) and the ECS's own /etc/docker (dockerd writes key.json there).
// `mount -n` keeps libmount from creating /run/mount on the host.
func (e *ECS) startHolder(ctx context.Context) error {
	etcDocker := e.path("etc-docker")
	if err := os.MkdirAll(etcDocker, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", etcDocker, err)
	}
	const script = `set -e
if [ -n "$3" ]; then mount -n --rbind "$3/usr" /usr; mount -n --rbind "$3/etc" /etc; fi
mount -n -t tmpfs -o mode=0755 "$1" /run
mkdir -p /run/docker/plugins
if [ -d /etc/docker ]; then mount -n --bind "$2" /etc/docker; fi
echo ready
exec sleep infinity </dev/null >/dev/null 2>&1`
	cmd := exec.Command("nsenter", "--net="+e.NetnsPath, "--",
		"unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", script, "holder", e.cfg.Prefix+"-"+e.Name+"-run", etcDocker, e.cfg.Root)
	cmd.Env = baseEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("start mount namespace holder of %s: %w", e.Name, err)
	}
	c, err := startChild(cmd)
	if err != nil {
		return fmt.Errorf("start mount namespace holder of %s: %w", e.Name, err)
	}
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line) == "ready"
	}()
	select {
	case ok := <-ready:
		if !ok {
			<-c.done
			return fmt.Errorf("set up the mount namespace of %s: %s", e.Name, strings.TrimSpace(stderr.String()))
		}
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return fmt.Errorf("set up the mount namespace of %s: %w", e.Name, ctx.Err())
	}
	return writePIDFile(e.path("holder.pid"), cmd.Process.Pid)
}

// StartDocker starts the ECS's engine in its namespaces and waits until it answers.
func (e *ECS) StartDocker(ctx context.Context) error {
	holder, err := e.HolderPID()
	if err != nil {
		return err
	}
	if err := os.WriteFile(e.path("daemon.json"), []byte("{}\n"), 0o644); err != nil {
		return fmt.Errorf("write dockerd config of %s: %w", e.Name, err)
	}
	args := []string{
		"--data-root", e.path("data"),
		"--exec-root", e.path("exec"),
		"--host", e.DockerHost,
		// Also where Docker listens on a real host, in the ECS's own /run: a plugin
		// there reads Docker's API at its default address, as on an ECS.
		"--host", "unix://" + EngineSocket,
		"--pidfile", e.path("docker.pid"),
		"--config-file", e.path("daemon.json"),
		// Own cgroups, so that Down finds this engine's containers and a root-namespace
		// engine's /docker cgroups are never touched.
		"--cgroup-parent", cgroupParent(e.cfg.Prefix, e.Name),
	}
	if e.cfg.StorageDriver != "" {
		args = append(args, "--storage-driver", e.cfg.StorageDriver)
	}
	logf, err := os.OpenFile(e.path("dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open dockerd log of %s: %w", e.Name, err)
	}
	defer logf.Close()
	argv := e.nsenter(holder, append([]string{e.cfg.Dockerd}, args...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = baseEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: the engine outlives `vpcroute-bed up` and ignores the terminal.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c, err := startChild(cmd)
	if err != nil {
		return fmt.Errorf("start dockerd of %s: %w", e.Name, err)
	}
	if err := e.waitDocker(ctx, c); err != nil {
		return fmt.Errorf("dockerd of %s did not come up: %w; its log: %s%s", e.Name, err, e.path("dockerd.log"), logTail(e.path("dockerd.log"), 5))
	}
	e.cfg.Logger.Info("engine up", "ecs", e.Name, "docker_host", e.DockerHost)
	return nil
}

// waitDocker polls the engine's /_ping until it answers OK, the process dies or ctx ends.
func (e *ECS) waitDocker(ctx context.Context, c *child) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := e.Ping(ctx); err == nil {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("it exited (%v)", c.cmd.ProcessState)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Ping asks the engine's API whether it is up.
func (e *ECS) Ping(ctx context.Context) error {
	sock := strings.TrimPrefix(e.DockerHost, "unix://")
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("ping dockerd of %s: %w", e.Name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	if resp.StatusCode != http.StatusOK || string(body) != "OK" {
		return fmt.Errorf("ping dockerd of %s: %s %q", e.Name, resp.Status, body)
	}
	return nil
}

// StopDocker stops the engine as `systemctl stop docker` would: SIGTERM, so that it stops its
// containers and containerd, then SIGKILL if it has not exited within a minute.
func (e *ECS) StopDocker(ctx context.Context) error {
	pid, err := readPIDFile(e.path("docker.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return nil // not running: dockerd removes its pidfile on exit
	}
	if err != nil {
		return err
	}
	if !processAlive(pid) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop dockerd of %s (pid %d): %w", e.Name, pid, err)
	}
	if waitGone(ctx, pid, time.Minute) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if !waitGone(ctx, pid, 10*time.Second) {
		return fmt.Errorf("dockerd of %s (pid %d) survived SIGKILL", e.Name, pid)
	}
	return nil
}

// RestartDocker stops and starts the engine, keeping the ECS's mount namespace and so the
// plugin sockets in it, like `systemctl restart docker` on a real ECS.
func (e *ECS) RestartDocker(ctx context.Context) error {
	if err := e.StopDocker(ctx); err != nil {
		return err
	}
	return e.StartDocker(ctx)
}

func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: bad content %q", path, b)
	}
	return pid, nil
}

func writePIDFile(path string, pid int) error {
	if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// waitGone waits until pid has exited, up to d; it reports whether it did.
func waitGone(ctx context.Context, pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for processAlive(pid) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// logTail returns the last n lines of a log file, indented, for error messages.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n\t" + strings.Join(lines, "\n\t")
}

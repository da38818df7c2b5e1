//go:build linux

package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// PluginsDir is where Docker discovers host-service plugins' sockets, as the ECS's engine
// sees it.
const PluginsDir = "/run/docker/plugins"

// Proc is a long-running program started on an ECS (a network plugin, typically). Its output
// goes to a log file that survives restarts, so a test can show what the plugin said.
type Proc struct {
	ecs *ECS
	bin string
	env []string
	log string

	mu  sync.Mutex // guards cur
	cur *child
}

// StartPlugin runs binPath on the ECS, in its network namespace and in the mount namespace of
// its engine, so that a socket it creates at /run/docker/plugins/NAME.sock is discovered by
// this ECS's engine only. env is added to a minimal environment (PATH, HOME); nothing of the
// caller's environment is passed. Standard output and error go to <ECS.Dir>/<base>.log.
// The plugin outlives the caller; Down kills it.
func (e *ECS) StartPlugin(binPath string, env []string) (*Proc, error) {
	abs, err := filepath.Abs(binPath)
	if err != nil {
		return nil, fmt.Errorf("plugin binary %s: %w", binPath, err)
	}
	if !isExecutable(abs) {
		return nil, fmt.Errorf("plugin binary %s is not an executable file; build it first", abs)
	}
	p := &Proc{
		ecs: e,
		bin: abs,
		env: append(baseEnv(), env...),
		log: e.path(filepath.Base(abs) + ".log"),
	}
	if err := p.start(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Proc) start() error {
	holder, err := p.ecs.HolderPID()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log of %s on %s: %w", filepath.Base(p.bin), p.ecs.Name, err)
	}
	defer logf.Close()
	argv := p.ecs.nsenter(holder, p.bin)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c, err := startChild(cmd)
	if err != nil {
		return fmt.Errorf("start %s on %s: %w", p.bin, p.ecs.Name, err)
	}
	p.mu.Lock()
	p.cur = c
	p.mu.Unlock()
	return nil
}

func (p *Proc) current() *child {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// PID is the program's process ID (nsenter execs it, so this is the program itself).
func (p *Proc) PID() int { return p.current().cmd.Process.Pid }

// Running reports whether the program has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.current().done:
		return false
	default:
		return true
	}
}

// Exited is closed when the current run of the program has exited.
func (p *Proc) Exited() <-chan struct{} { return p.current().done }

// Stop sends SIGTERM, as systemd would, and waits up to 30 seconds before SIGKILL.
func (p *Proc) Stop() error { return p.signal(syscall.SIGTERM, 30*time.Second) }

// Kill9 kills the program with SIGKILL, the way a crash or OOM kill ends it: no clean-up.
func (p *Proc) Kill9() error { return p.signal(syscall.SIGKILL, 10*time.Second) }

func (p *Proc) signal(sig syscall.Signal, grace time.Duration) error {
	c := p.current()
	if err := c.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s on %s: %w", filepath.Base(p.bin), p.ecs.Name, err)
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(grace):
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	if sig == syscall.SIGKILL {
		return fmt.Errorf("%s on %s did not exit after SIGKILL within %s", filepath.Base(p.bin), p.ecs.Name, grace)
	}
	return nil
}

// Restart stops the program (SIGTERM) if it runs and starts it again with the same binary and
// environment, like `systemctl restart`.
func (p *Proc) Restart() error {
	if p.Running() {
		if err := p.Stop(); err != nil {
			return err
		}
	}
	return p.start()
}

// Logs returns everything the program printed so far, across restarts.
func (p *Proc) Logs() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// LogPath is the file the program's output goes to.
func (p *Proc) LogPath() string { return p.log }

// WaitPlugin waits until a plugin socket /run/docker/plugins/<name>.sock on the ECS accepts
// connections, so that the engine will find the plugin.
func (e *ECS) WaitPlugin(ctx context.Context, name string) error {
	path, err := e.HostPath(filepath.Join(PluginsDir, name+".sock"))
	if err != nil {
		return err
	}
	for {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("plugin %s on %s: socket %s/%s.sock not answering: %w", name, e.Name, PluginsDir, name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

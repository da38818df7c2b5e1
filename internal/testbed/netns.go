//go:build linux

package testbed

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// NetnsDir is where `ip netns` keeps named network namespaces.
const NetnsDir = "/run/netns"

// NetnsPath is the file that names the network namespace name, for nsenter --net= or setns.
func NetnsPath(name string) string { return filepath.Join(NetnsDir, name) }

// InNetns runs fn on a locked OS thread that has entered the named network namespace, and
// returns fn's error. Sockets fn opens stay in that namespace after it returns, so a server
// started with net.Listen inside fn keeps serving there (run Serve outside fn). Goroutines fn
// starts do NOT run in the namespace. If the thread cannot be switched back, it is discarded
// rather than returned to the Go scheduler in the wrong namespace.
func InNetns(name string, fn func() error) error { return InNetnsPath(NetnsPath(name), fn) }

// InNetnsPath is InNetns for the namespace a file names, such as a container's
// /proc/PID/ns/net.
func InNetnsPath(path string, fn func() error) error {
	name := path
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", name, err)
	}
	defer target.Close()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Leaving the thread locked on failure paths makes the runtime terminate it when this
		// goroutine exits, instead of reusing a thread stuck in another namespace.
		orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
		if err != nil {
			errc <- fmt.Errorf("open current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", name, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("return from network namespace %s: %w (after fn: %v)", name, err, fnErr)
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// Exec runs argv inside the named network namespace (with nsenter, keeping the caller's mount
// namespace and /sys) and returns its standard output. The error includes standard error.
func Exec(ctx context.Context, netns string, argv ...string) (string, error) {
	return run(ctx, nil, nsenterNet(netns, argv...)...)
}

// ExecStdin is Exec with the given standard input.
func ExecStdin(ctx context.Context, netns string, stdin []byte, argv ...string) (string, error) {
	return run(ctx, stdin, nsenterNet(netns, argv...)...)
}

func nsenterNet(netns string, argv ...string) []string {
	return append([]string{"nsenter", "--net=" + NetnsPath(netns), "--"}, argv...)
}

// run executes argv with a minimal environment and returns its standard output. A failure
// names the command and carries its standard error, which is what a reader needs to act.
func run(ctx context.Context, stdin []byte, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = baseEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), &CmdError{Argv: argv, Stderr: strings.TrimSpace(stderr.String()), Err: err}
	}
	return stdout.String(), nil
}

// CmdError is a command that failed, with what it printed on standard error.
type CmdError struct {
	Argv   []string
	Stderr string
	Err    error
}

func (e *CmdError) Error() string {
	msg := fmt.Sprintf("%s: %v", strings.Join(e.Argv, " "), e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *CmdError) Unwrap() error { return e.Err }

// baseEnv is the environment of every program the bed starts: a sane PATH and nothing from
// the caller, so that a DOCKER_HOST or proxy setting of the test never leaks into an engine.
func baseEnv() []string {
	return []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
}

// netnsExists reports whether the named network namespace exists.
func netnsExists(name string) bool {
	_, err := os.Stat(NetnsPath(name))
	return err == nil
}

// ensureNetns creates the named network namespace with its loopback up.
func ensureNetns(ctx context.Context, name string) error {
	if !netnsExists(name) {
		if _, err := run(ctx, nil, "ip", "netns", "add", name); err != nil {
			return fmt.Errorf("create network namespace %s: %w", name, err)
		}
	}
	if _, err := Exec(ctx, name, "ip", "link", "set", "lo", "up"); err != nil {
		return fmt.Errorf("bring up loopback in %s: %w", name, err)
	}
	return nil
}

// deleteNetns removes the named network namespace; a missing one is not an error.
func deleteNetns(ctx context.Context, name string) error {
	if !netnsExists(name) {
		return nil
	}
	if _, err := run(ctx, nil, "ip", "netns", "delete", name); err != nil && netnsExists(name) {
		return fmt.Errorf("delete network namespace %s: %w", name, err)
	}
	return nil
}

// setSysctls writes net.* sysctls inside the named network namespace. /proc/sys/net shows
// the namespace of the thread that opens it, hence InNetns. Keys whose file does not exist
// are skipped when optional is true (net.bridge.* exists only with br_netfilter loaded).
func setSysctls(name string, optional bool, kv ...string) error {
	return InNetns(name, func() error {
		for i := 0; i+1 < len(kv); i += 2 {
			path := "/proc/sys/" + strings.ReplaceAll(kv[i], ".", "/")
			err := os.WriteFile(path, []byte(kv[i+1]), 0o644)
			if err != nil && optional && os.IsNotExist(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("set %s=%s in %s: %w", kv[i], kv[i+1], name, err)
			}
		}
		return nil
	})
}

func firstExisting(paths ...string) string {
	for _, p := range paths {
		if isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

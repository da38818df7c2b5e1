//go:build linux

// Package netnstest gives tests throwaway network namespaces: every kernel test of
// vpcroute (links, firewall, the emulator's router, the driver benchmarks) makes its
// bridges, veths and iptables rules in one of these, never in the host's namespace.
//
// The Go traps it handles (as containernetworking/plugins' pkg/ns explains them): a
// namespace belongs to an OS thread, not a goroutine, so work in one runs on a locked
// thread; a thread that may be left in the wrong namespace is never unlocked, so Go
// ends it with its goroutine instead of running other code on it.
package netnstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// reexecEnv is set in the copy of a test binary that Main runs in a namespace of its
// own.
const reexecEnv = "VPCROUTE_TEST_IN_NETNS"

// Main is a TestMain for packages whose tests touch the kernel: when run as root it
// re-executes the test binary under `unshare --net`, a safety net under the per-test
// namespaces, so that even a goroutine on the wrong thread, or a command started from
// one, can only ever touch a throwaway namespace and never the host's links or
// iptables. It does not return.
func Main(m *testing.M) {
	if os.Getuid() == 0 && os.Getenv(reexecEnv) == "" {
		if unshare, err := exec.LookPath("unshare"); err == nil {
			cmd := exec.Command(unshare, append([]string{"--net", "--", os.Args[0]}, os.Args[1:]...)...)
			cmd.Env = append(os.Environ(), reexecEnv+"=1")
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			err := cmd.Run()
			var ee *exec.ExitError
			switch {
			case err == nil:
				os.Exit(0)
			case errors.As(err, &ee):
				os.Exit(ee.ExitCode())
			}
			fmt.Fprintf(os.Stderr, "netnstest: cannot re-exec under unshare (%v); relying on per-test namespaces\n", err)
		}
	}
	os.Exit(m.Run())
}

// RequireRoot skips the test unless it runs as root.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Getuid() != 0 {
		tb.Skip("needs root: creates network namespaces, links and iptables rules")
	}
}

// Enter moves the calling (sub)test's or benchmark's goroutine into a new, throwaway
// network namespace for the rest of the test, with lo up, and returns it. The goroutine
// is locked to its OS thread, and the thread is put back (and only then unlocked) by
// the cleanup. Subtests run on goroutines of their own and so must call it again: they
// do not inherit the namespace. Commands the test runs (iptables) are forked from this
// thread and so run in the namespace too.
func Enter(tb testing.TB) netns.NsHandle {
	tb.Helper()
	RequireRoot(tb)
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("get current netns: %v", err)
	}
	ns, err := netns.New() // unshare(CLONE_NEWNET) on this thread
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		tb.Fatalf("create netns: %v", err)
	}
	tb.Cleanup(func() {
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: Go ends it with the goroutine, so it
			// never runs other code in the wrong namespace.
			tb.Errorf("restore netns: %v", err)
			return
		}
		orig.Close()
		ns.Close()
		runtime.UnlockOSThread()
	})
	if err := LinkUp("lo"); err != nil {
		tb.Fatal(err)
	}
	return ns
}

// New creates a namespace with lo up without entering it, for the far ends of test
// links (containers, other hosts). It is closed when the test ends, and disappears
// with its last user.
func New(tb testing.TB) netns.NsHandle {
	tb.Helper()
	RequireRoot(tb)
	var ns netns.NsHandle
	err := inNewThread(func() error {
		var err error
		ns, err = netns.New()
		if err != nil {
			return err
		}
		return LinkUp("lo")
	})
	if err != nil {
		tb.Fatalf("create netns: %v", err)
	}
	tb.Cleanup(func() { ns.Close() })
	return ns
}

// Path names ns as a file other processes can enter (`nsenter --net=PATH`) while the
// handle is open.
func Path(ns netns.NsHandle) string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(ns))
}

// Do runs fn on a thread in ns. Sockets fn creates stay in ns after it returns and may
// be used from any goroutine.
func Do(ns netns.NsHandle, fn func() error) error {
	return inNewThread(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("enter netns: %w", err)
		}
		return fn()
	})
}

// inNewThread runs fn on a fresh goroutine locked to its thread and never unlocks it,
// so the thread, whatever namespace fn left it in, exits with the goroutine.
func inNewThread(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		done <- fn()
	}()
	return <-done
}

// LinkUp sets a link of the calling thread's namespace up.
func LinkUp(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// Link returns the link name of the calling thread's namespace, or fails the test.
func Link(tb testing.TB, name string) netlink.Link {
	tb.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		tb.Fatalf("link %s: %v", name, err)
	}
	return l
}

// AddAddr adds an address (CIDR notation) to link dev, or fails the test.
func AddAddr(tb testing.TB, dev, cidr string) {
	tb.Helper()
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		tb.Fatal(err)
	}
	if err := netlink.AddrAdd(Link(tb, dev), a); err != nil {
		tb.Fatalf("add %s to %s: %v", cidr, dev, err)
	}
}

//go:build linux

package hostnet

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the rules the code makes")

// reexecEnv is set in the copy of the test binary that runs in its own
// network namespace.
const reexecEnv = "VPCROUTE_HOSTNET_TEST_IN_NETNS"

// TestMain re-executes the test binary under `unshare -n` when running as
// root: a safety net under the per-test namespaces, so that even a goroutine
// on the wrong thread, or a command started from one, can only ever touch a
// throwaway namespace and never the host's links or iptables.
func TestMain(m *testing.M) {
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
			fmt.Fprintf(os.Stderr, "hostnet tests: cannot re-exec under unshare (%v); relying on per-test namespaces\n", err)
		}
	}
	os.Exit(m.Run())
}

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Getuid() != 0 {
		tb.Skip("needs root: creates network namespaces, links and iptables rules")
	}
}

// enterTestNetns moves the calling (sub)test's goroutine into a new,
// throwaway network namespace for the rest of the test and returns it. The
// goroutine is locked to its OS thread, and the thread is put back (and only
// then unlocked) by the cleanup. Subtests run on their own goroutines and so
// must call it again: they do not inherit the namespace.
func enterTestNetns(tb testing.TB) netns.NsHandle {
	tb.Helper()
	requireRoot(tb)
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
	if err := setLinkUp("lo"); err != nil {
		tb.Fatal(err)
	}
	return ns
}

// newNetns creates a namespace without entering it, for the far ends of
// test links (containers, other hosts).
func newNetns(tb testing.TB) netns.NsHandle {
	tb.Helper()
	var ns netns.NsHandle
	err := inNewThread(func() error {
		var err error
		ns, err = netns.New()
		if err != nil {
			return err
		}
		return setLinkUp("lo")
	})
	if err != nil {
		tb.Fatalf("create netns: %v", err)
	}
	tb.Cleanup(func() { ns.Close() })
	return ns
}

// inNetns runs fn on a thread in ns. Sockets fn creates stay in ns after it
// returns and may be used from any goroutine.
func inNetns(ns netns.NsHandle, fn func() error) error {
	return inNewThread(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("enter netns: %w", err)
		}
		return fn()
	})
}

// inNewThread runs fn on a fresh goroutine locked to its thread and never
// unlocks it, so the thread, whatever namespace fn left it in, exits with
// the goroutine.
func inNewThread(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		done <- fn()
	}()
	return <-done
}

func setLinkUp(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

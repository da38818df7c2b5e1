//go:build linux

package main

import (
	"fmt"
	"net"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"

	"github.com/vpcroute/vpcroute/internal/sim"
)

func openNetns(nameOrPath string) (netns.NsHandle, error) {
	if strings.Contains(nameOrPath, "/") {
		return netns.GetFromPath(nameOrPath)
	}
	return netns.GetFromName(nameOrPath)
}

// listenInNetns creates the listening socket inside another network namespace:
// a socket stays in the namespace it was created in, so only its creation needs
// a thread switched into it. The thread is locked for the switch and, if it
// cannot be switched back, left locked so the runtime discards it.
func listenInNetns(nameOrPath, addr string) (net.Listener, error) {
	target, err := openNetns(nameOrPath)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", nameOrPath, err)
	}
	defer target.Close()

	type result struct {
		ln  net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("current network namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter network namespace %s: %w", nameOrPath, err)}
			return
		}
		ln, lerr := net.Listen("tcp", addr)
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		done <- result{ln: ln, err: lerr}
	}()
	r := <-done
	return r.ln, r.err
}

func syncRouter(s *sim.Sim, nameOrPath string, onErr func(error)) (func(), error) {
	return sim.SyncRouterWithErrors(s, nameOrPath, onErr)
}

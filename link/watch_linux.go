//go:build linux

package link

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/vishvananda/netlink"
)

// Watcher counts the changes of links and addresses the kernel announces, so that
// the background check of bridges reads them only after something changed: an idle
// host costs nothing per network. It watches the network namespace Watch was called
// in.
type Watcher struct {
	gen    atomic.Uint64
	broken atomic.Bool
}

// Watch subscribes to the kernel's link and address notifications until ctx ends.
func Watch(ctx context.Context) (*Watcher, error) {
	w := &Watcher{}
	links := make(chan netlink.LinkUpdate, 256)
	addrs := make(chan netlink.AddrUpdate, 256)
	done := make(chan struct{})
	broke := func(error) { w.broken.Store(true) }
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ErrorCallback: broke}); err != nil {
		return nil, fmt.Errorf("watch links: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: broke}); err != nil {
		close(done)
		return nil, fmt.Errorf("watch addresses: %w", err)
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-links:
				if !ok {
					w.broken.Store(true)
					return
				}
				w.gen.Add(1)
			case _, ok := <-addrs:
				if !ok {
					w.broken.Store(true)
					return
				}
				w.gen.Add(1)
			}
		}
	}()
	return w, nil
}

// Gen changes whenever links or addresses may have changed since it was last read:
// a reader that finds it as it was need not read them again. Once the notifications
// stopped (an overrun, an error), every call returns a new value.
func (w *Watcher) Gen() uint64 {
	if w.broken.Load() {
		return w.gen.Add(1)
	}
	return w.gen.Load()
}

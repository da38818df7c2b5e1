//go:build linux

package link

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Watcher counts the changes of links and addresses the kernel announces, so that
// the background check of bridges reads them only after something changed: an idle
// host costs nothing per network. It watches the network namespace Watch was called
// in.
type Watcher struct {
	gen    atomic.Uint64
	broken atomic.Bool
	// within and others: see Others.
	within atomic.Pointer[netip.Prefix]
	others chan struct{}
	h      *netlink.Handle // in the watched namespace
}

// Watch subscribes to the kernel's link and address notifications until ctx ends.
func Watch(ctx context.Context) (*Watcher, error) {
	// A handle in this namespace: the loop below runs on another thread, which
	// may be in another (tests run whole hosts in namespaces of their own).
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("watch links: %w", err)
	}
	h, err := netlink.NewHandleAt(ns)
	ns.Close()
	if err != nil {
		return nil, fmt.Errorf("watch links: %w", err)
	}
	w := &Watcher{others: make(chan struct{}, 1), h: h}
	links := make(chan netlink.LinkUpdate, 256)
	addrs := make(chan netlink.AddrUpdate, 256)
	done := make(chan struct{})
	broke := func(error) { w.broken.Store(true) }
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ErrorCallback: broke}); err != nil {
		h.Close()
		return nil, fmt.Errorf("watch links: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: broke}); err != nil {
		close(done)
		h.Close()
		return nil, fmt.Errorf("watch addresses: %w", err)
	}
	go func() {
		defer h.Close()
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
			case u, ok := <-addrs:
				if !ok {
					w.broken.Store(true)
					return
				}
				w.gen.Add(1)
				if u.NewAddr && w.another(u) {
					select {
					case w.others <- struct{}{}:
					default:
					}
				}
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

// Others returns a channel that is signalled when an IPv4 address overlapping
// within (the container pool) appears on a link that is not one of vpcroute's
// bridges: a Docker network made inside the pool, whose traffic must keep its
// masquerade (firewall.Base.PoolOthers) from its first connection, not from the
// next periodic pass. vpcroute's own bridges do not signal it.
func (w *Watcher) Others(within netip.Prefix) <-chan struct{} {
	w.within.Store(&within)
	return w.others
}

// another says whether an address update is one Others waits for.
func (w *Watcher) another(u netlink.AddrUpdate) bool {
	within := w.within.Load()
	p, ok := prefixOf(&u.LinkAddress)
	if within == nil || !within.IsValid() || !ok || !p.Masked().Overlaps(*within) {
		return false
	}
	l, err := w.h.LinkByIndex(u.LinkIndex)
	return err != nil || !isBridgeMark(l)
}

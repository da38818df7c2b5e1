//go:build linux

package sim

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RouterProtocol marks the kernel routes SyncRouter installs (rtm_protocol), so
// it only ever replaces or deletes its own routes in the router namespace.
const RouterProtocol netlink.RouteProtocol = 0xbb

// SyncRouter makes the network namespace at netnsPath (a path such as
// /run/netns/router, or a bare name under /run/netns) route like the emulated
// VPC: for every route of type ecs of every table whose next hop is an ECS of the
// configuration, it keeps "DEST via ECS.IP" in the main table, and removes its
// routes that no longer have a VPC route. It resyncs on every change (Watch).
// stop removes its routes and releases the namespace.
func SyncRouter(s *Sim, netnsPath string) (stop func(), err error) {
	return SyncRouterWithErrors(s, netnsPath, nil)
}

// SyncRouterWithErrors is SyncRouter that reports the errors of later resyncs
// (for example a next hop the namespace cannot reach) to onErr, which may be nil.
func SyncRouterWithErrors(s *Sim, netnsPath string, onErr func(error)) (stop func(), err error) {
	var ns netns.NsHandle
	if strings.Contains(netnsPath, "/") {
		ns, err = netns.GetFromPath(netnsPath)
	} else {
		ns, err = netns.GetFromName(netnsPath)
	}
	if err != nil {
		return nil, fmt.Errorf("open router network namespace %s: %w", netnsPath, err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink handle in network namespace %s: %w", netnsPath, err)
	}
	r := &router{h: h, s: s}
	var first error
	firstCall := true
	cancel := s.watch(func(routes []Route) {
		err := r.sync(routes)
		if firstCall {
			first, firstCall = err, false
			return
		}
		if err != nil && onErr != nil {
			onErr(fmt.Errorf("sync router namespace %s: %w", netnsPath, err))
		}
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			_ = r.sync(nil)
			h.Close()
			ns.Close()
		})
	}
	if first != nil {
		stop()
		return nil, fmt.Errorf("sync router namespace %s: %w", netnsPath, first)
	}
	return stop, nil
}

type router struct {
	h *netlink.Handle
	s *Sim
}

// desired maps destination to the gateway for every ecs route whose next hop is
// a known ECS. With the same destination in several tables, the first wins.
func (r *router) desired(routes []Route) map[netip.Prefix]netip.Addr {
	want := map[netip.Prefix]netip.Addr{}
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	for _, rt := range routes {
		if rt.Type != RouteTypeECS {
			continue
		}
		e := r.s.ecsByIDLocked(rt.NextHop)
		p, err := netip.ParsePrefix(rt.Destination)
		if e == nil || err != nil {
			continue
		}
		if _, dup := want[p]; !dup {
			want[p] = e.addr
		}
	}
	return want
}

func (r *router) sync(routes []Route) error {
	want := r.desired(routes)
	have, err := r.h.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Protocol: RouterProtocol, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list routes of protocol %#x: %w", int(RouterProtocol), err)
	}
	var errs []error
	for _, k := range have {
		if k.Dst == nil {
			continue
		}
		p, ok := netip.AddrFromSlice(k.Dst.IP)
		ones, _ := k.Dst.Mask.Size()
		pfx := netip.PrefixFrom(p.Unmap(), ones)
		gw, gok := netip.AddrFromSlice(k.Gw)
		if ok && gok && want[pfx] == gw.Unmap() {
			delete(want, pfx) // already right
			continue
		}
		if err := r.h.RouteDel(&k); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", pfx, err))
		}
	}
	for dst, gw := range want {
		route := &netlink.Route{
			Dst:      &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 32)},
			Gw:       gw.AsSlice(),
			Protocol: RouterProtocol,
			Table:    unix.RT_TABLE_MAIN,
		}
		if err := r.h.RouteReplace(route); err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s: %w", dst, gw, err))
		}
	}
	return errors.Join(errs...)
}

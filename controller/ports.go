package controller

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/state"
)

// Ephemeral host ports for `-p 80`, the range Docker's own bridge uses.
const (
	EphemeralFirst = 49153
	EphemeralLast  = 60999
)

// PortRequest is one port Docker asks to publish.
type PortRequest struct {
	Proto string // tcp, udp or sctp
	// HostIP restricts the port to one host address; invalid or 0.0.0.0 for all.
	HostIP netip.Addr
	// HostPort to HostPortEnd is the host port range to choose from; HostPort 0
	// takes an ephemeral one.
	HostPort, HostPortEnd uint16
	ContainerPort         uint16
}

// PortChecker tells whether a host port is free, so that a clash gets a clear error
// instead of a DNAT rule that silently steals a running service's traffic.
type PortChecker interface {
	Free(proto string, ip netip.Addr, port uint16) error
}

// BindChecker tries to bind the port, as Docker's own port allocator does.
type BindChecker struct{}

// Free binds and closes the port.
//
// A bind refused for lack of privilege (a managed plugin has no
// CAP_NET_BIND_SERVICE, so ports below 1024 answer EACCES) tells nothing about the
// port: it counts as free, as the DNAT rule needs no bind.
func (BindChecker) Free(proto string, ip netip.Addr, port uint16) error {
	err := bindTest(proto, ip, port)
	if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
		return nil
	}
	return err
}

func bindTest(proto string, ip netip.Addr, port uint16) error {
	host := ""
	if ip.IsValid() {
		host = ip.String()
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	switch proto {
	case "tcp":
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			return err
		}
		return l.Close()
	case "udp":
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	return nil // sctp: no portable bind test; the state check still applies
}

func portString(p state.Port) string {
	h := "0.0.0.0"
	if p.HostIP.IsValid() {
		h = p.HostIP.String()
	}
	return fmt.Sprintf("%s:%d->%d/%s", h, p.HostPort, p.ContainerPort, p.Proto)
}

func portMap(n state.Network, ep state.Endpoint, p state.Port) firewall.PortMap {
	return firewall.PortMap{
		NetworkID:     n.ID,
		Proto:         p.Proto,
		HostIP:        p.HostIP,
		HostPort:      p.HostPort,
		ContainerIP:   ep.Addr,
		ContainerPort: p.ContainerPort,
		Bridge:        n.Bridge,
	}
}

// clash tells whether two bindings of one protocol compete for a host port.
func clash(a, b state.Port) bool {
	return a.Proto == b.Proto && a.HostPort == b.HostPort &&
		(!a.HostIP.IsValid() || !b.HostIP.IsValid() || a.HostIP.IsUnspecified() || b.HostIP.IsUnspecified() || a.HostIP == b.HostIP)
}

// PublishPorts publishes the container's ports: it reserves each host port (checking
// vpcroute's other endpoints and the host's sockets), then adds one DNAT rule per
// port. If one port fails, the ports already added are removed again.
func (c *Controller) PublishPorts(networkID, endpointID string, reqs []PortRequest) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.liveNetwork(networkID)
	if err != nil {
		return err
	}
	ep, err := c.store.Endpoint(networkID, endpointID)
	if err != nil {
		return fmt.Errorf("endpoint %s is unknown to vpcroute: %w", short(endpointID), err)
	}
	if len(reqs) == 0 {
		return nil
	}
	if n.Internal {
		return fmt.Errorf("network %s is --internal: ports cannot be published from it; remove -p or use a network that is not internal", label(n))
	}
	// Docker may program an endpoint again: what an earlier call published goes first.
	if err := c.removePorts(n, ep); err != nil {
		return err
	}
	var added []state.Port
	undo := func() {
		for _, p := range added {
			_ = c.fw.DeletePort(portMap(n, ep, p))
		}
	}
	self := ep.NetworkID + "/" + ep.ID
	// taken looks up one host port in the state's port index: its cost does not
	// depend on how many containers there are.
	taken := func(p state.Port) (bool, error) {
		for _, a := range added {
			if clash(p, a) {
				return true, nil
			}
		}
		held, err := c.store.PortBindings(p.Proto, p.HostPort)
		if err != nil {
			return false, err
		}
		for _, h := range held {
			if h.Endpoint != self && clash(p, h.Port) {
				return true, nil
			}
		}
		return false, nil
	}
	for _, r := range reqs {
		p, err := c.reservePort(r, taken)
		if err != nil {
			undo()
			return err
		}
		if err := c.fw.EnsurePort(portMap(n, ep, p)); err != nil {
			undo()
			return fmt.Errorf("publish %s: %w", portString(p), err)
		}
		added = append(added, p)
	}
	ep.Ports = added
	if err := c.store.PutEndpoint(ep); err != nil {
		undo()
		return fmt.Errorf("save endpoint %s: %w", short(ep.ID), err)
	}
	for _, p := range added {
		c.log.Info("port published", "network", label(n), "endpoint", short(ep.ID), "port", portString(p), "container", ep.Addr)
	}
	return nil
}

// reservePort turns one request into a concrete host port.
func (c *Controller) reservePort(r PortRequest, taken func(state.Port) (bool, error)) (state.Port, error) {
	switch r.Proto {
	case "tcp", "udp", "sctp":
	default:
		return state.Port{}, fmt.Errorf("protocol %q cannot be published: use tcp, udp or sctp", r.Proto)
	}
	p := state.Port{Proto: r.Proto, ContainerPort: r.ContainerPort}
	if r.HostIP.IsValid() {
		if !r.HostIP.Is4() {
			return state.Port{}, fmt.Errorf("host IP %s of -p is not an IPv4 address: publish on an IPv4 address of this host or leave it out", r.HostIP)
		}
		if !r.HostIP.IsUnspecified() {
			p.HostIP = r.HostIP
		}
	}
	first, last := r.HostPort, r.HostPortEnd
	if first == 0 {
		first, last = EphemeralFirst, EphemeralLast
	}
	if last < first {
		last = first
	}
	var lastErr error
	for port := int(first); port <= int(last); port++ {
		p.HostPort = uint16(port)
		held, err := taken(p)
		if err != nil {
			return state.Port{}, fmt.Errorf("read published ports: %w", err)
		}
		if held {
			lastErr = fmt.Errorf("host port %d/%s is already published by another vpcroute container", port, r.Proto)
			continue
		}
		if err := c.cfg.Ports.Free(r.Proto, p.HostIP, p.HostPort); err != nil {
			lastErr = fmt.Errorf("host port %d/%s is already in use on this host (%v)", port, r.Proto, err)
			continue
		}
		return p, nil
	}
	if r.HostPort == 0 {
		return state.Port{}, fmt.Errorf("no free ephemeral host port for %d/%s: %w", r.ContainerPort, r.Proto, lastErr)
	}
	return state.Port{}, fmt.Errorf("%w: publish on another host port (-p OTHER:%d) or stop what uses it", lastErr, r.ContainerPort)
}

// UnpublishPorts removes the endpoint's published ports.
func (c *Controller) UnpublishPorts(networkID, endpointID string) error {
	return c.withEndpoint(networkID, endpointID, func(n state.Network, ep state.Endpoint) error {
		if err := c.removePorts(n, ep); err != nil {
			return err
		}
		ep.Ports = nil
		return c.store.PutEndpoint(ep)
	})
}

// removePorts deletes the endpoint's published ports. Call with mu held.
func (c *Controller) removePorts(n state.Network, ep state.Endpoint) error {
	var errs []error
	for _, p := range ep.Ports {
		if err := c.fw.DeletePort(portMap(n, ep, p)); err != nil {
			errs = append(errs, fmt.Errorf("unpublish %s: %w", portString(p), err))
		}
	}
	return errors.Join(errs...)
}

// ensurePorts re-adds the published ports of a network's endpoints, and finishes the
// teardown of endpoints Docker deleted whose teardown failed. Call with mu held.
func (c *Controller) ensurePorts(n state.Network) error {
	eps, err := c.store.Endpoints(n.ID)
	if err != nil {
		return err
	}
	var errs []error
	for _, ep := range eps {
		if ep.Gone {
			if err := c.removeEndpointObjects(n, ep); err != nil {
				errs = append(errs, err)
			} else {
				errs = append(errs, c.store.DeleteEndpoint(n.ID, ep.ID))
			}
			continue
		}
		for _, p := range ep.Ports {
			if err := c.fw.EnsurePort(portMap(n, ep, p)); err != nil {
				errs = append(errs, fmt.Errorf("port %s: %w", portString(p), err))
			}
		}
	}
	return errors.Join(errs...)
}

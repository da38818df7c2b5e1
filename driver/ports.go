package driver

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	dnet "github.com/docker/go-plugins-helpers/network"

	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/state"
)

// Docker publishes nothing itself for a remote driver: it hands the port map over in
// this option and the driver does the DNAT.
const portMapOption = "com.docker.network.portmap"

// Ephemeral host ports for `-p 80`, the range Docker's own bridge uses.
const (
	ephemeralFirst = 49153
	ephemeralLast  = 60999
)

// dockerPortBinding is one entry of Docker's port map as it arrives in JSON.
type dockerPortBinding struct {
	Proto       int
	IP          string
	Port        uint16
	HostIP      string
	HostPort    uint16
	HostPortEnd uint16
}

func protoName(n int) (string, error) {
	switch n {
	case 6:
		return "tcp", nil
	case 17:
		return "udp", nil
	case 132:
		return "sctp", nil
	}
	return "", fmt.Errorf("protocol number %d cannot be published: use tcp, udp or sctp", n)
}

// PortChecker tells whether a host port is free, so a clash gets a clear error instead
// of a DNAT rule that silently steals a running service's traffic.
type PortChecker interface {
	Free(proto string, ip netip.Addr, port uint16) error
}

// BindChecker tries to bind the port, as Docker's own port allocator does.
type BindChecker struct{}

// Free binds and closes the port.
func (BindChecker) Free(proto string, ip netip.Addr, port uint16) error {
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

func parsePortMap(opts map[string]interface{}) ([]dockerPortBinding, error) {
	raw, ok := opts[portMapOption]
	if !ok || raw == nil {
		return nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var out []dockerPortBinding
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("port map from Docker: %w", err)
	}
	return out, nil
}

// clash tells whether two bindings of one protocol compete for a host port.
func clash(a, b state.Port) bool {
	return a.Proto == b.Proto && a.HostPort == b.HostPort &&
		(!a.HostIP.IsValid() || !b.HostIP.IsValid() || a.HostIP.IsUnspecified() || b.HostIP.IsUnspecified() || a.HostIP == b.HostIP)
}

// ProgramExternalConnectivity publishes the container's ports: it reserves each host
// port (checking vpcroute's other endpoints and the host's sockets), then adds one DNAT
// set per port. If one port fails, the ports already added are removed again.
func (d *Driver) ProgramExternalConnectivity(req *dnet.ProgramExternalConnectivityRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.store.Network(req.NetworkID)
	if err != nil {
		return fmt.Errorf("network %s is unknown to vpcroute: %w", short(req.NetworkID), err)
	}
	ep, err := d.store.Endpoint(req.NetworkID, req.EndpointID)
	if err != nil {
		return fmt.Errorf("endpoint %s is unknown to vpcroute: %w", short(req.EndpointID), err)
	}
	bindings, err := parsePortMap(req.Options)
	if err != nil {
		return err
	}
	if len(bindings) == 0 {
		return nil
	}
	if n.Internal {
		return fmt.Errorf("network %s is --internal: ports cannot be published from it; remove -p or use a network that is not internal", short(n.ID))
	}
	// Docker may program an endpoint again: what an earlier call published goes first.
	if err := d.removePorts(n, ep); err != nil {
		return err
	}
	var added []state.Port
	undo := func() {
		for _, p := range added {
			_ = d.fw.DeletePort(portMap(n, ep, p))
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
		held, err := d.store.PortBindings(p.Proto, p.HostPort)
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
	for _, b := range bindings {
		p, err := d.reservePort(b, taken)
		if err != nil {
			undo()
			return err
		}
		if err := d.fw.EnsurePort(portMap(n, ep, p)); err != nil {
			undo()
			return fmt.Errorf("publish %s: %w", portString(p), err)
		}
		added = append(added, p)
	}
	ep.Ports = added
	if err := d.store.PutEndpoint(ep); err != nil {
		undo()
		return fmt.Errorf("save endpoint %s: %w", short(ep.ID), err)
	}
	for _, p := range added {
		d.cfg.Log.Info("port published", "endpoint", short(ep.ID), "port", portString(p), "container", ep.Addr)
	}
	return nil
}

// reservePort turns one of Docker's bindings into a concrete host port.
func (d *Driver) reservePort(b dockerPortBinding, taken func(state.Port) (bool, error)) (state.Port, error) {
	proto, err := protoName(b.Proto)
	if err != nil {
		return state.Port{}, err
	}
	p := state.Port{Proto: proto, ContainerPort: b.Port}
	if b.HostIP != "" {
		ip, err := netip.ParseAddr(b.HostIP)
		if err != nil || !ip.Is4() {
			return state.Port{}, fmt.Errorf("host IP %q of -p is not an IPv4 address: publish on an IPv4 address of this host or leave it out", b.HostIP)
		}
		if !ip.IsUnspecified() {
			p.HostIP = ip
		}
	}
	first, last := b.HostPort, b.HostPortEnd
	if first == 0 {
		first, last = ephemeralFirst, ephemeralLast
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
			lastErr = fmt.Errorf("host port %d/%s is already published by another vpcroute container", port, proto)
			continue
		}
		if err := d.cfg.Ports.Free(proto, p.HostIP, p.HostPort); err != nil {
			lastErr = fmt.Errorf("host port %d/%s is already in use on this host (%v)", port, proto, err)
			continue
		}
		return p, nil
	}
	if b.HostPort == 0 {
		return state.Port{}, fmt.Errorf("no free ephemeral host port for %d/%s: %w", b.Port, proto, lastErr)
	}
	return state.Port{}, fmt.Errorf("%w: publish on another host port (-p OTHER:%d) or stop what uses it", lastErr, b.Port)
}

// RevokeExternalConnectivity removes the endpoint's published ports.
func (d *Driver) RevokeExternalConnectivity(req *dnet.RevokeExternalConnectivityRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ep, found, err := d.endpointOf(req.NetworkID, req.EndpointID)
	if !found || err != nil {
		return err
	}
	if err := d.removePorts(n, ep); err != nil {
		return err
	}
	ep.Ports = nil
	return d.store.PutEndpoint(ep)
}

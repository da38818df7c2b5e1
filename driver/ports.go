package driver

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/vpcroute/vpcroute/controller"
)

// Docker publishes nothing itself for a remote driver: it hands the port map over in
// this option and the driver does the DNAT.
const portMapOption = "com.docker.network.portmap"

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

// portRequests reads Docker's port map.
func portRequests(opts map[string]interface{}) ([]controller.PortRequest, error) {
	raw, ok := opts[portMapOption]
	if !ok || raw == nil {
		return nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var bindings []dockerPortBinding
	if err := json.Unmarshal(b, &bindings); err != nil {
		return nil, fmt.Errorf("port map from Docker: %w", err)
	}
	out := make([]controller.PortRequest, 0, len(bindings))
	for _, pb := range bindings {
		proto, err := protoName(pb.Proto)
		if err != nil {
			return nil, err
		}
		r := controller.PortRequest{Proto: proto, HostPort: pb.HostPort, HostPortEnd: pb.HostPortEnd, ContainerPort: pb.Port}
		if pb.HostIP != "" {
			ip, err := netip.ParseAddr(pb.HostIP)
			if err != nil || !ip.Is4() {
				return nil, fmt.Errorf("host IP %q of -p is not an IPv4 address: publish on an IPv4 address of this host or leave it out", pb.HostIP)
			}
			r.HostIP = ip
		}
		out = append(out, r)
	}
	return out, nil
}

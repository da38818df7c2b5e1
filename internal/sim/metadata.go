package sim

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// credentialTimeFormat is the expires_at format of the securitykey endpoint.
const credentialTimeFormat = "2006-01-02T15:04:05.000000Z"

// serveMetadata answers the ECS metadata service (OpenStack-compatible paths).
// The ECS is named by a /ecs/{name} path prefix, else found by source IP.
func (s *Sim) serveMetadata(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	var e *ECS
	if rest, ok := strings.CutPrefix(path, "/ecs/"); ok {
		name, sub, _ := strings.Cut(rest, "/")
		if found, ok := s.ECSByName(name); ok {
			e = &found
		}
		path = "/" + sub
	} else if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			e = s.ecsByAddr(a.Unmap())
		}
	}
	if e == nil {
		http.Error(w, "404 Not Found: no ECS of the VPC at this address; on loopback use the /ecs/{name}/ path prefix", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	switch strings.TrimSuffix(path, "/") {
	case "/openstack/latest", "/openstack":
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		_, _ = w.Write([]byte("meta_data.json\nnetwork_data.json\nsecuritykey\n"))
	case "/openstack/latest/meta_data.json":
		writeJSON(w, http.StatusOK, s.metaData(e))
	case "/openstack/latest/network_data.json":
		writeJSON(w, http.StatusOK, s.networkData(e))
	case "/openstack/latest/securitykey":
		if !e.Agency {
			http.Error(w, "404 Not Found: ECS "+e.Name+" has no agency; bind an agency to the ECS or configure AK/SK", http.StatusNotFound)
			return
		}
		c := s.issueCredential(e.ID)
		writeJSON(w, http.StatusOK, map[string]any{"credential": map[string]string{
			"access":        c.access,
			"secret":        c.secret,
			"securitytoken": c.token,
			"expires_at":    c.expiresAt.Format(credentialTimeFormat),
		}})
	default:
		http.Error(w, "404 Not Found", http.StatusNotFound)
	}
}

func (s *Sim) ecsByAddr(a netip.Addr) *ECS {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.ecss {
		if st.addr == a {
			e := st.ECS
			return &e
		}
	}
	return nil
}

func (s *Sim) metaData(e *ECS) map[string]any {
	return map[string]any{
		"random_seed":           "",
		"uuid":                  e.ID,
		"availability_zone":     e.AvailabilityZone,
		"enterprise_project_id": "0",
		"launch_index":          0,
		"instance_type":         "s6.small.1",
		"hostname":              e.Name,
		"name":                  e.Name,
		"project_id":            s.cfg.ProjectID,
		"region_id":             s.cfg.Region,
		"public_keys":           map[string]string{},
		"devices":               []any{},
		"meta": map[string]string{
			"vpc_id":        s.cfg.VPCID,
			"charging_mode": "0",
			"os_type":       "Linux",
			"os_bit":        "64",
			"image_name":    "Debian 12",
		},
	}
}

func (s *Sim) networkData(e *ECS) map[string]any {
	s.mu.Lock()
	mac := ""
	for _, st := range s.ecss {
		if st.ID == e.ID {
			mac = st.mac
		}
	}
	s.mu.Unlock()
	tap := "tap" + shortID(strings.ReplaceAll(e.PortID, "-", "")) + "-00"
	return map[string]any{
		"links": []map[string]any{{
			"type":                 "cascading",
			"vif_id":               e.PortID,
			"ethernet_mac_address": mac,
			"id":                   tap,
			"mtu":                  nil,
		}},
		"networks": []map[string]any{{
			"network_id": e.SubnetID,
			"type":       "ipv4_dhcp",
			"link":       tap,
			"id":         "network0",
		}},
		"services": []any{},
	}
}

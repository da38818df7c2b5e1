package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// apiTimeFormat is the created_at/updated_at format of the VPC API (UTC).
const apiTimeFormat = "2006-01-02T15:04:05"

// srcDstOffPair is the allowed address pair that turns the source/destination
// check of a port off.
const srcDstOffPair = "1.1.1.1/0"

type addressPair struct {
	IPAddress  string `json:"ip_address"`
	MacAddress string `json:"mac_address,omitempty"`
}

type dhcpOpt struct {
	OptName  string `json:"opt_name"`
	OptValue string `json:"opt_value"`
}

// serveAPI authenticates a VPC API request and dispatches it.
func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request, reqID string) {
	body, err := readBody(r)
	if err != nil {
		writeAPIError(w, invalid("cannot read request body: %v", err))
		return
	}
	principal, gerr := s.authenticate(r, body)
	if gerr != nil {
		writeGWError(w, reqID, gerr)
		return
	}
	// /v1/{project_id}/{collection}[/{id}]
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
	if len(parts) < 2 || len(parts) > 3 {
		writeGWError(w, reqID, &gwError{Status: http.StatusNotFound, Code: "APIGW.0101", Message: "The API does not exist or has not been published in the environment"})
		return
	}
	if parts[0] != s.cfg.ProjectID {
		writeAPIError(w, &apiError{Status: http.StatusBadRequest, Code: "VPC.0007", Message: "urlTenantId is not equal tokenTenantId"})
		return
	}
	id := ""
	if len(parts) == 3 {
		id = parts[2]
	}
	route := r.Method + " " + parts[1]
	if id != "" {
		route += "/{id}"
	}
	if apiErr := s.denied(principal, route); apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	switch route {
	case "GET routetables":
		s.listRouteTables(w, r)
	case "GET routetables/{id}":
		s.showRouteTable(w, id)
	case "PUT routetables/{id}":
		s.updateRouteTable(w, id, body)
	case "GET quotas":
		s.showQuota(w, r)
	case "GET ports":
		s.listPorts(w, r)
	case "GET ports/{id}":
		s.showPort(w, id)
	case "GET security-group-rules":
		s.listSecurityGroupRules(w, r)
	case "PUT ports/{id}":
		s.updatePort(w, id, body)
	case "GET subnets":
		s.listSubnets(w, r)
	case "GET vpcs/{id}":
		s.showVPC(w, id)
	case "GET cloudservers/{id}":
		s.showServer(w, id)
	default:
		writeGWError(w, reqID, &gwError{Status: http.StatusNotFound, Code: "APIGW.0101", Message: "The API does not exist or has not been published in the environment"})
	}
}

type subnetRef struct {
	ID string `json:"id"`
}

type routeTableJSON struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Default     bool        `json:"default"`
	Routes      *[]Route    `json:"routes,omitempty"`
	Subnets     []subnetRef `json:"subnets"`
	TenantID    string      `json:"tenant_id"`
	VPCID       string      `json:"vpc_id"`
	Description string      `json:"description"`
	CreatedAt   string      `json:"created_at"`
	UpdatedAt   string      `json:"updated_at"`
}

func (s *Sim) tableJSONLocked(t *routeTable, withRoutes bool) routeTableJSON {
	j := routeTableJSON{
		ID: t.id, Name: t.name, Default: t.isDefault, TenantID: s.cfg.ProjectID, VPCID: s.cfg.VPCID,
		Description: t.description, Subnets: []subnetRef{},
		CreatedAt: t.created.Format(apiTimeFormat), UpdatedAt: t.updated.Format(apiTimeFormat),
	}
	for _, id := range s.tableSubnetsLocked(t) {
		j.Subnets = append(j.Subnets, subnetRef{ID: id})
	}
	if withRoutes {
		rs := s.routesLocked(t)
		j.Routes = &rs
	}
	return j
}

// page applies the limit/marker pagination of the VPC API to ids.
func page(ids []string, r *http.Request) ([]string, *apiError) {
	q := r.URL.Query()
	if m := q.Get("marker"); m != "" {
		i := slices.Index(ids, m)
		if i < 0 {
			return nil, invalid("marker %s is not a resource of this list", m)
		}
		ids = ids[i+1:]
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return nil, invalid("limit %q is not a non-negative integer", l)
		}
		if n > 0 && n < len(ids) {
			ids = ids[:n]
		}
	}
	return ids, nil
}

func (s *Sim) listRouteTables(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, t := range s.tables {
		if v := q.Get("vpc_id"); v != "" && v != s.cfg.VPCID {
			continue
		}
		if v := q.Get("id"); v != "" && v != t.id {
			continue
		}
		if v := q.Get("subnet_id"); v != "" && !slices.Contains(s.tableSubnetsLocked(t), v) {
			continue
		}
		ids = append(ids, t.id)
	}
	ids, perr := page(ids, r)
	if perr != nil {
		writeAPIError(w, perr)
		return
	}
	out := []routeTableJSON{}
	for _, id := range ids {
		out = append(out, s.tableJSONLocked(s.tableLocked(id), false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"routetables": out})
}

func tableNotFound(id string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: codeTableNotFound, Message: fmt.Sprintf("routetable %s could not be found", id)}
}

func (s *Sim) showRouteTable(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tableLocked(id)
	if t == nil {
		writeAPIError(w, tableNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"routetable": s.tableJSONLocked(t, true)})
}

func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	return dec.Decode(v)
}

func (s *Sim) updateRouteTable(w http.ResponseWriter, id string, body []byte) {
	var req struct {
		Routetable *struct {
			Name        *string     `json:"name"`
			Description *string     `json:"description"`
			Routes      *routeDelta `json:"routes"`
		} `json:"routetable"`
	}
	if err := decodeStrict(body, &req); err != nil {
		writeAPIError(w, invalid("request body is not valid JSON: %v", err))
		return
	}
	if req.Routetable != nil {
		if held := s.takeHeld(req.Routetable.Routes); held != nil {
			<-held.apply
			defer close(held.done)
		}
	}
	s.mu.Lock()
	t := s.tableLocked(id)
	if t == nil {
		s.mu.Unlock()
		writeAPIError(w, tableNotFound(id))
		return
	}
	if req.Routetable == nil {
		s.mu.Unlock()
		writeAPIError(w, invalid("routetable is required"))
		return
	}
	rt := req.Routetable
	if rt.Name != nil {
		if e := checkTableName(*rt.Name); e != nil {
			s.mu.Unlock()
			writeAPIError(w, e)
			return
		}
	}
	if rt.Description != nil {
		if e := checkDescription(*rt.Description); e != nil {
			s.mu.Unlock()
			writeAPIError(w, e)
			return
		}
	}
	changed := false
	if rt.Routes != nil {
		if e := s.applyLocked(t, *rt.Routes); e != nil {
			s.mu.Unlock()
			writeAPIError(w, e)
			return
		}
		changed = len(rt.Routes.Add)+len(rt.Routes.Mod)+len(rt.Routes.Del) > 0
	}
	if rt.Name != nil {
		t.name = *rt.Name
	}
	if rt.Description != nil {
		t.description = *rt.Description
	}
	t.updated = s.now().UTC()
	resp := map[string]any{"routetable": s.tableJSONLocked(t, true)}
	s.mu.Unlock()
	if changed {
		s.notify()
	}
	writeJSON(w, http.StatusOK, resp)
}

type quotaResource struct {
	Type  string `json:"type"`
	Used  int    `json:"used"`
	Quota int    `json:"quota"`
	Min   int    `json:"min"`
}

func (s *Sim) showQuota(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	all := []quotaResource{
		{Type: "vpc", Used: 1, Quota: 5},
		{Type: "subnet", Used: len(s.subnets), Quota: 100},
		{Type: "vpcContainRoutetable", Used: len(s.tables), Quota: 10},
		{Type: "routetableContainRoutes", Used: s.customRoutesMaxLocked(), Quota: s.cfg.RouteQuota},
	}
	s.mu.Unlock()
	typ := r.URL.Query().Get("type")
	if typ != "" {
		i := slices.IndexFunc(all, func(q quotaResource) bool { return q.Type == typ })
		if i < 0 {
			writeAPIError(w, invalid("type %q is not a supported quota type", typ))
			return
		}
		all = all[i : i+1]
	}
	writeJSON(w, http.StatusOK, map[string]any{"quotas": map[string]any{"resources": all}})
}

func portNotFound(id string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: "VPC.0601", Message: fmt.Sprintf("Port %s could not be found.", id)}
}

func (s *Sim) ecsByPortLocked(id string) *ecsState {
	for _, e := range s.ecss {
		if e.PortID == id {
			return e
		}
	}
	return nil
}

func (s *Sim) portJSONLocked(e *ecsState) map[string]any {
	sn := s.subnetLocked(e.SubnetID)
	pairs := slices.Clone(e.pairs)
	if pairs == nil {
		pairs = []addressPair{}
	}
	opts := slices.Clone(e.dhcpOpts)
	if opts == nil {
		opts = []dhcpOpt{}
	}
	return map[string]any{
		"id":                    e.PortID,
		"name":                  e.portName,
		"network_id":            sn.ID,
		"admin_state_up":        true,
		"mac_address":           e.mac,
		"fixed_ips":             []map[string]string{{"ip_address": e.IP, "subnet_id": neutronSubnetID(sn.ID)}},
		"device_id":             e.ID,
		"device_owner":          "compute:" + e.AvailabilityZone,
		"tenant_id":             s.cfg.ProjectID,
		"status":                "ACTIVE",
		"security_groups":       slices.Clone(e.securityGroups),
		"allowed_address_pairs": pairs,
		"extra_dhcp_opts":       opts,
		"binding:vnic_type":     "normal",
		"dns_assignment":        []map[string]string{{"hostname": e.Name, "ip_address": e.IP, "fqdn": e.Name + "."}},
		"dns_name":              e.Name,
		"binding:vif_details":   map[string]any{"primary_interface": true, "port_filter": true, "ovs_hybrid_plug": false},
		"binding:profile":       map[string]any{},
		"instance_id":           e.ID,
		"instance_type":         "",
		"port_security_enabled": true,
		"zone_id":               e.AvailabilityZone,
		"enable_efi":            false,
		"ipv6_bandwidth_id":     "",
	}
}

// neutronSubnetID derives a stable IPv4 subnet ID from a network ID: the port
// shows the subnet ID in fixed_ips and the network ID in network_id.
func neutronSubnetID(networkID string) string {
	h := sha256.Sum256([]byte("subnet:" + networkID))
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// listPorts answers GET /v1/{project_id}/ports, filtered by device_id (the instance).
func (s *Sim) listPorts(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	device := r.URL.Query().Get("device_id")
	ports := []map[string]any{}
	for _, e := range s.ecss {
		if device == "" || e.ID == device {
			ports = append(ports, s.portJSONLocked(e))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ports": ports})
}

// listSecurityGroupRules answers GET /v1/{project_id}/security-group-rules, filtered
// by security_group_id.
func (s *Sim) listSecurityGroupRules(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	group := r.URL.Query().Get("security_group_id")
	rules := []map[string]any{}
	for _, g := range s.cfg.SecurityGroups {
		if group != "" && g.ID != group {
			continue
		}
		for _, rl := range g.Rules {
			var proto, remote, remoteGroup any
			if rl.Protocol != "" {
				proto = rl.Protocol
			}
			if rl.RemoteIPPrefix != "" {
				remote = rl.RemoteIPPrefix
			}
			if rl.RemoteGroupID != "" {
				remoteGroup = rl.RemoteGroupID
			}
			var pmin, pmax any
			if rl.PortRangeMin != 0 {
				pmin, pmax = rl.PortRangeMin, rl.PortRangeMax
			}
			rules = append(rules, map[string]any{
				"id": rl.ID, "description": "", "security_group_id": g.ID, "direction": rl.Direction,
				"ethertype": rl.Ethertype, "protocol": proto, "port_range_min": pmin, "port_range_max": pmax,
				"remote_ip_prefix": remote, "remote_group_id": remoteGroup, "remote_address_group_id": nil,
				"tenant_id": s.cfg.ProjectID,
			})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"security_group_rules": rules})
}

func (s *Sim) showPort(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.ecsByPortLocked(id)
	if e == nil {
		writeAPIError(w, portNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"port": s.portJSONLocked(e)})
}

func (s *Sim) updatePort(w http.ResponseWriter, id string, body []byte) {
	var req struct {
		Port *struct {
			Name                *string        `json:"name"`
			SecurityGroups      *[]string      `json:"security_groups"`
			AllowedAddressPairs *[]addressPair `json:"allowed_address_pairs"`
			ExtraDhcpOpts       *[]dhcpOpt     `json:"extra_dhcp_opts"`
		} `json:"port"`
	}
	if err := decodeStrict(body, &req); err != nil {
		writeAPIError(w, &apiError{Status: http.StatusBadRequest, Code: "VPC.2500", Message: fmt.Sprintf("Param is invalid: %v", err)})
		return
	}
	if req.Port == nil {
		writeAPIError(w, &apiError{Status: http.StatusBadRequest, Code: "VPC.2500", Message: "Param is invalid: port is required"})
		return
	}
	if req.Port.AllowedAddressPairs != nil {
		for _, p := range *req.Port.AllowedAddressPairs {
			if p.IPAddress == srcDstOffPair {
				continue
			}
			if _, err := netip.ParseAddr(p.IPAddress); err == nil {
				continue
			}
			if pf, err := netip.ParsePrefix(p.IPAddress); err == nil && pf.Bits() > 0 {
				continue
			}
			writeAPIError(w, &apiError{Status: http.StatusBadRequest, Code: "VPC.2500",
				Message: fmt.Sprintf("Param is invalid: allowed_address_pairs ip_address %q must be an IP address, a CIDR with a non-zero prefix, or 1.1.1.1/0", p.IPAddress)})
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.ecsByPortLocked(id)
	if e == nil {
		writeAPIError(w, portNotFound(id))
		return
	}
	p := req.Port
	if p.Name != nil {
		e.portName = *p.Name
	}
	if p.SecurityGroups != nil {
		e.securityGroups = slices.Clone(*p.SecurityGroups)
	}
	if p.AllowedAddressPairs != nil {
		e.pairs = slices.Clone(*p.AllowedAddressPairs)
	}
	if p.ExtraDhcpOpts != nil {
		e.dhcpOpts = slices.Clone(*p.ExtraDhcpOpts)
	}
	writeJSON(w, http.StatusOK, map[string]any{"port": s.portJSONLocked(e)})
}

func (s *Sim) listSubnets(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	if v := r.URL.Query().Get("vpc_id"); v == "" || v == s.cfg.VPCID {
		for _, sn := range s.subnets {
			ids = append(ids, sn.ID)
		}
	}
	ids, perr := page(ids, r)
	if perr != nil {
		writeAPIError(w, perr)
		return
	}
	ts := s.created.Format(apiTimeFormat)
	out := []map[string]any{}
	for _, id := range ids {
		sn := s.subnetLocked(id)
		out = append(out, map[string]any{
			"id": sn.ID, "name": sn.Name, "description": "", "cidr": sn.prefix.String(), "gateway_ip": sn.GatewayIP,
			"ipv6_enable": false, "cidr_v6": "", "gateway_ip_v6": "", "dhcp_enable": true,
			"primary_dns": "100.125.1.250", "secondary_dns": "100.125.129.250", "dnsList": []string{"100.125.1.250", "100.125.129.250"},
			"availability_zone": "", "vpc_id": s.cfg.VPCID, "status": "ACTIVE",
			"neutron_network_id": sn.ID, "neutron_subnet_id": neutronSubnetID(sn.ID), "neutron_subnet_id_v6": "",
			"extra_dhcp_opts": []any{}, "tenant_id": s.cfg.ProjectID, "created_at": ts, "updated_at": ts,
			"enable_network_address_usage_metrics": false, "available_ip_address_count": 0,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"subnets": out})
}

func (s *Sim) showVPC(w http.ResponseWriter, id string) {
	if id != s.cfg.VPCID {
		writeAPIError(w, &apiError{Status: http.StatusNotFound, Code: "VPC.0003", Message: "VPC does not exist."})
		return
	}
	ts := s.created.Format(apiTimeFormat)
	writeJSON(w, http.StatusOK, map[string]any{"vpc": map[string]any{
		"id": s.cfg.VPCID, "name": "vpc-" + shortID(s.cfg.VPCID), "cidr": s.vpcCIDR.String(), "description": "",
		"routes": []any{}, "status": "OK", "enterprise_project_id": "0", "tenant_id": s.cfg.ProjectID,
		"created_at": ts, "updated_at": ts, "block_service_endpoint_states": "", "enable_network_address_usage_metrics": false,
	}})
}

// showServer is the ECS API's ShowServer (GET /v1/{project_id}/cloudservers/{id}),
// with the fields of a server vpcroute and people look at; a deleted instance is a
// 404 in the ECS API's error format.
func (s *Sim) showServer(w http.ResponseWriter, id string) {
	s.mu.Lock()
	e := s.ecsByIDLocked(id)
	if e == nil {
		s.mu.Unlock()
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{
			"code": "Ecs.0114", "message": fmt.Sprintf("Instance[%s] could not be found.", id)}})
		return
	}
	status := e.Status
	if status == "" {
		status = "ACTIVE"
	}
	vmState := map[string]string{"ACTIVE": "active", "SHUTOFF": "stopped", "ERROR": "error", "REBOOT": "active", "BUILD": "building"}[status]
	created := s.created.UTC().Format(time.RFC3339)
	server := map[string]any{
		"id": e.ID, "name": e.Name, "status": status, "OS-EXT-STS:vm_state": vmState,
		"OS-EXT-AZ:availability_zone": e.AvailabilityZone, "tenant_id": s.cfg.ProjectID,
		"created": created, "updated": created,
		"metadata":  map[string]string{"vpc_id": s.cfg.VPCID},
		"addresses": map[string]any{s.cfg.VPCID: []map[string]any{{"addr": e.IP, "version": "4", "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS:port_id": e.PortID, "OS-EXT-IPS-MAC:mac_addr": e.mac}}},
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"server": server})
}

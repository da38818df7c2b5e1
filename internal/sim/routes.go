package sim

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"
)

// apiError is an error of the VPC service: body {"code","message"}.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// Error codes of the route table API. 2808, 2809 and 2812 are Huawei's; the
// others are the emulator's choice where the documentation gives no code.
const (
	codeInvalid       = "VPC.2801" // malformed request field
	codeBadNextHop    = "VPC.2804" // next hop is not an instance of the VPC
	codeTableNotFound = "VPC.2808"
	codeOverlapsLocal = "VPC.2809"
	codeRouteNotFound = "VPC.2810" // mod/del of a destination the table lacks
	codeDuplicate     = "VPC.2812"
	codeQuota         = "VPC.2813"
)

func invalid(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: codeInvalid, Message: fmt.Sprintf(format, args...)}
}

// routeChange is one element of routes.add, routes.mod or routes.del.
type routeChange struct {
	Type        string  `json:"type"`
	Destination string  `json:"destination"`
	NextHop     string  `json:"nexthop"`
	Description *string `json:"description"`
}

// routeDelta is the routes object of an update request.
type routeDelta struct {
	Add []routeChange `json:"add"`
	Mod []routeChange `json:"mod"`
	Del []routeChange `json:"del"`
}

// nextHopTypes are the route types the API accepts in add and mod.
var nextHopTypes = []string{"ecs", "eni", "vip", "nat", "peering", "vpn", "dc", "cc", "er", "gwlb", "subeni"}

// applyLocked validates delta against t and, when all of it is valid, applies it
// (del, then mod, then add). On error t is unchanged.
func (s *Sim) applyLocked(t *routeTable, d routeDelta) *apiError {
	routes := slices.Clone(t.routes)
	locals := s.localRoutesLocked()
	index := func(dest string) int {
		return slices.IndexFunc(routes, func(r Route) bool { return r.Destination == dest })
	}

	// A destination may appear once in mod+add (del and add of one destination
	// replaces the route), and once in del.
	seenDel := map[string]bool{}
	seenSet := map[string]bool{}
	for _, c := range d.Del {
		p, err := parseDestination(c.Destination)
		if err != nil {
			return err
		}
		if seenDel[p.String()] {
			return &apiError{Status: http.StatusBadRequest, Code: codeDuplicate, Message: fmt.Sprintf("destination %s is repeated in routes.del", p)}
		}
		seenDel[p.String()] = true
	}
	for _, list := range [][]routeChange{d.Mod, d.Add} {
		for _, c := range list {
			p, err := parseDestination(c.Destination)
			if err != nil {
				return err
			}
			if seenSet[p.String()] {
				return &apiError{Status: http.StatusBadRequest, Code: codeDuplicate, Message: fmt.Sprintf("destination %s is repeated in the request", p)}
			}
			seenSet[p.String()] = true
		}
	}

	for _, c := range d.Del {
		p, _ := parseDestination(c.Destination)
		if l := localOf(locals, p); l != "" && l == p.String() {
			return &apiError{Status: http.StatusBadRequest, Code: codeOverlapsLocal, Message: fmt.Sprintf("route %s is a system route; it cannot be deleted", p)}
		}
		i := index(p.String())
		if i < 0 {
			return &apiError{Status: http.StatusBadRequest, Code: codeRouteNotFound, Message: fmt.Sprintf("route with destination %s does not exist in route table %s", p, t.id)}
		}
		routes = slices.Delete(routes, i, i+1)
	}
	for _, c := range d.Mod {
		p, _ := parseDestination(c.Destination)
		if l := localOf(locals, p); l == p.String() {
			return &apiError{Status: http.StatusBadRequest, Code: codeOverlapsLocal, Message: fmt.Sprintf("route %s is a system route; it cannot be modified", p)}
		}
		i := index(p.String())
		if i < 0 {
			return &apiError{Status: http.StatusBadRequest, Code: codeRouteNotFound, Message: fmt.Sprintf("route with destination %s does not exist in route table %s", p, t.id)}
		}
		if err := s.checkNextHopLocked(c); err != nil {
			return err
		}
		desc := routes[i].Description
		if c.Description != nil {
			if err := checkDescription(*c.Description); err != nil {
				return err
			}
			desc = *c.Description
		}
		routes[i] = Route{Type: c.Type, Destination: p.String(), NextHop: c.NextHop, Description: desc}
	}
	for _, c := range d.Add {
		p, _ := parseDestination(c.Destination)
		if l := localOf(locals, p); l != "" {
			return &apiError{Status: http.StatusBadRequest, Code: codeOverlapsLocal, Message: fmt.Sprintf("destination %s overlaps the local route %s", p, l)}
		}
		if index(p.String()) >= 0 {
			return &apiError{Status: http.StatusBadRequest, Code: codeDuplicate, Message: fmt.Sprintf("route with destination %s already exists in route table %s", p, t.id)}
		}
		if err := s.checkNextHopLocked(c); err != nil {
			return err
		}
		desc := ""
		if c.Description != nil {
			if err := checkDescription(*c.Description); err != nil {
				return err
			}
			desc = *c.Description
		}
		routes = append(routes, Route{Type: c.Type, Destination: p.String(), NextHop: c.NextHop, Description: desc})
	}
	if len(routes) > s.cfg.RouteQuota && len(routes) > len(t.routes) {
		return &apiError{Status: http.StatusConflict, Code: codeQuota,
			Message: fmt.Sprintf("Quota exceeded for resources: routetableContainRoutes: route table %s would hold %d custom routes, quota is %d", t.id, len(routes), s.cfg.RouteQuota)}
	}
	t.routes = routes
	return nil
}

// localOf returns the local route that p equals or lies inside, or "".
func localOf(locals []Route, p netip.Prefix) string {
	for _, l := range locals {
		lp := netip.MustParsePrefix(l.Destination)
		if lp.Bits() <= p.Bits() && lp.Contains(p.Addr()) {
			return l.Destination
		}
	}
	return ""
}

func parseDestination(dest string) (netip.Prefix, *apiError) {
	if dest == "" {
		return netip.Prefix{}, invalid("destination is required")
	}
	p, err := netip.ParsePrefix(dest)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, invalid("destination %q is not a valid IPv4 CIDR", dest)
	}
	if p.Masked() != p {
		return netip.Prefix{}, invalid("destination %q is not a network address (did you mean %s?)", dest, p.Masked())
	}
	return p, nil
}

func (s *Sim) checkNextHopLocked(c routeChange) *apiError {
	switch {
	case c.Type == "":
		return invalid("type is required")
	case c.Type == RouteTypeLocal:
		return invalid("type local is reserved for system routes")
	case !slices.Contains(nextHopTypes, c.Type):
		return invalid("type %q is not one of %s", c.Type, strings.Join(nextHopTypes, ", "))
	case c.NextHop == "":
		return invalid("nexthop is required")
	case c.Type == RouteTypeECS && s.ecsByIDLocked(c.NextHop) == nil:
		return &apiError{Status: http.StatusBadRequest, Code: codeBadNextHop, Message: fmt.Sprintf("nexthop %s is not an ECS of VPC %s", c.NextHop, s.cfg.VPCID)}
	}
	return nil
}

func checkDescription(d string) *apiError {
	if utf8.RuneCountInString(d) > 255 {
		return invalid("description is longer than 255 characters")
	}
	if strings.ContainsAny(d, "<>") {
		return invalid("description must not contain < or >")
	}
	return nil
}

// checkTableName applies the documented rule: 1-64 letters, digits, Chinese
// characters, '_', '-' or '.'.
func checkTableName(n string) *apiError {
	if l := utf8.RuneCountInString(n); l < 1 || l > 64 {
		return invalid("name must be 1-64 characters")
	}
	for _, r := range n {
		ok := r == '_' || r == '-' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= 0x4e00 && r <= 0x9fff)
		if !ok {
			return invalid("name %q may contain only letters, digits, Chinese characters, '_', '-' and '.'", n)
		}
	}
	return nil
}

// customRoutesMaxLocked is the "used" of routetableContainRoutes: the custom
// routes of the fullest table, the one that reaches the quota first.
func (s *Sim) customRoutesMaxLocked() int {
	m := 0
	for _, t := range s.tables {
		m = max(m, len(t.routes))
	}
	return m
}

package sim

import (
	"encoding/json"
	"net/http"
	"strings"
)

// TableSnapshot is one route table as GET /_sim/routetables shows it.
type TableSnapshot struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Default bool     `json:"default"`
	Subnets []string `json:"subnets"`
	Routes  []Route  `json:"routes"`
}

// RouteTables returns every route table of the VPC, default first.
func (s *Sim) RouteTables() []TableSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TableSnapshot, 0, len(s.tables))
	for _, t := range s.tables {
		out = append(out, TableSnapshot{ID: t.id, Name: t.name, Default: t.isDefault, Subnets: s.tableSubnetsLocked(t), Routes: s.routesLocked(t)})
	}
	return out
}

// serveAdmin answers the emulator's own API, for tests and demos. It needs no
// signature and never fails by injected fault.
//
//	GET  /_sim/routetables               all tables and routes
//	GET  /_sim/config                    effective config (IDs filled in), without ak/sk
//	GET  /_sim/requests                  the request log
//	POST /_sim/faults                    queue a Fault (JSON); DELETE clears them
//	POST /_sim/ecs/{name}/srcdst?on=BOOL turn the source/destination check on or off
//	POST /_sim/ecs/{name}/status?set=S   set the instance's state (ACTIVE, SHUTOFF, ERROR)
//	DELETE /_sim/ecs/{name}              delete the instance (its routes stay)
func (s *Sim) serveAdmin(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/_sim")
	switch {
	case path == "/routetables" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"routetables": s.RouteTables()})
	case path == "/config" && r.Method == http.MethodGet:
		c := s.Config()
		c.AK, c.SK = "", ""
		writeJSON(w, http.StatusOK, c)
	case path == "/requests" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Requests())
	case path == "/faults" && r.Method == http.MethodPost:
		var f Fault
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&f); err != nil {
			http.Error(w, "fault must be JSON such as {\"count\":2,\"status\":429}: "+err.Error(), http.StatusBadRequest)
			return
		}
		s.InjectFault(f)
		w.WriteHeader(http.StatusNoContent)
	case path == "/faults" && r.Method == http.MethodDelete:
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(path, "/ecs/") && strings.HasSuffix(path, "/srcdst") && r.Method == http.MethodPost:
		name := strings.TrimSuffix(strings.TrimPrefix(path, "/ecs/"), "/srcdst")
		e, ok := s.ECSByName(name)
		if !ok {
			http.Error(w, "no ECS named "+name, http.StatusNotFound)
			return
		}
		on := r.URL.Query().Get("on")
		if on != "true" && on != "false" {
			http.Error(w, "query on must be true or false", http.StatusBadRequest)
			return
		}
		s.SetSrcDstCheck(e.ID, on == "true")
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(path, "/ecs/") && strings.HasSuffix(path, "/status") && r.Method == http.MethodPost:
		e, ok := s.ECSByName(strings.TrimSuffix(strings.TrimPrefix(path, "/ecs/"), "/status"))
		status := r.URL.Query().Get("set")
		switch {
		case !ok:
			http.Error(w, "no such ECS", http.StatusNotFound)
		case status == "" || strings.ToUpper(status) != status:
			http.Error(w, "query set must be a state such as ACTIVE, SHUTOFF or ERROR", http.StatusBadRequest)
		default:
			s.SetECSStatus(e.ID, status)
			w.WriteHeader(http.StatusNoContent)
		}
	case strings.HasPrefix(path, "/ecs/") && strings.Count(path, "/") == 2 && r.Method == http.MethodDelete:
		e, ok := s.ECSByName(strings.TrimPrefix(path, "/ecs/"))
		if !ok {
			http.Error(w, "no such ECS", http.StatusNotFound)
			return
		}
		s.DeleteECS(e.ID)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "unknown admin call "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	}
}

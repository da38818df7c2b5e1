// Package server serves Docker's NetworkDriver and IpamDriver plugin APIs on one unix
// socket. go-plugins-helpers' handlers each build a mux for one API type, so this
// package routes both itself, using that library's request and response types.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	dnet "github.com/docker/go-plugins-helpers/network"
)

const contentType = "application/vnd.docker.plugins.v1.1+json"

// Manifest is the answer to Plugin.Activate: both APIs on one socket.
const Manifest = `{"Implements": ["NetworkDriver", "IpamDriver"]}`

// Capabilities are the answers that never change; they are served before start-up
// is done, because Docker asks for them right after Activate and gives up quickly.
type Capabilities struct {
	Network *dnet.CapabilitiesResponse
	IPAM    *dipam.CapabilitiesResponse
	Spaces  *dipam.AddressSpacesResponse
}

// Drivers are the two APIs' implementations, and the operators' endpoints.
type Drivers struct {
	Network dnet.Driver
	IPAM    dipam.Ipam
	Admin   Admin
}

// ContextIPAM and ContextNetwork are the calls whose cloud work is bound to Docker's
// request: when Docker stops waiting (its plugin client gives up after 30 s) the
// context ends, and the work stops instead of finishing for nobody. The drivers
// implement them beside Docker's interfaces; the handler prefers them.
type ContextIPAM interface {
	RequestPoolContext(context.Context, *dipam.RequestPoolRequest) (*dipam.RequestPoolResponse, error)
	ReleasePoolContext(context.Context, *dipam.ReleasePoolRequest) error
}

// ContextNetwork: see ContextIPAM.
type ContextNetwork interface {
	CreateNetworkContext(context.Context, *dnet.CreateNetworkRequest) error
	DeleteNetworkContext(context.Context, *dnet.DeleteNetworkRequest) error
}

// Admin answers the operators' tools (`vpcroute status`, `doctor`, `gc`,
// `uninstall`) on the plugin's own socket, beside Docker's API: they work the same
// for the host service and the managed plugin, whose settings and credentials only
// the running plugin has.
type Admin interface {
	Status(ctx context.Context) (any, error)
	Doctor(ctx context.Context) (any, error)
	GC(ctx context.Context, apply bool) (any, error)
	Uninstall(ctx context.Context, apply, force bool) (any, error)
}

// Paths of the operators' endpoints. Docker never calls them.
const (
	PathStatus    = "/vpcroute/status"
	PathDoctor    = "/vpcroute/doctor"
	PathGC        = "/vpcroute/gc"
	PathUninstall = "/vpcroute/uninstall"
)

// Gate holds the drivers once start-up has built them, or why it could not: a
// setting the user must fix, a state directory that cannot be written. The plugin
// serves either way, so that Docker enables it and the user reads the reason in
// `docker network create`'s own error rather than in a log.
type Gate struct {
	done chan struct{}
	once sync.Once
	mu   sync.Mutex
	d    Drivers
	err  error
}

// NewGate returns a gate that is neither open nor failed: calls wait.
func NewGate() *Gate { return &Gate{done: make(chan struct{})} }

// Open lets calls through to the drivers.
func (g *Gate) Open(d Drivers) {
	g.mu.Lock()
	g.d = d
	g.mu.Unlock()
	g.once.Do(func() { close(g.done) })
}

// Fail answers every call with err, which says what to fix; also after Open, for a
// plugin that was uninstalled while it runs.
func (g *Gate) Fail(err error) {
	g.mu.Lock()
	g.err = err
	g.mu.Unlock()
	g.once.Do(func() { close(g.done) })
}

// wait returns the drivers, or why there are none, waiting for start-up up to max.
func (g *Gate) wait(ctx context.Context, max time.Duration) (Drivers, error) {
	select {
	case <-g.done:
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.err != nil {
			return Drivers{}, g.err
		}
		return g.d, nil
	case <-time.After(max):
		return Drivers{}, errors.New("vpcroute is still starting (restoring saved networks); retry in a few seconds")
	case <-ctx.Done():
		return Drivers{}, ctx.Err()
	}
}

// maxBody bounds a request: Docker's largest (a port map) is a few kilobytes, and a
// huge body must not make the plugin hold it in memory.
const maxBody = 1 << 20

// Handler serves both plugin APIs. Until the gate opens, API calls wait (Activate and
// the capabilities do not), so Docker can reach the socket at once while start-up
// builds the drivers and restores the host.
func Handler(caps Capabilities, gate *Gate, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		fmt.Fprintln(w, Manifest)
	})
	h := &handlers{mux: mux, gate: gate, log: log}

	static(h, "/NetworkDriver.GetCapabilities", caps.Network)
	onCtx(h, "/NetworkDriver.CreateNetwork", func(ctx context.Context, d Drivers, r *dnet.CreateNetworkRequest) (any, error) {
		if c, ok := d.Network.(ContextNetwork); ok {
			return empty, c.CreateNetworkContext(ctx, r)
		}
		return empty, d.Network.CreateNetwork(r)
	})
	onCtx(h, "/NetworkDriver.DeleteNetwork", func(ctx context.Context, d Drivers, r *dnet.DeleteNetworkRequest) (any, error) {
		if c, ok := d.Network.(ContextNetwork); ok {
			return empty, c.DeleteNetworkContext(ctx, r)
		}
		return empty, d.Network.DeleteNetwork(r)
	})
	on(h, "/NetworkDriver.AllocateNetwork", func(d Drivers, r *dnet.AllocateNetworkRequest) (any, error) { return d.Network.AllocateNetwork(r) })
	on(h, "/NetworkDriver.FreeNetwork", func(d Drivers, r *dnet.FreeNetworkRequest) (any, error) { return empty, d.Network.FreeNetwork(r) })
	on(h, "/NetworkDriver.CreateEndpoint", func(d Drivers, r *dnet.CreateEndpointRequest) (any, error) { return d.Network.CreateEndpoint(r) })
	on(h, "/NetworkDriver.DeleteEndpoint", func(d Drivers, r *dnet.DeleteEndpointRequest) (any, error) { return empty, d.Network.DeleteEndpoint(r) })
	on(h, "/NetworkDriver.EndpointOperInfo", func(d Drivers, r *dnet.InfoRequest) (any, error) { return d.Network.EndpointInfo(r) })
	on(h, "/NetworkDriver.Join", func(d Drivers, r *dnet.JoinRequest) (any, error) { return d.Network.Join(r) })
	on(h, "/NetworkDriver.Leave", func(d Drivers, r *dnet.LeaveRequest) (any, error) { return empty, d.Network.Leave(r) })
	on(h, "/NetworkDriver.DiscoverNew", func(d Drivers, r *dnet.DiscoveryNotification) (any, error) { return empty, d.Network.DiscoverNew(r) })
	on(h, "/NetworkDriver.DiscoverDelete", func(d Drivers, r *dnet.DiscoveryNotification) (any, error) { return empty, d.Network.DiscoverDelete(r) })
	on(h, "/NetworkDriver.ProgramExternalConnectivity", func(d Drivers, r *dnet.ProgramExternalConnectivityRequest) (any, error) {
		return empty, d.Network.ProgramExternalConnectivity(r)
	})
	on(h, "/NetworkDriver.RevokeExternalConnectivity", func(d Drivers, r *dnet.RevokeExternalConnectivityRequest) (any, error) {
		return empty, d.Network.RevokeExternalConnectivity(r)
	})

	static(h, "/IpamDriver.GetCapabilities", caps.IPAM)
	static(h, "/IpamDriver.GetDefaultAddressSpaces", caps.Spaces)
	onCtx(h, "/IpamDriver.RequestPool", func(ctx context.Context, d Drivers, r *dipam.RequestPoolRequest) (any, error) {
		if c, ok := d.IPAM.(ContextIPAM); ok {
			return c.RequestPoolContext(ctx, r)
		}
		return d.IPAM.RequestPool(r)
	})
	onCtx(h, "/IpamDriver.ReleasePool", func(ctx context.Context, d Drivers, r *dipam.ReleasePoolRequest) (any, error) {
		if c, ok := d.IPAM.(ContextIPAM); ok {
			return empty, c.ReleasePoolContext(ctx, r)
		}
		return empty, d.IPAM.ReleasePool(r)
	})
	on(h, "/IpamDriver.RequestAddress", func(d Drivers, r *dipam.RequestAddressRequest) (any, error) { return d.IPAM.RequestAddress(r) })
	on(h, "/IpamDriver.ReleaseAddress", func(d Drivers, r *dipam.ReleaseAddressRequest) (any, error) { return empty, d.IPAM.ReleaseAddress(r) })

	admin(h, PathStatus, http.MethodGet, func(ctx context.Context, a Admin, _ *http.Request) (any, error) { return a.Status(ctx) })
	admin(h, PathDoctor, http.MethodGet, func(ctx context.Context, a Admin, _ *http.Request) (any, error) { return a.Doctor(ctx) })
	admin(h, PathGC, http.MethodPost, func(ctx context.Context, a Admin, r *http.Request) (any, error) {
		return a.GC(ctx, r.URL.Query().Get("apply") == "true")
	})
	admin(h, PathUninstall, http.MethodPost, func(ctx context.Context, a Admin, r *http.Request) (any, error) {
		return a.Uninstall(ctx, r.URL.Query().Get("apply") == "true", r.URL.Query().Get("force") == "true")
	})
	return mux
}

// admin serves one operators' endpoint: JSON out, {"Err": ...} on failure, as the
// plugin API does.
func admin(h *handlers, path, method string, fn func(context.Context, Admin, *http.Request) (any, error)) {
	h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			write(w, http.StatusMethodNotAllowed, errorResponse{Err: path + " takes " + method})
			return
		}
		d, err := h.gate.wait(r.Context(), 10*time.Second)
		if err == nil && d.Admin == nil {
			err = errors.New("this plugin has no operators' endpoints")
		}
		if err != nil {
			write(w, http.StatusServiceUnavailable, errorResponse{Err: err.Error()})
			return
		}
		res, err := fn(r.Context(), d.Admin, r)
		if err != nil {
			write(w, http.StatusInternalServerError, errorResponse{Err: err.Error()})
			return
		}
		write(w, http.StatusOK, res)
	})
}

var empty = struct{}{}

type handlers struct {
	mux  *http.ServeMux
	gate *Gate
	log  *slog.Logger
}

// errorResponse is the error shape both plugin APIs share.
type errorResponse struct {
	Err string
}

func on[Req any](h *handlers, path string, fn func(Drivers, *Req) (any, error)) {
	onCtx(h, path, func(_ context.Context, d Drivers, r *Req) (any, error) { return fn(d, r) })
}

// onCtx is on for a call that takes the request's context.
func onCtx[Req any](h *handlers, path string, fn func(context.Context, Drivers, *Req) (any, error)) {
	h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		req := new(Req)
		// Docker sends an empty body for some calls.
		if r.ContentLength != 0 {
			if err := decode(http.MaxBytesReader(w, r.Body, maxBody), req); err != nil {
				write(w, http.StatusBadRequest, errorResponse{Err: "bad request: " + err.Error()})
				return
			}
		}
		d, err := h.gate.wait(r.Context(), 10*time.Second)
		if err != nil {
			write(w, http.StatusServiceUnavailable, errorResponse{Err: err.Error()})
			return
		}
		res, err := fn(r.Context(), d, req)
		if err != nil {
			h.log.Warn("request failed", "call", path[1:], "err", err, "took", time.Since(start).Round(time.Microsecond))
			write(w, http.StatusInternalServerError, errorResponse{Err: err.Error()})
			return
		}
		h.log.Debug("request", "call", path[1:], "took", time.Since(start).Round(time.Microsecond))
		write(w, http.StatusOK, res)
	})
}

// decode reads one JSON value, and nothing after it but white space. An empty body
// is an empty request.
func decode(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.As(err, &tooBig):
			return fmt.Errorf("the request is larger than %d bytes", maxBody)
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}

// static serves a constant answer at once.
func static(h *handlers, path string, v any) {
	h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { write(w, http.StatusOK, v) })
}

func write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Listen creates the plugin socket, replacing a stale one left by a killed process.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket directory for %s: %w", path, err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("socket %s is in use: another vpcroute is running; stop it first", path)
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

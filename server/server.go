// Package server serves Docker's NetworkDriver and IpamDriver plugin APIs on one unix
// socket. go-plugins-helpers' handlers each build a mux for one API type, so this
// package routes both itself, using that library's request and response types.
package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
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

// Drivers are the two APIs' implementations.
type Drivers struct {
	Capabilities
	Network dnet.Driver
	IPAM    dipam.Ipam
}

// Handler serves both plugin APIs. Until ready is closed, API calls wait (Activate
// does not), so Docker can reach the socket at once while start-up builds the drivers
// and reconciles; *drivers is read only after ready is closed.
func Handler(drivers *Drivers, ready <-chan struct{}, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		fmt.Fprintln(w, Manifest)
	})
	h := &handlers{mux: mux, ready: ready, log: log}
	nd := lateNetwork{drivers}
	ipam := lateIPAM{drivers}

	static(h, "/NetworkDriver.GetCapabilities", drivers.Capabilities.Network)
	on(h, "/NetworkDriver.CreateNetwork", func(r *dnet.CreateNetworkRequest) (any, error) { return empty, nd.d.Network.CreateNetwork(r) })
	on(h, "/NetworkDriver.DeleteNetwork", func(r *dnet.DeleteNetworkRequest) (any, error) { return empty, nd.d.Network.DeleteNetwork(r) })
	on(h, "/NetworkDriver.AllocateNetwork", func(r *dnet.AllocateNetworkRequest) (any, error) { return nd.d.Network.AllocateNetwork(r) })
	on(h, "/NetworkDriver.FreeNetwork", func(r *dnet.FreeNetworkRequest) (any, error) { return empty, nd.d.Network.FreeNetwork(r) })
	on(h, "/NetworkDriver.CreateEndpoint", func(r *dnet.CreateEndpointRequest) (any, error) { return nd.d.Network.CreateEndpoint(r) })
	on(h, "/NetworkDriver.DeleteEndpoint", func(r *dnet.DeleteEndpointRequest) (any, error) { return empty, nd.d.Network.DeleteEndpoint(r) })
	on(h, "/NetworkDriver.EndpointOperInfo", func(r *dnet.InfoRequest) (any, error) { return nd.d.Network.EndpointInfo(r) })
	on(h, "/NetworkDriver.Join", func(r *dnet.JoinRequest) (any, error) { return nd.d.Network.Join(r) })
	on(h, "/NetworkDriver.Leave", func(r *dnet.LeaveRequest) (any, error) { return empty, nd.d.Network.Leave(r) })
	on(h, "/NetworkDriver.DiscoverNew", func(r *dnet.DiscoveryNotification) (any, error) { return empty, nd.d.Network.DiscoverNew(r) })
	on(h, "/NetworkDriver.DiscoverDelete", func(r *dnet.DiscoveryNotification) (any, error) { return empty, nd.d.Network.DiscoverDelete(r) })
	on(h, "/NetworkDriver.ProgramExternalConnectivity", func(r *dnet.ProgramExternalConnectivityRequest) (any, error) {
		return empty, nd.d.Network.ProgramExternalConnectivity(r)
	})
	on(h, "/NetworkDriver.RevokeExternalConnectivity", func(r *dnet.RevokeExternalConnectivityRequest) (any, error) {
		return empty, nd.d.Network.RevokeExternalConnectivity(r)
	})

	static(h, "/IpamDriver.GetCapabilities", drivers.Capabilities.IPAM)
	static(h, "/IpamDriver.GetDefaultAddressSpaces", drivers.Capabilities.Spaces)
	on(h, "/IpamDriver.RequestPool", func(r *dipam.RequestPoolRequest) (any, error) { return ipam.d.IPAM.RequestPool(r) })
	on(h, "/IpamDriver.ReleasePool", func(r *dipam.ReleasePoolRequest) (any, error) { return empty, ipam.d.IPAM.ReleasePool(r) })
	on(h, "/IpamDriver.RequestAddress", func(r *dipam.RequestAddressRequest) (any, error) { return ipam.d.IPAM.RequestAddress(r) })
	on(h, "/IpamDriver.ReleaseAddress", func(r *dipam.ReleaseAddressRequest) (any, error) { return empty, ipam.d.IPAM.ReleaseAddress(r) })
	return mux
}

var empty = struct{}{}

// lateNetwork and lateIPAM read the drivers at call time, after ready.
type lateNetwork struct{ d *Drivers }
type lateIPAM struct{ d *Drivers }

type handlers struct {
	mux   *http.ServeMux
	ready <-chan struct{}
	log   *slog.Logger
}

// errorResponse is the error shape both plugin APIs share.
type errorResponse struct {
	Err string
}

func on[Req any](h *handlers, path string, fn func(*Req) (any, error)) {
	h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		req := new(Req)
		// Docker sends an empty body for some calls.
		if r.ContentLength != 0 {
			if err := json.NewDecoder(r.Body).Decode(req); err != nil && !errors.Is(err, io.EOF) {
				write(w, http.StatusBadRequest, errorResponse{Err: "bad request: " + err.Error()})
				return
			}
		}
		select {
		case <-h.ready:
		case <-time.After(10 * time.Second):
			write(w, http.StatusServiceUnavailable, errorResponse{Err: "vpcroute is still starting (restoring saved networks); retry in a few seconds"})
			return
		case <-r.Context().Done():
			return
		}
		res, err := fn(req)
		if err != nil {
			h.log.Warn("request failed", "call", path[1:], "err", err, "took", time.Since(start).Round(time.Microsecond))
			write(w, http.StatusInternalServerError, errorResponse{Err: err.Error()})
			return
		}
		h.log.Debug("request", "call", path[1:], "took", time.Since(start).Round(time.Microsecond))
		write(w, http.StatusOK, res)
	})
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

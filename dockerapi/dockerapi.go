// Package dockerapi reads Docker's own list of networks through the Engine API, so
// that vpcroute can hold its records against what Docker really has: networks removed
// while the plugin was not serving, and networks Docker has that vpcroute lost track
// of. It only ever reads.
//
// It is never called while Docker is waiting on the plugin: Docker may hold locks of
// its own across a plugin call, and a plugin that called back into Docker from there
// could wait on itself. The background loop alone uses it.
package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultHost is where Docker listens on a standard Linux host.
const DefaultHost = "unix:///run/docker.sock"

// maxBody bounds what vpcroute reads of one answer: thousands of networks fit.
const maxBody = 64 << 20

// ErrNotFound is returned (wrapped) for a network Docker does not have.
var ErrNotFound = errors.New("no such network")

// Network is a Docker network as `GET /networks` and `GET /networks/{id}` describe it;
// only the fields vpcroute reads.
type Network struct {
	Name     string
	ID       string `json:"Id"`
	Created  time.Time
	Scope    string
	Driver   string
	Internal bool
	IPAM     IPAM
	// Options are the driver options (`-o`), e.g. com.docker.network.bridge.name.
	Options map[string]string
	// Containers is filled by Network (inspect) only, not by Networks (list).
	Containers map[string]Endpoint
	// ConfigOnly networks hold settings for others (Swarm's --config-only) and have no
	// driver state of their own.
	ConfigOnly bool
}

// IPAM is a network's address management.
type IPAM struct {
	Driver  string
	Options map[string]string
	Config  []IPAMConfig
}

// IPAMConfig is one subnet of a network.
type IPAMConfig struct {
	Subnet     string
	IPRange    string
	Gateway    string
	AuxAddress map[string]string `json:"AuxiliaryAddresses"`
}

// Endpoint is a container's attachment to a network.
type Endpoint struct {
	Name        string
	EndpointID  string
	MacAddress  string
	IPv4Address string // with prefix length, e.g. 10.0.2.2/24
}

// Client reads Docker's networks.
type Client struct {
	host string
	hc   *http.Client
	base string
}

// New returns a client of the Engine API at host: "unix:///run/docker.sock", a plain
// socket path, or "tcp://HOST:PORT" (no TLS).
func New(host string) (*Client, error) {
	c := &Client{host: host}
	switch {
	case strings.HasPrefix(host, "unix://") || strings.HasPrefix(host, "/"):
		path := strings.TrimPrefix(host, "unix://")
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("docker host %q: give an absolute socket path such as %s", host, DefaultHost)
		}
		c.base = "http://docker"
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			MaxIdleConns:    1,
			IdleConnTimeout: 30 * time.Second,
		}}
	case strings.HasPrefix(host, "tcp://"):
		c.base = "http://" + strings.TrimPrefix(host, "tcp://")
		c.hc = &http.Client{Transport: &http.Transport{MaxIdleConns: 1, IdleConnTimeout: 30 * time.Second}}
	default:
		return nil, fmt.Errorf("docker host %q: use unix:///path/to/docker.sock or tcp://host:port", host)
	}
	return c, nil
}

// Host is the address the client reads from.
func (c *Client) Host() string { return c.host }

// Networks lists every network Docker has (without their containers). The path
// carries no API version: every Engine serves its own current one, whose network
// fields have not changed since 1.24, and a pinned old version is refused by new
// Engines.
func (c *Client) Networks(ctx context.Context) ([]Network, error) {
	var out []Network
	if err := c.get(ctx, "/networks", &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Network inspects one network, with its containers.
func (c *Client) Network(ctx context.Context, id string) (Network, error) {
	var out Network
	err := c.get(ctx, "/networks/"+url.PathEscape(id), &out)
	return out, err
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("read Docker's networks at %s: %w", c.host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("read Docker's networks at %s: %w", c.host, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("GET %s: %w", path, ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		var e struct{ Message string }
		_ = json.Unmarshal(body, &e)
		return fmt.Errorf("GET %s from Docker at %s: %s: %s", path, c.host, resp.Status, e.Message)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s from Docker at %s: %w", path, c.host, err)
	}
	return nil
}

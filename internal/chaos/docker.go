package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"sync"

	dipam "github.com/docker/go-plugins-helpers/ipam"
	dnet "github.com/docker/go-plugins-helpers/network"

	"github.com/vpcroute/vpcroute/dockerapi"
	"github.com/vpcroute/vpcroute/ipam"
)

// DockerNet is a network as Docker keeps it.
type DockerNet struct {
	ID, Name string
	Subnet   netip.Prefix
	// VpcrouteIPAM says vpcroute's IPAM gave the subnet (--ipam-driver vpcroute);
	// else Docker's default IPAM did.
	VpcrouteIPAM bool
	poolID       string
	gateway      netip.Prefix
}

// Docker plays Docker's part: it calls the plugin as libnetwork does, each call
// bounded by DockerDeadline, and keeps its list of networks, which the plugin reads
// back (it implements controller.Docker).
type Docker struct {
	plugin string
	hc     *http.Client

	mu   sync.Mutex
	nets map[string]DockerNet
}

func newDocker() *Docker {
	return &Docker{hc: &http.Client{Timeout: DockerDeadline}, nets: map[string]DockerNet{}}
}

// call posts one plugin call and decodes its answer; an answer with Err is an error.
func (d *Docker) call(method string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	r, err := d.hc.Post(d.plugin+"/"+method, "application/vnd.docker.plugins.v1.1+json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	defer r.Body.Close()
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	var e struct{ Err string }
	if json.Unmarshal(raw, &e) == nil && e.Err != "" {
		return fmt.Errorf("%s: %s", method, e.Err)
	}
	if resp != nil {
		return json.Unmarshal(raw, resp)
	}
	return nil
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Create is `docker network create -d vpcroute [--ipam-driver vpcroute] [--subnet
// subnet] name`: RequestPool, RequestAddress (the gateway), CreateNetwork, and on a
// failure the releases Docker makes. With Docker's default IPAM, subnet must be
// given: it is what the default IPAM would have picked.
func (d *Docker) Create(name string, subnet netip.Prefix, vpcrouteIPAM bool) (DockerNet, error) {
	n := DockerNet{ID: newID(), Name: name, Subnet: subnet, VpcrouteIPAM: vpcrouteIPAM}
	space := "LocalDefault"
	if vpcrouteIPAM {
		space = ipam.LocalSpace
		req := dipam.RequestPoolRequest{AddressSpace: space, Options: map[string]string{}}
		if subnet.IsValid() {
			req.Pool = subnet.String()
		}
		var pool dipam.RequestPoolResponse
		if err := d.call("IpamDriver.RequestPool", req, &pool); err != nil {
			return n, err
		}
		p, err := netip.ParsePrefix(pool.Pool)
		if err != nil {
			return n, fmt.Errorf("RequestPool answered pool %q: %w", pool.Pool, err)
		}
		n.Subnet, n.poolID = p, pool.PoolID
		var gw dipam.RequestAddressResponse
		err = d.call("IpamDriver.RequestAddress", dipam.RequestAddressRequest{PoolID: n.poolID,
			Options: map[string]string{"RequestAddressType": "com.docker.network.gateway"}}, &gw)
		if err == nil {
			n.gateway, err = netip.ParsePrefix(gw.Address)
		}
		if err != nil {
			_ = d.call("IpamDriver.ReleasePool", dipam.ReleasePoolRequest{PoolID: n.poolID}, nil)
			return n, err
		}
	} else {
		n.gateway = netip.PrefixFrom(subnet.Addr().Next(), subnet.Bits())
	}
	err := d.call("NetworkDriver.CreateNetwork", dnet.CreateNetworkRequest{
		NetworkID: n.ID,
		Options:   map[string]interface{}{"com.docker.network.generic": map[string]interface{}{}},
		IPv4Data:  []*dnet.IPAMData{{AddressSpace: space, Pool: n.Subnet.String(), Gateway: n.gateway.String()}},
	}, nil)
	if err != nil {
		// Docker gives the pool back; it does not call DeleteNetwork.
		d.releasePool(n)
		return n, err
	}
	d.mu.Lock()
	d.nets[n.ID] = n
	d.mu.Unlock()
	return n, nil
}

func (d *Docker) releasePool(n DockerNet) {
	if n.poolID == "" {
		return
	}
	_ = d.call("IpamDriver.ReleaseAddress", dipam.ReleaseAddressRequest{PoolID: n.poolID, Address: n.gateway.Addr().String()}, nil)
	_ = d.call("IpamDriver.ReleasePool", dipam.ReleasePoolRequest{PoolID: n.poolID}, nil)
}

// Remove is `docker network rm`: Docker forgets the network whatever the plugin
// answers (it only logs a failure), then gives the pool back.
func (d *Docker) Remove(n DockerNet) error {
	err := d.call("NetworkDriver.DeleteNetwork", dnet.DeleteNetworkRequest{NetworkID: n.ID}, nil)
	d.mu.Lock()
	delete(d.nets, n.ID)
	d.mu.Unlock()
	d.releasePool(n)
	return err
}

// list returns Docker's networks, by name.
func (d *Docker) list() []DockerNet {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]DockerNet, 0, len(d.nets))
	for _, n := range d.nets {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Networks is Docker's list as the plugin reads it (controller.Docker).
func (d *Docker) Networks(context.Context) ([]dockerapi.Network, error) {
	var out []dockerapi.Network
	for _, n := range d.list() {
		out = append(out, n.api())
	}
	return out, nil
}

// Network is one network as `docker network inspect` shows it.
func (d *Docker) Network(_ context.Context, id string) (dockerapi.Network, error) {
	d.mu.Lock()
	n, ok := d.nets[id]
	d.mu.Unlock()
	if !ok {
		return dockerapi.Network{}, fmt.Errorf("network %s: %w", id, dockerapi.ErrNotFound)
	}
	return n.api(), nil
}

func (n DockerNet) api() dockerapi.Network {
	driver := "default"
	if n.VpcrouteIPAM {
		driver = "vpcroute"
	}
	return dockerapi.Network{ID: n.ID, Name: n.Name, Driver: "vpcroute", Scope: "local",
		IPAM: dockerapi.IPAM{Driver: driver, Config: []dockerapi.IPAMConfig{{Subnet: n.Subnet.String(), Gateway: n.gateway.Addr().String()}}}}
}

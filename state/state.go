// Package state persists what vpcroute has made (pools, their addresses, networks,
// endpoints and port maps) in one bbolt file, one transaction per operation, so that a
// plugin killed at any point comes back knowing exactly what it owns.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Pool is an address pool handed to Docker by the IPAM driver. Its key is the
// claim ID ("vr-" and 12 hex digits); Docker knows it as the ID followed by "/" and
// the subnet (see controller.PoolRef), older pools as the bare ID.
type Pool struct {
	ID     string       `json:"id"`
	Subnet netip.Prefix `json:"subnet"`
	// Owner is the owner named in the pool's VPC route description when it is not
	// ID: a pool rebuilt from Docker after the state was lost takes the route's.
	Owner   string       `json:"owner,omitempty"`
	Range   netip.Prefix `json:"range,omitzero"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
	// Claiming is set while the cloud claim is in flight: a pool found in this state
	// at start-up was never returned to Docker, so its route is released.
	Claiming bool `json:"claiming,omitempty"`
	// Releasing is set before the route is given back: Docker ignores ReleasePool
	// errors, so a release that failed or was cut short by a crash is finished by the
	// reconcile loop instead of leaking the route.
	Releasing bool `json:"releasing,omitempty"`
	// Adopted is set on a pool rebuilt from Docker's network list whose ID Docker
	// knows but vpcroute does not (the state file was lost): the first request
	// that names it by its subnet gives it its ID back (see DB.RenamePool).
	Adopted bool `json:"adopted,omitempty"`
	// MovedTo is the ECS that took the subnet's route over (vpcroute.takeover):
	// vpcroute no longer claims it, nor releases it.
	MovedTo string `json:"moved_to,omitempty"`
	// Block is the ID of this ECS's host block the subnet was carved from
	// (VPCROUTE_HOST_BLOCK): the block's route covers it, and the pool has none of
	// its own.
	Block    string     `json:"block,omitempty"`
	LastAddr netip.Addr `json:"last_addr,omitzero"`
	Created  time.Time  `json:"created"`
}

// BlockPrefix starts the ID (and the route owner) of a host block: a pool record
// that Docker never sees, whose route covers the subnets carved from it.
const BlockPrefix = "vb-"

// IsBlock tells whether the pool is a host block.
func (p Pool) IsBlock() bool { return strings.HasPrefix(p.ID, BlockPrefix) }

// RouteOwner is the owner of the pool's VPC route.
func (p Pool) RouteOwner() string {
	if p.Owner != "" {
		return p.Owner
	}
	return p.ID
}

// Network is a Docker network served by the network driver.
type Network struct {
	ID string `json:"id"`
	// Name is the network's name in Docker, learned from Docker's network list
	// (Docker does not tell a driver); empty until then.
	Name       string       `json:"name,omitempty"`
	Bridge     string       `json:"bridge"`
	Subnet     netip.Prefix `json:"subnet"`
	Gateway    netip.Prefix `json:"gateway"` // address with the subnet's length
	MTU        int          `json:"mtu"`
	Masquerade bool         `json:"masquerade"`
	Internal   bool         `json:"internal"`
	// NoICC, Isolate and Allow are the network's traffic policy (the options
	// com.docker.network.bridge.enable_icc=false, vpcroute.isolate and
	// vpcroute.allow, the last as given).
	NoICC   bool   `json:"no_icc,omitempty"`
	Isolate bool   `json:"isolate,omitempty"`
	Allow   string `json:"allow,omitempty"`
	// PoolID is the key of the vpcroute pool the subnet came from, whose route the
	// pool holds; empty for a subnet from another IPAM driver.
	PoolID string `json:"pool_id,omitempty"`
	// ClaimOwner is set when the network holds its subnet's route itself (Docker's
	// default IPAM gave the subnet); the route goes with the network.
	ClaimOwner string `json:"claim_owner,omitempty"`
	// Block is the host block (a pool ID "vb-…") whose route covers the subnet
	// Docker's default IPAM gave: the network claims no route of its own.
	Block string `json:"block,omitempty"`
	// MovedTo is the ECS that took the subnet's route over (vpcroute.takeover) when
	// the network held it itself: vpcroute no longer claims it, nor releases it.
	MovedTo string `json:"moved_to,omitempty"`
	// Creating is set until CreateNetwork has finished; a network found so at start
	// never reached Docker and is removed.
	Creating bool `json:"creating,omitempty"`
	// Deleting is set when Docker removed the network but its teardown failed: Docker
	// ignores DeleteNetwork errors, so vpcroute finishes it in its repair loop.
	Deleting bool      `json:"deleting,omitempty"`
	Created  time.Time `json:"created"`
}

// Port is one published port of an endpoint.
type Port struct {
	Proto         string     `json:"proto"`
	HostIP        netip.Addr `json:"host_ip,omitzero"`
	HostPort      uint16     `json:"host_port"`
	ContainerPort uint16     `json:"container_port"`
}

// Endpoint is a container's attachment to a network.
type Endpoint struct {
	NetworkID string     `json:"network_id"`
	ID        string     `json:"id"`
	Addr      netip.Addr `json:"addr"`
	// Gone is set when Docker deleted the endpoint but its teardown failed; the
	// repair loop finishes it.
	Gone     bool   `json:"gone,omitempty"`
	HostVeth string `json:"host_veth,omitempty"`
	PeerVeth string `json:"peer_veth,omitempty"`
	Ports    []Port `json:"ports,omitempty"`
}

var (
	bPools     = []byte("pools")
	bAddrs     = []byte("addrs") // sub-bucket per pool ID: address -> ""
	bNetworks  = []byte("networks")
	bEndpoints = []byte("endpoints") // key network ID + "/" + endpoint ID
	// bPorts indexes published host ports, so a clash check reads the bindings of one
	// port instead of every endpoint: key proto/port/hostIP, value the endpoint key.
	bPorts = []byte("ports")
	// bMeta holds facts about the host that the plugin needs before the cloud
	// answers: the identity it had, the settings the data plane was built with.
	bMeta = []byte("meta")
)

// ErrNotFound is returned for a missing record.
var ErrNotFound = errors.New("not found")

// DB is the state file.
type DB struct {
	db   *bolt.DB
	path string
	gen  atomic.Uint64 // writes so far (see Gen)
}

// Open opens (or creates) dir/vpcroute.db.
func Open(dir string) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w (set VPCROUTE_STATE_DIR to a writable directory)", dir, err)
	}
	path := filepath.Join(dir, "vpcroute.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("state file %s is locked: another vpcroute is running with the same VPCROUTE_STATE_DIR; stop it first", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bPools, bAddrs, bNetworks, bEndpoints, bPorts, bMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise state file %s: %w", path, err)
	}
	return &DB{db: db, path: path}, nil
}

// Close closes the file.
func (d *DB) Close() error { return d.db.Close() }

// update is the one way the records change: it counts every write (see Gen).
func (d *DB) update(fn func(*bolt.Tx) error) error {
	defer d.gen.Add(1)
	return d.db.Update(fn)
}

// Gen changes whenever a record may have changed since it was last read, so that
// the background loop can tell, for nothing, that nobody asked for anything new.
func (d *DB) Gen() uint64 { return d.gen.Load() }

// Remove closes the file and deletes it, with every record: `vpcroute uninstall`.
// The directory stays (a managed plugin's state mount needs it).
func (d *DB) Remove() error {
	if err := d.db.Close(); err != nil && !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return err
	}
	if err := os.Remove(d.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove state file %s: %w", d.path, err)
	}
	return nil
}

func put(tx *bolt.Tx, bucket []byte, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put([]byte(key), data)
}

func get(tx *bolt.Tx, bucket []byte, key string, v any) error {
	data := tx.Bucket(bucket).Get([]byte(key))
	if data == nil {
		return ErrNotFound
	}
	return json.Unmarshal(data, v)
}

func list[T any](d *DB, bucket []byte, prefix string) ([]T, error) {
	var out []T
	err := d.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && string(k[:min(len(k), len(prefix))]) == prefix; k, v = c.Next() {
			var x T
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("decode %s/%s: %w", bucket, k, err)
			}
			out = append(out, x)
		}
		return nil
	})
	return out, err
}

// PutPool saves a pool.
func (d *DB) PutPool(p Pool) error {
	return d.update(func(tx *bolt.Tx) error {
		if _, err := tx.Bucket(bAddrs).CreateBucketIfNotExists([]byte(p.ID)); err != nil {
			return err
		}
		return put(tx, bPools, p.ID, p)
	})
}

// Pool loads a pool.
func (d *DB) Pool(id string) (Pool, error) {
	var p Pool
	err := d.db.View(func(tx *bolt.Tx) error { return get(tx, bPools, id, &p) })
	return p, err
}

// Pools lists all pools.
func (d *DB) Pools() ([]Pool, error) { return list[Pool](d, bPools, "") }

// DeletePool removes a pool and every address reserved in it.
func (d *DB) DeletePool(id string) error {
	return d.update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bAddrs).DeleteBucket([]byte(id)); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		return tx.Bucket(bPools).Delete([]byte(id))
	})
}

// Allocate reserves an address in a pool in one transaction: pick is given the pool
// (which it may update, e.g. its gateway) and a membership test of addresses in use,
// and returns the address to reserve.
func (d *DB) Allocate(poolID string, pick func(p *Pool, used func(netip.Addr) bool) (netip.Addr, error)) (netip.Addr, error) {
	var got netip.Addr
	err := d.update(func(tx *bolt.Tx) error {
		var p Pool
		if err := get(tx, bPools, poolID, &p); err != nil {
			return err
		}
		addrs := tx.Bucket(bAddrs).Bucket([]byte(poolID))
		if addrs == nil {
			return fmt.Errorf("pool %s has no address bucket", poolID)
		}
		used := func(a netip.Addr) bool { return addrs.Get(a.AsSlice()) != nil }
		a, err := pick(&p, used)
		if err != nil {
			return err
		}
		if err := addrs.Put(a.AsSlice(), []byte{}); err != nil {
			return err
		}
		got = a
		p.LastAddr = a
		return put(tx, bPools, p.ID, p)
	})
	return got, err
}

// Free releases an address; freeing a free address is not an error.
func (d *DB) Free(poolID string, a netip.Addr) error {
	return d.update(func(tx *bolt.Tx) error {
		addrs := tx.Bucket(bAddrs).Bucket([]byte(poolID))
		if addrs == nil {
			return nil
		}
		return addrs.Delete(a.AsSlice())
	})
}

// Addresses lists the reserved addresses of a pool.
func (d *DB) Addresses(poolID string) ([]netip.Addr, error) {
	var out []netip.Addr
	err := d.db.View(func(tx *bolt.Tx) error {
		addrs := tx.Bucket(bAddrs).Bucket([]byte(poolID))
		if addrs == nil {
			return nil
		}
		return addrs.ForEach(func(k, _ []byte) error {
			if a, ok := netip.AddrFromSlice(k); ok {
				out = append(out, a)
			}
			return nil
		})
	})
	return out, err
}

// PutNetwork saves a network.
func (d *DB) PutNetwork(n Network) error {
	return d.update(func(tx *bolt.Tx) error { return put(tx, bNetworks, n.ID, n) })
}

// Network loads a network.
func (d *DB) Network(id string) (Network, error) {
	var n Network
	err := d.db.View(func(tx *bolt.Tx) error { return get(tx, bNetworks, id, &n) })
	return n, err
}

// Networks lists all networks.
func (d *DB) Networks() ([]Network, error) { return list[Network](d, bNetworks, "") }

// DeleteNetwork removes a network and its endpoints.
func (d *DB) DeleteNetwork(id string) error {
	return d.update(func(tx *bolt.Tx) error {
		var keys []string
		c := tx.Bucket(bEndpoints).Cursor()
		prefix := id + "/"
		for k, _ := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, _ = c.Next() {
			keys = append(keys, string(k))
		}
		for _, k := range keys {
			if err := deleteEndpoint(tx, k); err != nil {
				return err
			}
		}
		return tx.Bucket(bNetworks).Delete([]byte(id))
	})
}

func portKey(proto string, port uint16, ip netip.Addr) string {
	host := "*"
	if ip.IsValid() && !ip.IsUnspecified() {
		host = ip.String()
	}
	return fmt.Sprintf("%s/%05d/%s", proto, port, host)
}

// deleteEndpoint removes an endpoint record and its port index entries.
func deleteEndpoint(tx *bolt.Tx, key string) error {
	var old Endpoint
	if err := get(tx, bEndpoints, key, &old); err == nil {
		for _, p := range old.Ports {
			k := []byte(portKey(p.Proto, p.HostPort, p.HostIP))
			if string(tx.Bucket(bPorts).Get(k)) == key {
				if err := tx.Bucket(bPorts).Delete(k); err != nil {
					return err
				}
			}
		}
	}
	return tx.Bucket(bEndpoints).Delete([]byte(key))
}

// PutEndpoint saves an endpoint and indexes its published ports.
func (d *DB) PutEndpoint(e Endpoint) error {
	key := e.NetworkID + "/" + e.ID
	return d.update(func(tx *bolt.Tx) error {
		if err := deleteEndpoint(tx, key); err != nil {
			return err
		}
		for _, p := range e.Ports {
			if err := tx.Bucket(bPorts).Put([]byte(portKey(p.Proto, p.HostPort, p.HostIP)), []byte(key)); err != nil {
				return err
			}
		}
		return put(tx, bEndpoints, key, e)
	})
}

// PortBinding is a published host port and the endpoint holding it.
type PortBinding struct {
	Port
	Endpoint string // network ID + "/" + endpoint ID
}

// PortBindings returns every binding of proto/port, on any host IP. Its cost depends
// on how many bindings that one port has, not on how many endpoints exist.
func (d *DB) PortBindings(proto string, port uint16) ([]PortBinding, error) {
	var out []PortBinding
	prefix := fmt.Sprintf("%s/%05d/", proto, port)
	err := d.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bPorts).Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
			b := PortBinding{Port: Port{Proto: proto, HostPort: port}, Endpoint: string(v)}
			if host := strings.TrimPrefix(string(k), prefix); host != "*" {
				b.HostIP, _ = netip.ParseAddr(host)
			}
			out = append(out, b)
		}
		return nil
	})
	return out, err
}

// Endpoint loads an endpoint.
func (d *DB) Endpoint(networkID, id string) (Endpoint, error) {
	var e Endpoint
	err := d.db.View(func(tx *bolt.Tx) error { return get(tx, bEndpoints, networkID+"/"+id, &e) })
	return e, err
}

// Endpoints lists the endpoints of a network ("" = all networks).
func (d *DB) Endpoints(networkID string) ([]Endpoint, error) {
	prefix := ""
	if networkID != "" {
		prefix = networkID + "/"
	}
	return list[Endpoint](d, bEndpoints, prefix)
}

// DeleteEndpoint removes an endpoint; a missing one is not an error.
func (d *DB) DeleteEndpoint(networkID, id string) error {
	return d.update(func(tx *bolt.Tx) error { return deleteEndpoint(tx, networkID+"/"+id) })
}

// RenamePool moves pool oldID, with its addresses, to newID in one transaction, and
// clears Adopted: Docker named the pool of a rebuilt network.
func (d *DB) RenamePool(oldID, newID string) (Pool, error) {
	var p Pool
	err := d.update(func(tx *bolt.Tx) error {
		if err := get(tx, bPools, oldID, &p); err != nil {
			return err
		}
		if tx.Bucket(bPools).Get([]byte(newID)) != nil {
			return fmt.Errorf("pool %s exists already", newID)
		}
		addrs := tx.Bucket(bAddrs)
		nb, err := addrs.CreateBucketIfNotExists([]byte(newID))
		if err != nil {
			return err
		}
		if ob := addrs.Bucket([]byte(oldID)); ob != nil {
			if err := ob.ForEach(func(k, v []byte) error { return nb.Put(k, v) }); err != nil {
				return err
			}
			if err := addrs.DeleteBucket([]byte(oldID)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bPools).Delete([]byte(oldID)); err != nil {
			return err
		}
		if p.Owner == "" {
			p.Owner = oldID
		}
		p.ID, p.Adopted = newID, false
		if p.Owner == newID {
			p.Owner = ""
		}
		if err := put(tx, bPools, newID, p); err != nil {
			return err
		}
		// The networks drawing from it follow.
		c := tx.Bucket(bNetworks).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var n Network
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("decode %s/%s: %w", bNetworks, k, err)
			}
			if n.PoolID == oldID {
				n.PoolID = newID
				if err := put(tx, bNetworks, n.ID, n); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return p, err
}

// Adopt records, in one transaction, a network rebuilt from Docker's view: the
// network, its pool with the addresses Docker shows in use (nil for a network on
// another IPAM driver), and its endpoints. A crash cannot leave half of it.
func (d *DB) Adopt(n Network, pool *Pool, addrs []netip.Addr, eps []Endpoint) error {
	return d.update(func(tx *bolt.Tx) error {
		if pool != nil {
			b, err := tx.Bucket(bAddrs).CreateBucketIfNotExists([]byte(pool.ID))
			if err != nil {
				return err
			}
			for _, a := range addrs {
				if err := b.Put(a.AsSlice(), []byte{}); err != nil {
					return err
				}
			}
			if err := put(tx, bPools, pool.ID, *pool); err != nil {
				return err
			}
		}
		if n.ID != "" {
			if err := put(tx, bNetworks, n.ID, n); err != nil {
				return err
			}
		}
		for _, e := range eps {
			key := e.NetworkID + "/" + e.ID
			for _, p := range e.Ports {
				if err := tx.Bucket(bPorts).Put([]byte(portKey(p.Proto, p.HostPort, p.HostIP)), []byte(key)); err != nil {
					return err
				}
			}
			if err := put(tx, bEndpoints, key, e); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutMeta saves v (JSON) under key.
func (d *DB) PutMeta(key string, v any) error {
	return d.update(func(tx *bolt.Tx) error { return put(tx, bMeta, key, v) })
}

// Meta loads what PutMeta saved under key into v; ErrNotFound when nothing was.
func (d *DB) Meta(key string, v any) error {
	return d.db.View(func(tx *bolt.Tx) error { return get(tx, bMeta, key, v) })
}

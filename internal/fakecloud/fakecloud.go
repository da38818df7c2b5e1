// Package fakecloud is a VPC route table in memory, for the unit tests of the
// controller and the plugin APIs: it keeps the routes of this host and of others,
// refuses overlaps the way the VPC API does, counts calls and fails on demand. The
// Huawei client itself is tested through the real SDK against the emulator
// (internal/sim), and the whole plugin end to end in internal/e2e.
package fakecloud

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vpcroute/vpcroute/check"
	"github.com/vpcroute/vpcroute/cloud"
)

// Route is one route of the table.
type Route struct {
	// Instance is the next hop: this host's instance ID, or another's.
	Instance string
	// Owner and Name are what the description says: vpcroute's claim owner and the
	// Docker network's name; Owner is empty for routes that are not vpcroute's.
	Owner, Name string
}

// VPC is cloud.VPC over a route table in memory. Its fields may be set by tests
// between calls; Routes is read and written under Lock.
type VPC struct {
	sync.Mutex
	ID     cloud.Identity
	Routes map[netip.Prefix]Route
	// Fail, when set, is returned by every Claim and Release.
	Fail error
	// Claims and Releases count calls.
	Claims, Releases int
	// Hook, when set, runs at the start of every Claim and Release, without the
	// table's lock: a test makes the cloud slow with it.
	Hook func()
	// Stopped lists the other instances that are not running: a takeover without
	// force moves routes only from them.
	Stopped map[string]bool
}

var _ cloud.VPC = (*VPC)(nil)

// New returns an empty route table for host instance.
func New(instance string) *VPC {
	return &VPC{ID: cloud.Identity{InstanceID: instance}, Routes: map[netip.Prefix]Route{}}
}

// Add puts a route in the table as someone else (another host, the console) would.
func (v *VPC) Add(prefix string, r Route) {
	v.Lock()
	defer v.Unlock()
	v.Routes[netip.MustParsePrefix(prefix)] = r
}

// Delete removes a route as someone in the console would.
func (v *VPC) Delete(prefix string) {
	v.Lock()
	defer v.Unlock()
	delete(v.Routes, netip.MustParsePrefix(prefix))
}

// Get returns the route to prefix.
func (v *VPC) Get(prefix string) (Route, bool) {
	v.Lock()
	defer v.Unlock()
	r, ok := v.Routes[netip.MustParsePrefix(prefix)]
	return r, ok
}

// Len is the number of routes.
func (v *VPC) Len() int {
	v.Lock()
	defer v.Unlock()
	return len(v.Routes)
}

// Identity returns ID.
func (v *VPC) Identity() cloud.Identity { return v.ID }

func (v *VPC) hook() {
	v.Lock()
	h := v.Hook
	v.Unlock()
	if h != nil {
		h()
	}
}

func (v *VPC) mine(r Route, owner string) bool {
	return r.Instance == v.ID.InstanceID && r.Owner == owner
}

// Claim routes a subnet to this host as the Huawei client does: a route this host
// holds for the owner already is success; an overlap with any other route is a
// *cloud.ConflictError.
func (v *VPC) Claim(_ context.Context, req cloud.ClaimRequest) (netip.Prefix, error) {
	v.hook()
	v.Lock()
	defer v.Unlock()
	v.Claims++
	if v.Fail != nil {
		return netip.Prefix{}, v.Fail
	}
	want := req.Want
	if !want.IsValid() {
		for _, p := range slices.SortedFunc(maps.Keys(v.Routes), func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }) {
			if v.mine(v.Routes[p], req.Owner) {
				return p, nil
			}
		}
		p, err := req.Pick(slices.Collect(maps.Keys(v.Routes)))
		if err != nil {
			return netip.Prefix{}, err
		}
		want = p
	}
	var conflict *cloud.ConflictError
	others := 0
	for p, r := range v.Routes {
		if p == want && v.mine(r, req.Owner) {
			return want, nil
		}
		if p.Overlaps(want) {
			others++
			conflict = &cloud.ConflictError{Want: want, Existing: p, NextHop: r.Instance, Takeover: req.Takeover,
				Takeable: p == want && r.Owner != "" && r.Instance != v.ID.InstanceID}
		}
	}
	if conflict != nil {
		conflict.Takeable = conflict.Takeable && others == 1
		switch {
		case !conflict.Takeable || req.Takeover == cloud.NoTakeover:
			return netip.Prefix{}, conflict
		case req.Takeover == cloud.TakeoverStopped && !v.Stopped[conflict.NextHop]:
			conflict.Running = "ACTIVE"
			return netip.Prefix{}, conflict
		}
	}
	v.Routes[want] = Route{Instance: v.ID.InstanceID, Owner: req.Owner, Name: req.Name}
	return want, nil
}

// Release removes this host's route to prefix if owner holds it.
func (v *VPC) Release(_ context.Context, prefix netip.Prefix, owner string) error {
	v.hook()
	v.Lock()
	defer v.Unlock()
	v.Releases++
	if v.Fail != nil {
		return v.Fail
	}
	if r, ok := v.Routes[prefix]; ok && v.mine(r, owner) {
		delete(v.Routes, prefix)
	}
	return nil
}

// Owned lists this host's vpcroute routes.
func (v *VPC) Owned(context.Context) ([]cloud.Route, error) {
	v.Lock()
	defer v.Unlock()
	if v.Fail != nil {
		return nil, v.Fail
	}
	var out []cloud.Route
	for p, r := range v.Routes {
		if r.Instance == v.ID.InstanceID && r.Owner != "" {
			out = append(out, cloud.Route{Destination: p, Owner: r.Owner})
		}
	}
	return out, nil
}

// Table lists every route, this host's and others'.
func (v *VPC) Table(context.Context) (cloud.Table, error) {
	v.Lock()
	defer v.Unlock()
	if v.Fail != nil {
		return cloud.Table{}, v.Fail
	}
	t := cloud.Table{ID: "rtb-fake", Quota: 200, Used: len(v.Routes)}
	for _, p := range slices.SortedFunc(maps.Keys(v.Routes), func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }) {
		r := v.Routes[p]
		t.Routes = append(t.Routes, cloud.TableRoute{Destination: p, Type: "ecs", NextHop: r.Instance, Owner: r.Owner,
			Mine: r.Instance == v.ID.InstanceID, Description: r.Name})
	}
	return t, nil
}

// Checks has nothing to check: the table is in memory.
func (v *VPC) Checks(context.Context, netip.Prefix) []check.Result {
	return []check.Result{{Name: "cloud", Status: check.Pass, Detail: "route table in memory"}}
}

// ReleaseGone removes a route.
// Unsettled is zero: the fake answers every write.
func (v *VPC) Unsettled() time.Time { return time.Time{} }

func (v *VPC) ReleaseGone(_ context.Context, r cloud.TableRoute) error {
	v.Lock()
	defer v.Unlock()
	if got, ok := v.Routes[r.Destination]; ok && got.Owner == r.Owner && got.Instance == r.NextHop {
		delete(v.Routes, r.Destination)
	}
	return nil
}

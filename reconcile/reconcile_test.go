package reconcile

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/state"
)

var (
	now    = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	old    = now.Add(-time.Hour)       // a record made long before Docker's list was read
	young  = now.Add(-5 * time.Second) // one made just before
	s2     = netip.MustParsePrefix("10.0.2.0/24")
	s3     = netip.MustParsePrefix("10.0.3.0/24")
	s4     = netip.MustParsePrefix("10.0.4.0/24")
	s9     = netip.MustParsePrefix("10.0.9.0/24")
	grace  = 30 * time.Second
	ograce = 10 * time.Minute
)

// Records of the tests: n2 draws from pool p2 (vpcroute's IPAM), n3 holds its own
// route (Docker's default IPAM).
func net2() state.Network {
	return state.Network{ID: "n2", Name: "web", Bridge: "vr-n2", Subnet: s2, PoolID: "p2", Created: old}
}
func net3() state.Network {
	return state.Network{ID: "n3", Name: "db", Bridge: "vr-n3", Subnet: s3, ClaimOwner: "net-n3", Created: old}
}
func pool2() state.Pool { return state.Pool{ID: "p2", Subnet: s2, Created: old} }

// healthy is a host where everything agrees: records, Docker, VPC and kernel.
func healthy() Input {
	return Input{
		Now:      now,
		Networks: []state.Network{net2(), net3()},
		Pools:    []state.Pool{pool2()},
		Docker: &Docker{ReadAt: now, Networks: []DockerNetwork{
			{ID: "n2", Name: "web", Driver: true, IPAM: true, Subnet: s2},
			{ID: "n3", Name: "db", Driver: true, Subnet: s3},
			{ID: "b1", Name: "bridge", Subnet: netip.MustParsePrefix("172.17.0.0/16")},
		}},
		Routes:      []cloud.Route{{Destination: s2, Owner: "p2"}, {Destination: s3, Owner: "net-n3"}},
		Bridges:     map[string]string{"vr-n2": "n2", "vr-n3": "n3"},
		RuleOwners:  map[string]bool{"n2": true, "n3": true},
		Grace:       grace,
		OrphanGrace: ograce,
	}
}

// show writes an action the way the tests expect it.
func show(a Action) string {
	var b strings.Builder
	b.WriteString(a.Kind.String())
	for _, f := range []string{a.ID, a.Owner, a.Name, a.Bridge} {
		if f != "" {
			b.WriteString(" " + f)
		}
	}
	if a.Subnet.IsValid() {
		b.WriteString(" " + a.Subnet.String())
	}
	if a.Kind == Adopt {
		fmt.Fprintf(&b, " network=%v pool=%v", a.Network, a.Pool)
	}
	if a.Kind == PruneRules {
		keep := []string{}
		for id := range a.Keep {
			keep = append(keep, id)
		}
		slices.Sort(keep)
		b.WriteString(" keep=" + strings.Join(keep, ","))
	}
	return b.String()
}

func TestCompute(t *testing.T) {
	tests := []struct {
		name  string
		setup func(in *Input)
		want  []string // actions, in plan order
		held  int      // how many things the plan leaves alone, reported
	}{
		{name: "all in agreement: nothing to do", setup: func(in *Input) {}},

		// Networks vpcroute has.
		{name: "deleting network is finished", setup: func(in *Input) { in.Networks[0].Deleting = true },
			want: []string{"finish-network n2 web 10.0.2.0/24"}},
		{name: "network whose creation was cut short is finished", setup: func(in *Input) { in.Networks[1].Creating = true },
			want: []string{"finish-network n3 db 10.0.3.0/24"}},
		{name: "network being created by a Docker call is left alone", setup: func(in *Input) {
			in.Networks[1].Creating = true
			in.Busy = map[string]bool{"n3": true}
		}},
		{name: "network Docker removed while vpcroute was down goes, with its pool", setup: func(in *Input) {
			in.Docker.Networks = in.Docker.Networks[1:]
		}, want: []string{"finish-network n2 web 10.0.2.0/24", "finish-pool p2 p2 10.0.2.0/24"}},
		{name: "network Docker may not have stored yet stays", setup: func(in *Input) {
			in.Docker.Networks = in.Docker.Networks[1:]
			in.Networks[0].Created, in.Pools[0].Created = young, young
		}},
		{name: "without Docker's list no network is removed, and no route either", setup: func(in *Input) {
			in.Docker = nil
		}},
		{name: "a renamed network is renamed", setup: func(in *Input) { in.Docker.Networks[0].Name = "shop_web" },
			want: []string{"rename n2 shop_web"}},

		// Pools.
		{name: "releasing pool is finished", setup: func(in *Input) { in.Pools[0].Releasing = true },
			want: []string{"finish-pool p2 p2 10.0.2.0/24"}},
		{name: "pool whose claim never reached Docker is given back", setup: func(in *Input) {
			in.Pools = append(in.Pools, state.Pool{ID: "p4", Subnet: s4, Claiming: true, Created: old})
			in.Routes = append(in.Routes, cloud.Route{Destination: s4, Owner: "p4"})
		}, want: []string{"finish-pool p4 p4 10.0.4.0/24"}},
		{name: "pool being claimed by a Docker call is left alone, route and all", setup: func(in *Input) {
			in.Pools = append(in.Pools, state.Pool{ID: "p4", Subnet: s4, Claiming: true, Created: old})
			in.Routes = append(in.Routes, cloud.Route{Destination: s4, Owner: "p4"})
			in.Busy = map[string]bool{"p4": true}
		}},
		{name: "pool no network of Docker's uses goes", setup: func(in *Input) {
			in.Pools = append(in.Pools, state.Pool{ID: "p4", Subnet: s4, Created: old})
			in.Routes = append(in.Routes, cloud.Route{Destination: s4, Owner: "p4"})
		}, want: []string{"finish-pool p4 p4 10.0.4.0/24"}},
		{name: "pool of a network on another driver stays", setup: func(in *Input) {
			in.Pools = append(in.Pools, state.Pool{ID: "p4", Subnet: s4, Created: old})
			in.Routes = append(in.Routes, cloud.Route{Destination: s4, Owner: "p4"})
			in.Docker.Networks = append(in.Docker.Networks, DockerNetwork{ID: "m4", Name: "mac", Subnet: s4})
		}},
		{name: "pool just handed to Docker stays", setup: func(in *Input) {
			in.Pools = append(in.Pools, state.Pool{ID: "p4", Subnet: s4, Created: young})
			in.Routes = append(in.Routes, cloud.Route{Destination: s4, Owner: "p4"})
		}},

		// Networks Docker has and vpcroute lacks.
		{name: "lost records: Docker's networks are rebuilt with the routes they hold", setup: func(in *Input) {
			in.Networks, in.Pools = nil, nil
		}, want: []string{
			"adopt n2 p2 web 10.0.2.0/24 network=true pool=true",
			"adopt n3 net-n3 db 10.0.3.0/24 network=true pool=false",
		}},
		{name: "lost records: rebuilt only once the route table says which pool had the route", setup: func(in *Input) {
			in.Networks, in.Pools = nil, nil
			in.Routed, in.Routes = true, nil
		}},
		{name: "a network vpcroute just removed is not brought back", setup: func(in *Input) {
			in.Networks = in.Networks[:1]
			in.Routes = in.Routes[:1]
			delete(in.Bridges, "vr-n3")
			delete(in.RuleOwners, "n3")
			in.Forgotten = map[string]bool{"n3": true}
		}},
		{name: "lost pool of a network on another driver is rebuilt", setup: func(in *Input) {
			in.Docker.Networks = append(in.Docker.Networks, DockerNetwork{ID: "m4", Name: "mac", IPAM: true, Subnet: s4})
			in.Routes = append(in.Routes, cloud.Route{Destination: s4, Owner: "p4"})
		}, want: []string{"adopt m4 p4 mac 10.0.4.0/24 network=false pool=true"}},
		{name: "a pool vpcroute just released is not brought back", setup: func(in *Input) {
			in.Docker.Networks = append(in.Docker.Networks, DockerNetwork{ID: "m4", Name: "mac", IPAM: true, Subnet: s4})
			in.Forgotten = map[string]bool{s4.String(): true}
		}},
		{name: "networks of other drivers are not vpcroute's", setup: func(in *Input) {
			in.Docker.Networks = append(in.Docker.Networks, DockerNetwork{ID: "o4", Name: "other", Subnet: s4})
		}},

		// Routes.
		{name: "route deleted in the console is claimed again, with the network's name", setup: func(in *Input) {
			in.Routes = nil
			in.Routes = []cloud.Route{}
		}, want: []string{"claim net-n3 db 10.0.3.0/24", "claim p2 web 10.0.2.0/24"}},
		{name: "route of a record in flux is neither claimed nor released", setup: func(in *Input) {
			in.Routes = []cloud.Route{{Destination: s3, Owner: "net-n3"}}
			in.Pools[0].Releasing = true
			in.Busy = map[string]bool{"p2": true}
		}},
		{name: "route table not read: no route is planned", setup: func(in *Input) { in.Routes = nil }},
		{name: "unowned route seen for the first time is kept", setup: func(in *Input) {
			in.Routes = append(in.Routes, cloud.Route{Destination: s9, Owner: "vr-gone"})
		}},
		{name: "unowned route goes after the grace period", setup: func(in *Input) {
			in.Routes = append(in.Routes, cloud.Route{Destination: s9, Owner: "vr-gone"})
			in.OrphanSince = map[string]time.Time{"vr-gone 10.0.9.0/24": now.Add(-ograce)}
		}, want: []string{"release-route vr-gone 10.0.9.0/24"}},
		{name: "route of an owner vpcroute gave up goes at once, without waiting for Docker", setup: func(in *Input) {
			in.Docker = nil
			in.Routes = append(in.Routes, cloud.Route{Destination: s9, Owner: "vr-cut"})
			in.Released = map[string]bool{"vr-cut": true}
		}, want: []string{"release-route vr-cut 10.0.9.0/24"}},
		{name: "a released owner that a record holds again keeps its route", setup: func(in *Input) {
			in.Released = map[string]bool{"net-n3": true}
		}},
		{name: "unowned route stays without Docker's list", setup: func(in *Input) {
			in.Docker = nil
			in.Routes = append(in.Routes, cloud.Route{Destination: s9, Owner: "vr-gone"})
			in.OrphanSince = map[string]time.Time{"vr-gone 10.0.9.0/24": now.Add(-ograce)}
		}, held: 1},
		{name: "route of a network being rebuilt is the rebuild's", setup: func(in *Input) {
			in.Networks = in.Networks[:1]
			delete(in.Bridges, "vr-n3")
			delete(in.RuleOwners, "n3")
			in.OrphanSince = map[string]time.Time{"net-n3 10.0.3.0/24": now.Add(-ograce)}
		}, want: []string{"adopt n3 net-n3 db 10.0.3.0/24 network=true pool=false"}},
		{name: "route of a network being removed is not claimed again", setup: func(in *Input) {
			in.Networks[1].Deleting = true
			in.Routes = in.Routes[:1]
		}, want: []string{"finish-network n3 db 10.0.3.0/24"}},

		// Kernel.
		{name: "bridge of no network anyone has goes", setup: func(in *Input) { in.Bridges["vr-x"] = "x" },
			want: []string{"delete-bridge x vr-x"}},
		{name: "stale bridge of a known network goes", setup: func(in *Input) { in.Bridges["vr-old"] = "n2" },
			want: []string{"delete-bridge n2 vr-old"}},
		{name: "bridge of a network Docker has is kept for the rebuild", setup: func(in *Input) {
			in.Networks = in.Networks[1:]
			in.Pools = nil
		}, want: []string{"adopt n2 p2 web 10.0.2.0/24 network=true pool=true"}},
		{name: "unknown bridge stays without Docker's list", setup: func(in *Input) {
			in.Docker = nil
			in.Bridges["vr-x"] = "x"
		}, held: 1},
		{name: "rules of no network anyone has go", setup: func(in *Input) { in.RuleOwners["x"] = true },
			want: []string{"prune-rules keep=b1,n2,n3"}},
		{name: "unknown rules stay without Docker's list", setup: func(in *Input) {
			in.Docker = nil
			in.RuleOwners["x"] = true
		}, held: 1},
		{name: "lost records: nothing of the kernel goes", setup: func(in *Input) {
			in.Networks, in.Pools = nil, nil
		}, want: []string{
			"adopt n2 p2 web 10.0.2.0/24 network=true pool=true",
			"adopt n3 net-n3 db 10.0.3.0/24 network=true pool=false",
		}},
		{name: "lost records without Docker's list: nothing goes, everything is reported", setup: func(in *Input) {
			in.Networks, in.Pools, in.Docker = nil, nil, nil
		}, held: 5}, // two routes, two bridges, the rules
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := healthy()
			tt.setup(&in)
			plan := Compute(in)
			var got []string
			for _, a := range plan.Actions {
				got = append(got, show(a))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("actions:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
			if len(plan.Held) != tt.held {
				t.Errorf("held %d things, want %d: %q", len(plan.Held), tt.held, plan.Held)
			}
			for _, a := range plan.Actions {
				if a.Why == "" {
					t.Errorf("action %s says not why", show(a))
				}
			}
		})
	}
}

// The plan remembers since when a route has been unowned, and forgets it once the
// route is owned or gone.
func TestOrphanSince(t *testing.T) {
	in := healthy()
	in.Routes = append(in.Routes, cloud.Route{Destination: s9, Owner: "vr-gone"})
	first := Compute(in)
	key := "vr-gone 10.0.9.0/24"
	if got := first.OrphanSince[key]; !got.Equal(now) {
		t.Fatalf("first sighting recorded at %v, want %v", got, now)
	}
	in.OrphanSince = first.OrphanSince
	in.Now = now.Add(ograce - time.Second)
	if acts := Compute(in).Actions; len(acts) != 0 {
		t.Fatalf("released before the grace period: %v", acts)
	}
	in.Now = now.Add(ograce)
	second := Compute(in)
	if len(second.Actions) != 1 || second.Actions[0].Kind != ReleaseRoute {
		t.Fatalf("after the grace period: %v", second.Actions)
	}
	in.Routes = in.Routes[:2]
	if after := Compute(in).OrphanSince; len(after) != 0 {
		t.Fatalf("a route that went is still remembered: %v", after)
	}
}

// Compute is pure: the same input gives the same plan, whatever the map order.
func TestComputeIsDeterministic(t *testing.T) {
	in := healthy()
	in.Networks, in.Pools = nil, nil
	in.Bridges["vr-x"] = "x"
	in.Bridges["vr-y"] = "y"
	first := fmt.Sprint(Compute(in).Actions)
	for range 20 {
		if got := fmt.Sprint(Compute(in).Actions); got != first {
			t.Fatalf("plans differ:\n%s\n%s", first, got)
		}
	}
}

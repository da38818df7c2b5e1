package chaos

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/internal/sim"
)

// scaleBed is n ECSs in host-block mode (/20 blocks of /24 networks) sharing one
// route table of 200 routes, with loops that stay out of the way.
func scaleBed(t *testing.T, n int) *Bed {
	return newBed(t, Options{ECSs: n, HostBlock: 20, BlockGrace: time.Hour, Pool: netip.MustParsePrefix("10.0.0.0/8"),
		RouteQuota: 200, Unscaled: true, KernelInterval: time.Hour, CloudInterval: time.Hour, OrphanGrace: time.Hour})
}

// each runs fn for every ECS, width at a time.
func each(b *Bed, width int, fn func(e *ECS) error) []error {
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	for _, e := range b.ECS {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(e); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", e.Name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// customRoutes are the default table's routes to ECSs.
func customRoutes(b *Bed) []sim.Route {
	all, _ := b.Sim.RouteTable(b.Sim.DefaultRouteTableID())
	var out []sim.Route
	for _, r := range all {
		if r.Type == "ecs" {
			out = append(out, r)
		}
	}
	return out
}

// noOverlaps returns the pairs of routes of the table, and of networks across ECSs,
// that overlap.
func noOverlaps(b *Bed) []string {
	var out []string
	routes := customRoutes(b)
	for i := range routes {
		for j := i + 1; j < len(routes); j++ {
			p, q := netip.MustParsePrefix(routes[i].Destination), netip.MustParsePrefix(routes[j].Destination)
			if p.Overlaps(q) {
				out = append(out, fmt.Sprintf("routes %s (%s) and %s (%s) overlap", p, routes[i].NextHop, q, routes[j].NextHop))
			}
		}
	}
	type owned struct {
		ecs    string
		subnet netip.Prefix
	}
	var all []owned
	for _, e := range b.ECS {
		for _, n := range e.Docker.list() {
			all = append(all, owned{e.Name, n.Subnet})
		}
	}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			if all[i].subnet.Overlaps(all[j].subnet) {
				out = append(out, fmt.Sprintf("networks %s on %s and %s on %s overlap", all[i].subnet, all[i].ecs, all[j].subnet, all[j].ecs))
			}
		}
	}
	return out
}

// Issue 10: 200 ECSs × 16 networks fit one route table of 200 routes in host-block
// mode, and after each ECS's first network, creating networks calls the cloud not
// once (the emulator's request log).
func TestScaleHostBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("200 plugins")
	}
	const ecss, perECS = 200, 16
	b := scaleBed(t, ecss)
	start := time.Now()
	b.Sim.ResetRequests()
	// Ten ECSs at a time claim their first block (the race of 50 at once is
	// TestRaceHostBlocks'): this test is about the table's size and the calls.
	if errs := each(b, 10, func(e *ECS) error {
		_, err := e.Docker.Create(e.Name+"-0", netip.Prefix{}, true)
		return err
	}); len(errs) > 0 {
		t.Fatalf("first networks: %v", errs)
	}
	first := b.Sim.Requests()
	b.Sim.ResetRequests()
	if errs := each(b, 50, func(e *ECS) error {
		for i := 1; i < perECS; i++ {
			if _, err := e.Docker.Create(fmt.Sprintf("%s-%d", e.Name, i), netip.Prefix{}, true); err != nil {
				return err
			}
		}
		return nil
	}); len(errs) > 0 {
		t.Fatalf("networks 2 to %d: %v", perECS, errs[:min(len(errs), 5)])
	}
	later := b.Sim.Requests()
	routes := customRoutes(b)
	writes := 0
	for _, r := range first {
		if r.Method == "PUT" {
			writes++
		}
	}
	report(t, "%d ECSs × %d networks: %d routes in a table of 200; first networks %d API requests (%d writes, races included); networks 2–%d: %d API requests; %s",
		ecss, perECS, len(routes), len(first), writes, perECS, len(later), time.Since(start).Round(time.Millisecond))
	if len(routes) > 200 {
		t.Errorf("%d routes; want at most 200", len(routes))
	}
	if len(later) != 0 {
		t.Errorf("networks after each ECS's first made %d API requests, e.g. %+v; want none", len(later), later[0])
	}
	if o := noOverlaps(b); len(o) > 0 {
		t.Errorf("overlaps:\n%s", strings.Join(o[:min(len(o), 10)], "\n"))
	}
	if diffs := b.Inventory(); len(diffs) > 0 {
		t.Errorf("inventory:\n  %s", strings.Join(diffs[:min(len(diffs), 10)], "\n  "))
	}
}

// Issue 10: 50 ECSs create networks at the same moment, automatic ones (each ECS's
// first claims a block) mixed with explicit /16, /20 and /24 subnets that collide
// with the blocks and with each other. Ten runs: never two routes, nor two
// networks, that overlap; every explicit one that lost says what it lost to.
func TestRaceHostBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("10 runs of 50 plugins")
	}
	explicit := []string{"10.0.0.0/16", "10.0.16.0/20", "10.0.48.0/24", "10.1.0.0/16", "10.0.64.0/20", "10.0.0.0/24"}
	created, refused := 0, 0
	for run := range 10 {
		b := scaleBed(t, 50)
		var mu sync.Mutex
		errs := each(b, 50, func(e *ECS) error {
			var i int
			fmt.Sscanf(e.Name, "ecs%d", &i)
			if i%4 == 0 {
				s := netip.MustParsePrefix(explicit[(i/4+run)%len(explicit)])
				_, err := e.Docker.Create(e.Name+"-x", s, true)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					created++
				case strings.Contains(err.Error(), "overlaps"):
					refused++
				default:
					return fmt.Errorf("explicit %s: %w", s, err)
				}
				return nil
			}
			for k := range 2 {
				if _, err := e.Docker.Create(fmt.Sprintf("%s-%d", e.Name, k), netip.Prefix{}, true); err != nil {
					return err
				}
				mu.Lock()
				created++
				mu.Unlock()
			}
			return nil
		})
		if len(errs) > 0 {
			t.Fatalf("run %d: %v", run, errs[:min(len(errs), 5)])
		}
		if o := noOverlaps(b); len(o) > 0 {
			t.Fatalf("run %d: overlaps:\n%s", run, strings.Join(o[:min(len(o), 10)], "\n"))
		}
		if diffs := b.Inventory(); len(diffs) > 0 {
			t.Fatalf("run %d: inventory:\n  %s", run, strings.Join(diffs[:min(len(diffs), 10)], "\n  "))
		}
		b.Close()
	}
	report(t, "10 runs of 50 ECSs at once: %d networks created, %d explicit subnets refused as overlapping, 0 overlaps", created, refused)
}

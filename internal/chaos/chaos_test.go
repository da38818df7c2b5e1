package chaos

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/internal/sim"
)

// cycles is how many create/remove cycles the storm runs: a short run in `make
// test`, a long one in `make chaos`.
var cycles = flag.Int("cycles", 30, "create/remove cycles of the fault storms")

func newBed(t *testing.T, o Options) *Bed {
	t.Helper()
	b, err := New(o, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// settled fails the test with every difference the inventory still finds.
func settled(t *testing.T, b *Bed) {
	t.Helper()
	if diffs := b.Settle(3 * Settle); len(diffs) > 0 {
		t.Fatalf("after the run settled, the routes, the kernel, the records and Docker's list differ:\n  %s", strings.Join(diffs, "\n  "))
	}
}

// report adds a line to the figures file that `make chaos` gathers into
// docs/reliability.md.
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("%s: %s", t.Name(), fmt.Sprintf(format, args...))
	t.Log(line)
	if path := os.Getenv("VPCROUTE_CHAOS_REPORT"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}
}

// Issue 12, defect 1: with every VPC answer delayed, twelve networks created at
// once on one ECS all finish inside Docker's deadline: the cloud calls of
// different networks do not queue behind each other. Removing them leaves nothing.
//
// The delay (150 ms, 1.5 s at real scale) leaves a claim's read and write half
// of the per-request bound (300 ms) as margin: at 250 ms, a loaded CI machine
// running the race detector pushed single answers past it. Queued, the twelve
// claims would take 12 × 300 ms, past Docker's deadline, so the test still fails
// when calls queue.
func TestSlowCloudCallsDoNotQueue(t *testing.T) {
	b := newBed(t, Options{})
	e := b.ECS[0]
	const delay = 150 * time.Millisecond
	b.Sim.InjectFault(sim.Fault{Rate: 1, Latency: delay, PathContains: "/v1/"})
	const n = 12
	var wg sync.WaitGroup
	nets := make([]DockerNet, n)
	errs := make([]error, n)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nets[i], errs[i] = e.Docker.Create(fmt.Sprintf("slow%d", i), netip.Prefix{}, true)
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Errorf("network %d: %v", i, err)
		}
	}
	b.Sim.ClearFaults()
	for i := range n {
		if errs[i] == nil {
			if err := e.Docker.Remove(nets[i]); err != nil {
				t.Errorf("remove %s: %v", nets[i].Name, err)
			}
		}
	}
	settled(t, b)
	report(t, "12 creates at once with every VPC answer %s late: all done in %s (Docker's deadline %s)", delay, took.Round(10*time.Millisecond), DockerDeadline)
}

// Issue 12, defect 1: work Docker gave up on does not finish for nobody. Docker's
// deadline is cut below what a claim takes; every create fails, and once the loop
// has run, no route, pool, record or kernel object is left.
func TestWorkDockerGaveUpOnIsUndone(t *testing.T) {
	b := newBed(t, Options{})
	e := b.ECS[0]
	e.Docker.hc.Timeout = 400 * time.Millisecond
	b.Sim.InjectFault(sim.Fault{Rate: 1, Latency: 250 * time.Millisecond, PathContains: "/v1/"})
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.Docker.Create(fmt.Sprintf("late%d", i), netip.Prefix{}, true)
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed == 0 {
		t.Fatal("every create finished inside a 400 ms deadline with 250 ms answers: the test proves nothing")
	}
	b.Sim.ClearFaults()
	e.Docker.hc.Timeout = DockerDeadline
	// Docker removes what it created (the creates that did finish).
	for _, n := range e.Docker.list() {
		if err := e.Docker.Remove(n); err != nil {
			t.Errorf("remove %s: %v", n.Name, err)
		}
	}
	settled(t, b)
	report(t, "8 creates with Docker giving up after 400 ms and VPC answers 250 ms late: %d given up on, leaks 0", failed)
}

// Issue 12, defect 1: a cloud slower than vpcroute's own bound is refused in time,
// with a message that says so and what to do.
func TestSlowCloudIsRefusedWithTheReason(t *testing.T) {
	b := newBed(t, Options{})
	e := b.ECS[0]
	b.Sim.InjectFault(sim.Fault{Rate: 1, Latency: time.Second, PathContains: "/routetables/"})
	_, err := e.Docker.Create("slow", netip.Prefix{}, true)
	if err == nil || !strings.Contains(err.Error(), "the VPC API is slow") || !strings.Contains(err.Error(), "try again") {
		t.Fatalf("create with a cloud slower than its deadline = %v; want \"the VPC API is slow ... try again\"", err)
	}
	if strings.Contains(err.Error(), "Client.Timeout") {
		t.Fatalf("Docker gave up before vpcroute answered: %v", err)
	}
	b.Sim.ClearFaults()
	settled(t, b)
}

// Issue 12, defect 2: a release whose delete gets no answer and is applied late,
// after the next network took the same subnet (--subnet) on the same ECS: the loop
// notices within the settle window and puts the route back; a network that picks its
// subnet does not take the released one while the delete may land.
func TestLateDeleteDoesNotLoseTheNextNetwork(t *testing.T) {
	for _, explicit := range []bool{true, false} {
		t.Run(fmt.Sprintf("explicit=%v", explicit), func(t *testing.T) {
			// The periodic read of the route table is out of the picture: only
			// what the uncertain write itself set off may put things right.
			b := newBed(t, Options{CloudInterval: time.Hour, OrphanGrace: time.Hour})
			e := b.ECS[0]
			subnet := netip.MustParsePrefix("10.0.50.0/24")
			first, err := e.Docker.Create("first", subnet, true)
			if err != nil {
				t.Fatal(err)
			}
			b.Sim.InjectFault(sim.Fault{Method: http.MethodPut, Late: 600 * time.Millisecond})
			if err := e.Docker.Remove(first); err != nil {
				t.Fatalf("remove: %v", err)
			}
			want := netip.Prefix{}
			if explicit {
				want = subnet
			}
			next, err := e.Docker.Create("next", want, true)
			if err != nil {
				t.Fatal(err)
			}
			if !explicit && next.Subnet == subnet {
				t.Fatalf("the next network picked %s, whose delete may still land", subnet)
			}
			if diffs := b.Wait(Settle + 2*time.Second); len(diffs) > 0 {
				t.Fatalf("after the late delete landed:\n  %s", strings.Join(diffs, "\n  "))
			}
		})
	}
}

// Issue 12, defect 2: writes that land late or are answered 5xx after landing, on
// both ECSs at once, in both IPAM modes, with subnets given back and taken again:
// when it settles, every network of Docker's has its route, bridge, rules and record,
// and nothing else is left.
func TestLateWrites(t *testing.T) {
	// Unowned routes are not swept by age here: a late add must be recognised.
	b := newBed(t, Options{OrphanGrace: time.Hour})
	b.Sim.InjectFault(sim.Fault{Method: http.MethodPut, Rate: 0.1, Late: 100 * time.Millisecond})
	b.Sim.InjectFault(sim.Fault{Method: http.MethodPut, Rate: 0.1, Late: 900 * time.Millisecond})
	b.Sim.InjectFault(sim.Fault{Method: http.MethodPut, Rate: 0.1, Status: 500, Apply: true})
	c := storm(t, b, *cycles/2)
	faults := b.Sim.FaultsHit()
	b.Sim.ClearFaults()
	settled(t, b)
	report(t, "%d cycles on 2 ECSs, 30%% of route writes late or answered 500 after landing: %s; faults %d; leaks 0, lost 0", *cycles/2, c, faults)
}

// Issue 12: a storm of throttling and server errors, 30 % of all VPC requests (and
// some writes answered 5xx after landing), over the cycles: calls may be refused,
// and when it settles nothing leaks and no network is lost.
func TestFaultStorm(t *testing.T) {
	b := newBed(t, Options{})
	b.Sim.InjectFault(sim.Fault{Rate: 0.1, Status: 429, PathContains: "/v1/"})
	b.Sim.InjectFault(sim.Fault{Rate: 0.1, Status: 503, PathContains: "/v1/"})
	b.Sim.InjectFault(sim.Fault{Rate: 0.1, Method: http.MethodPut, Status: 502, Apply: true})
	b.Sim.InjectFault(sim.Fault{Rate: 0.1, Status: 500, PathContains: "/v1/"})
	c := storm(t, b, *cycles)
	faults := b.Sim.FaultsHit()
	b.Sim.ClearFaults()
	settled(t, b)
	report(t, "%d cycles on 2 ECSs, ~30%% of VPC requests 429/5xx: %s; faults %d; leaks 0, lost 0", *cycles, c, faults)
}

// counts is what a storm did.
type counts struct {
	mu                              sync.Mutex
	created, refused, slow, removed int
}

func (c *counts) String() string {
	return fmt.Sprintf("created %d, refused %d (%d as slow), removed %d", c.created, c.refused, c.slow, c.removed)
}

// storm runs n cycles on every ECS at once: create a network (either IPAM, a picked
// subnet or one given, often one just given back), and remove a random one of the
// ECS's networks half of the time. Refusals are fine; what the inventory finds
// afterwards is what counts.
func storm(t *testing.T, b *Bed, n int) *counts {
	t.Helper()
	c := &counts{}
	var wg sync.WaitGroup
	for i, e := range b.ECS {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 12))
			var live []DockerNet
			var freed []netip.Prefix
			for cycle := range n {
				vpcrouteIPAM := rng.IntN(3) > 0
				var subnet netip.Prefix
				switch {
				case len(freed) > 0 && rng.IntN(2) == 0:
					subnet = freed[rng.IntN(len(freed))]
				case !vpcrouteIPAM || rng.IntN(3) == 0:
					// ECS i gives subnets of 10.0.(100+50i+k).0/24.
					subnet = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(100 + 50*i + rng.IntN(40)), 0}), 24)
				}
				net, err := e.Docker.Create(fmt.Sprintf("%s-n%d", e.Name, cycle), subnet, vpcrouteIPAM)
				c.mu.Lock()
				if err != nil {
					c.refused++
					if strings.Contains(err.Error(), "the VPC API is slow") {
						c.slow++
					}
				} else {
					c.created++
					live = append(live, net)
				}
				c.mu.Unlock()
				if len(live) > 0 && (rng.IntN(2) == 0 || len(live) > 6) {
					k := rng.IntN(len(live))
					_ = e.Docker.Remove(live[k])
					freed = append(freed, live[k].Subnet)
					live = append(live[:k], live[k+1:]...)
					c.mu.Lock()
					c.removed++
					c.mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return c
}

package huawei

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/internal/sim"
)

// peakTransport counts the requests in flight at once.
type peakTransport struct {
	base       http.RoundTripper
	now, peak  atomic.Int32
	onlyMethod string
}

func (p *peakTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if p.onlyMethod == "" || r.Method == p.onlyMethod {
		n := p.now.Add(1)
		defer p.now.Add(-1)
		for {
			old := p.peak.Load()
			if n <= old || p.peak.CompareAndSwap(old, n) {
				break
			}
		}
	}
	return p.base.RoundTrip(r)
}

// A slow VPC API must not queue one host's claims behind each other: with every
// answer delayed, twelve claims (issue 12: Docker gave up on seven of them) write
// at the same time, and still get twelve different subnets.
func TestSlowCloudClaimsRunTogether(t *testing.T) {
	b := newBed(t, nil)
	peak := &peakTransport{base: http.DefaultTransport, onlyMethod: http.MethodPut}
	b.transport = peak
	c, _ := b.client(t, "ecs1", nil)
	b.sim.InjectFault(sim.Fault{Rate: 1, Latency: 300 * time.Millisecond, PathContains: "/routetables/"})
	defer b.sim.ClearFaults()

	const n = 12
	var wg sync.WaitGroup
	got := make([]netip.Prefix, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = c.Claim(context.Background(), cloud.ClaimRequest{Owner: "pool-" + string(rune('a'+i)), Pick: firstFree(mustPrefix("10.0.0.0/16"))})
		}()
	}
	wg.Wait()
	seen := map[netip.Prefix]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		if seen[got[i]] {
			t.Fatalf("two claims got %s", got[i])
		}
		seen[got[i]] = true
	}
	if p := peak.peak.Load(); p < n/2 {
		t.Errorf("at most %d route writes were in flight at once; want the %d claims writing together", p, n)
	}
	if rs := customRoutes(b.routes(t, "")); len(rs) != n {
		t.Errorf("%d routes in the table, want %d:\n%s", len(rs), n, describeRoutes(rs))
	}
}

// A release whose delete gets no answer and lands later (issue 12: it removed the
// next network's route, 5 of 5 tries) is read back before it is sent again, and
// the subnet is kept out of picks until such a write can no longer land.
func TestLateDeleteDoesNotTakeTheNextRoute(t *testing.T) {
	b := newBed(t, nil)
	c, logs := b.client(t, "ecs1", nil)
	ctx := context.Background()
	pick := firstFree(mustPrefix("10.0.0.0/16"))
	first, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "pool-a", Pick: pick})
	if err != nil {
		t.Fatal(err)
	}
	b.sim.InjectFault(sim.Fault{Method: http.MethodPut, Late: 1500 * time.Millisecond})
	if err := c.Release(ctx, first, "pool-a"); err != nil {
		t.Fatalf("release with a delete answered late: %v", err)
	}
	if !c.Unsettled().After(time.Now()) {
		t.Fatal("Unsettled is zero after a delete that got no answer")
	}
	next, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "pool-b", Pick: pick})
	if err != nil {
		t.Fatal(err)
	}
	if next == first {
		t.Fatalf("the next claim picked %s, whose delete may still land", first)
	}
	b.sim.WaitLate()
	rs := customRoutes(b.routes(t, ""))
	if len(rs) != 1 || rs[0].Destination != next.String() {
		t.Fatalf("after the late delete landed, the table holds:\n%s\nwant only %s", describeRoutes(rs), next)
	}
	if !strings.Contains(logs.String(), "did not say whether a route write was applied") {
		t.Errorf("the uncertain write was not logged:\n%s", logs)
	}
}

// Writes that land late or are answered 5xx after landing leave exactly the one
// route the claim meant, and a release that was applied but answered 5xx counts as
// done.
func TestUncertainWrites(t *testing.T) {
	tests := []struct {
		name  string
		fault sim.Fault
	}{
		{"add answered 500 after it landed", sim.Fault{Method: http.MethodPut, Status: 500, Apply: true}},
		{"add answered 503 after it landed, twice", sim.Fault{Method: http.MethodPut, Status: 503, Apply: true, Count: 2}},
		{"add with no answer that lands at once", sim.Fault{Method: http.MethodPut, Late: time.Millisecond}},
		{"add with no answer that lands after the retry", sim.Fault{Method: http.MethodPut, Late: 2500 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBed(t, nil)
			c, _ := b.client(t, "ecs1", nil)
			ctx := context.Background()
			b.sim.InjectFault(tt.fault)
			p, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "pool-a", Pick: firstFree(mustPrefix("10.0.0.0/16"))})
			if err != nil {
				t.Fatalf("claim: %v", err)
			}
			b.sim.WaitLate()
			rs := customRoutes(b.routes(t, ""))
			if len(rs) != 1 || rs[0].Destination != p.String() || rs[0].NextHop != ecs1ID {
				t.Fatalf("claim of %s left:\n%s", p, describeRoutes(rs))
			}
			b.sim.InjectFault(sim.Fault{Method: http.MethodPut, Status: 500, Apply: true})
			if err := c.Release(ctx, p, "pool-a"); err != nil {
				t.Fatalf("release answered 500 after it landed: %v", err)
			}
			if rs := customRoutes(b.routes(t, "")); len(rs) != 0 {
				t.Fatalf("after release:\n%s", describeRoutes(rs))
			}
		})
	}
}

// A claim whose caller's time runs out while its write has no answer says so, and
// that a route that lands is given back; when it does, Unsettled says until when the
// controller must look.
func TestClaimCutShortSaysSlow(t *testing.T) {
	b := newBed(t, nil)
	c, _ := b.client(t, "ecs1", nil)
	b.sim.InjectFault(sim.Fault{Method: http.MethodPut, Late: 1200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel()
	_, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "pool-a", Pick: firstFree(mustPrefix("10.0.0.0/16"))})
	if err == nil || !strings.Contains(err.Error(), "got no answer within") || !strings.Contains(err.Error(), "lands late is given back") {
		t.Fatalf("claim cut short = %v; want it to say the write got no answer and a late route is given back", err)
	}
	if !c.Unsettled().After(time.Now()) {
		t.Fatal("Unsettled is zero after a write that got no answer")
	}
	// The write may reach the emulator only after the claim gave up on it.
	var rs []sim.Route
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b.sim.WaitLate()
		if rs = customRoutes(b.routes(t, "")); len(rs) == 1 {
			break
		}
	}
	if len(rs) != 1 {
		t.Fatalf("the late write should have landed:\n%s", describeRoutes(rs))
	}
	owned, err := c.Owned(context.Background())
	if err != nil || len(owned) != 1 || owned[0].Owner != "pool-a" {
		t.Fatalf("Owned = %+v, %v; want the late route under pool-a, for the controller to give back", owned, err)
	}
}

package huawei

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/vpcroute/vpcroute/cloud"
)

// raceBed gives ecs1 a client whose first route table write is preceded by
// ecs2 claiming want: ecs2 wins the race between ecs1's read and its write.
func raceBed(t *testing.T, want netip.Prefix) (*bed, *Client) {
	t.Helper()
	b := newBed(t, nil)
	other, _ := b.client(t, "ecs2", nil)
	var once sync.Once
	tr := hookTransport{base: http.DefaultTransport, before: func(r *http.Request) {
		if r.Method == http.MethodPut {
			once.Do(func() {
				if _, err := other.Claim(context.Background(), cloud.ClaimRequest{Owner: "pool-ecs2", Want: want}); err != nil {
					t.Errorf("ecs2's claim: %v", err)
				}
			})
		}
	}}
	c, err := newClient(context.Background(), b.config(t, "ecs1", nil), testTiming(), tr)
	if err != nil {
		t.Fatal(err)
	}
	return b, c
}

func TestRaceLostExplicit(t *testing.T) {
	want := mustPrefix("10.0.3.0/24")
	b, c := raceBed(t, want)
	b.sim.ResetRequests()
	_, err := c.Claim(context.Background(), cloud.ClaimRequest{Owner: "pool-ecs1", Want: want})
	var ce *cloud.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("claim that lost the race = %v, want *cloud.ConflictError", err)
	}
	if ce.NextHop != ecs2ID || ce.Existing != want || ce.Description != "vpcroute owner=pool-ecs2 host=ecs2" {
		t.Errorf("conflict = %+v, want ecs2's route", ce)
	}
	if rs := customRoutes(b.routes(t, "")); len(rs) != 1 || rs[0].NextHop != ecs2ID {
		t.Errorf("routes:\n%s", describeRoutes(rs))
	}
}

func TestRaceLostAutomatic(t *testing.T) {
	first := mustPrefix("10.0.0.0/24")
	b, c := raceBed(t, first)
	b.sim.ResetRequests()
	got, err := c.Claim(context.Background(), cloud.ClaimRequest{Owner: "pool-ecs1", Pick: firstFree(mustPrefix("10.0.0.0/16"))})
	if err != nil {
		t.Fatalf("automatic claim that lost the race: %v", err)
	}
	if got != mustPrefix("10.0.1.0/24") {
		t.Errorf("claim = %s, want the next free subnet 10.0.1.0/24", got)
	}
	rs := customRoutes(b.routes(t, ""))
	if len(rs) != 2 || rs[0].NextHop != ecs2ID || rs[1].Destination != got.String() || rs[1].NextHop != ecs1ID {
		t.Errorf("routes:\n%s", describeRoutes(rs))
	}
}

// TestRaceManyHosts: three hosts claim 20 subnets each, all at once. Every
// claim gets its own subnet, the table holds exactly those routes, and after
// the releases exactly the routes that were there before.
func TestRaceManyHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("many concurrent claims")
	}
	b := newBed(t, nil)
	before := b.routes(t, "")
	hosts := []string{"ecs1", "ecs2", "ecs3"}
	clients := make([]*Client, len(hosts))
	for i, h := range hosts {
		clients[i], _ = b.client(t, h, nil)
	}
	const perHost = 20
	type claim struct {
		host   int
		owner  string
		prefix netip.Prefix
	}
	claims := make([]claim, len(hosts)*perHost)
	var wg sync.WaitGroup
	for h := range hosts {
		for i := range perHost {
			wg.Add(1)
			go func() {
				defer wg.Done()
				owner := fmt.Sprintf("pool-%s-%d", hosts[h], i)
				p, err := clients[h].Claim(context.Background(), cloud.ClaimRequest{Owner: owner, Pick: firstFree(mustPrefix("10.0.0.0/16"))})
				if err != nil {
					t.Errorf("%s claim %d: %v", hosts[h], i, err)
				}
				claims[h*perHost+i] = claim{h, owner, p}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	lost := 0
	for _, r := range b.sim.Requests() {
		if r.Method == http.MethodPut && r.Status == http.StatusBadRequest {
			lost++
		}
	}
	t.Logf("%d writes lost a race (VPC.2812) and were retried", lost)
	seen := map[netip.Prefix]bool{}
	for _, c := range claims {
		if seen[c.prefix] {
			t.Errorf("subnet %s handed out twice", c.prefix)
		}
		seen[c.prefix] = true
	}
	var want []string
	for _, c := range claims {
		want = append(want, fmt.Sprintf("%s %s vpcroute owner=%s host=%s", c.prefix, clients[c.host].Identity().InstanceID, c.owner, hosts[c.host]))
	}
	var got []string
	for _, r := range customRoutes(b.routes(t, "")) {
		got = append(got, fmt.Sprintf("%s %s %s", r.Destination, r.NextHop, r.Description))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("table holds %d routes, want exactly the %d claimed:\n%v\nwant:\n%v", len(got), len(want), got, want)
	}
	for h, c := range clients {
		owned, err := c.Owned(context.Background())
		if err != nil || len(owned) != perHost {
			t.Errorf("%s Owned() = %d routes, %v; want %d", hosts[h], len(owned), err, perHost)
		}
	}

	for _, c := range claims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := clients[c.host].Release(context.Background(), c.prefix, c.owner); err != nil {
				t.Errorf("release %s: %v", c.prefix, err)
			}
		}()
	}
	wg.Wait()
	if after := b.routes(t, ""); !slices.Equal(after, before) {
		t.Errorf("after releasing everything the table holds:\n%swant:\n%s", describeRoutes(after), describeRoutes(before))
	}
}

func TestOverlapRefusedByAPIPicksAgain(t *testing.T) {
	// A pick the API refuses as overlapping a VPC subnet (VPC.2809) is
	// avoided and another one is picked.
	b := newBed(t, nil)
	c, _ := b.client(t, "ecs1", nil)
	calls := 0
	pick := func(taken []netip.Prefix) (netip.Prefix, error) {
		calls++
		if calls == 1 {
			return mustPrefix("192.168.1.128/25"), nil // inside subnet-b, whatever taken says
		}
		if !slices.Contains(taken, mustPrefix("192.168.1.128/25")) {
			t.Errorf("second pick's taken %v lacks the refused subnet", taken)
		}
		return firstFree(mustPrefix("10.0.0.0/16"))(taken)
	}
	got, err := c.Claim(context.Background(), cloud.ClaimRequest{Owner: "p", Pick: pick})
	if err != nil || got != mustPrefix("10.0.0.0/24") || calls != 2 {
		t.Fatalf("claim = %v, %v after %d picks; want 10.0.0.0/24 after 2", got, err, calls)
	}
}

package huawei

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/alloc"
	"github.com/vpcroute/vpcroute/cloud"
)

// TestOverlapRace stages the race the API cannot stop: two ECSs read the table at
// the same moment, one claims an explicit /16, the other an automatic /24 inside it,
// and both writes are accepted (the API refuses only an identical destination). The
// route that landed first stands, whichever it is; the other withdraws: the
// explicit claim fails naming the route it lost to, the automatic one picks again.
func TestOverlapRace(t *testing.T) {
	explicit := mustPrefix("10.0.0.0/16")
	for _, tc := range []struct {
		name  string
		first string // whose write lands first
	}{
		{"explicit lands first", "ecs1"},
		{"automatic lands first", "ecs2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, nil)
			c1, _ := b.client(t, "ecs1", nil)
			c2, _ := b.client(t, "ecs2", nil)
			ids := map[string]string{"ecs1": ecs1ID, "ecs2": ecs2ID}
			second := map[string]string{"ecs1": "ecs2", "ecs2": "ecs1"}[tc.first]
			hold := b.sim.HoldWrites(2)
			b.sim.ResetRequests()

			var err1, err2 error
			var got2 netip.Prefix
			done := make(chan struct{}, 2)
			go func() {
				_, err1 = c1.Claim(context.Background(), cloud.ClaimRequest{Owner: "pool-ecs1", Want: explicit})
				done <- struct{}{}
			}()
			go func() {
				got2, err2 = c2.Claim(context.Background(), cloud.ClaimRequest{Owner: "pool-ecs2", Pick: func(taken []netip.Prefix) (netip.Prefix, error) {
					return alloc.FirstFree(mustPrefix("10.0.0.0/15"), 24, taken)
				}})
				done <- struct{}{}
			}()
			if _, err := hold.Wait(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			for _, who := range []string{tc.first, second} {
				if err := hold.Release(ids[who]); err != nil {
					t.Fatal(err)
				}
			}
			<-done
			<-done

			rs := customRoutes(b.routes(t, ""))
			for i := range rs {
				for j := i + 1; j < len(rs); j++ {
					if mustPrefix(rs[i].Destination).Overlaps(mustPrefix(rs[j].Destination)) {
						t.Errorf("overlapping routes stand: %s and %s\n%s", rs[i].Destination, rs[j].Destination, describeRoutes(rs))
					}
				}
			}
			var ce *cloud.ConflictError
			switch tc.first {
			case "ecs1":
				if err1 != nil {
					t.Errorf("explicit claim that landed first: %v", err1)
				}
				if err2 != nil || got2 != mustPrefix("10.1.0.0/24") {
					t.Errorf("automatic claim that lost = %s, %v; want it to pick again: 10.1.0.0/24", got2, err2)
				}
				if len(rs) != 2 {
					t.Errorf("want the /16 to ecs1 and 10.1.0.0/24 to ecs2:\n%s", describeRoutes(rs))
				}
			case "ecs2":
				if err2 != nil || got2 != mustPrefix("10.0.0.0/24") {
					t.Errorf("automatic claim that landed first = %s, %v", got2, err2)
				}
				if !errors.As(err1, &ce) || ce.Existing != mustPrefix("10.0.0.0/24") || ce.NextHop != ecs2ID {
					t.Errorf("explicit claim that lost = %v, want a conflict naming 10.0.0.0/24 to ecs2", err1)
				} else if !cloud.Refused(err1) {
					t.Errorf("a lost claim whose route is withdrawn must count as refused (nothing left behind): %v", err1)
				}
				if len(rs) != 1 || rs[0].NextHop != ecs2ID {
					t.Errorf("want only ecs2's /24:\n%s", describeRoutes(rs))
				}
			}
			// The write's answer is the read-back: the claim that landed first
			// cost one read and one write.
			reads, writes := 0, 0
			for _, r := range b.sim.Requests() {
				if r.Method == "GET" {
					reads++
				} else {
					writes++
				}
			}
			t.Logf("both claims: %d reads, %d writes", reads, writes)
			if reads > 4 || writes > 4 {
				t.Errorf("both claims took %d reads and %d writes; want at most 2+2 for the first-landed's and the loser's", reads, writes)
			}
		})
	}
}

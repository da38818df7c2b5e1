package huawei

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/internal/sim"
)

// A takeover moves vpcroute's route of a subnet from another ECS to this one in one
// route table update, only from an ECS that is not running unless forced, and never
// a route that is not vpcroute's, of another table, or of another prefix.
func TestTakeover(t *testing.T) {
	const subnet = "10.0.2.0/24"
	tests := []struct {
		name     string
		setup    func(t *testing.T, b *bed)                  // after ECS 1 claimed subnet
		want     string                                      // what ECS 2 asks for
		takeover cloud.Takeover                              // how
		moved    bool                                        // the route now leads to ECS 2
		errHas   []string                                    // words of the refusal
		check    func(t *testing.T, ce *cloud.ConflictError) // more about the refusal
	}{
		{name: "holder stopped", setup: func(t *testing.T, b *bed) { b.sim.SetECSStatus(ecs1ID, "SHUTOFF") },
			want: subnet, takeover: cloud.TakeoverStopped, moved: true},
		{name: "holder in error", setup: func(t *testing.T, b *bed) { b.sim.SetECSStatus(ecs1ID, "ERROR") },
			want: subnet, takeover: cloud.TakeoverStopped, moved: true},
		{name: "holder deleted", setup: func(t *testing.T, b *bed) { b.sim.DeleteECS(ecs1ID) },
			want: subnet, takeover: cloud.TakeoverStopped, moved: true},
		{name: "holder running, forced", want: subnet, takeover: cloud.TakeoverForce, moved: true},
		{name: "holder running", want: subnet, takeover: cloud.TakeoverStopped,
			errHas: []string{"running (ACTIVE)", "vpcroute.takeover=force"},
			check: func(t *testing.T, ce *cloud.ConflictError) {
				if ce.Running != "ACTIVE" || !ce.Takeable {
					t.Errorf("conflict %+v: want Takeable, Running ACTIVE", ce)
				}
			}},
		{name: "no takeover asked", setup: func(t *testing.T, b *bed) { b.sim.SetECSStatus(ecs1ID, "SHUTOFF") },
			want: subnet, takeover: cloud.NoTakeover,
			errHas: []string{"vpcroute's network on another ECS", "-o vpcroute.takeover=true"}},
		{name: "not vpcroute's", setup: func(t *testing.T, b *bed) {
			if err := b.sim.ConsoleAddRoute(sim.Route{Type: "ecs", Destination: "10.0.9.0/24", NextHop: ecs3ID, Description: "hand-made"}); err != nil {
				t.Fatal(err)
			}
		}, want: "10.0.9.0/24", takeover: cloud.TakeoverForce, errHas: []string{"cannot move", "hand-made"}},
		{name: "another prefix", setup: func(t *testing.T, b *bed) { b.sim.SetECSStatus(ecs1ID, "SHUTOFF") },
			want: "10.0.2.0/25", takeover: cloud.TakeoverStopped, errHas: []string{"cannot move", "exactly this subnet"}},
		{name: "another route table", setup: func(t *testing.T, b *bed) {
			b.sim.AddRouteTable("rt-b", subnetB) // ECS 3's subnet gets its own table
			c3, _ := b.client(t, "ecs3", nil)
			if _, err := c3.Claim(context.Background(), cloud.ClaimRequest{Owner: "pool-c", Want: mustPrefix("10.0.7.0/24")}); err != nil {
				t.Fatal(err)
			}
		}, want: "10.0.7.0/24", takeover: cloud.TakeoverForce, errHas: []string{"cannot move", "in this ECS's route table"}},
		{name: "no permission to read the holder", setup: func(t *testing.T, b *bed) {
			b.sim.SetECSStatus(ecs1ID, "SHUTOFF")
			b.sim.SetDeny("ecs:cloudServers:get")
		}, want: subnet, takeover: cloud.TakeoverStopped, errHas: []string{"ecs:cloudServers:get", "403"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBed(t, nil)
			c1, _ := b.client(t, "ecs1", nil)
			ctx := context.Background()
			if _, err := c1.Claim(ctx, cloud.ClaimRequest{Owner: "pool-a", Want: mustPrefix(subnet)}); err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tt.setup(t, b)
			}
			// ECS 2 starts after the setup: it knows of every route table.
			c2, logs := b.client(t, "ecs2", nil)
			before := len(b.sim.Requests())
			got, err := c2.Claim(ctx, cloud.ClaimRequest{Owner: "pool-b", Want: mustPrefix(tt.want), Takeover: tt.takeover})
			var puts, showServer int
			for _, r := range b.sim.Requests()[before:] {
				if r.Method == http.MethodPut {
					puts++
				}
				if strings.Contains(r.Path, "/cloudservers/") {
					showServer++
				}
			}
			routes, _ := b.sim.RouteTable(b.sim.DefaultRouteTableID())
			var to []string
			for _, r := range routes {
				if r.Destination == tt.want {
					to = append(to, r.NextHop)
				}
			}
			if tt.moved {
				if err != nil || got.String() != tt.want {
					t.Fatalf("Claim = %v, %v; want %s moved", got, err, tt.want)
				}
				if len(to) != 1 || to[0] != ecs2ID {
					t.Errorf("routes to %s lead to %v; want one, to ECS 2", tt.want, to)
				}
				if puts != 1 {
					t.Errorf("%d route table updates for the move; want 1", puts)
				}
				if wantReads := map[cloud.Takeover]int{cloud.TakeoverStopped: 1, cloud.TakeoverForce: 0}[tt.takeover]; showServer != wantReads {
					t.Errorf("%d reads of the holder's state; want %d", showServer, wantReads)
				}
				if !strings.Contains(logs.String(), "took the subnet's route over") {
					t.Errorf("the move is not logged:\n%s", logs)
				}
				return
			}
			var ce *cloud.ConflictError
			if err == nil {
				t.Fatalf("Claim = %v; want a refusal", got)
			}
			if !cloud.Refused(err) && !strings.Contains(err.Error(), "403") {
				t.Errorf("refusal %v is not a cloud.Refused one", err)
			}
			for _, w := range tt.errHas {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if puts != 0 {
				t.Errorf("a refused takeover wrote %d times", puts)
			}
			if tt.check != nil {
				if !errors.As(err, &ce) {
					t.Fatalf("error %v is not a *cloud.ConflictError", err)
				}
				tt.check(t, ce)
			}
		})
	}
}

// Package testctl builds a controller over the in-memory kernel (internal/fakehost)
// and route table (internal/fakecloud), for the tests of the two plugin APIs in front
// of it (packages ipam and driver): they check what Docker's requests do to the host.
package testctl

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/internal/fakecloud"
	"github.com/vpcroute/vpcroute/internal/fakehost"
	"github.com/vpcroute/vpcroute/state"
)

// Env is a started controller and what it acts on.
type Env struct {
	C    *controller.Controller
	Host *fakehost.Host
	VPC  *fakecloud.VPC
	DB   *state.DB
}

// New starts a controller for host "ecs-1" with pool 10.0.0.0/8 and /24 subnets.
func New(t testing.TB) *Env {
	t.Helper()
	db, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &Env{Host: fakehost.New(), VPC: fakecloud.New("ecs-1"), DB: db}
	e.C = controller.New(controller.Config{
		Pool: netip.MustParsePrefix("10.0.0.0/8"), SubnetSize: 24, Masquerade: true, Routed: true,
		Log: slog.New(slog.DiscardHandler),
	}, db, e.Host, e.Host, e.VPC, nil)
	if err := e.C.Start(); err != nil {
		t.Fatal(err)
	}
	return e
}

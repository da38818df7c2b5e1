//go:build linux

package link

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/internal/netnstest"
)

// The watcher's generation moves on every drift BridgesOutOfLine would see, so that
// skipping the read while it stands still never hides one; it stands still while
// nothing changes.
func TestWatcherSeesEveryDrift(t *testing.T) {
	for _, tc := range bridgeDrifts {
		if tc.want == nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			netnstest.Enter(t)
			for _, s := range driftSpecs {
				mustDo(t, host.EnsureBridge(s))
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w, err := Watch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			quiet := w.Gen()
			time.Sleep(100 * time.Millisecond)
			if g := w.Gen(); g != quiet {
				t.Fatalf("generation moved from %d to %d while nothing changed", quiet, g)
			}
			tc.drift(t)
			deadline := time.Now().Add(2 * time.Second)
			for w.Gen() == quiet {
				if time.Now().After(deadline) {
					t.Fatalf("%s: the generation did not move in 2s", tc.name)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// Others signals an address of another owner inside the pool (a Docker network made
// there), not vpcroute's own bridges nor addresses outside the pool; OthersIn then
// lists the range, and never a vpcroute bridge's.
func TestWatcherSignalsOthersInThePool(t *testing.T) {
	netnstest.Enter(t)
	pool := netip.MustParsePrefix("10.0.0.0/16")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	others := w.Others(pool)
	signalled := func() bool {
		select {
		case <-others:
			return true
		case <-time.After(300 * time.Millisecond):
			return false
		}
	}
	mustDo(t, host.EnsureBridge(BridgeSpec{Name: "vr-own", NetworkID: "net1", Gateway: netip.MustParsePrefix("10.0.2.1/24")}))
	addBridge(t, "dk-out", "", 1500, "172.30.0.1/16")
	if signalled() {
		t.Fatal("signalled for vpcroute's own bridge or an address outside the pool")
	}
	addBridge(t, "dk-in", "", 1500, "10.0.9.1/24")
	if !signalled() {
		t.Fatal("a Docker bridge inside the pool was not signalled")
	}
	got, err := host.OthersIn(pool)
	mustDo(t, err)
	if want := []netip.Prefix{netip.MustParsePrefix("10.0.9.0/24")}; !slices.Equal(got, want) {
		t.Fatalf("OthersIn(%v) = %v, want %v", pool, got, want)
	}
}

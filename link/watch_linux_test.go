//go:build linux

package link

import (
	"context"
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

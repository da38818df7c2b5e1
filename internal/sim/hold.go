package sim

import (
	"fmt"
	"sync"
	"time"
)

// WriteHold holds route table writes as they arrive, before the emulator applies
// them, so that a test can order two hosts' writes exactly: both hosts read the
// table, then their writes land in the order the test releases them. It is how a
// race between claims of different sizes is staged (the API refuses only an
// identical destination, so an explicit /16 and an automatic /24 inside it can
// both land).
type WriteHold struct {
	s       *Sim
	mu      sync.Mutex
	want    int
	held    []*heldWrite
	arrived chan struct{}
}

type heldWrite struct {
	nextHop string
	apply   chan struct{}
	done    chan struct{}
}

// HoldWrites holds the next n route table writes (PUT routetables/{id}) until
// Release lets each go.
func (s *Sim) HoldWrites(n int) *WriteHold {
	h := &WriteHold{s: s, want: n, arrived: make(chan struct{}, n)}
	s.mu.Lock()
	s.hold = h
	s.mu.Unlock()
	return h
}

// Wait waits until all n writes are held and returns the next hop of each one's
// first added route, in the order they arrived.
func (h *WriteHold) Wait(within time.Duration) ([]string, error) {
	deadline := time.After(within)
	for i := 0; i < h.want; i++ {
		select {
		case <-h.arrived:
		case <-deadline:
			return nil, fmt.Errorf("%d of %d route table writes arrived within %s", i, h.want, within)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, len(h.held))
	for i, w := range h.held {
		out[i] = w.nextHop
	}
	return out, nil
}

// Release applies the held write whose first added route goes to nextHop and
// returns once the emulator has answered it.
func (h *WriteHold) Release(nextHop string) error {
	h.mu.Lock()
	var w *heldWrite
	for _, x := range h.held {
		if x.nextHop == nextHop && w == nil {
			w = x
		}
	}
	h.mu.Unlock()
	if w == nil {
		return fmt.Errorf("no write to %s is held", nextHop)
	}
	close(w.apply)
	<-w.done
	return nil
}

// take registers a write if the hold still wants one; the write waits on the
// returned heldWrite's apply channel and closes done after it is answered.
func (s *Sim) takeHeld(d *routeDelta) *heldWrite {
	s.mu.Lock()
	h := s.hold
	s.mu.Unlock()
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.held) >= h.want {
		return nil
	}
	w := &heldWrite{apply: make(chan struct{}), done: make(chan struct{})}
	if d != nil && len(d.Add) > 0 {
		w.nextHop = d.Add[0].NextHop
	}
	h.held = append(h.held, w)
	h.arrived <- struct{}{}
	return w
}

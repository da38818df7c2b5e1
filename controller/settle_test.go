package controller

import (
	"testing"
	"time"
)

// The settler reads the route table soon after a write became unsettled, every
// interval while it may land, and once after it may have landed; it is quiet
// otherwise, whatever wakes the loop meanwhile.
func TestSettler(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s := newSettler(10 * time.Second)
	s.arm(time.Time{}, t0)
	if !s.at.IsZero() {
		t.Fatalf("armed at %v with nothing unsettled", s.at)
	}
	until := t0.Add(25 * time.Second)
	s.arm(until, t0)
	if !s.at.Before(t0.Add(time.Second)) {
		t.Fatalf("first read at %v, want at once", s.at)
	}
	var reads []time.Duration
	now := t0
	for now.Before(t0.Add(time.Minute)) {
		// The loop wakes every second (kernel ticks): that must not push reads away.
		now = now.Add(time.Second)
		u := until
		if now.After(until) {
			u = time.Time{}
		}
		s.arm(u, now)
		if !s.at.IsZero() && !now.Before(s.at) {
			s.read(now)
			reads = append(reads, now.Sub(t0))
		}
	}
	want := []time.Duration{1 * time.Second, 11 * time.Second, 21 * time.Second, 26 * time.Second}
	if len(reads) != len(want) {
		t.Fatalf("reads at %v, want %v", reads, want)
	}
	for i := range want {
		if reads[i] != want[i] {
			t.Fatalf("reads at %v, want %v", reads, want)
		}
	}
}

package cloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/vpcroute/vpcroute/check"
)

// ErrNotReady wraps the reason a Later cannot serve yet.
var ErrNotReady = errors.New("the cloud is not reachable yet")

// Later is a VPC built in the background. Huawei's client needs the metadata service
// and the VPC API, which may not answer when the plugin starts (an ECS at boot, a
// network hiccup, credentials or permissions still being fixed): the plugin serves
// meanwhile, and every call that needs the cloud says why it cannot be made yet, so
// the user reads it in `docker network create`'s own error.
type Later struct {
	build func(context.Context) (VPC, error)
	log   *slog.Logger
	// Backoff bounds the pause between attempts: it starts at Min and doubles up to Max.
	Min, Max time.Duration
	// Wait is how long a call waits for the VPC before it fails: long enough for a
	// start-up that is merely slow, short enough for Docker's 30 s.
	Wait time.Duration

	mu      sync.Mutex
	vpc     VPC
	id      Identity
	lastErr error
	tries   int
	ready   chan struct{}
}

var _ VPC = (*Later)(nil)

// NewLater returns a VPC that build will make; until then Identity is saved (the one
// of the last run, or what the settings say).
func NewLater(build func(context.Context) (VPC, error), saved Identity, log *slog.Logger) *Later {
	return &Later{build: build, log: log, id: saved, Min: time.Second, Max: 10 * time.Second, Wait: 10 * time.Second,
		lastErr: errors.New("starting"), ready: make(chan struct{})}
}

// Run tries to build the VPC until it succeeds or ctx ends, pausing longer after each
// failure, and calls onReady once with it.
func (l *Later) Run(ctx context.Context, onReady func(VPC)) {
	pause := l.Min
	for {
		vpc, err := l.build(ctx)
		l.mu.Lock()
		l.tries++
		if err == nil {
			l.vpc, l.id, l.lastErr = vpc, vpc.Identity(), nil
			close(l.ready)
			l.mu.Unlock()
			if l.tries > 1 {
				l.log.Info("the cloud answers now", "after_attempts", l.tries)
			}
			if onReady != nil {
				onReady(vpc)
			}
			return
		}
		l.lastErr = err
		tries := l.tries
		l.mu.Unlock()
		if tries == 1 || tries%10 == 0 {
			l.log.Error("the cloud does not answer; vpcroute serves its networks and keeps trying", "attempt", tries, "next_in", pause, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, l.Max)
	}
}

// Ready is closed once the VPC is built.
func (l *Later) Ready() <-chan struct{} { return l.ready }

// Err says why the VPC is not built yet; nil once it is.
func (l *Later) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.vpc != nil {
		return nil
	}
	return fmt.Errorf("%w (%d attempts; vpcroute keeps trying every %s at most): %w", ErrNotReady, l.tries, l.Max, l.lastErr)
}

// get returns the VPC, waiting for it up to Wait (or ctx).
func (l *Later) get(ctx context.Context) (VPC, error) {
	t := time.NewTimer(l.Wait)
	defer t.Stop()
	select {
	case <-l.ready:
	case <-t.C:
	case <-ctx.Done():
	}
	l.mu.Lock()
	vpc := l.vpc
	l.mu.Unlock()
	if vpc == nil {
		return nil, l.Err()
	}
	return vpc, nil
}

// Identity is the built VPC's, or the saved one until then.
func (l *Later) Identity() Identity {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.id
}

// Claim claims through the built VPC, or says why it cannot yet.
func (l *Later) Claim(ctx context.Context, req ClaimRequest) (netip.Prefix, error) {
	vpc, err := l.get(ctx)
	if err != nil {
		return netip.Prefix{}, err
	}
	return vpc.Claim(ctx, req)
}

// Release releases through the built VPC, or says why it cannot yet.
func (l *Later) Release(ctx context.Context, prefix netip.Prefix, owner string) error {
	vpc, err := l.get(ctx)
	if err != nil {
		return err
	}
	return vpc.Release(ctx, prefix, owner)
}

// Owned lists through the built VPC, or says at once why it cannot yet: the loop
// asks again next cycle.
func (l *Later) Owned(ctx context.Context) ([]Route, error) {
	vpc := l.Unwrap()
	if vpc == nil {
		return nil, l.Err()
	}
	return vpc.Owned(ctx)
}

// Table reads through the built VPC, or says at once why it cannot yet.
func (l *Later) Table(ctx context.Context) (Table, error) {
	vpc := l.Unwrap()
	if vpc == nil {
		return Table{}, l.Err()
	}
	return vpc.Table(ctx)
}

// Checks checks through the built VPC, or says why there is none yet.
func (l *Later) Checks(ctx context.Context, pool netip.Prefix) []check.Result {
	vpc := l.Unwrap()
	if vpc == nil {
		return []check.Result{{Name: "cloud", Status: check.Fail, Detail: l.Err().Error(),
			Fix: "the message says what to fix; vpcroute keeps trying and serves its networks meanwhile"}}
	}
	return vpc.Checks(ctx, pool)
}

// Unsettled is the built VPC's; zero before it is built.
func (l *Later) Unsettled() time.Time {
	if vpc := l.Unwrap(); vpc != nil {
		return vpc.Unsettled()
	}
	return time.Time{}
}

// ReleaseGone releases through the built VPC, or says why it cannot yet.
func (l *Later) ReleaseGone(ctx context.Context, r TableRoute) error {
	vpc, err := l.get(ctx)
	if err != nil {
		return err
	}
	return vpc.ReleaseGone(ctx, r)
}

// Unwrap returns the built VPC, nil until then: status and doctor ask it what only
// Huawei's client knows.
func (l *Later) Unwrap() VPC {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.vpc
}

package cloud

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestLater(t *testing.T) {
	fails := 3
	build := func(context.Context) (VPC, error) {
		if fails > 0 {
			fails--
			return nil, errors.New("cannot tell which ECS this is: metadata at http://169.254.169.254: connection refused")
		}
		return None{ID: Identity{InstanceID: "i-1", VPCCIDRs: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}}}, nil
	}
	saved := Identity{InstanceID: "i-1"}
	l := NewLater(build, saved, slog.New(slog.NewTextHandler(io.Discard, nil)))
	l.Min, l.Max, l.Wait = time.Millisecond, 4*time.Millisecond, time.Millisecond
	if l.Identity().InstanceID != "i-1" {
		t.Fatal("saved identity not served before the cloud answers")
	}
	_, err := l.Claim(context.Background(), ClaimRequest{Owner: "o", Want: netip.MustParsePrefix("10.0.2.0/24")})
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("Claim before ready = %v; want ErrNotReady", err)
	}
	var got VPC
	done := make(chan struct{})
	go func() { l.Run(context.Background(), func(v VPC) { got = v }); close(done) }()
	<-l.Ready()
	<-done
	if got == nil || l.Err() != nil || len(l.Identity().VPCCIDRs) != 1 || l.Unwrap() == nil {
		t.Fatalf("after ready: vpc %v err %v identity %+v", got, l.Err(), l.Identity())
	}
	if _, err := l.Claim(context.Background(), ClaimRequest{Owner: "o", Want: netip.MustParsePrefix("10.0.2.0/24")}); err != nil {
		t.Fatalf("Claim after ready = %v", err)
	}
	// A call made while the cloud is merely slow waits for it.
	slow := NewLater(func(context.Context) (VPC, error) {
		time.Sleep(20 * time.Millisecond)
		return None{ID: saved}, nil
	}, saved, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go slow.Run(t.Context(), nil)
	if _, err := slow.Claim(context.Background(), ClaimRequest{Owner: "o", Want: netip.MustParsePrefix("10.0.2.0/24")}); err != nil {
		t.Fatalf("Claim during a slow start = %v; want it to wait", err)
	}
	// The error before ready said why, for docker's output.
	l2 := NewLater(build, saved, slog.New(slog.NewTextHandler(io.Discard, nil)))
	fails = 1
	l2.Min = time.Hour
	go l2.Run(t.Context(), nil)
	for l2.Err() == nil || !strings.Contains(l2.Err().Error(), "metadata") {
		time.Sleep(time.Millisecond)
	}
	if !strings.Contains(l2.Err().Error(), "connection refused") {
		t.Fatalf("Err = %v", l2.Err())
	}
}

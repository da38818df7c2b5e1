package huawei

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/internal/sim"
)

func TestDefaultTimingFitsDockerTimeout(t *testing.T) {
	d := defaultTiming()
	if d.opTimeout > 8*time.Second {
		t.Errorf("an operation may take %v; Docker's plugin timeout needs it well under 30 s (<= 8 s)", d.opTimeout)
	}
	if d.attemptTimeout >= d.opTimeout/2 {
		t.Errorf("one attempt (%v) leaves no room for a retry within %v", d.attemptTimeout, d.opTimeout)
	}
	if d.metadataTimeout > 3*time.Second {
		t.Errorf("metadata timeout %v is not short", d.metadataTimeout)
	}
}

func TestBackoff(t *testing.T) {
	tm := defaultTiming()
	for attempt := 1; attempt <= 20; attempt++ {
		window := min(tm.backoffBase<<min(attempt-1, 16), tm.backoffMax)
		for range 50 {
			d := backoff(tm, attempt)
			if d < window/4 || d > window {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, d, window/4, window)
			}
		}
	}
}

func TestRetriesTransientFaults(t *testing.T) {
	tests := []struct {
		name  string
		fault sim.Fault
		// the route table path is asked this many times in the claim (GET+PUT without faults)
		wantCalls int
	}{
		{"throttled twice", sim.Fault{Count: 2, Status: http.StatusTooManyRequests}, 4},
		{"service unavailable", sim.Fault{Count: 2, Status: http.StatusServiceUnavailable}, 4},
		{"internal error", sim.Fault{Count: 1, Status: http.StatusInternalServerError, Code: "VPC.0001"}, 3},
		{"connection dropped", sim.Fault{Count: 2, Drop: true}, 4},
		{"slow answer", sim.Fault{Count: 1, Latency: 1500 * time.Millisecond}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBed(t, nil)
			c, _ := b.client(t, "ecs1", nil)
			b.sim.ResetRequests()
			tt.fault.PathContains = "/routetables/"
			b.sim.InjectFault(tt.fault)
			p, err := c.Claim(context.Background(), cloud.ClaimRequest{Owner: "p", Pick: firstFree(mustPrefix("10.0.0.0/16"))})
			if err != nil {
				t.Fatalf("claim through %s: %v", tt.name, err)
			}
			if rs := customRoutes(b.routes(t, "")); len(rs) != 1 || rs[0].Destination != p.String() {
				t.Errorf("routes after claim:\n%s", describeRoutes(rs))
			}
			if n := countMatching(b.requests(), "/routetables/"); n != tt.wantCalls {
				t.Errorf("route table requests = %d, want %d: %q", n, tt.wantCalls, b.requests())
			}
		})
	}
}

func TestDroppedWriteIsNotDuplicated(t *testing.T) {
	// The PUT is applied but its answer is lost: the retry meets VPC.2812 and
	// the claim recognises its own route.
	b := newBed(t, nil)
	logs := &logBuffer{}
	cfg := b.config(t, "ecs1", logs.logger())
	tr := &loseFirstAnswer{base: http.DefaultTransport, method: http.MethodPut}
	c, err := newClient(context.Background(), cfg, testTiming(), tr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Claim(context.Background(), cloud.ClaimRequest{Owner: "p", Want: mustPrefix("10.0.2.0/24")})
	if err != nil || got != mustPrefix("10.0.2.0/24") {
		t.Fatalf("claim whose first answer timed out = %v, %v", got, err)
	}
	if rs := customRoutes(b.routes(t, "")); len(rs) != 1 {
		t.Errorf("routes:\n%s", describeRoutes(rs))
	}
	if !tr.lost {
		t.Error("the test did not lose an answer")
	}
}

// loseFirstAnswer lets the first request of method reach the server and then
// reports a reset connection, as when the answer is lost on the way back.
type loseFirstAnswer struct {
	base   http.RoundTripper
	method string
	lost   bool
}

func (l *loseFirstAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(r)
	if err == nil && r.Method == l.method && !l.lost {
		l.lost = true
		resp.Body.Close()
		return nil, errors.New("read: connection reset by peer")
	}
	return resp, err
}

func TestRetriesGiveUpByDeadline(t *testing.T) {
	b := newBed(t, nil)
	c, _ := b.client(t, "ecs1", nil)
	c.t.opTimeout = 1500 * time.Millisecond
	b.sim.InjectFault(sim.Fault{Count: 10000, Status: http.StatusServiceUnavailable, PathContains: "/routetables/"})
	start := time.Now()
	_, err := c.Claim(context.Background(), cloud.ClaimRequest{Owner: "p", Want: mustPrefix("10.0.2.0/24")})
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("claim succeeded against a failing API")
	}
	if elapsed > c.t.opTimeout+500*time.Millisecond {
		t.Errorf("gave up after %v, want within the operation deadline %v", elapsed, c.t.opTimeout)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Attempts < 5 {
		t.Errorf("err = %v, want the 503 after several attempts", err)
	}
	if !strings.Contains(err.Error(), "try again later") {
		t.Errorf("error does not say what to do: %v", err)
	}
}

func TestCallerDeadlineStopsRetries(t *testing.T) {
	b := newBed(t, nil)
	c, _ := b.client(t, "ecs1", nil)
	b.sim.InjectFault(sim.Fault{Count: 10000, Status: http.StatusTooManyRequests, PathContains: "/routetables/"})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "p", Want: mustPrefix("10.0.2.0/24")})
	if err == nil || time.Since(start) > 600*time.Millisecond {
		t.Errorf("claim = %v after %v, want an error within the caller's 300 ms", err, time.Since(start))
	}
	if !strings.Contains(err.Error(), "APIGW.0308") {
		t.Errorf("error does not name the throttling: %v", err)
	}
}

func TestClientErrorsNotRetried(t *testing.T) {
	tests := []struct {
		name   string
		status int
		code   string
		want   []string
	}{
		{"forbidden", http.StatusForbidden, "VPC.0003", []string{"vpc:routeTables:update", "permission"}},
		{"bad request", http.StatusBadRequest, "VPC.0002", []string{"HTTP 400", "VPC.0002"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBed(t, nil)
			cfg := b.config(t, "ecs1", nil)
			tr := hookTransport{base: http.DefaultTransport, before: func(r *http.Request) {
				if r.Method == http.MethodPut {
					b.sim.InjectFault(sim.Fault{Status: tt.status, Code: tt.code, PathContains: "/routetables/"})
				}
			}}
			c, err := newClient(context.Background(), cfg, testTiming(), tr)
			if err != nil {
				t.Fatal(err)
			}
			b.sim.ResetRequests()
			_, err = c.Claim(context.Background(), cloud.ClaimRequest{Owner: "p", Want: mustPrefix("10.0.2.0/24")})
			if err == nil {
				t.Fatal("claim succeeded")
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not say %q: %v", s, err)
				}
			}
			if n := countMatching(b.requests(), "PUT "); n != 1 {
				t.Errorf("a %d was sent %d times, want once", tt.status, n)
			}
		})
	}
}

func TestTableNotFound(t *testing.T) {
	b := newBed(t, nil)
	c, _ := b.client(t, "ecs1", nil)
	b.sim.InjectFault(sim.Fault{Status: http.StatusNotFound, Code: "VPC.2808", PathContains: "/routetables/"})
	_, err := c.Claim(context.Background(), cloud.ClaimRequest{Owner: "p", Want: mustPrefix("10.0.2.0/24")})
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "VPCROUTE_ROUTE_TABLE_ID") {
		t.Errorf("claim on a missing table = %v, want a message naming the setting", err)
	}
}

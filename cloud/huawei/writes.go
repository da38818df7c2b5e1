package huawei

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"time"
)

// A route write the VPC API did not answer (a timeout, a dropped connection) or
// answered 5xx may have been applied, now or later: the API gives no way to cancel
// it. The client never assumes such a write did not happen. It reads the table
// before it writes again, and it keeps the subnet "unsettled" for timing.settleFor:
// picks avoid it, a claim of it is confirmed by a read, and Unsettled tells the
// controller when to read the table again to put right whatever landed late (a
// delete that removed a newer route, an add after the claim was given up).

// uncertain says whether a failed write may still have been applied.
func uncertain(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.Status == 0 || ae.Status >= 500
}

// writeRetryable says which failed writes may be sent again at once: those the API
// refused before doing anything (throttled). A write that may have been applied is
// retried by its caller after reading the table.
func writeRetryable(e *APIError) bool {
	return e.Status == http.StatusTooManyRequests || e.Code == codeThrottled
}

// begin marks prefix as being written by this client, so that a concurrent pick
// avoids it; the returned func ends that.
func (c *Client) begin(p netip.Prefix) func() {
	c.writesMu.Lock()
	c.inflight[p]++
	c.writesMu.Unlock()
	return func() {
		c.writesMu.Lock()
		if c.inflight[p]--; c.inflight[p] <= 0 {
			delete(c.inflight, p)
		}
		c.writesMu.Unlock()
	}
}

// unsettle records that a write of p may still land.
func (c *Client) unsettle(p netip.Prefix, err error) {
	until := time.Now().Add(c.t.settleFor)
	c.writesMu.Lock()
	if until.After(c.unsettled[p]) {
		c.unsettled[p] = until
	}
	c.writesMu.Unlock()
	c.log.Warn("the VPC API did not say whether a route write was applied: reading the table before writing again, and again later in case it lands late",
		"subnet", p, "err", err)
}

// isUnsettled says whether a write of p may still land.
func (c *Client) isUnsettled(p netip.Prefix) bool {
	c.writesMu.Lock()
	defer c.writesMu.Unlock()
	return time.Now().Before(c.unsettled[p])
}

// busyPrefixes are the subnets a pick must avoid besides the tables' routes: those
// being written by this client, and those with a write that may still land.
func (c *Client) busyPrefixes() []netip.Prefix {
	now := time.Now()
	c.writesMu.Lock()
	defer c.writesMu.Unlock()
	out := make([]netip.Prefix, 0, len(c.inflight)+len(c.unsettled))
	for p := range c.inflight {
		out = append(out, p)
	}
	for p, until := range c.unsettled {
		if now.After(until) {
			delete(c.unsettled, p)
			continue
		}
		out = append(out, p)
	}
	return out
}

// Unsettled says until when a route write whose outcome the API did not tell may
// still land; zero when none may.
func (c *Client) Unsettled() time.Time {
	now := time.Now()
	var last time.Time
	c.writesMu.Lock()
	defer c.writesMu.Unlock()
	for p, until := range c.unsettled {
		if now.After(until) {
			delete(c.unsettled, p)
			continue
		}
		if until.After(last) {
			last = until
		}
	}
	return last
}

// deleteRoute removes from this client's table the route to prefix that match
// accepts, reading the table just before each write: a route that is gone, or that
// is no longer the one to remove (another owner, another next hop), is left alone.
// vet, when not nil, may refuse the delete after the read. A delete whose outcome
// is unknown is read back before it is sent again. what names it in errors.
func (c *Client) deleteRoute(ctx context.Context, prefix netip.Prefix, what string, match func(route) bool, vet func(route) error) error {
	defer c.begin(prefix)()
	var refused error // a 4xx answer to the last delete
	for attempt := 1; ; attempt++ {
		t, err := c.api.showRouteTable(ctx, c.tableID)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		idx := slices.IndexFunc(t.Routes, func(r route) bool {
			p, ok := r.destination()
			return ok && p == prefix && match(r)
		})
		if idx < 0 {
			return nil
		}
		if refused != nil {
			return fmt.Errorf("%s from route table %s: %w", what, c.tableID, refused)
		}
		r := t.Routes[idx]
		if vet != nil {
			if err := vet(r); err != nil {
				return err
			}
		}
		_, err = c.api.updateRouteTable(ctx, c.tableID, nil, []route{r})
		switch {
		case err == nil:
			return nil
		case uncertain(err):
			c.unsettle(prefix, err)
		case hasStatus(err, http.StatusUnauthorized), hasStatus(err, http.StatusForbidden):
			return fmt.Errorf("%s from route table %s: %w", what, c.tableID, err)
		default:
			// A 4xx: perhaps the route went meanwhile (an earlier delete landed
			// late); the next read tells, at once.
			refused = err
			continue
		}
		if attempt >= c.t.maxClaimRounds {
			return fmt.Errorf("%s from route table %s: %w", what, c.tableID, err)
		}
		if serr := sleep(ctx, backoff(c.t, attempt)); serr != nil {
			return fmt.Errorf("%s from route table %s: the VPC API did not confirm the delete in time (%w); vpcroute reads the table again and retries: %w",
				what, c.tableID, serr, err)
		}
	}
}

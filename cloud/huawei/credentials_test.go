package huawei

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/internal/sim"
)

func TestTemporaryKeyFromSettings(t *testing.T) {
	b := newBed(t, func(c *sim.Config) { c.ECSs[0].Agency = true })
	// Fetch a temporary key the way an operator would hand one over.
	resp, err := http.Get(b.srv.URL + "/ecs/ecs1" + securityKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sk securityKey
	if err := json.NewDecoder(resp.Body).Decode(&sk); err != nil {
		t.Fatal(err)
	}
	c, _ := b.client(t, "ecs1", func(cfg *Config) {
		cfg.AK, cfg.SK, cfg.SecurityToken = sk.Credential.Access, sk.Credential.Secret, sk.Credential.SecurityToken
	})
	if _, err := c.Claim(context.Background(), cloud.ClaimRequest{Owner: "p", Want: mustPrefix("10.0.2.0/24")}); err != nil {
		t.Fatalf("claim with a temporary key from the settings: %v", err)
	}
}

func TestAgencyCredentialsRefresh(t *testing.T) {
	const ttl = 1500 * time.Millisecond
	b := newBed(t, func(c *sim.Config) {
		c.ECSs[0].Agency = true
		c.CredentialTTL = ttl
	})
	c, logs := b.client(t, "ecs1", func(cfg *Config) { cfg.AK, cfg.SK = "", "" })
	ctx := context.Background()
	pick := firstFree(mustPrefix("10.0.0.0/16"))
	start := time.Now()
	// Claims spread over twice the credentials' lifetime all succeed: the
	// client fetches new credentials before the old ones expire.
	for i := 0; time.Since(start) < 2*ttl; i++ {
		if _, err := c.Claim(ctx, cloud.ClaimRequest{Owner: "pool" + string(rune('a'+i)), Pick: pick}); err != nil {
			t.Fatalf("claim %d at %v: %v", i, time.Since(start), err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	fetches := countMatching(b.requests(), securityKeyPath)
	if fetches < 3 {
		t.Errorf("securitykey fetched %d times over 2 lifetimes, want >= 3 (refresh at 2/3 of the lifetime)", fetches)
	}
	for _, r := range b.sim.Requests() {
		if r.Status == http.StatusUnauthorized {
			t.Errorf("a request was sent with expired credentials: %+v", r)
		}
	}
	if strings.Contains(logs.String(), "securitytoken") {
		t.Error("logs mention the security token")
	}
}

// skewClock is the emulator's clock, moved by the test.
type skewClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (s *skewClock) now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Now().Add(s.offset)
}

// Advance moves the emulator's clock ahead of the host's.
func (s *skewClock) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

func TestAgencyCredentialsRejectedAreFetchedAgain(t *testing.T) {
	clock := &skewClock{}
	b := newBed(t, func(c *sim.Config) {
		c.ECSs[0].Agency = true
		c.CredentialTTL = 12 * time.Minute // the client refreshes 10 minutes ahead: at +2 min
		c.Now = clock.now
	})
	c, _ := b.client(t, "ecs1", func(cfg *Config) { cfg.AK, cfg.SK = "", "" })
	// The cloud now considers the key expired while the client does not
	// (revoked early, or a clock step): one 401, new key, success.
	clock.mu.Lock()
	clock.offset = 13 * time.Minute // less than the 15 minutes of signature skew allowed
	clock.mu.Unlock()
	b.sim.ResetRequests()
	if _, err := c.Claim(context.Background(), cloud.ClaimRequest{Owner: "p", Want: mustPrefix("10.0.2.0/24")}); err != nil {
		t.Fatalf("claim after the key was rejected: %v", err)
	}
	if n := countMatching(b.requests(), securityKeyPath); n != 1 {
		t.Errorf("fetched credentials %d times after a 401, want 1", n)
	}
}

func TestNoAgency(t *testing.T) {
	b := newBed(t, nil) // ECSs have no agency
	cfg := b.config(t, "ecs1", nil)
	cfg.AK, cfg.SK = "", ""
	_, err := newClient(context.Background(), cfg, testTiming(), http.DefaultTransport)
	if err == nil {
		t.Fatal("New succeeded without credentials and without an agency")
	}
	for _, s := range []string{"Management Information > Agency", "HUAWEICLOUD_SDK_AK", "VPC"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not say %q: %v", s, err)
		}
	}
}

func TestWrongSKRejectedWithoutLeakingIt(t *testing.T) {
	b := newBed(t, nil)
	const wrongSK = "WrongSecretKeyThatMustNotBeLogged0000000"
	logs := &logBuffer{}
	cfg := b.config(t, "ecs1", logs.logger())
	cfg.SK = wrongSK
	_, err := newClient(context.Background(), cfg, testTiming(), http.DefaultTransport)
	if err == nil {
		t.Fatal("New succeeded with a wrong SK")
	}
	msg := err.Error()
	for _, s := range []string{"401", "rejected", "HUAWEICLOUD_SDK_SK"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error does not say %q: %v", s, err)
		}
	}
	for _, secret := range []string{wrongSK, testSK} {
		if strings.Contains(msg, secret) || strings.Contains(logs.String(), secret) {
			t.Errorf("a secret key appears in the error or the logs:\n%v\n%s", err, logs)
		}
	}
	// A 401 with permanent keys is not retried: new keys will not appear.
	if n := countMatching(b.requests(), "/ports/"); n != 1 {
		t.Errorf("rejected request sent %d times, want 1", n)
	}
}

func TestRefreshPoint(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		life, want time.Duration
	}{
		{6 * time.Hour, 4 * time.Hour},                     // typical agency key: 2/3 of the lifetime
		{24 * time.Hour, 16 * time.Hour},                   // 2/3 comes before 10 minutes ahead
		{15 * time.Minute, 5 * time.Minute},                // 10 minutes ahead comes first
		{30 * time.Minute, 20 * time.Minute},               // both agree
		{10 * time.Minute, 400 * time.Second},              // 10 minutes ahead would be now: 2/3
		{1500 * time.Millisecond, 1000 * time.Millisecond}, // short test lifetimes: 2/3
		{0, 0},            // already expired: now
		{-time.Minute, 0}, // expiry in the past: now
	}
	for _, tt := range tests {
		got := refreshPoint(t0, t0.Add(tt.life)).Sub(t0)
		if got != tt.want {
			t.Errorf("refreshPoint(lifetime %v) = +%v, want +%v", tt.life, got, tt.want)
		}
	}
}

func TestTemporaryKeyHidesSecrets(t *testing.T) {
	k := &temporaryKey{AK: "AKAKAKAK", SK: "SKSKSKSK", Token: "TOKTOKTOK"}
	for _, s := range []string{k.String(), k.GoString()} {
		if strings.Contains(s, "SKSK") || strings.Contains(s, "TOKTOK") || strings.Contains(s, "AKAK") {
			t.Errorf("temporaryKey prints a secret: %s", s)
		}
	}
}

func TestParseExpiry(t *testing.T) {
	want := time.Date(2025, 3, 4, 7, 21, 7, 152000000, time.UTC)
	for _, s := range []string{"2025-03-04T07:21:07.152000Z", "2025-03-04T07:21:07.152Z", "2025-03-04T07:21:07.152"} {
		got, err := parseExpiry(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseExpiry(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := parseExpiry("tomorrow"); err == nil {
		t.Error("parseExpiry accepted garbage")
	}
}

// The securitykey document's parse error must not quote the document.
func TestSecurityKeyParseErrorHidesBody(t *testing.T) {
	srv := newStaticServer(t, `{"credential": {"access": "AK", "secret": "SECRET-VALUE", "expires_at": 5}}`)
	_, err := newMetadataClient(srv, time.Second).securityKey(context.Background())
	if err == nil || strings.Contains(err.Error(), "SECRET-VALUE") {
		t.Errorf("securityKey() = %v; want an error without the secret", err)
	}
}

func newStaticServer(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, body) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

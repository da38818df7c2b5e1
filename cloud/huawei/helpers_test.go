package huawei

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vpcroute/vpcroute/internal/sim"
)

const (
	testAK      = "VPCROUTETESTAK000001"
	testSK      = "vpcrouteTestSecretKey00000000000000000001"
	testProject = "0123456789abcdef0123456789abcdef"
	testVPC     = "11111111-2222-4333-8444-555555555555"
	subnetA     = "aaaaaaaa-0000-4000-8000-000000000001"
	subnetB     = "bbbbbbbb-0000-4000-8000-000000000002"
	ecs1ID      = "ec500001-0000-4000-8000-000000000001"
	ecs2ID      = "ec500002-0000-4000-8000-000000000002"
	ecs3ID      = "ec500003-0000-4000-8000-000000000003"
	port1ID     = "b0b00001-0000-4000-8000-000000000001"
)

// testVPCConfig is the VPC of Huawei's guide plus a second subnet and a third
// ECS: the ECSs are in 192.168.0.0/24 and 192.168.1.0/24.
func testVPCConfig() sim.Config {
	return sim.Config{
		Region:    "sa-brazil-1",
		ProjectID: testProject,
		VPCID:     testVPC,
		VPCCIDR:   "192.168.0.0/16",
		Subnets: []sim.Subnet{
			{ID: subnetA, Name: "subnet-a", CIDR: "192.168.0.0/24"},
			{ID: subnetB, Name: "subnet-b", CIDR: "192.168.1.0/24"},
		},
		ECSs: []sim.ECS{
			{ID: ecs1ID, Name: "ecs1", IP: "192.168.0.2", PortID: port1ID},
			{ID: ecs2ID, Name: "ecs2", IP: "192.168.0.3"},
			{ID: ecs3ID, Name: "ecs3", IP: "192.168.1.2"},
		},
		AK: testAK,
		SK: testSK,
	}
}

// bed is an emulated Huawei Cloud served over HTTP on loopback, with a clock the
// test may move ahead of the host's.
type bed struct {
	sim   *sim.Sim
	srv   *httptest.Server
	clock *skewClock
	// transport carries the clients' requests; nil for http.DefaultTransport.
	transport http.RoundTripper
	// timing is the clients' timing; zero for testTiming.
	timing timing
}

func newBed(t *testing.T, mutate func(*sim.Config)) *bed {
	t.Helper()
	cfg := testVPCConfig()
	clock := &skewClock{}
	cfg.Now = clock.now
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatalf("sim.New: %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &bed{sim: s, srv: srv, clock: clock}
}

// config is what the plugin on ECS name would be given: the metadata URL and
// the endpoint of the emulator, and the permanent AK/SK.
func (b *bed) config(t *testing.T, name string, log *slog.Logger) Config {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return Config{
		MetadataURL: b.srv.URL + "/ecs/" + name,
		VPCEndpoint: b.srv.URL,
		ECSEndpoint: b.srv.URL,
		AK:          testAK,
		SK:          testSK,
		Logger:      log,
	}
}

// testTiming keeps the production structure with shorter waits.
func testTiming() timing {
	t := defaultTiming()
	t.opTimeout = 4 * time.Second
	t.attemptTimeout = 1 * time.Second
	t.backoffBase = 10 * time.Millisecond
	t.backoffMax = 100 * time.Millisecond
	t.metadataTimeout = 1 * time.Second
	return t
}

func (b *bed) client(t *testing.T, name string, mutate func(*Config)) (*Client, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	cfg := b.config(t, name, logs.logger())
	if mutate != nil {
		mutate(&cfg)
	}
	tr, tm := b.transport, b.timing
	if tr == nil {
		tr = http.DefaultTransport
	}
	if tm == (timing{}) {
		tm = testTiming()
	}
	c, err := newClient(context.Background(), cfg, tm, tr)
	if err != nil {
		t.Fatalf("New for %s: %v", name, err)
	}
	return c, logs
}

// requests returns the API calls logged since the last reset, as "METHOD path".
func (b *bed) requests() []string {
	var out []string
	for _, r := range b.sim.Requests() {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

// table returns the default (or given) table's routes as "dest nexthop".
func (b *bed) routes(t *testing.T, tableID string) []sim.Route {
	t.Helper()
	if tableID == "" {
		tableID = b.sim.DefaultRouteTableID()
	}
	rs, ok := b.sim.RouteTable(tableID)
	if !ok {
		t.Fatalf("route table %s does not exist", tableID)
	}
	return rs
}

func customRoutes(rs []sim.Route) []sim.Route {
	return slices.DeleteFunc(slices.Clone(rs), func(r sim.Route) bool { return r.Type == "local" })
}

// logBuffer collects a client's logs; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// firstFree is the allocator's policy in small: the first /24 of pool that
// overlaps nothing taken.
func firstFree(pool netip.Prefix) func([]netip.Prefix) (netip.Prefix, error) {
	return func(taken []netip.Prefix) (netip.Prefix, error) {
		for a := pool.Addr(); pool.Contains(a); {
			p := netip.PrefixFrom(a, 24)
			if !slices.ContainsFunc(taken, p.Overlaps) {
				return p, nil
			}
			b := a.As4()
			if b[2] == 255 {
				break
			}
			b[2]++
			a = netip.AddrFrom4(b)
		}
		return netip.Prefix{}, errors.New("no free /24 left")
	}
}

// hookTransport runs before(req) ahead of each request, e.g. to let another
// host win a race at exactly the wrong moment.
type hookTransport struct {
	base   http.RoundTripper
	before func(*http.Request)
}

func (h hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if h.before != nil {
		h.before(r)
	}
	return h.base.RoundTrip(r)
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func countMatching(reqs []string, substr string) int {
	n := 0
	for _, r := range reqs {
		if strings.Contains(r, substr) {
			n++
		}
	}
	return n
}

func describeRoutes(rs []sim.Route) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s %s -> %s %q\n", r.Type, r.Destination, r.NextHop, r.Description)
	}
	return b.String()
}

package sim

import (
	"errors"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	vpc "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/vpc/v2"
)

const (
	testAK  = "SIMTESTACCESSKEY0001"
	testSK  = "simTestSecretKey0000000000000000000000001"
	testPID = "0123456789abcdef0123456789abcdef"
)

// clock is a settable time source for skew and expiry tests.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// guideConfig is the two-ECS VPC of Huawei's guide.
func guideConfig() Config {
	return Config{
		Region:    "sa-brazil-1",
		ProjectID: testPID,
		VPCID:     "11111111-2222-4333-8444-555555555555",
		VPCCIDR:   "192.168.0.0/16",
		Subnets:   []Subnet{{ID: "aaaaaaaa-0000-4000-8000-000000000001", Name: "subnet-ecs", CIDR: "192.168.0.0/24"}},
		ECSs: []ECS{
			{ID: "ecs00001-0000-4000-8000-000000000001", Name: "ecs1", IP: "192.168.0.2", Agency: true, SrcDstCheck: true},
			{ID: "ecs00002-0000-4000-8000-000000000002", Name: "ecs2", IP: "192.168.0.3"},
		},
		AK: testAK,
		SK: testSK,
	}
}

type env struct {
	sim   *Sim
	srv   *httptest.Server
	clock *clock
}

// newEnv starts an emulator on an httptest server; mutate adjusts the config.
func newEnv(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	cfg := guideConfig()
	clk := &clock{}
	cfg.Now = clk.Now
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &env{sim: s, srv: srv, clock: clk}
}

// client builds the real SDK's VPC client against the emulator.
func (e *env) client(t *testing.T, ak, sk, token string) *vpc.VpcClient {
	t.Helper()
	b := basic.NewCredentialsBuilder().WithAk(ak).WithSk(sk).WithProjectId(testPID)
	if token != "" {
		b = b.WithSecurityToken(token)
	}
	cred, err := b.SafeBuild()
	if err != nil {
		t.Fatalf("credentials: %v", err)
	}
	hc, err := vpc.VpcClientBuilder().WithEndpoints([]string{e.srv.URL}).WithCredential(cred).SafeBuild()
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return vpc.NewVpcClient(hc)
}

func (e *env) sdk(t *testing.T) *vpc.VpcClient { return e.client(t, testAK, testSK, "") }

// serviceError unwraps the SDK's error for status and code assertions.
func serviceError(t *testing.T, err error) *sdkerr.ServiceResponseError {
	t.Helper()
	var se *sdkerr.ServiceResponseError
	if !errors.As(err, &se) {
		t.Fatalf("want a service response error, got %T: %v", err, err)
	}
	return se
}

func ptr[T any](v T) *T { return &v }

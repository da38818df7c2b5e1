package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/vpc/v2/model"
)

func TestSignature(t *testing.T) {
	tests := []struct {
		name     string
		ak, sk   string
		skew     time.Duration // server clock minus client clock
		wantCode string        // "" = accepted
	}{
		{name: "right AK/SK", ak: testAK, sk: testSK},
		{name: "wrong SK", ak: testAK, sk: testSK + "x", wantCode: "APIGW.0301"},
		{name: "unknown AK", ak: "NOSUCHACCESSKEY00000", sk: testSK, wantCode: "APIGW.0301"},
		{name: "date 14 minutes behind", ak: testAK, sk: testSK, skew: 14 * time.Minute},
		{name: "date 16 minutes behind", ak: testAK, sk: testSK, skew: 16 * time.Minute, wantCode: "APIGW.0301"},
		{name: "date 16 minutes ahead", ak: testAK, sk: testSK, skew: -16 * time.Minute, wantCode: "APIGW.0301"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.clock.Advance(tc.skew)
			// A query string and a body are both part of the signature.
			_, err1 := e.client(t, tc.ak, tc.sk, "").ListRouteTables(&model.ListRouteTablesRequest{VpcId: ptr(e.sim.Config().VPCID), Limit: ptr(int32(10))})
			_, err2 := update(e.client(t, tc.ak, tc.sk, ""), e.sim.DefaultRouteTableID(), []model.AddRouteTableRoute{add("ecs", "10.0.2.0/24", ecs1ID, "a b&c=d/é")}, nil, nil)
			for _, err := range []error{err1, err2} {
				if tc.wantCode == "" {
					if err != nil {
						t.Fatalf("rejected: %v", err)
					}
					continue
				}
				se := serviceError(t, err)
				if se.StatusCode != http.StatusUnauthorized || se.ErrorCode != tc.wantCode || se.RequestId == "" {
					t.Fatalf("got %d %s request_id %q, want 401 %s", se.StatusCode, se.ErrorCode, se.RequestId, tc.wantCode)
				}
			}
		})
	}
}

func TestUnsignedRequestGetsGatewayError(t *testing.T) {
	e := newEnv(t, nil)
	resp, err := http.Get(e.srv.URL + "/v1/" + testPID + "/routetables")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 401 || body["error_code"] != "APIGW.0301" || body["error_msg"] == "" ||
		body["request_id"] == "" || body["request_id"] != resp.Header.Get("X-Request-Id") {
		t.Fatalf("got %d %v X-Request-Id %q", resp.StatusCode, body, resp.Header.Get("X-Request-Id"))
	}
}

type securityKey struct {
	Credential struct {
		Access        string `json:"access"`
		Secret        string `json:"secret"`
		SecurityToken string `json:"securitytoken"`
		ExpiresAt     string `json:"expires_at"`
	} `json:"credential"`
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("GET %s: no X-Request-Id", url)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v in %s", url, err, b)
		}
	}
	return resp.StatusCode
}

func TestTemporaryCredentials(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CredentialTTL = 10 * time.Minute })
	var key securityKey
	if code := getJSON(t, e.srv.URL+"/ecs/ecs1/openstack/latest/securitykey", &key); code != 200 {
		t.Fatalf("securitykey of ecs1 (agency): %d", code)
	}
	k := key.Credential
	exp, err := time.Parse(time.RFC3339Nano, k.ExpiresAt)
	if err != nil || k.Access == "" || k.Secret == "" || k.SecurityToken == "" {
		t.Fatalf("credential %+v: %v", k, err)
	}
	if d := time.Until(exp); d < 9*time.Minute || d > 11*time.Minute {
		t.Fatalf("expires_at %s is not 10 minutes away", k.ExpiresAt)
	}
	table := e.sim.DefaultRouteTableID()
	showWith := func(ak, sk, token string) error {
		_, err := e.client(t, ak, sk, token).ShowRouteTable(&model.ShowRouteTableRequest{RoutetableId: table})
		return err
	}
	if err := showWith(k.Access, k.Secret, k.SecurityToken); err != nil {
		t.Fatalf("temporary credential rejected: %v", err)
	}
	for name, err := range map[string]error{
		"without token": showWith(k.Access, k.Secret, ""),
		"wrong token":   showWith(k.Access, k.Secret, k.SecurityToken+"x"),
		"wrong secret":  showWith(k.Access, k.Secret+"x", k.SecurityToken),
	} {
		if se := serviceError(t, err); se.StatusCode != 401 || se.ErrorCode != "APIGW.0301" {
			t.Errorf("%s: got %d %s", name, se.StatusCode, se.ErrorCode)
		}
	}

	// The same credential is served again until close to expiry.
	var again securityKey
	getJSON(t, e.srv.URL+"/ecs/ecs1/openstack/latest/securitykey", &again)
	if again.Credential.Access != k.Access {
		t.Errorf("credential rotated long before expiry")
	}

	// Expiry is checked apart from the date skew: 8 minutes after issue the
	// credential (TTL 10 min) still works, at 11 minutes it is expired.
	e.clock.Advance(8 * time.Minute)
	if err := showWith(k.Access, k.Secret, k.SecurityToken); err != nil {
		t.Fatalf("credential rejected 8 minutes after issue: %v", err)
	}
	e.clock.Advance(3 * time.Minute)
	err = showWith(k.Access, k.Secret, k.SecurityToken)
	if se := serviceError(t, err); se.StatusCode != 401 || !strings.Contains(se.ErrorMessage, "expired") {
		t.Fatalf("expired credential: %d %s %s", se.StatusCode, se.ErrorCode, se.ErrorMessage)
	}

	var fresh securityKey
	getJSON(t, e.srv.URL+"/ecs/ecs1/openstack/latest/securitykey", &fresh)
	if fresh.Credential.Access == k.Access {
		t.Fatalf("expired credential served again")
	}

	if code := getJSON(t, e.srv.URL+"/ecs/ecs2/openstack/latest/securitykey", nil); code != http.StatusNotFound {
		t.Fatalf("securitykey of ecs2 (no agency): %d, want 404", code)
	}
}

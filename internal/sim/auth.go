package sim

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// The SDK-HMAC-SHA256 scheme of Huawei's API gateway, verified from the
// algorithm (the SDK's core/auth/signer is the reference for the canonical
// request rules):
//
//	Authorization: SDK-HMAC-SHA256 Access=AK, SignedHeaders=h1;h2, Signature=HEX
//	string to sign = "SDK-HMAC-SHA256\n" + X-Sdk-Date + "\n" + hex(sha256(canonical request))
//	signature      = hex(hmac-sha256(SK, string to sign))
//	canonical request = method \n uri \n query \n headers \n signed headers \n payload hash
//
// uri: each path segment percent-encoded (all but A-Z a-z 0-9 - _ . ~), with a
// trailing '/'; query: keys and then values sorted, both encoded; headers:
// "name:trimmed value\n" for each signed header in order, host taken from the
// Host line; payload hash: X-Sdk-Content-Sha256 when sent, else hex(sha256(body)).
const (
	authScheme      = "SDK-HMAC-SHA256"
	sdkDateFormat   = "20060102T150405Z"
	maxClockSkew    = 15 * time.Minute
	headerSdkDate   = "X-Sdk-Date"
	headerToken     = "X-Security-Token"
	headerSdkSha256 = "X-Sdk-Content-Sha256"
)

// gwError is an error of the API gateway: body {"error_code","error_msg","request_id"}.
type gwError struct {
	Status  int
	Code    string
	Message string
}

func authFailed(format string, args ...any) *gwError {
	return &gwError{Status: http.StatusUnauthorized, Code: "APIGW.0301",
		Message: "Incorrect IAM authentication information: " + fmt.Sprintf(format, args...)}
}

// tempCredential is an agency credential issued by the metadata securitykey endpoint.
type tempCredential struct {
	ecsID     string
	access    string
	secret    string
	token     string
	expiresAt time.Time
}

// authenticate checks the request's signature against the permanent AK/SK or an
// unexpired temporary credential, and returns whose it is: the ECS of an agency
// credential, "" for the permanent one.
func (s *Sim) authenticate(r *http.Request, body []byte) (string, *gwError) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return "", authFailed("Authorization header is missing; sign requests with AK/SK (SDK-HMAC-SHA256)")
	}
	scheme, rest, _ := strings.Cut(auth, " ")
	if scheme != authScheme {
		return "", authFailed("unsupported signing algorithm %q", scheme)
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok {
			fields[k] = v
		}
	}
	ak, signed, sig := fields["Access"], fields["SignedHeaders"], fields["Signature"]
	if ak == "" || signed == "" || sig == "" {
		return "", authFailed("Authorization header lacks Access, SignedHeaders or Signature")
	}
	signedHeaders := strings.Split(signed, ";")
	if !slices.Contains(signedHeaders, strings.ToLower(headerSdkDate)) {
		return "", authFailed("x-sdk-date must be a signed header")
	}
	date := r.Header.Get(headerSdkDate)
	t, err := time.Parse(sdkDateFormat, date)
	if err != nil {
		return "", authFailed("X-Sdk-Date %q is not in the format %s", date, sdkDateFormat)
	}
	now := s.now()
	if d := now.Sub(t); d > maxClockSkew || d < -maxClockSkew {
		return "", authFailed("X-Sdk-Date %s differs from the server time %s by more than 15 minutes; check the clock", date, now.UTC().Format(sdkDateFormat))
	}

	sk, gerr := s.secretFor(ak, r, signedHeaders, now)
	if gerr != nil {
		return "", gerr
	}
	want := signature(sk, stringToSign(date, canonicalRequest(r, signedHeaders, body)))
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(sig))) {
		return "", authFailed("verify aksk signature fail")
	}
	if ak == s.cfg.AK {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creds[ak].ecsID, nil
}

// secretFor returns the SK of ak, checking a temporary credential's token and expiry.
func (s *Sim) secretFor(ak string, r *http.Request, signedHeaders []string, now time.Time) (string, *gwError) {
	if ak == s.cfg.AK {
		return s.cfg.SK, nil
	}
	s.mu.Lock()
	c, ok := s.creds[ak]
	s.mu.Unlock()
	if !ok {
		return "", authFailed("access key %s does not exist", ak)
	}
	if !now.Before(c.expiresAt) {
		return "", authFailed("the temporary access key %s expired at %s; fetch new credentials from the metadata securitykey endpoint", ak, c.expiresAt.Format(time.RFC3339))
	}
	tok := r.Header.Get(headerToken)
	if tok == "" {
		return "", authFailed("temporary access key %s needs the X-Security-Token header", ak)
	}
	if !slices.Contains(signedHeaders, strings.ToLower(headerToken)) {
		return "", authFailed("x-security-token must be a signed header")
	}
	if !hmac.Equal([]byte(tok), []byte(c.token)) {
		return "", authFailed("the security token does not belong to access key %s", ak)
	}
	return c.secret, nil
}

// issueCredential returns the ECS's current temporary credential, issuing a new
// one when there is none or when it expires within a tenth of its lifetime, as
// the real service rotates it before expiry.
func (s *Sim) issueCredential(ecsID string) tempCredential {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for ak, c := range s.creds {
		if c.ecsID != ecsID {
			continue
		}
		if c.expiresAt.Sub(now) > s.cfg.CredentialTTL/10 {
			return c
		}
		if !now.Before(c.expiresAt) {
			delete(s.creds, ak)
		}
	}
	c := tempCredential{
		ecsID:     ecsID,
		access:    randomString(20, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
		secret:    randomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
		token:     "gQpjbi1ub3J0aC00" + base64.RawURLEncoding.EncodeToString(randomBytes(192)),
		expiresAt: now.Add(s.cfg.CredentialTTL).UTC(),
	}
	s.creds[c.access] = c
	return c
}

func canonicalRequest(r *http.Request, signedHeaders []string, body []byte) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(r.URL.Path))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery))
	b.WriteByte('\n')
	for _, h := range signedHeaders {
		var values []string
		if h == "host" {
			values = []string{r.Host}
		} else {
			values = slices.Clone(r.Header.Values(h))
		}
		sort.Strings(values)
		for _, v := range values {
			b.WriteString(h + ":" + strings.TrimSpace(v) + "\n")
		}
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signedHeaders, ";"))
	b.WriteByte('\n')
	if h := r.Header.Get(headerSdkSha256); h != "" {
		b.WriteString(h)
	} else {
		sum := sha256.Sum256(body)
		b.WriteString(hex.EncodeToString(sum[:]))
	}
	return b.String()
}

func canonicalURI(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = escape(s)
	}
	u := strings.Join(segs, "/")
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}

func canonicalQuery(raw string) string {
	q, _ := url.ParseQuery(raw)
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := slices.Clone(q[k])
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, escape(k)+"="+escape(v))
		}
	}
	return strings.Join(parts, "&")
}

func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '~' || c == '.' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func stringToSign(date, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return authScheme + "\n" + date + "\n" + hex.EncodeToString(sum[:])
}

func signature(sk, sts string) string {
	m := hmac.New(sha256.New, []byte(sk))
	m.Write([]byte(sts))
	return hex.EncodeToString(m.Sum(nil))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randomString(n int, alphabet string) string {
	b := randomBytes(n)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// iamActions names the IAM action of each API route, for 403s.
var iamActions = map[string]string{
	"GET routetables":          "vpc:routeTables:list",
	"GET routetables/{id}":     "vpc:routeTables:get",
	"PUT routetables/{id}":     "vpc:routeTables:update",
	"GET quotas":               "vpc:quotas:list",
	"GET ports":                "vpc:ports:get",
	"GET ports/{id}":           "vpc:ports:get",
	"PUT ports/{id}":           "vpc:ports:update",
	"GET subnets":              "vpc:subnets:get",
	"GET vpcs/{id}":            "vpc:vpcs:get",
	"GET security-group-rules": "vpc:securityGroupRules:get",
	"GET cloudservers/{id}":    "ecs:cloudServers:get",
}

// denied returns the 403 of a route the principal (an ECS's agency, or "" for the
// permanent AK/SK) lacks the permission for, or nil.
func (s *Sim) denied(principal, route string) *apiError {
	action := iamActions[route]
	s.mu.Lock()
	deny := s.cfg.Deny
	if e := s.ecsByIDLocked(principal); principal != "" && e != nil {
		deny = e.Deny
	}
	s.mu.Unlock()
	if action == "" || !slices.Contains(deny, action) {
		return nil
	}
	return &apiError{Status: http.StatusForbidden, Code: "VPC.2201", Message: "Policy doesn't allow " + action + " to be performed."}
}

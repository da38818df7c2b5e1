package huawei

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Paths of the OpenStack-style metadata service every ECS can reach.
const (
	metaDataPath    = "/openstack/latest/meta_data.json"
	networkDataPath = "/openstack/latest/network_data.json"
	securityKeyPath = "/openstack/latest/securitykey"
	// metadataTokenPath issues a session token when the metadata service is
	// configured to require one (like IMDSv2); without that requirement it is unused.
	metadataTokenPath = "/meta-data/latest/api/token"
)

// metaData is the part of meta_data.json vpcroute reads.
type metaData struct {
	UUID             string `json:"uuid"`
	Name             string `json:"name"`
	Hostname         string `json:"hostname"`
	ProjectID        string `json:"project_id"`
	RegionID         string `json:"region_id"`
	AvailabilityZone string `json:"availability_zone"`
	Meta             struct {
		VPCID string `json:"vpc_id"`
	} `json:"meta"`
}

// networkData is the part of network_data.json vpcroute reads: the first link is
// the primary NIC and its vif_id is the port ID.
type networkData struct {
	Links []struct {
		ID    string `json:"id"`
		VifID string `json:"vif_id"`
	} `json:"links"`
}

// securityKey is the agency's temporary credential as the metadata service gives it.
type securityKey struct {
	Credential struct {
		Access        string `json:"access"`
		Secret        string `json:"secret"`
		SecurityToken string `json:"securitytoken"`
		ExpiresAt     string `json:"expires_at"`
	} `json:"credential"`
}

// errNoAgency means the ECS has no agency, so the metadata service has no
// temporary credentials to hand out.
var errNoAgency = errors.New("this ECS has no agency")

// metadataClient reads the ECS metadata service with short timeouts: it is a
// link-local service that answers in milliseconds or not at all.
type metadataClient struct {
	base    string
	http    *http.Client
	timeout time.Duration
}

func newMetadataClient(base string, timeout time.Duration) *metadataClient {
	// Never through a proxy: HTTP_PROXY set for the VPC API must not send
	// link-local metadata requests (and the agency's keys) elsewhere.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &metadataClient{
		base:    strings.TrimRight(base, "/"),
		http:    &http.Client{Timeout: timeout, Transport: tr},
		timeout: timeout,
	}
}

// statusError is an unexpected HTTP status from the metadata service.
type statusError struct {
	URL    string
	Status int
	Body   string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("GET %s: HTTP %d: %s", e.URL, e.Status, e.Body)
}

func (m *metadataClient) get(ctx context.Context, path string, header http.Header) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	url := m.base + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("metadata URL %q: %w", m.base, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{URL: url, Status: resp.StatusCode, Body: shorten(string(body), 200)}
	}
	return body, nil
}

func (m *metadataClient) metaData(ctx context.Context) (*metaData, error) {
	body, err := m.get(ctx, metaDataPath, nil)
	if err != nil {
		return nil, err
	}
	var md metaData
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, fmt.Errorf("parse %s%s: %w", m.base, metaDataPath, err)
	}
	return &md, nil
}

// primaryPortID returns the port ID of the ECS's first NIC.
func (m *metadataClient) primaryPortID(ctx context.Context) (string, error) {
	body, err := m.get(ctx, networkDataPath, nil)
	if err != nil {
		return "", err
	}
	var nd networkData
	if err := json.Unmarshal(body, &nd); err != nil {
		return "", fmt.Errorf("parse %s%s: %w", m.base, networkDataPath, err)
	}
	for _, l := range nd.Links {
		if l.VifID != "" {
			return l.VifID, nil
		}
	}
	return "", fmt.Errorf("%s%s lists no NIC with a vif_id", m.base, networkDataPath)
}

// securityKey fetches the agency's temporary credential. The returned error
// never contains the credential; a missing agency is errNoAgency.
func (m *metadataClient) securityKey(ctx context.Context) (*temporaryKey, error) {
	body, err := m.get(ctx, securityKeyPath, nil)
	var se *statusError
	if errors.As(err, &se) && se.Status == http.StatusUnauthorized && !strings.Contains(se.Body, "Agency") {
		// The metadata service wants a session token; get one and ask again.
		token, terr := m.sessionToken(ctx)
		if terr == nil {
			body, err = m.get(ctx, securityKeyPath, http.Header{"X-Metadata-Token": {token}})
		}
	}
	if errors.As(err, &se) && (se.Status == http.StatusNotFound ||
		(se.Status == http.StatusUnauthorized && strings.Contains(se.Body, "Agency"))) {
		return nil, errNoAgency
	}
	if err != nil {
		return nil, err
	}
	var sk securityKey
	if err := json.Unmarshal(body, &sk); err != nil {
		// Do not wrap the JSON error: its text can quote the document.
		return nil, fmt.Errorf("parse %s%s: not the expected credential document", m.base, securityKeyPath)
	}
	c := sk.Credential
	if c.Access == "" || c.Secret == "" {
		return nil, fmt.Errorf("%s%s returned no access key", m.base, securityKeyPath)
	}
	exp, err := parseExpiry(c.ExpiresAt)
	if err != nil {
		return nil, fmt.Errorf("%s%s: expires_at %q: %w", m.base, securityKeyPath, c.ExpiresAt, err)
	}
	return &temporaryKey{AK: c.Access, SK: c.Secret, Token: c.SecurityToken, ExpiresAt: exp}, nil
}

func (m *metadataClient) sessionToken(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, m.base+metadataTokenPath, http.NoBody)
	if err != nil {
		return "", err
	}
	req.Header.Set("X-Metadata-Token-Ttl-Seconds", "21600")
	resp, err := m.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("metadata session token: HTTP %d", resp.StatusCode)
	}
	return strings.TrimSpace(string(body)), nil
}

// parseExpiry accepts the forms the metadata service uses: RFC 3339 with or
// without fractional seconds, or the same without a zone (meaning UTC).
func parseExpiry(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.ParseInLocation("2006-01-02T15:04:05.999999999", s, time.UTC)
}

func shorten(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

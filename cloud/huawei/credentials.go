package huawei

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
)

// temporaryKey is one generation of credentials. Its String method hides the
// secrets so that a stray %v never prints them.
type temporaryKey struct {
	AK, SK, Token string
	ExpiresAt     time.Time // zero for permanent keys
}

func (k *temporaryKey) String() string { return "credential(redacted)" }

// GoString keeps %#v from printing the secrets as well.
func (k *temporaryKey) GoString() string { return k.String() }

// credentialSource hands out SDK credentials for the next request. The SDK's
// BasicCredentials is never mutated once built: each credential generation gets
// its own object, and every request builds its client around the current one,
// so a refresh cannot race with requests in flight.
type credentialSource interface {
	credentials(ctx context.Context) (*basic.Credentials, error)
	// invalidate says the service rejected the current credentials; an agency
	// source fetches new ones on the next call, a static one cannot.
	invalidate()
	// describe names where credentials come from, for error messages.
	describe() string
}

// buildCredentials makes SDK credentials that never call IAM: the project ID is
// always set, so the SDK does not look it up.
func buildCredentials(k *temporaryKey, projectID string) (*basic.Credentials, error) {
	b := basic.NewCredentialsBuilder().WithAk(k.AK).WithSk(k.SK).WithProjectId(projectID)
	if k.Token != "" {
		b = b.WithSecurityToken(k.Token)
	}
	c, err := b.SafeBuild()
	if err != nil {
		// The builder's messages name only which field is empty.
		return nil, fmt.Errorf("credentials: %w", err)
	}
	return c, nil
}

// staticCredentials are the AK/SK (and maybe token) from the settings.
type staticCredentials struct{ creds *basic.Credentials }

func (s *staticCredentials) credentials(context.Context) (*basic.Credentials, error) {
	return s.creds, nil
}
func (s *staticCredentials) invalidate() {}
func (s *staticCredentials) describe() string {
	return "HUAWEICLOUD_SDK_AK / HUAWEICLOUD_SDK_SK (and HUAWEICLOUD_SDK_SECURITY_TOKEN for a temporary key)"
}

// agencyCredentials are the ECS agency's temporary credentials from the metadata
// service, fetched again well before they expire.
type agencyCredentials struct {
	md        *metadataClient
	projectID string
	log       *slog.Logger
	now       func() time.Time

	mu        sync.Mutex // guards the fields below; held while fetching, so one fetch at a time
	current   *basic.Credentials
	expiresAt time.Time
	refreshAt time.Time
}

func newAgencyCredentials(ctx context.Context, md *metadataClient, projectID string, log *slog.Logger) (*agencyCredentials, error) {
	a := &agencyCredentials{md: md, projectID: projectID, log: log, now: time.Now}
	if _, err := a.credentials(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// refreshPoint is when to fetch a new key: at two thirds of its lifetime, and no
// later than ten minutes before it expires, so that a slow or failing metadata
// service leaves time to try again while the old key still works.
func refreshPoint(fetched, expires time.Time) time.Time {
	life := expires.Sub(fetched)
	if life <= 0 {
		return fetched
	}
	at := fetched.Add(life * 2 / 3)
	if tenBefore := expires.Add(-10 * time.Minute); tenBefore.Before(at) && tenBefore.After(fetched) {
		at = tenBefore
	}
	return at
}

func (a *agencyCredentials) credentials(ctx context.Context) (*basic.Credentials, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if a.current != nil && now.Before(a.refreshAt) {
		return a.current, nil
	}
	key, err := a.md.securityKey(ctx)
	if err != nil {
		if a.current != nil && now.Before(a.expiresAt) {
			// The old key still works: keep going and try again on the next call.
			a.log.Warn("could not refresh the ECS agency credentials; using the current ones until they expire",
				"expires_at", a.expiresAt, "error", err)
			return a.current, nil
		}
		if errors.Is(err, errNoAgency) {
			return nil, fmt.Errorf("no cloud credentials: %w; set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK, "+
				"or give the ECS an agency: ECS console > the instance > Management Information > Agency, "+
				"with an agency for ECS that has VPC permissions (e.g. VPC FullAccess, or vpc:routeTables:get/list/update, "+
				"vpc:ports:get/update, vpc:quotas:list)", err)
		}
		return nil, fmt.Errorf("fetch the ECS agency credentials from the metadata service: %w", err)
	}
	creds, err := buildCredentials(key, a.projectID)
	if err != nil {
		return nil, err
	}
	a.current = creds
	a.expiresAt = key.ExpiresAt
	a.refreshAt = refreshPoint(now, key.ExpiresAt)
	a.log.Debug("fetched ECS agency credentials", "expires_at", key.ExpiresAt, "refresh_at", a.refreshAt)
	return creds, nil
}

func (a *agencyCredentials) invalidate() {
	a.mu.Lock()
	a.refreshAt = time.Time{}
	a.mu.Unlock()
}

func (a *agencyCredentials) describe() string {
	return "the ECS agency's temporary credentials (metadata " + securityKeyPath + ")"
}

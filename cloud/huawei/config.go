// Package huawei implements cloud.VPC on Huawei Cloud: it routes container subnets
// to this ECS through the VPC route table (the v1 routetables API), reading its
// identity and temporary credentials from the ECS metadata service.
//
// All calls go through the official SDK (huaweicloud-sdk-go-v3, services/vpc/v2).
// Retries, timeouts and credential refresh are this package's own, so that a
// Docker plugin request either completes or fails with a clear message well
// inside Docker's plugin timeout.
package huawei

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// DefaultMetadataURL is the ECS metadata service every Huawei Cloud ECS can reach.
const DefaultMetadataURL = "http://169.254.169.254"

// Src/dst check modes for Config.SrcDstCheck.
const (
	// SrcDstCheckWarn only logs a warning when the check is on (the default):
	// changing a port is a decision an operator may want to make themselves.
	SrcDstCheckWarn = "warn"
	// SrcDstCheckDisable turns the check off on the primary port at start-up by
	// adding the allowed address pair 1.1.1.1/0, Huawei's documented switch.
	SrcDstCheckDisable = "disable"
)

// Config says how to reach the VPC API and who this host is. Every identity field
// left empty is read from the ECS metadata service.
type Config struct {
	// MetadataURL is the ECS metadata service (VPCROUTE_METADATA_URL), default
	// DefaultMetadataURL.
	MetadataURL string
	// InstanceID, ProjectID, Region, VPCID and PortID override what the metadata
	// service says (VPCROUTE_INSTANCE_ID, VPCROUTE_PROJECT_ID, VPCROUTE_REGION,
	// VPCROUTE_VPC_ID, VPCROUTE_PORT_ID). With all of them and AK/SK given, the
	// metadata service is not needed at all.
	InstanceID, ProjectID, Region, VPCID, PortID string
	// RouteTableID pins the route table to write to (VPCROUTE_ROUTE_TABLE_ID).
	// Empty: the table associated with this ECS's subnet, else the VPC's default.
	RouteTableID string
	// VPCEndpoint overrides the VPC API endpoint (VPCROUTE_VPC_ENDPOINT), e.g.
	// https://vpc.cn-north-4.myhuaweicloud.com. Default: the SDK's endpoint for Region.
	VPCEndpoint string
	// ECSEndpoint overrides the ECS API endpoint (VPCROUTE_ECS_ENDPOINT), read only
	// by a takeover to learn whether the ECS holding a subnet runs. Default: the
	// SDK's endpoint for Region.
	ECSEndpoint string
	// AK, SK and SecurityToken are a permanent or temporary access key
	// (HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK, HUAWEICLOUD_SDK_SECURITY_TOKEN).
	// Empty: the ECS agency's temporary credentials from the metadata service,
	// refreshed before they expire.
	AK, SK, SecurityToken string
	// SrcDstCheck is SrcDstCheckWarn (default) or SrcDstCheckDisable
	// (VPCROUTE_SRC_DST_CHECK).
	SrcDstCheck string
	// Hostname is shown in route descriptions so that people reading the console
	// know which host a route is for. Default: the metadata's name, else os.Hostname.
	Hostname string
	// VPCCIDRs overrides the VPC's own ranges (VPCROUTE_VPC_CIDRS). Default: the
	// destinations of the local routes (the VPC's subnets).
	VPCCIDRs []netip.Prefix
	// Logger receives warnings and progress; nil means slog.Default().
	Logger *slog.Logger
	// Timeouts shortens the bounds of every cloud interaction for tests that
	// scale Docker's 30 s down (internal/chaos); zero fields keep the defaults.
	Timeouts Timeouts
}

// Timeouts are the bounds of cloud interactions a test may shorten.
type Timeouts struct {
	// Operation bounds one Claim or Release, retries included (default 8 s);
	// Attempt one request (3 s); Settle is how long a write the API did not
	// answer may still land (2 min).
	Operation, Attempt, Settle time.Duration
}

// apply puts the non-zero fields of o into t.
func (o Timeouts) apply(t *timing) {
	if o.Operation > 0 {
		t.opTimeout = o.Operation
	}
	if o.Attempt > 0 {
		t.attemptTimeout = o.Attempt
	}
	if o.Settle > 0 {
		t.settleFor = o.Settle
	}
}

// LogValue keeps the credentials out of logs, should the settings ever be logged.
func (c Config) LogValue() slog.Value {
	redact := func(s string) string {
		if s == "" {
			return ""
		}
		return "***"
	}
	return slog.GroupValue(
		slog.String("metadata_url", c.MetadataURL), slog.String("instance_id", c.InstanceID),
		slog.String("project_id", c.ProjectID), slog.String("region", c.Region), slog.String("vpc_id", c.VPCID),
		slog.String("port_id", c.PortID), slog.String("route_table_id", c.RouteTableID),
		slog.String("vpc_endpoint", c.VPCEndpoint), slog.String("ecs_endpoint", c.ECSEndpoint), slog.String("src_dst_check", c.SrcDstCheck),
		slog.String("ak", redact(c.AK)), slog.String("sk", redact(c.SK)), slog.String("security_token", redact(c.SecurityToken)),
	)
}

// String keeps the credentials out of %v and %+v.
func (c Config) String() string {
	c.AK, c.SK, c.SecurityToken = "***", "***", "***"
	c.Logger = nil
	type plain Config
	return fmt.Sprintf("%+v", plain(c))
}

// timing holds the durations that bound every cloud interaction. They are not
// user settings: Docker gives a plugin call 30 s at most, and each operation
// must fail with a readable error well before that.
type timing struct {
	opTimeout       time.Duration // one public operation, retries included
	attemptTimeout  time.Duration // one HTTP request to the VPC API
	backoffBase     time.Duration // first retry delay (before jitter)
	backoffMax      time.Duration // cap of one retry delay
	metadataTimeout time.Duration // one request to the metadata service
	tableListTTL    time.Duration // how long the list of the VPC's tables is trusted
	maxClaimRounds  int           // read-pick-write rounds before giving up on races
	settleFor       time.Duration // how long a write the API did not answer may still land
}

func defaultTiming() timing {
	return timing{
		opTimeout:       8 * time.Second,
		attemptTimeout:  3 * time.Second,
		backoffBase:     100 * time.Millisecond,
		backoffMax:      1500 * time.Millisecond,
		metadataTimeout: 2 * time.Second,
		tableListTTL:    5 * time.Minute,
		maxClaimRounds:  16,
		settleFor:       2 * time.Minute,
	}
}

func (c *Config) validate() error {
	switch c.SrcDstCheck {
	case "", SrcDstCheckWarn, SrcDstCheckDisable:
	default:
		return fmt.Errorf("VPCROUTE_SRC_DST_CHECK=%q is not valid: use %q or %q", c.SrcDstCheck, SrcDstCheckWarn, SrcDstCheckDisable)
	}
	if (c.AK == "") != (c.SK == "") {
		return fmt.Errorf("only one of HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK is set: give both, or neither to use the ECS agency's credentials")
	}
	for _, p := range c.VPCCIDRs {
		if !p.IsValid() || !p.Addr().Is4() {
			return fmt.Errorf("VPCROUTE_VPC_CIDRS holds %q, which is not an IPv4 prefix", p)
		}
	}
	return nil
}

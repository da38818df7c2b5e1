// Package config reads vpcroute's settings from the environment and validates them
// before anything is touched, so that a bad value stops start-up with a message that
// names the setting, the value and what is allowed.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vpcroute/vpcroute/cloud/huawei"
	"github.com/vpcroute/vpcroute/dockerapi"
)

// Cloud modes.
const (
	CloudHuawei = "huaweicloud"
	CloudNone   = "none"
)

// Settings are vpcroute's validated settings.
type Settings struct {
	Cloud      string
	Pool       netip.Prefix
	SubnetSize int
	// HostBlock is VPCROUTE_HOST_BLOCK: the prefix length of the blocks this ECS
	// claims with one route each and carves networks from; 0 means off (a route
	// per network). BlockGrace is how long an empty block stays claimed.
	HostBlock     int
	BlockGrace    time.Duration
	ForwardAccept bool // VPCROUTE_FORWARD=accept: FORWARD policy ACCEPT, as the guide does
	Masquerade    bool
	VPCCIDRs      []netip.Prefix // empty: from the cloud (or the uplink in none mode)
	StateDir      string
	LogLevel      slog.Level
	LogFormat     string // text or json
	Socket        string
	Hostname      string
	// DriverName is how users name the plugin in -d and --ipam-driver: error hints
	// say it as they installed it.
	DriverName string
	// DockerHost is Docker's API, read to hold vpcroute's records against
	// Docker's networks; empty when VPCROUTE_DOCKER_HOST=none.
	DockerHost string
	// KernelInterval, CloudInterval and OrphanGrace pace the reconcile loop.
	KernelInterval, CloudInterval, OrphanGrace time.Duration

	// Huawei is handed to cloud/huawei as it is; main adds the host name, the
	// VPC ranges and the logger.
	Huawei huawei.Config
}

// Setting describes one environment setting, for validation and documentation.
type Setting struct {
	Name    string
	Default string
	Allowed string // shown in errors
	// Packaging settings belong to how vpcroute is installed (the managed plugin's
	// socket and state mount): `docker plugin set` cannot change them.
	Packaging bool
	// PluginDefault is the managed plugin's default (plugin/config.json) where it
	// differs from the host service's.
	PluginDefault string
}

// Names of every setting, in the order the README documents them.
var names = []Setting{
	{"VPCROUTE_CLOUD", CloudHuawei, "huaweicloud or none", false, ""},
	{"VPCROUTE_POOL", "10.0.0.0/8", "an IPv4 CIDR such as 10.0.0.0/8", false, ""},
	{"VPCROUTE_SUBNET_SIZE", "24", "a prefix length from 16 to 28", false, ""},
	{"VPCROUTE_HOST_BLOCK", "off", "off, or a prefix length from 16 to 28 no longer than VPCROUTE_SUBNET_SIZE, such as 20", false, ""},
	{"VPCROUTE_BLOCK_GRACE", "10m", "a duration from 0s to 24h, such as 10m", false, ""},
	{"VPCROUTE_FORWARD", "rules", "rules or accept", false, ""},
	{"VPCROUTE_MASQUERADE", "true", "true or false", false, ""},
	{"VPCROUTE_VPC_CIDRS", "", "comma-separated IPv4 CIDRs", false, ""},
	{"VPCROUTE_STATE_DIR", "/var/lib/vpcroute", "an absolute path", true, ""},
	{"VPCROUTE_LOG_LEVEL", "info", "debug, info, warn or error", false, ""},
	{"VPCROUTE_LOG_FORMAT", "text", "text or json", false, ""},
	{"VPCROUTE_SOCKET", "/run/docker/plugins/vpcroute.sock", "an absolute path", true, ""},
	{"VPCROUTE_HOSTNAME", "", "a name for this host in route descriptions", false, ""},
	{"VPCROUTE_DRIVER_NAME", "vpcroute", "the name -d and --ipam-driver give the plugin, such as vpcroute or vpcroute:latest", false, "vpcroute:latest"},
	{"VPCROUTE_DOCKER_HOST", dockerapi.DefaultHost, "unix:///path/to/docker.sock, tcp://host:port, or none", false, ""},
	{"VPCROUTE_KERNEL_INTERVAL", "30s", "a duration from 1s to 1h, such as 30s", false, ""},
	{"VPCROUTE_CLOUD_INTERVAL", "5m", "a duration from 5s to 24h, such as 5m", false, ""},
	{"VPCROUTE_ORPHAN_GRACE", "10m", "a duration from 0s to 24h, such as 10m", false, ""},
	{"VPCROUTE_METADATA_URL", "http://169.254.169.254", "an http(s) URL", false, ""},
	{"VPCROUTE_INSTANCE_ID", "", "the ECS ID", false, ""},
	{"VPCROUTE_PROJECT_ID", "", "the project ID", false, ""},
	{"VPCROUTE_REGION", "", "a region such as ap-southeast-1", false, ""},
	{"VPCROUTE_VPC_ID", "", "the VPC ID", false, ""},
	{"VPCROUTE_PORT_ID", "", "the primary NIC's port ID", false, ""},
	{"VPCROUTE_ROUTE_TABLE_ID", "", "a route table ID", false, ""},
	{"VPCROUTE_VPC_ENDPOINT", "", "an https URL", false, ""},
	{"VPCROUTE_ECS_ENDPOINT", "", "an https URL", false, ""},
	{"VPCROUTE_SRC_DST_CHECK", "warn", "warn or disable", false, ""},
}

// Default returns a setting's default.
func Default(name string) string {
	for _, s := range names {
		if s.Name == name {
			return s.Default
		}
	}
	return ""
}

// All returns the documented settings, for the README and plugin/config.json checks.
func All() []Setting { return append([]Setting(nil), names...) }

// FromEnv reads and validates the settings. getenv is os.Getenv in production.
func FromEnv(getenv func(string) string) (Settings, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		for _, s := range names {
			if s.Name == name {
				return s.Default
			}
		}
		return ""
	}
	var errs []error
	bad := func(name, value string) {
		allowed := ""
		for _, s := range names {
			if s.Name == name {
				allowed = s.Allowed
			}
		}
		errs = append(errs, fmt.Errorf("setting %s=%q is not valid: use %s", name, value, allowed))
	}
	var s Settings

	switch v := strings.ToLower(get("VPCROUTE_CLOUD")); v {
	case CloudHuawei, CloudNone:
		s.Cloud = v
	default:
		bad("VPCROUTE_CLOUD", v)
	}
	if p, err := netip.ParsePrefix(get("VPCROUTE_POOL")); err != nil || !p.Addr().Is4() || p.Masked() != p {
		bad("VPCROUTE_POOL", get("VPCROUTE_POOL"))
	} else {
		s.Pool = p
	}
	if n, err := strconv.Atoi(get("VPCROUTE_SUBNET_SIZE")); err != nil || n < 16 || n > 28 {
		bad("VPCROUTE_SUBNET_SIZE", get("VPCROUTE_SUBNET_SIZE"))
	} else {
		s.SubnetSize = n
		if s.Pool.IsValid() && n < s.Pool.Bits() {
			errs = append(errs, fmt.Errorf("setting VPCROUTE_SUBNET_SIZE=%d is larger than VPCROUTE_POOL=%s: use a prefix length of at least %d or a larger pool", n, s.Pool, s.Pool.Bits()))
		}
	}
	switch v := strings.ToLower(get("VPCROUTE_HOST_BLOCK")); v {
	case "off", "0", "false", "none":
	default:
		n, err := strconv.Atoi(strings.TrimPrefix(v, "/"))
		switch {
		case err != nil || n < 16 || n > 28:
			bad("VPCROUTE_HOST_BLOCK", v)
		case s.SubnetSize != 0 && n > s.SubnetSize:
			errs = append(errs, fmt.Errorf("setting VPCROUTE_HOST_BLOCK=%d is smaller than a network (VPCROUTE_SUBNET_SIZE=%d): use a block of /%d or larger, such as 20", n, s.SubnetSize, s.SubnetSize))
		case s.Pool.IsValid() && n < s.Pool.Bits():
			errs = append(errs, fmt.Errorf("setting VPCROUTE_HOST_BLOCK=%d is larger than VPCROUTE_POOL=%s: use a prefix length of at least %d or a larger pool", n, s.Pool, s.Pool.Bits()))
		default:
			s.HostBlock = n
		}
	}
	switch v := strings.ToLower(get("VPCROUTE_FORWARD")); v {
	case "rules":
	case "accept":
		s.ForwardAccept = true
	default:
		bad("VPCROUTE_FORWARD", v)
	}
	if b, err := strconv.ParseBool(get("VPCROUTE_MASQUERADE")); err != nil {
		bad("VPCROUTE_MASQUERADE", get("VPCROUTE_MASQUERADE"))
	} else {
		s.Masquerade = b
	}
	if v := get("VPCROUTE_VPC_CIDRS"); v != "" {
		for _, f := range strings.Split(v, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(f))
			if err != nil || !p.Addr().Is4() {
				bad("VPCROUTE_VPC_CIDRS", v)
				break
			}
			s.VPCCIDRs = append(s.VPCCIDRs, p.Masked())
		}
	}
	for _, name := range []string{"VPCROUTE_STATE_DIR", "VPCROUTE_SOCKET"} {
		if v := get(name); !strings.HasPrefix(v, "/") {
			bad(name, v)
		}
	}
	// These three are always usable, bad or not: the plugin serves, logs and keeps
	// its state somewhere even when it must answer that a setting is wrong.
	s.StateDir, s.Socket = get("VPCROUTE_STATE_DIR"), get("VPCROUTE_SOCKET")
	if !strings.HasPrefix(s.StateDir, "/") {
		s.StateDir = Default("VPCROUTE_STATE_DIR")
	}
	if !strings.HasPrefix(s.Socket, "/") {
		s.Socket = Default("VPCROUTE_SOCKET")
	}
	if err := s.LogLevel.UnmarshalText([]byte(get("VPCROUTE_LOG_LEVEL"))); err != nil {
		bad("VPCROUTE_LOG_LEVEL", get("VPCROUTE_LOG_LEVEL"))
		s.LogLevel = slog.LevelInfo
	}
	switch s.LogFormat = strings.ToLower(get("VPCROUTE_LOG_FORMAT")); s.LogFormat {
	case "text", "json":
	default:
		bad("VPCROUTE_LOG_FORMAT", s.LogFormat)
		s.LogFormat = "text"
	}
	s.DriverName = get("VPCROUTE_DRIVER_NAME")
	if s.DriverName == "" || strings.ContainsAny(s.DriverName, " \t\"'`") {
		bad("VPCROUTE_DRIVER_NAME", s.DriverName)
		s.DriverName = Default("VPCROUTE_DRIVER_NAME")
	}
	s.Hostname = get("VPCROUTE_HOSTNAME")
	if strings.ContainsAny(s.Hostname, "<>") || len(s.Hostname) > 64 {
		bad("VPCROUTE_HOSTNAME", s.Hostname)
	}

	switch v := get("VPCROUTE_DOCKER_HOST"); {
	case strings.EqualFold(v, "none"):
	case strings.HasPrefix(v, "unix:///") || strings.HasPrefix(v, "/") || strings.HasPrefix(v, "tcp://"):
		s.DockerHost = v
	default:
		bad("VPCROUTE_DOCKER_HOST", v)
	}
	duration := func(name string, lo, hi time.Duration) time.Duration {
		d, err := time.ParseDuration(get(name))
		if err != nil || d < lo || d > hi {
			bad(name, get(name))
		}
		return d
	}
	s.KernelInterval = duration("VPCROUTE_KERNEL_INTERVAL", time.Second, time.Hour)
	s.CloudInterval = duration("VPCROUTE_CLOUD_INTERVAL", 5*time.Second, 24*time.Hour)
	s.OrphanGrace = duration("VPCROUTE_ORPHAN_GRACE", 0, 24*time.Hour)
	s.BlockGrace = duration("VPCROUTE_BLOCK_GRACE", 0, 24*time.Hour)

	h := &s.Huawei
	h.MetadataURL = strings.TrimRight(get("VPCROUTE_METADATA_URL"), "/")
	if !strings.HasPrefix(h.MetadataURL, "http://") && !strings.HasPrefix(h.MetadataURL, "https://") {
		bad("VPCROUTE_METADATA_URL", h.MetadataURL)
	}
	h.InstanceID = get("VPCROUTE_INSTANCE_ID")
	h.ProjectID = get("VPCROUTE_PROJECT_ID")
	h.Region = get("VPCROUTE_REGION")
	h.VPCID = get("VPCROUTE_VPC_ID")
	h.PortID = get("VPCROUTE_PORT_ID")
	h.RouteTableID = get("VPCROUTE_ROUTE_TABLE_ID")
	h.VPCEndpoint = strings.TrimRight(get("VPCROUTE_VPC_ENDPOINT"), "/")
	if h.VPCEndpoint != "" && !strings.HasPrefix(h.VPCEndpoint, "http://") && !strings.HasPrefix(h.VPCEndpoint, "https://") {
		bad("VPCROUTE_VPC_ENDPOINT", h.VPCEndpoint)
	}
	h.ECSEndpoint = strings.TrimRight(get("VPCROUTE_ECS_ENDPOINT"), "/")
	if h.ECSEndpoint != "" && !strings.HasPrefix(h.ECSEndpoint, "http://") && !strings.HasPrefix(h.ECSEndpoint, "https://") {
		bad("VPCROUTE_ECS_ENDPOINT", h.ECSEndpoint)
	}
	switch v := strings.ToLower(get("VPCROUTE_SRC_DST_CHECK")); v {
	case "warn", "disable":
		h.SrcDstCheck = v
	default:
		bad("VPCROUTE_SRC_DST_CHECK", v)
	}
	// Credentials are never echoed back, not even in errors.
	h.AK = strings.TrimSpace(getenv("HUAWEICLOUD_SDK_AK"))
	h.SK = strings.TrimSpace(getenv("HUAWEICLOUD_SDK_SK"))
	h.SecurityToken = strings.TrimSpace(getenv("HUAWEICLOUD_SDK_SECURITY_TOKEN"))
	if (h.AK == "") != (h.SK == "") {
		errs = append(errs, errors.New("settings HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK must be given together (or neither, to use the ECS agency's temporary credentials)"))
	}
	return s, errors.Join(errs...)
}

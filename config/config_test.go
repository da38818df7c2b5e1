package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	s, err := FromEnv(env())
	if err != nil {
		t.Fatal(err)
	}
	if s.Cloud != CloudHuawei || s.Pool.String() != "10.0.0.0/8" || s.SubnetSize != 24 || s.ForwardAccept || !s.Masquerade ||
		s.StateDir != "/var/lib/vpcroute" || s.Socket != "/run/docker/plugins/vpcroute.sock" || s.Huawei.MetadataURL != "http://169.254.169.254" || s.Huawei.SrcDstCheck != "warn" ||
		s.DockerHost != "unix:///run/docker.sock" || s.KernelInterval != 30*time.Second || s.CloudInterval != 5*time.Minute || s.OrphanGrace != 10*time.Minute {
		t.Fatalf("defaults = %+v", s)
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		kv   []string
		want string // "" = valid
	}{
		{[]string{"VPCROUTE_CLOUD", "none"}, ""},
		{[]string{"VPCROUTE_CLOUD", "aws"}, "VPCROUTE_CLOUD=\"aws\" is not valid: use huaweicloud or none"},
		{[]string{"VPCROUTE_POOL", "10.0.0.1/8"}, "VPCROUTE_POOL"},
		{[]string{"VPCROUTE_POOL", "fd00::/8"}, "VPCROUTE_POOL"},
		{[]string{"VPCROUTE_SUBNET_SIZE", "30"}, "from 16 to 28"},
		{[]string{"VPCROUTE_POOL", "10.0.0.0/24", "VPCROUTE_SUBNET_SIZE", "20"}, "larger than VPCROUTE_POOL"},
		{[]string{"VPCROUTE_FORWARD", "accept"}, ""},
		{[]string{"VPCROUTE_FORWARD", "drop"}, "rules or accept"},
		{[]string{"VPCROUTE_MASQUERADE", "yes please"}, "true or false"},
		{[]string{"VPCROUTE_VPC_CIDRS", "192.168.0.0/16, 172.16.0.0/12"}, ""},
		{[]string{"VPCROUTE_VPC_CIDRS", "192.168.0.0/16,nope"}, "VPCROUTE_VPC_CIDRS"},
		{[]string{"VPCROUTE_STATE_DIR", "relative"}, "absolute path"},
		{[]string{"VPCROUTE_LOG_LEVEL", "chatty"}, "debug, info, warn or error"},
		{[]string{"VPCROUTE_METADATA_URL", "169.254.169.254"}, "http(s) URL"},
		{[]string{"VPCROUTE_SRC_DST_CHECK", "off"}, "warn or disable"},
		{[]string{"HUAWEICLOUD_SDK_AK", "AK"}, "must be given together"},
		{[]string{"VPCROUTE_DOCKER_HOST", "none"}, ""},
		{[]string{"VPCROUTE_DOCKER_HOST", "/var/run/docker.sock"}, ""},
		{[]string{"VPCROUTE_DOCKER_HOST", "tcp://10.0.0.1:2375"}, ""},
		{[]string{"VPCROUTE_DOCKER_HOST", "docker.sock"}, "unix:///path/to/docker.sock"},
		{[]string{"VPCROUTE_KERNEL_INTERVAL", "10s"}, ""},
		{[]string{"VPCROUTE_KERNEL_INTERVAL", "100ms"}, "from 1s to 1h"},
		{[]string{"VPCROUTE_KERNEL_INTERVAL", "often"}, "from 1s to 1h"},
		{[]string{"VPCROUTE_CLOUD_INTERVAL", "1s"}, "from 5s to 24h"},
		{[]string{"VPCROUTE_ORPHAN_GRACE", "0s"}, ""},
		{[]string{"VPCROUTE_ORPHAN_GRACE", "-1m"}, "from 0s to 24h"},
		{[]string{"VPCROUTE_LOG_FORMAT", "json"}, ""},
		{[]string{"VPCROUTE_LOG_FORMAT", "xml"}, "text or json"},
	}
	for _, tt := range tests {
		_, err := FromEnv(env(tt.kv...))
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%v: err = %v; want %q", tt.kv, err, tt.want)
		}
	}
}

// A bad setting still leaves the plugin a socket, a state directory and a log level.
func TestBadSettingsKeepWhatServingNeeds(t *testing.T) {
	s, err := FromEnv(env("VPCROUTE_SOCKET", "relative.sock", "VPCROUTE_STATE_DIR", "state", "VPCROUTE_LOG_LEVEL", "loud", "VPCROUTE_POOL", "banana"))
	if err == nil {
		t.Fatal("bad settings accepted")
	}
	if s.Socket != "/run/docker/plugins/vpcroute.sock" || s.StateDir != "/var/lib/vpcroute" || s.LogLevel != slog.LevelInfo {
		t.Fatalf("settings after errors = socket %q state %q level %v; want the defaults", s.Socket, s.StateDir, s.LogLevel)
	}
	for _, name := range []string{"VPCROUTE_SOCKET", "VPCROUTE_STATE_DIR", "VPCROUTE_LOG_LEVEL", `VPCROUTE_POOL="banana"`} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	// Only one of the pair given: the error names the settings, never the values.
	for _, kv := range [][]string{{"HUAWEICLOUD_SDK_SK", "super-secret-sk"}, {"HUAWEICLOUD_SDK_AK", "super-secret-sk"}} {
		_, err := FromEnv(env(kv[0], kv[1], "VPCROUTE_CLOUD", "bad"))
		if err == nil || !strings.Contains(err.Error(), "HUAWEICLOUD_SDK_SK") || strings.Contains(err.Error(), "super-secret-sk") {
			t.Fatalf("error %v: want the setting named, not its value", err)
		}
	}
}

// The managed plugin must let users set every setting.
func TestPluginConfigListsEverySetting(t *testing.T) {
	raw, err := os.ReadFile("../plugin/config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Env []struct {
			Name     string
			Settable []string
		}
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range cfg.Env {
		if len(e.Settable) == 1 && e.Settable[0] == "value" {
			got[e.Name] = true
		}
	}
	want := []string{"HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_SECURITY_TOKEN"}
	for _, s := range All() {
		if s.Packaging {
			if got[s.Name] {
				t.Errorf("plugin/config.json lets `docker plugin set` change %s, which the packaging owns", s.Name)
			}
			continue
		}
		want = append(want, s.Name)
	}
	sort.Strings(want)
	for _, n := range want {
		if !got[n] {
			t.Errorf("plugin/config.json does not make %s settable", n)
		}
	}
}

// The README's settings table documents every setting.
func TestREADMEListsEverySetting(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Skip("no README.md yet")
	}
	for _, s := range All() {
		if !strings.Contains(string(raw), "`"+s.Name+"`") {
			t.Errorf("README.md does not document %s", s.Name)
		}
	}
}

func TestSettingsNeverPrintCredentials(t *testing.T) {
	s, err := FromEnv(env("HUAWEICLOUD_SDK_AK", "AKVISIBLE", "HUAWEICLOUD_SDK_SK", "sk-secret-value", "HUAWEICLOUD_SDK_SECURITY_TOKEN", "token-secret-value"))
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("settings", "huawei", s.Huawei)
	for _, out := range []string{logged.String(), fmt.Sprintf("%v %+v %s", s, s, s.Huawei)} {
		for _, secret := range []string{"AKVISIBLE", "sk-secret-value", "token-secret-value"} {
			if strings.Contains(out, secret) {
				t.Errorf("settings printed %q:\n%s", secret, out)
			}
		}
	}
}

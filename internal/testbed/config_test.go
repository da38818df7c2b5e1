package testbed

import (
	"strings"
	"testing"
)

func TestConfigDefaultsAndValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; empty = valid
		check   func(t *testing.T, c Config)
	}{
		{name: "zero value", cfg: Config{}, check: func(t *testing.T, c Config) {
			if c.Prefix != "vr" || c.ECSCount != 2 || c.StateDir != "/var/lib/vr-bed" || c.Busybox != "/bin/busybox" || c.Docker != "/usr/bin/docker" {
				t.Errorf("defaults = %+v", c)
			}
		}},
		{name: "prefix names state dir", cfg: Config{Prefix: "e2e1"}, check: func(t *testing.T, c Config) {
			if c.StateDir != "/var/lib/e2e1-bed" {
				t.Errorf("StateDir = %q, want /var/lib/e2e1-bed", c.StateDir)
			}
		}},
		{name: "state dir cleaned", cfg: Config{StateDir: "/var/lib/x-bed/"}, check: func(t *testing.T, c Config) {
			if c.StateDir != "/var/lib/x-bed" {
				t.Errorf("StateDir = %q", c.StateDir)
			}
		}},
		{name: "three ECSs", cfg: Config{ECSCount: 3}},
		{name: "too many ECSs", cfg: Config{ECSCount: 4}, wantErr: "choose 1 to 3"},
		{name: "negative ECSs", cfg: Config{ECSCount: -1}, wantErr: "choose 1 to 3"},
		{name: "prefix with dash", cfg: Config{Prefix: "v-r"}, wantErr: "lower-case"},
		{name: "prefix upper case", cfg: Config{Prefix: "VR"}, wantErr: "lower-case"},
		{name: "prefix too long", cfg: Config{Prefix: "abcdefghi"}, wantErr: "lower-case"},
		{name: "relative state dir", cfg: Config{StateDir: "bed"}, wantErr: "absolute"},
		{name: "state dir is root", cfg: Config{StateDir: "/"}, wantErr: "too close to /"},
		{name: "state dir top level", cfg: Config{StateDir: "/var"}, wantErr: "too close to /"},
		{name: "socket path too long", cfg: Config{StateDir: "/var/lib/" + strings.Repeat("x", 90)}, wantErr: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.cfg.withDefaults()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("withDefaults() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("withDefaults() error = %v", err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestNames(t *testing.T) {
	if got := ecsIP(1).String(); got != "192.168.0.2" {
		t.Errorf("ecsIP(1) = %s, want the guide's 192.168.0.2", got)
	}
	if got := ecsIP(2).String(); got != "192.168.0.3" {
		t.Errorf("ecsIP(2) = %s, want the guide's 192.168.0.3", got)
	}
	re := bedNetnsRE("vr")
	for name, want := range map[string]bool{
		"vr-vpc": true, "vr-net": true, "vr-ecs1": true, "vr-ecs3": true,
		"vr-ecs": false, "vr-other": false, "vrx-ecs1": false, "x-vr-ecs1": false, "vr-ecs1-x": false,
	} {
		if got := re.MatchString(name); got != want {
			t.Errorf("bed netns %q matched = %v, want %v", name, got, want)
		}
	}
}

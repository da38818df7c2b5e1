//go:build linux

package testbed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCgroupRE(t *testing.T) {
	re := cgroupRE("vr")
	tests := []struct {
		name, cgroup string
		want         bool
	}{
		{"v1 container", "12:pids:/vr-ecs1/0123abcd\n11:memory:/vr-ecs1/0123abcd\n", true},
		{"v1 named hierarchy", "1:name=systemd:/vr-ecs2/abc\n", true},
		{"v2 container", "0::/vr-ecs3/abc\n", true},
		{"parent itself", "0::/vr-ecs1\n", true},
		{"root engine container", "12:pids:/docker/0123abcd\n", false},
		{"other prefix", "12:pids:/vrx-ecs1/abc\n", false},
		{"nested elsewhere", "12:pids:/user.slice/vr-ecs1/abc\n", false},
		{"similar name", "0::/vr-ecs1x/abc\n", false},
		{"host process", "0::/\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := re.MatchString(tt.cgroup); got != tt.want {
				t.Errorf("cgroupRE matched %q = %v, want %v", tt.cgroup, got, tt.want)
			}
		})
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/var/lib/vr-bed`:          "/var/lib/vr-bed",
		`/var/lib/a\040b`:          "/var/lib/a b",
		`/x\011y\134z`:             "/x\ty\\z",
		`/trailing\04`:             `/trailing\04`,
		`/var/lib/vr-bed/ecs1\040`: "/var/lib/vr-bed/ecs1 ",
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRemoveStateDirOnlyRemovesMarkedDirs(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		if err := removeStateDir(filepath.Join(t.TempDir(), "gone")); err != nil {
			t.Errorf("removeStateDir(missing) = %v, want nil", err)
		}
	})
	t.Run("foreign, not empty", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := removeStateDir(dir); err == nil || !strings.Contains(err.Error(), "not removing") {
			t.Errorf("removeStateDir(unmarked) = %v, want a refusal", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "precious")); err != nil {
			t.Errorf("a file of an unmarked directory was removed: %v", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "empty")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := removeStateDir(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("empty state dir still there: %v", err)
		}
	})
	t.Run("marked", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range []string{markerFile, "ecs1/data/x"} {
			p := filepath.Join(dir, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := removeStateDir(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("marked state dir still there: %v", err)
		}
	})
}

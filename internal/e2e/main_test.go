//go:build linux

// Package e2e runs vpcroute against real Docker Engines in test beds built by
// internal/testbed: real kernels, real dockerd, real iptables, and (for the cloud
// scenarios) the real Huawei SDK against the project's emulator.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vpcroute/vpcroute/internal/testbed"
)

// vpcrouteBin is the plugin binary built once for the whole package.
var vpcrouteBin string

// skipReason is set when this machine cannot run the end-to-end tests.
var skipReason string

func TestMain(m *testing.M) {
	switch {
	case os.Geteuid() != 0:
		skipReason = "needs root: the tests build network namespaces and run dockerd"
	case !haveTool("/usr/sbin/dockerd", "dockerd"):
		skipReason = "needs dockerd (apt-get install docker.io)"
	}
	dir, err := os.MkdirTemp("", "vpcroute-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if skipReason == "" {
		vpcrouteBin = filepath.Join(dir, "vpcroute")
		build := exec.Command("go", "build", "-o", vpcrouteBin, "github.com/vpcroute/vpcroute")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build vpcroute: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func haveTool(paths ...string) bool {
	for _, p := range paths {
		if _, err := exec.LookPath(p); err == nil {
			return true
		}
	}
	return false
}

func needBed(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

// bedPrefix names a test's bed. On the second Docker release's run (a Debian 13 root
// in VPCROUTE_BED_ROOT) it ends in "n", so that both runs can share the machine at the
// same time (make e2e-all).
func bedPrefix(p string) string {
	if os.Getenv(testbed.RootEnv) != "" {
		return p + "n"
	}
	return p
}

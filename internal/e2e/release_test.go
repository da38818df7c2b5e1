//go:build linux

package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/vpcroute/vpcroute/internal/cloudbed"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// TestDockerRelease says which Docker, iptables and Compose the suite ran against,
// and fails when a Debian 13 root was asked for (make e2e-docker26) but the ECSs do
// not run it: the second release's run must not pass on the first release by mistake.
func TestDockerRelease(t *testing.T) {
	env := startCloud(t, "vrv", cloudbed.Options{})
	e := ecsOf(t, env, "ecs1")
	server := docker(t, e, "version", "--format", "{{.Server.Version}}")
	ipt, err := e.Exec(ctxT(t), "iptables", "--version")
	if err != nil {
		t.Fatal(err)
	}
	compose, _ := e.Command(ctxT(t), composeBin, "version").CombinedOutput()
	t.Logf("Docker Engine %s; %s; %s", server, strings.TrimSpace(ipt), strings.TrimSpace(string(compose)))
	if os.Getenv(testbed.RootEnv) != "" {
		if !strings.HasPrefix(server, "26.") || !strings.Contains(ipt, "v1.8.11") || !strings.Contains(string(compose), "version 2.") {
			t.Errorf("%s is set, but the ECS runs Docker %s, %s, %s; want Debian 13's 26.1, iptables 1.8.11 and Compose v2",
				testbed.RootEnv, server, ipt, compose)
		}
	}
}

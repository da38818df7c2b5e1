package cloudbed

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/vpcroute/vpcroute/internal/testbed"
)

// ManagedPlugin is the name the managed plugin is installed under: what users give
// to -d and --ipam-driver.
const ManagedPlugin = "vpcroute:latest"

// InstallManagedPlugin installs the managed plugin (scripts/plugin-rootfs.sh built dir)
// on an ECS's engine the way a user would: the host-side files the plugin's mounts
// need (contrib/tmpfiles.d/vpcroute.conf makes them at boot), `docker plugin create`,
// `docker plugin set` with the settings the host service would have got, `docker
// plugin enable`.
func (e *Env) InstallManagedPlugin(ctx context.Context, ecs *testbed.ECS, dir string) error {
	if _, err := ecs.Exec(ctx, "touch", "/run/xtables.lock"); err != nil {
		return fmt.Errorf("create the xtables lock on %s: %w", ecs.Name, err)
	}
	set := []string{"plugin", "set", ManagedPlugin}
	for _, kv := range e.PluginEnv(ecs.Name) {
		name, value, _ := strings.Cut(kv, "=")
		if name == "VPCROUTE_STATE_DIR" {
			// A managed plugin keeps its state at /var/lib/vpcroute, on the "state" mount.
			if err := os.MkdirAll(value, 0o700); err != nil {
				return err
			}
			set = append(set, "state.source="+value)
			continue
		}
		set = append(set, kv)
	}
	for _, args := range [][]string{{"plugin", "create", ManagedPlugin, dir}, set, {"plugin", "enable", ManagedPlugin}} {
		if out, err := ecs.Docker(ctx, args...); err != nil {
			return fmt.Errorf("docker %s on %s: %w\n%s", strings.Join(args, " "), ecs.Name, err, out)
		}
	}
	return nil
}

// FormSwarm makes the bed's ECSs one swarm: ECS 1 the manager, the others workers,
// each advertising its VPC address.
func (e *Env) FormSwarm(ctx context.Context) error {
	manager := e.Bed.ECSs[0]
	addr := func(ecs *testbed.ECS) string { return ecs.IP.String() }
	if out, err := manager.Docker(ctx, "swarm", "init", "--advertise-addr", addr(manager), "--listen-addr", addr(manager)+":2377"); err != nil {
		return fmt.Errorf("swarm init on %s: %w\n%s", manager.Name, err, out)
	}
	token, err := manager.Docker(ctx, "swarm", "join-token", "-q", "worker")
	if err != nil {
		return fmt.Errorf("swarm join-token on %s: %w", manager.Name, err)
	}
	for _, w := range e.Bed.ECSs[1:] {
		if out, err := w.Docker(ctx, "swarm", "join", "--token", token, "--advertise-addr", addr(w), addr(manager)+":2377"); err != nil {
			return fmt.Errorf("swarm join of %s: %w\n%s", w.Name, err, out)
		}
	}
	return nil
}

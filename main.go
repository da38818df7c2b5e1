// Command vpcroute is a Docker network and IPAM plugin that gives containers on
// Huawei Cloud ECS instances subnets of their own, routed natively by the VPC route
// table. It runs as a managed plugin or as a host service; see README.md.
//
// main only wires: the command line, and for `serve` the settings, the socket, the
// parts (state, cloud, link, firewall, Docker's API), the controller that owns every
// network, and the two plugin APIs in front of it.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vpcroute/vpcroute/cli"
	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/cloud/huawei"
	"github.com/vpcroute/vpcroute/config"
	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/dockerapi"
	"github.com/vpcroute/vpcroute/driver"
	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/ipam"
	"github.com/vpcroute/vpcroute/link"
	"github.com/vpcroute/vpcroute/logging"
	"github.com/vpcroute/vpcroute/server"
	"github.com/vpcroute/vpcroute/state"
)

// version is set by the Makefile.
var version = "dev"

func main() {
	env := &cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Version: version}
	commands := append([]cli.Command{{
		Name:  "serve",
		Short: "serve Docker's network and IPAM plugin APIs (what Docker and systemd run)",
		Long: `Listens on VPCROUTE_SOCKET and serves Docker until SIGTERM, which leaves every
network's bridge, rules and route in place. Settings come from the environment
(README.md, "Settings"); a bad one does not stop the plugin: it serves, and Docker's
calls answer with what to fix.`,
		Run: func(_ *cli.Env, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("serve takes no arguments (settings come from the environment), got %q", args)
			}
			return serve()
		},
	}}, cli.Tools()...)
	os.Exit(cli.Main(os.Args[1:], env, commands))
}

// serve runs the plugin. It returns an error only for what no setting can fix here:
// another vpcroute holding the socket, a socket directory that cannot be made.
func serve() error {
	settings, badSettings := config.FromEnv(os.Getenv)
	log := logging.New(logging.Options{Level: settings.LogLevel, Format: settings.LogFormat,
		Stdout: os.Stdout, Stderr: os.Stderr, Journald: os.Getenv("JOURNAL_STREAM") != ""})

	// Listen first: Docker gives a plugin about 12 s to answer, and the cloud may be slow.
	l, err := server.Listen(settings.Socket)
	if err != nil {
		return err
	}
	gate := server.NewGate()
	caps := server.Capabilities{Network: driver.Capabilities(), IPAM: ipam.Capabilities(), Spaces: ipam.AddressSpaces()}
	srv := &http.Server{Handler: server.Handler(caps, gate, log), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
			log.Error("serve", "err", err)
		}
	}()
	log.Info("listening", "socket", settings.Socket, "version", version)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := start(ctx, settings, badSettings, gate, log); err != nil {
		// Serve anyway: Docker enables the plugin, and its calls say what to fix.
		log.Error("vpcroute cannot serve Docker's calls until this is fixed", "err", err)
		gate.Fail(err)
	}

	<-ctx.Done()
	// SIGTERM leaves the data plane as it is: containers keep their traffic while
	// the plugin is upgraded or restarted.
	log.Info("stopping; networks stay up")
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// metaIdentity is where the last run's cloud identity is kept, for starts during
// which the cloud does not answer.
const metaIdentity = "identity"

// start builds the parts and opens the gate; its error says what the user must fix.
func start(ctx context.Context, settings config.Settings, badSettings error, gate *server.Gate, log *slog.Logger) error {
	db, err := state.Open(settings.StateDir)
	if err != nil {
		return fmt.Errorf("vpcroute is not ready: %w", err)
	}
	go func() { <-ctx.Done(); db.Close() }()
	fw, err := firewall.NewFirewall()
	if err != nil {
		return fmt.Errorf("vpcroute is not ready: %w", err)
	}
	host := link.Host{}
	if err := host.EnsureForwarding(); err != nil {
		return fmt.Errorf("vpcroute is not ready: %w", err)
	}
	if badSettings != nil {
		// The networks vpcroute has keep working the way the last good run built them.
		if err := controller.RestoreDataPlane(db, host, fw, log); err != nil {
			log.Error("restore saved networks", "err", err)
		}
		return fmt.Errorf("vpcroute is not ready: %w\nfix it with `docker plugin set %s NAME=value` (then `docker plugin disable -f` and `enable` it), or in the service's environment (then restart it)", badSettings, settings.DriverName)
	}

	var saved cloud.Identity
	if err := db.Meta(metaIdentity, &saved); err != nil && !errors.Is(err, state.ErrNotFound) {
		log.Warn("read the saved identity", "err", err)
	}
	if len(settings.VPCCIDRs) > 0 {
		saved.VPCCIDRs = settings.VPCCIDRs
	}
	var vpc cloud.VPC
	var later *cloud.Later
	if settings.Cloud == config.CloudNone {
		none, err := noCloud(settings)
		if err != nil {
			return fmt.Errorf("vpcroute is not ready: %w", err)
		}
		vpc, saved = none, none.Identity()
	} else {
		later = cloud.NewLater(func(ctx context.Context) (cloud.VPC, error) { return huaweiCloud(ctx, settings, log) }, saved, log)
		vpc = later
	}
	var docker controller.Docker
	if settings.DockerHost != "" {
		c, err := dockerapi.New(settings.DockerHost)
		if err != nil {
			return fmt.Errorf("vpcroute is not ready: %w", err)
		}
		docker = c
	}
	// Links change when containers come and go; the loop reads them only then.
	var linkChanges interface{ Gen() uint64 }
	var othersInPool <-chan struct{}
	if w, err := link.Watch(ctx); err != nil {
		log.Warn("cannot watch links: every kernel pass reads them", "err", err)
	} else {
		linkChanges, othersInPool = w, w.Others(settings.Pool)
	}
	ctl := controller.New(controller.Config{
		Pool:           settings.Pool,
		SubnetSize:     settings.SubnetSize,
		HostBlock:      settings.HostBlock,
		BlockGrace:     settings.BlockGrace,
		Masquerade:     settings.Masquerade,
		NoNAT:          append([]netip.Prefix{settings.Pool}, saved.VPCCIDRs...),
		ForwardAccept:  settings.ForwardAccept,
		Routed:         settings.Cloud != config.CloudNone,
		KernelInterval: settings.KernelInterval,
		CloudInterval:  settings.CloudInterval,
		OrphanGrace:    settings.OrphanGrace,
		LinkChanges:    linkChanges,
		OthersInPool:   othersInPool,
		DriverName:     settings.DriverName,
		SrcDstCheckOn:  saved.SrcDstCheckOn,
		Log:            log,
		Version:        version,
	}, db, host, fw, vpc, docker)
	if err := ctl.Start(); err != nil {
		// Serve anyway: what could be restored is; the loop keeps trying.
		log.Error("restore saved networks", "err", err)
	}
	gate.Open(server.Drivers{Network: driver.New(ctl), IPAM: ipam.New(ctl), Admin: admin{ctl: ctl, gate: gate}})
	log.Info("ready", "cloud", settings.Cloud, "pool", settings.Pool, "subnet_size", settings.SubnetSize,
		"iptables", fw.Backend(), "docker", settings.DockerHost)
	if later != nil {
		go later.Run(ctx, func(v cloud.VPC) {
			id := v.Identity()
			if err := db.PutMeta(metaIdentity, id); err != nil {
				log.Warn("save the identity", "err", err)
			}
			ctl.SetIdentity(id)
			log.Info("cloud ready", "instance", id.InstanceID, "vpc_cidrs", id.VPCCIDRs)
		})
	}
	go ctl.Run(ctx)
	return nil
}

// noCloud is the cloud of VPCROUTE_CLOUD=none: no routes, the VPC's ranges from the
// settings or the uplink's subnet.
func noCloud(s config.Settings) (cloud.None, error) {
	cidrs := s.VPCCIDRs
	if len(cidrs) == 0 {
		up, err := link.Host{}.UplinkPrefixes()
		if err != nil {
			return cloud.None{}, fmt.Errorf("find the uplink's subnet (set VPCROUTE_VPC_CIDRS): %w", err)
		}
		cidrs = up
	}
	hostname := s.Hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	return cloud.None{ID: cloud.Identity{InstanceID: "none", Hostname: hostname, VPCCIDRs: cidrs}}, nil
}

// huaweiCloud builds the Huawei Cloud client: it reads the metadata service and the
// VPC API, and fails with what to fix when they do not answer.
func huaweiCloud(ctx context.Context, s config.Settings, log *slog.Logger) (cloud.VPC, error) {
	cfg := s.Huawei
	cfg.Hostname, cfg.VPCCIDRs, cfg.Logger = s.Hostname, s.VPCCIDRs, log
	c, err := huawei.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("huawei cloud: %w", err)
	}
	return c, nil
}

// admin is the operators' endpoints: the controller's answers; an applied uninstall
// also closes the gate, so that Docker's calls say vpcroute is gone.
type admin struct {
	ctl  *controller.Controller
	gate *server.Gate
}

func (a admin) Status(ctx context.Context) (any, error)         { return a.ctl.Status(ctx) }
func (a admin) Doctor(ctx context.Context) (any, error)         { return a.ctl.Doctor(ctx) }
func (a admin) GC(ctx context.Context, apply bool) (any, error) { return a.ctl.GC(ctx, apply) }
func (a admin) Uninstall(ctx context.Context, apply, force bool) (any, error) {
	r, err := a.ctl.Uninstall(ctx, apply, force)
	if err == nil && apply {
		a.gate.Fail(a.ctl.Uninstalled())
	}
	return r, err
}

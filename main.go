// Command vpcroute is a Docker network and IPAM plugin that gives containers on
// Huawei Cloud ECS instances subnets of their own, routed natively by the VPC route
// table. It runs as a managed plugin or as a host service; see README.md.
//
// main only wires: settings, the socket, the parts (state, cloud, link, firewall,
// Docker's API), the controller that owns every network, and the two plugin APIs in
// front of it.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/cloud/huawei"
	"github.com/vpcroute/vpcroute/config"
	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/dockerapi"
	"github.com/vpcroute/vpcroute/driver"
	"github.com/vpcroute/vpcroute/firewall"
	"github.com/vpcroute/vpcroute/ipam"
	"github.com/vpcroute/vpcroute/link"
	"github.com/vpcroute/vpcroute/server"
	"github.com/vpcroute/vpcroute/state"
)

// version is set by the Makefile.
var version = "dev"

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "version" || os.Args[1] == "--version") {
		fmt.Println("vpcroute", version)
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "vpcroute:", err)
		os.Exit(1)
	}
}

func run() error {
	settings, err := config.FromEnv(os.Getenv)
	if err != nil {
		return fmt.Errorf("bad settings (fix them with `docker plugin set vpcroute:latest NAME=value` or in the service's environment):\n%w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: settings.LogLevel}))

	// Listen first: Docker gives a plugin about 12 s to answer, and the cloud may be slow.
	l, err := server.Listen(settings.Socket)
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	drivers := &server.Drivers{Capabilities: server.Capabilities{
		Network: driver.Capabilities(), IPAM: ipam.Capabilities(), Spaces: ipam.AddressSpaces(),
	}}
	srv := &http.Server{
		Handler:           server.Handler(drivers, ready, log),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
			log.Error("serve", "err", err)
		}
	}()
	log.Info("listening", "socket", settings.Socket, "version", version)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	db, err := state.Open(settings.StateDir)
	if err != nil {
		return err
	}
	defer db.Close()

	vpc, err := newCloud(ctx, settings, log)
	if err != nil {
		return err
	}
	id := vpc.Identity()
	fw, err := firewall.NewFirewall()
	if err != nil {
		return err
	}
	host := link.Host{}
	if err := host.EnsureForwarding(); err != nil {
		return err
	}
	var docker controller.Docker
	if settings.DockerHost != "" {
		c, err := dockerapi.New(settings.DockerHost)
		if err != nil {
			return err
		}
		docker = c
	}
	ctl := controller.New(controller.Config{
		Pool:           settings.Pool,
		SubnetSize:     settings.SubnetSize,
		Masquerade:     settings.Masquerade,
		NoNAT:          append([]netip.Prefix{settings.Pool}, id.VPCCIDRs...),
		ForwardAccept:  settings.ForwardAccept,
		Routed:         settings.Cloud != config.CloudNone,
		KernelInterval: settings.KernelInterval,
		CloudInterval:  settings.CloudInterval,
		OrphanGrace:    settings.OrphanGrace,
		PluginName:     strings.TrimSuffix(filepath.Base(settings.Socket), ".sock"),
		SrcDstCheckOn:  id.SrcDstCheckOn,
		Log:            log,
	}, db, host, fw, vpc, docker)
	if err := ctl.Start(); err != nil {
		// Serve anyway: what could be restored is; the loop keeps trying.
		log.Error("restore saved networks", "err", err)
	}
	drivers.Network, drivers.IPAM = driver.New(ctl), ipam.New(ctl)
	close(ready)
	log.Info("ready", "cloud", settings.Cloud, "instance", id.InstanceID, "pool", settings.Pool,
		"subnet_size", settings.SubnetSize, "vpc_cidrs", id.VPCCIDRs, "iptables", fw.Backend(), "docker", settings.DockerHost)

	go ctl.Run(ctx)

	<-ctx.Done()
	// SIGTERM leaves the data plane as it is: containers keep their traffic while
	// the plugin is upgraded or restarted.
	log.Info("stopping; networks stay up")
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

func newCloud(ctx context.Context, s config.Settings, log *slog.Logger) (cloud.VPC, error) {
	hostname := s.Hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	if s.Cloud == config.CloudNone {
		cidrs := s.VPCCIDRs
		if len(cidrs) == 0 {
			up, err := link.Host{}.UplinkPrefixes()
			if err != nil {
				return nil, fmt.Errorf("find the uplink's subnet (set VPCROUTE_VPC_CIDRS): %w", err)
			}
			cidrs = up
		}
		return cloud.None{ID: cloud.Identity{InstanceID: "none", Hostname: hostname, VPCCIDRs: cidrs}}, nil
	}
	cfg := s.Huawei
	cfg.Hostname, cfg.VPCCIDRs, cfg.Logger = s.Hostname, s.VPCCIDRs, log
	c, err := huawei.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("huawei cloud: %w", err)
	}
	return c, nil
}

// Command vpcroute is a Docker network and IPAM plugin that gives containers on
// Huawei Cloud ECS instances subnets of their own, routed natively by the VPC route
// table. It runs as a managed plugin or as a host service; see README.md.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vpcroute/vpcroute/cloud"
	"github.com/vpcroute/vpcroute/cloud/huawei"
	"github.com/vpcroute/vpcroute/config"
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
	noNAT := append([]netip.Prefix{settings.Pool}, id.VPCCIDRs...)
	fw, err := firewall.NewFirewall()
	if err != nil {
		return err
	}
	if err := (link.Host{}).EnsureForwarding(); err != nil {
		return err
	}
	ip := ipam.New(ipam.Config{
		Pool:         settings.Pool,
		SubnetSize:   settings.SubnetSize,
		HostPrefixes: link.Host{}.Prefixes,
		Log:          log,
	}, db, vpc)
	dcfg := driver.Config{
		ForwardAccept: settings.ForwardAccept,
		Masquerade:    settings.Masquerade,
		NoNAT:         noNAT,
		Pool:          settings.Pool,
		Log:           log,
	}
	if s, ok := vpc.(interface{ SrcDstCheckOn() bool }); ok {
		dcfg.SrcDstCheckOn = s.SrcDstCheckOn
	}
	nd := driver.New(dcfg, link.Host{}, fw, db, ip)
	if err := nd.Restore(ctx, settings.ForwardAccept); err != nil {
		// Serve anyway: what could be restored is; the repair loop keeps trying.
		log.Error("restore saved networks", "err", err)
	}
	drivers.Network, drivers.IPAM = nd, ip
	close(ready)
	log.Info("ready", "cloud", settings.Cloud, "instance", id.InstanceID, "pool", settings.Pool,
		"subnet_size", settings.SubnetSize, "vpc_cidrs", id.VPCCIDRs, "iptables", fw.Backend())

	go nd.KeepUp(ctx, 30*time.Second, settings.ForwardAccept)
	if settings.Cloud != config.CloudNone {
		go ip.ReconcileLoop(ctx, 5*time.Minute)
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
	h := s.Huawei
	c, err := huawei.New(ctx, huawei.Config{
		MetadataURL:   h.MetadataURL,
		InstanceID:    h.InstanceID,
		ProjectID:     h.ProjectID,
		Region:        h.Region,
		VPCID:         h.VPCID,
		PortID:        h.PortID,
		RouteTableID:  h.RouteTableID,
		VPCEndpoint:   h.VPCEndpoint,
		AK:            h.AK,
		SK:            h.SK,
		SecurityToken: h.SecurityToken,
		SrcDstCheck:   h.SrcDstCheck,
		Hostname:      hostname,
		VPCCIDRs:      s.VPCCIDRs,
		Logger:        log,
	})
	if err != nil {
		return nil, fmt.Errorf("huawei cloud: %w", err)
	}
	return c, nil
}

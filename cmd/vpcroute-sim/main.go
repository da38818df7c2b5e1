// Command vpcroute-sim serves the Huawei Cloud emulator of package sim: the VPC
// API, the ECS metadata service and the admin API on one address, optionally
// keeping a router network namespace's routes in step with the VPC route tables.
//
//	vpcroute-sim --listen 127.0.0.1:8775 --config vpc.json [--router-netns router] [--listen-netns router]
//
// It prints one line when it is ready and exits cleanly on SIGTERM or SIGINT,
// removing the routes it installed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vpcroute/vpcroute/internal/sim"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vpcroute-sim:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down and removes its router routes.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vpcroute-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8775", "address to serve the VPC API, metadata and admin API on")
	configPath := fs.String("config", "", "JSON file of sim.Config (required)")
	routerNetns := fs.String("router-netns", "", "network namespace (name under /run/netns or path) whose routes follow the VPC route tables")
	listenNetns := fs.String("listen-netns", "", "network namespace (name or path) to create the listener in")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" {
		return errors.New("--config FILE.json is required")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	raw, err := os.ReadFile(*configPath)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var cfg sim.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("parse config %s: %w", *configPath, err)
	}
	s, err := sim.New(cfg)
	if err != nil {
		return err
	}

	var ln net.Listener
	if *listenNetns != "" {
		ln, err = listenInNetns(*listenNetns, *listen)
	} else {
		ln, err = net.Listen("tcp", *listen)
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}

	if *routerNetns != "" {
		stop, err := syncRouter(s, *routerNetns, func(err error) { log.Error("router sync failed", "err", err) })
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}

	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	c := s.Config()
	fmt.Fprintf(stdout, "vpcroute-sim ready on http://%s project=%s vpc=%s routetable=%s\n", ln.Addr(), c.ProjectID, c.VPCID, s.DefaultRouteTableID())

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, shutCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer shutCancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

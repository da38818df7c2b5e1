// Command vpcroute-bed builds and removes the vpcroute test bed: a VPC router, ECS hosts each
// running its own Docker Engine, and an outside host, all in network namespaces of this
// machine (see package internal/testbed). It is what `make demo` and manual experiments use.
//
//	vpcroute-bed up [-ecs N] [-prefix vr] [-state-dir DIR]   build (after removing leftovers)
//	vpcroute-bed status                                      show ECSs and their engines
//	vpcroute-bed down                                        remove everything
//	vpcroute-bed env ECS                                     print `export DOCKER_HOST=...` for ECS
//	vpcroute-bed demo [-plugin bin/vpcroute] [-keep]         Huawei's guide with vpcroute, on the
//	                                                         emulated cloud (what `make demo` runs)
//
// All verbs take -prefix and -state-dir, so several beds can coexist; a bed's commands
// must use the same values.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vpcroute/vpcroute/internal/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vpcroute-bed:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage: vpcroute-bed up|down|status|env ECS|demo [-ecs N] [-prefix P] [-state-dir DIR] [-plugin BIN] [-keep] [-v]")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet("vpcroute-bed "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg testbed.Config
	fs.StringVar(&cfg.Prefix, "prefix", "vr", "prefix of the bed's network namespaces, cgroups and state directory")
	fs.IntVar(&cfg.ECSCount, "ecs", 2, fmt.Sprintf("number of ECS hosts (1-%d), for up", testbed.MaxECS))
	fs.StringVar(&cfg.StateDir, "state-dir", "", "state directory (default /var/lib/PREFIX-bed)")
	fs.StringVar(&cfg.StorageDriver, "storage-driver", "", "dockerd storage driver (default: dockerd's choice)")
	verbose := fs.Bool("v", false, "log progress to stderr")
	var demoOpts demoOptions
	fs.StringVar(&demoOpts.plugin, "plugin", "", "vpcroute binary for demo (default: vpcroute next to this program)")
	fs.BoolVar(&demoOpts.keep, "keep", false, "demo: keep the bed up until Ctrl-C")
	var pos []string
	// Allow the ECS name of `env` before or after the flags.
	for {
		if err := fs.Parse(args); err != nil {
			return errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}

	switch verb {
	case "up":
		bed, err := testbed.Up(ctx, cfg)
		if err != nil {
			return err
		}
		printBed(ctx, stdout, bed)
		return nil
	case "down":
		return testbed.Down(ctx, cfg)
	case "status":
		bed, err := testbed.Open(cfg)
		if err != nil {
			return err
		}
		printBed(ctx, stdout, bed)
		return nil
	case "demo":
		demoOpts.bed = cfg
		return demo(ctx, demoOpts, stdout)
	case "env":
		if len(pos) != 1 {
			return errUsage
		}
		bed, err := testbed.Open(cfg)
		if err != nil {
			return err
		}
		e, err := bed.ECS(pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "export DOCKER_HOST=%s\n", e.DockerHost)
		return nil
	}
	return errUsage
}

func printBed(ctx context.Context, w io.Writer, bed *testbed.Bed) {
	fmt.Fprintf(w, "router\t%s\tnetns=%s\n", testbed.RouterIP, bed.RouterNetns)
	fmt.Fprintf(w, "outside\t%s\tnetns=%s\n", testbed.OutsideIP, bed.OutsideNetns)
	for _, st := range bed.Status(ctx) {
		fmt.Fprintln(w, st)
	}
}

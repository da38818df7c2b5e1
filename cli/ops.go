package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vpcroute/vpcroute/check"
	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/server"
)

// errFound makes the exit status 1 after the output was printed: doctor found a
// FAIL, or gc or uninstall could not do all of it.
var errFound = errors.New("found")

// fetch asks the plugin and prints JSON, or decodes into v for the caller to print.
func fetch(env *Env, socket, method, path string, asJSON bool, v any) (printed bool, err error) {
	sock, err := findSocket(socket)
	if err != nil {
		return false, err
	}
	var raw json.RawMessage
	if err := call(sock, method, path, 2*time.Minute, &raw); err != nil {
		return false, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("read the plugin's answer: %w", err)
	}
	if asJSON {
		_, err := fmt.Fprintf(env.Stdout, "%s\n", strings.TrimSpace(string(raw)))
		return true, err
	}
	return false, nil
}

func doctorCommand() Command {
	var socket string
	var asJSON bool
	return Command{
		Name:  "doctor",
		Usage: "[--json] [--socket PATH]",
		Short: "check what vpcroute depends on, and say what to fix",
		Long: `Asks the running plugin to check, without changing anything: the metadata service,
the credentials and every permission vpcroute reads with, the NIC's
source/destination check, whether the security groups let the container pool in,
routes to deleted instances, the route quota, the clock against the VPC API's,
ip_forward, FORWARD (vpcroute's hook and any DROP ahead of it), Docker's API, the
networks' bridges and routes, and vpcroute routes to this ECS that no network has.
Each finding is PASS, WARN, FAIL or SKIP, with what to do. The exit status is 1 when
something FAILs.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&socket, "socket", "", "the plugin's socket (default: the host service's, else the one managed plugin's)")
			fs.BoolVar(&asJSON, "json", false, "print JSON, for scripts")
		},
		Run: func(env *Env, args []string) error {
			if len(args) > 0 {
				return errUsage
			}
			var results []check.Result
			printed, err := fetch(env, socket, http.MethodGet, server.PathDoctor, asJSON, &results)
			if err != nil {
				return err
			}
			if !printed {
				printChecks(env.Stdout, results)
			}
			if check.Worst(results) == check.Fail {
				return errFound
			}
			return nil
		},
	}
}

// printChecks writes doctor's findings as a person reads them.
func printChecks(w io.Writer, results []check.Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	count := map[string]int{}
	for _, r := range results {
		count[r.Status]++
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Status, r.Name, r.Detail)
		if r.Fix != "" && r.Status != check.Pass {
			fmt.Fprintf(tw, "\t\tfix: %s\n", r.Fix)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d FAIL, %d WARN, %d PASS, %d SKIP\n", count[check.Fail], count[check.Warn], count[check.Pass], count[check.Skip])
}

func gcCommand() Command {
	var socket string
	var asJSON, apply bool
	return Command{
		Name:  "gc",
		Usage: "[--apply] [--json] [--socket PATH]",
		Short: "list what is stale (routes, bridges, rules, records of no network); --apply removes it",
		Long: `Lists, without the grace periods the plugin's own loop keeps: records of networks
Docker no longer has, vpcroute routes to this ECS that no network owns, vpcroute
routes to instances that were deleted, bridges and rules of no network, and network
routes that drifted or went missing. Nothing changes without --apply; with it, the
stale things are removed and drifted routes put right. It needs Docker's API (the
plugin's VPCROUTE_DOCKER_HOST) to tell what is stale.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&socket, "socket", "", "the plugin's socket (default: the host service's, else the one managed plugin's)")
			fs.BoolVar(&asJSON, "json", false, "print JSON, for scripts")
			fs.BoolVar(&apply, "apply", false, "remove what is stale (default: only list it)")
		},
		Run: func(env *Env, args []string) error {
			if len(args) > 0 {
				return errUsage
			}
			var r controller.GCReport
			path := server.PathGC
			if apply {
				path += "?apply=true"
			}
			printed, err := fetch(env, socket, http.MethodPost, path, asJSON, &r)
			if err != nil {
				return err
			}
			if !printed {
				printList(env.Stdout, r.Stale, r.Failed, r.Applied, "nothing is stale", "stale", "removed or put right", "`vpcroute gc --apply` removes them")
			}
			if len(r.Failed) > 0 {
				return errFound
			}
			return nil
		},
	}
}

func uninstallCommand() Command {
	var socket string
	var asJSON, apply, force bool
	return Command{
		Name:  "uninstall",
		Usage: "[--apply] [--force] [--json] [--socket PATH]",
		Short: "list everything vpcroute made on this host; --apply removes it all, for a clean exit",
		Long: `Lists this ECS's vpcroute routes, vpcroute's bridges and veths, its iptables rules
and chains, and its records; with --apply the running plugin removes them all and
then refuses Docker's calls. It refuses while Docker has vpcroute networks: remove
their containers and them first (docker network rm), or give --force to take their
routes, bridges and rules away anyway. Afterwards remove the plugin:
  docker plugin disable -f vpcroute:latest && docker plugin rm vpcroute:latest
or, for the host service:
  systemctl disable --now vpcroute`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&socket, "socket", "", "the plugin's socket (default: the host service's, else the one managed plugin's)")
			fs.BoolVar(&asJSON, "json", false, "print JSON, for scripts")
			fs.BoolVar(&apply, "apply", false, "remove it all (default: only list it)")
			fs.BoolVar(&force, "force", false, "also when Docker still has vpcroute networks")
		},
		Run: func(env *Env, args []string) error {
			if len(args) > 0 {
				return errUsage
			}
			var r controller.UninstallReport
			path := server.PathUninstall + "?apply=" + fmt.Sprint(apply) + "&force=" + fmt.Sprint(force)
			printed, err := fetch(env, socket, http.MethodPost, path, asJSON, &r)
			if err != nil {
				return err
			}
			if !printed {
				printList(env.Stdout, r.Removes, r.Failed, r.Applied, "vpcroute holds nothing on this host", "vpcroute holds", "removed", "`vpcroute uninstall --apply` removes it all")
				if r.Applied {
					fmt.Fprintln(env.Stdout, "\nnow remove the plugin: `docker plugin disable -f vpcroute:latest && docker plugin rm vpcroute:latest`, or `systemctl disable --now vpcroute`")
				}
			}
			if len(r.Failed) > 0 {
				return errFound
			}
			return nil
		},
	}
}

// printList writes what gc or uninstall found or did.
func printList(w io.Writer, items, failed []string, applied bool, none, found, done, how string) {
	if len(items) == 0 {
		fmt.Fprintln(w, none)
		return
	}
	head := found + " (" + how + "):"
	if applied {
		head = done + ":"
	}
	fmt.Fprintln(w, head)
	for _, s := range items {
		fmt.Fprintln(w, "  "+s)
	}
	for _, f := range failed {
		fmt.Fprintln(w, "  FAILED: "+f)
	}
}

package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vpcroute/vpcroute/controller"
	"github.com/vpcroute/vpcroute/server"
)

func statusCommand() Command {
	var socket string
	var asJSON bool
	return Command{
		Name:  "status",
		Usage: "[--json] [--socket PATH]",
		Short: "show what vpcroute holds: networks, routes, containers, ports, the host",
		Long: `Asks the running plugin (host service or managed plugin) through its socket. For each
network: its name in Docker, subnet, bridge, VPC route (ok, missing, drifted, held by
another host), containers and published ports. Then the route table (routes used of
the quota), the NIC's source/destination check, the host's forwarding (ip_forward,
FORWARD's policy and where vpcroute's hook is), and what the last reconcile cycle did.
It changes nothing.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&socket, "socket", "", "the plugin's socket (default: the host service's, else the one managed plugin's)")
			fs.BoolVar(&asJSON, "json", false, "print JSON, for scripts")
		},
		Run: func(env *Env, args []string) error {
			if len(args) > 0 {
				return errUsage
			}
			sock, err := findSocket(socket)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := call(sock, http.MethodGet, server.PathStatus, 30*time.Second, &raw); err != nil {
				return err
			}
			if asJSON {
				_, err := fmt.Fprintf(env.Stdout, "%s\n", strings.TrimSpace(string(raw)))
				return err
			}
			var st controller.Status
			if err := json.Unmarshal(raw, &st); err != nil {
				return fmt.Errorf("read the plugin's status: %w", err)
			}
			printStatus(env.Stdout, st, time.Now())
			return nil
		},
	}
}

// printStatus writes the status as a person reads it.
func printStatus(w io.Writer, st controller.Status, now time.Time) {
	c := st.Cloud
	fmt.Fprintf(w, "vpcroute %s on %s, cloud %s", st.Version, orDash(st.Hostname), c.Mode)
	switch {
	case c.Mode == "none":
		fmt.Fprintln(w, " (no VPC routes)")
	case c.Ready && c.Error == "":
		fmt.Fprintf(w, " (ready), instance %s\n", c.InstanceID)
		quota := "quota unknown"
		if c.Quota > 0 {
			quota = fmt.Sprintf("of %d", c.Quota)
		}
		fmt.Fprintf(w, "route table %s: %d routes used %s\n", c.RouteTable, c.Used, quota)
		check := "off"
		if c.SrcDstCheckOn {
			check = "ON: other hosts cannot reach the containers (turn it off, or VPCROUTE_SRC_DST_CHECK=disable)"
		}
		fmt.Fprintf(w, "source/destination check: %s\n", check)
	default:
		fmt.Fprintf(w, " (NOT READY)\n  %s\n", c.Error)
	}
	h := st.Host
	fwd := "off (containers are not routed: vpcroute sets it at start)"
	if h.IPForward {
		fwd = "on"
	}
	hook := "MISSING (vpcroute restores it within a cycle)"
	if h.Forward.Hook > 0 {
		hook = fmt.Sprintf("at rule %d of %d", h.Forward.Hook, h.Forward.Rules)
	}
	fmt.Fprintf(w, "host: ip_forward %s; iptables %s, FORWARD policy %s, vpcroute's hook %s; vpcroute bridges: %d; Docker's API %s\n",
		fwd, orDash(h.Iptables), orDash(h.Forward.Policy), hook, h.Bridges, h.Docker)
	for _, d := range h.Forward.DropsBefore {
		fmt.Fprintf(w, "  ahead of vpcroute's hook, and dropping: %s\n", d)
	}

	fmt.Fprintln(w)
	if len(st.Networks) == 0 {
		fmt.Fprintln(w, "no vpcroute networks")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NETWORK\tSUBNET\tGATEWAY\tBRIDGE\tROUTE\tCONTAINERS\tPORTS")
		for _, n := range st.Networks {
			name := n.Name
			if name == "" {
				name = n.ID[:min(12, len(n.ID))]
			}
			if n.State != "ready" {
				name += " (" + n.State + ")"
			}
			bridge := n.Bridge
			if !n.BridgeUp {
				bridge += " (missing)"
			}
			var ports []string
			for _, c := range n.Containers {
				ports = append(ports, c.Ports...)
			}
			route := routeText(n.Route)
			if n.Block.IsValid() {
				route = "block " + n.Block.String() + " " + route
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", name, n.Subnet, n.Gateway, bridge, route,
				len(n.Containers), orDash(strings.Join(ports, ",")))
		}
		tw.Flush()
	}
	if len(st.Blocks) > 0 {
		fmt.Fprintln(w, "\nhost blocks (VPCROUTE_HOST_BLOCK): one route each, networks carved from them")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BLOCK\tSTATE\tROUTE\tNETWORKS")
		for _, b := range st.Blocks {
			nets := strings.Join(b.Networks, ",")
			if nets == "" {
				nets = "none"
				if !b.EmptySince.IsZero() {
					nets += fmt.Sprintf(" for %s (released after VPCROUTE_BLOCK_GRACE)", now.Sub(b.EmptySince).Round(time.Second))
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Subnet, b.State, routeText(b.Route), nets)
		}
		tw.Flush()
	}
	if len(st.Unowned) > 0 {
		fmt.Fprintln(w, "\nroutes to this ECS that vpcroute holds for no network (`vpcroute gc --apply` removes them):")
		for _, r := range st.Unowned {
			fmt.Fprintf(w, "  %s  owner %s  %q\n", r.Destination, r.Owner, r.Description)
		}
	}
	fmt.Fprintln(w)
	printCycle(w, st.Cycle, now)
}

func routeText(r controller.RouteStatus) string {
	switch r.State {
	case controller.RouteOther:
		return "held by " + r.NextHop
	case controller.RouteMoved:
		return "moved to " + r.NextHop
	case controller.RouteDrifted:
		return fmt.Sprintf("drifted (%q)", r.Description)
	}
	return r.State
}

func printCycle(w io.Writer, c controller.CycleReport, now time.Time) {
	if c.At.IsZero() {
		fmt.Fprintln(w, "no reconcile cycle yet")
		return
	}
	fmt.Fprintf(w, "last reconcile cycle %s ago:", now.Sub(c.At).Round(time.Second))
	if len(c.Done)+len(c.Failed)+len(c.Held) == 0 {
		fmt.Fprintln(w, " nothing to change")
		return
	}
	fmt.Fprintln(w)
	for _, d := range c.Done {
		fmt.Fprintf(w, "  done:   %s\n", d)
	}
	for _, f := range c.Failed {
		fmt.Fprintf(w, "  failed: %s\n", f)
	}
	for _, h := range c.Held {
		fmt.Fprintf(w, "  kept:   %s\n", h)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

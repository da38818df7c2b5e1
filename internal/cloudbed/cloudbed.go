//go:build linux

// Package cloudbed puts the emulated Huawei Cloud on a test bed: the emulator (package
// sim) serves the VPC API and the metadata service from the bed's VPC router namespace,
// its route table drives that router's routes, and a vpcroute plugin runs on every ECS
// pointed at it exactly as on a real ECS (metadata at 169.254.169.254, agency
// credentials). End-to-end tests, `make demo` and the benchmarks share it.
package cloudbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vpcroute/vpcroute/internal/sim"
	"github.com/vpcroute/vpcroute/internal/testbed"
)

// Fixed identities of the emulated cloud, so that logs and the demo read the same
// every run.
const (
	ProjectID = "0b6c5e8f4a1d4c2e9f3a7b8c9d0e1f2a"
	VPCID     = "3f1e2d4c-5b6a-4798-8a9b-0c1d2e3f4a5b"
	SubnetID  = "7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0d"
	AK        = "VPCROUTEDEMOAK0000001"
	SK        = "vpcroute-demo-secret-key-not-a-real-one-000001"
	// APIPort is where the emulator listens in the router namespace: the VPC API at
	// http://192.168.0.1, the metadata at http://169.254.169.254.
	APIPort = 80
)

// InstanceID returns the emulated ECS ID of a bed ECS ("ecs1" ...).
func InstanceID(ecsName string) string {
	n := strings.TrimPrefix(ecsName, "ecs")
	return fmt.Sprintf("8c5e0f%s2-1a2b-4c3d-8e4f-5a6b7c8d9e%s", n, fmt.Sprintf("%02s", n))
}

// PortID returns the emulated primary NIC port ID of a bed ECS.
func PortID(ecsName string) string {
	n := strings.TrimPrefix(ecsName, "ecs")
	return fmt.Sprintf("d1e2f3a4-b5c6-4d7e-8f9a-0b1c2d3e4f%s", fmt.Sprintf("%02s", n))
}

// Options say which cloud to put on the bed.
type Options struct {
	Bed testbed.Config
	// Plugin is the vpcroute binary; empty starts no plugin.
	Plugin string
	// Env adds settings to every plugin; ECSEnv to one ECS's plugin.
	Env    []string
	ECSEnv map[string][]string
	// SrcDstCheckOn lists ECSs whose NIC keeps the source/destination check on.
	SrcDstCheckOn []string
	// RouteQuota is the emulated route table's quota (default 200).
	RouteQuota int
	// Routes are custom routes already in the table before vpcroute runs.
	Routes []sim.Route
	// Deny lists IAM actions the ECSs' agencies lack.
	Deny []string
}

// SecurityGroupID is the bed's security group: inbound from the VPC and from the
// container pool 10.0.0.0/8, as the README tells users to set it up.
const SecurityGroupID = "5ec0a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b"

// Env is a running bed with its cloud.
type Env struct {
	Bed     *testbed.Bed
	Sim     *sim.Sim
	Plugins map[string]*testbed.Proc
	// VPCEndpoint is the emulated VPC API as the ECSs reach it.
	VPCEndpoint string

	opts  Options
	stops []func()
}

// Start builds the bed, starts the emulator in its router namespace and, when
// Options.Plugin is set, a vpcroute on every ECS; it waits until each plugin answers.
func Start(ctx context.Context, opts Options) (*Env, error) {
	bed, err := testbed.Up(ctx, opts.Bed)
	if err != nil {
		return nil, err
	}
	e := &Env{Bed: bed, Plugins: map[string]*testbed.Proc{}, opts: opts,
		VPCEndpoint: fmt.Sprintf("http://%s:%d", testbed.RouterIP, APIPort)}
	if err := e.start(ctx); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func (e *Env) start(ctx context.Context) error {
	cfg := sim.Config{
		Region:     "ap-southeast-1",
		ProjectID:  ProjectID,
		VPCID:      VPCID,
		VPCCIDR:    "192.168.0.0/16",
		Subnets:    []sim.Subnet{{ID: SubnetID, Name: "subnet-ecs", CIDR: testbed.VPCCIDR, GatewayIP: testbed.RouterIP}},
		AK:         AK,
		SK:         SK,
		RouteQuota: e.opts.RouteQuota,
		Routes:     e.opts.Routes,
		SecurityGroups: []sim.SecurityGroup{{ID: SecurityGroupID, Name: "sg-ecs", Rules: []sim.SecurityGroupRule{
			{ID: "5ec0a1b2-0000-4000-8000-000000000001", Direction: "ingress", RemoteIPPrefix: "192.168.0.0/16"},
			{ID: "5ec0a1b2-0000-4000-8000-000000000002", Direction: "ingress", RemoteIPPrefix: "10.0.0.0/8"},
			{ID: "5ec0a1b2-0000-4000-8000-000000000003", Direction: "egress"},
		}}},
	}
	on := map[string]bool{}
	for _, n := range e.opts.SrcDstCheckOn {
		on[n] = true
	}
	for _, ecs := range e.Bed.ECSs {
		cfg.ECSs = append(cfg.ECSs, sim.ECS{
			ID: InstanceID(ecs.Name), Name: ecs.Name, IP: ecs.IP.String(), PortID: PortID(ecs.Name),
			SubnetID: SubnetID, SrcDstCheck: on[ecs.Name], Agency: true, AvailabilityZone: "ap-southeast-1a",
			Deny: e.opts.Deny,
		})
	}
	s, err := sim.New(cfg)
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	e.Sim = s
	var ln net.Listener
	err = testbed.InNetns(e.Bed.RouterNetns, func() error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", APIPort))
		return err
	})
	if err != nil {
		return fmt.Errorf("emulator listener in %s: %w", e.Bed.RouterNetns, err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	e.stops = append(e.stops, func() { _ = srv.Close() })
	stop, err := sim.SyncRouter(s, testbed.NetnsPath(e.Bed.RouterNetns))
	if err != nil {
		return fmt.Errorf("router sync: %w", err)
	}
	e.stops = append(e.stops, stop)
	// Docker sets FORWARD to DROP on a host where it had to enable forwarding, as on a
	// fresh ECS; the bed's ECSs forward already, so do it here, or every test would pass
	// without vpcroute's FORWARD rules.
	for _, ecs := range e.Bed.ECSs {
		if _, err := ecs.Exec(ctx, "iptables", "-P", "FORWARD", "DROP"); err != nil {
			return fmt.Errorf("FORWARD policy on %s: %w", ecs.Name, err)
		}
	}
	if e.opts.Plugin == "" {
		return nil
	}
	for _, ecs := range e.Bed.ECSs {
		p, err := ecs.StartPlugin(e.opts.Plugin, e.PluginEnv(ecs.Name))
		if err != nil {
			return err
		}
		e.Plugins[ecs.Name] = p
	}
	for _, ecs := range e.Bed.ECSs {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := ecs.WaitPlugin(wctx, "vpcroute")
		cancel()
		if err != nil {
			return fmt.Errorf("%w\nplugin log:\n%s", err, e.Plugins[ecs.Name].Logs())
		}
	}
	return nil
}

// PluginEnv is the environment of the plugin on an ECS: only what a user sets on a
// real ECS (the endpoint, here the emulator's), plus the options' extras. Identity and
// credentials come from the emulated metadata service, as on Huawei Cloud.
func (e *Env) PluginEnv(ecsName string) []string {
	ecs, _ := e.Bed.ECS(ecsName)
	env := []string{
		"VPCROUTE_VPC_ENDPOINT=" + e.VPCEndpoint,
		"VPCROUTE_ECS_ENDPOINT=" + e.VPCEndpoint, // the emulator answers both APIs
		"VPCROUTE_STATE_DIR=" + filepath.Join(ecs.Dir, "vpcroute"),
		"VPCROUTE_HOSTNAME=" + ecsName,
	}
	env = append(env, e.opts.Env...)
	return append(env, e.opts.ECSEnv[ecsName]...)
}

// CustomRoutes returns the non-local routes of the VPC's default route table, sorted
// by destination.
func (e *Env) CustomRoutes() []sim.Route {
	routes, _ := e.Sim.RouteTable(e.Sim.DefaultRouteTableID())
	var out []sim.Route
	for _, r := range routes {
		if r.Type != "local" {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out
}

// Close stops the plugins (SIGTERM) and the emulator and tears the bed down.
func (e *Env) Close() error {
	var errs []error
	for _, p := range e.Plugins {
		if p.Running() {
			errs = append(errs, p.Stop())
		}
	}
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
	errs = append(errs, e.Bed.Down(context.Background()))
	return errors.Join(errs...)
}

// AddedRoutes returns the routes of after that are not in before.
func AddedRoutes(before, after []sim.Route) []sim.Route {
	seen := map[sim.Route]bool{}
	for _, r := range before {
		seen[r] = true
	}
	var out []sim.Route
	for _, r := range after {
		if !seen[r] {
			out = append(out, r)
		}
	}
	return out
}

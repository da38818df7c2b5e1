//go:build linux

package testbed

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Bed is a running test bed. Build one with Up, reach one built by another process (such as
// `vpcroute-bed up`) with Open, and remove it with Down.
type Bed struct {
	// Prefix names the bed's namespaces, cgroups and state directory.
	Prefix string
	// StateDir holds the engines' files; Down removes it.
	StateDir string
	// RouterNetns is the VPC router's network namespace. Routes for container subnets go
	// here ("10.0.2.0/24 via 192.168.0.2"), as the VPC route table would have them.
	RouterNetns string
	// OutsideNetns is the outside ("internet") host's namespace, at OutsideIP.
	OutsideNetns string
	// ECSs are the ECS hosts, ecs1 first.
	ECSs []*ECS

	cfg Config
}

// Up builds a fresh bed: it first removes whatever a previous bed with the same prefix and
// state directory left (see Down), then creates the namespaces and links, starts one engine
// per ECS in parallel and imports ImageName into each. On failure it tears down what it made,
// so a failed Up leaves the machine as it found it. It needs root.
func Up(ctx context.Context, cfg Config) (*Bed, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("testbed: Up needs root (network namespaces, dockerd); run it with sudo")
	}
	if err := cfg.checkTools(); err != nil {
		return nil, err
	}
	if err := Down(ctx, cfg); err != nil {
		return nil, fmt.Errorf("clean up a previous bed before Up: %w", err)
	}
	b := newBed(cfg, cfg.ECSCount)
	if err := b.build(ctx); err != nil {
		if derr := Down(context.WithoutCancel(ctx), cfg); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, err
	}
	return b, nil
}

func newBed(cfg Config, n int) *Bed {
	b := &Bed{
		Prefix:       cfg.Prefix,
		StateDir:     cfg.StateDir,
		RouterNetns:  routerNetns(cfg.Prefix),
		OutsideNetns: outsideNetns(cfg.Prefix),
		cfg:          cfg,
	}
	for i := 1; i <= n; i++ {
		b.ECSs = append(b.ECSs, newECS(cfg, i))
	}
	return b
}

func (b *Bed) build(ctx context.Context) error {
	if err := os.MkdirAll(b.StateDir, 0o755); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(b.StateDir, markerFile), []byte("vpcroute test bed "+b.Prefix+"\n"), 0o644); err != nil {
		return fmt.Errorf("mark state dir: %w", err)
	}
	for _, e := range b.ECSs {
		if err := os.MkdirAll(e.Dir, 0o755); err != nil {
			return fmt.Errorf("create state dir of %s: %w", e.Name, err)
		}
	}
	if err := buildNetwork(ctx, b.Prefix, b.ECSs); err != nil {
		return err
	}
	b.cfg.Logger.Info("network up", "router", b.RouterNetns, "outside", b.OutsideNetns, "ecs", len(b.ECSs))

	// Engines start in parallel: each takes a second or two, mostly waiting.
	errs := make([]error, len(b.ECSs))
	var wg sync.WaitGroup
	for i, e := range b.ECSs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.bringUp(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// bringUp starts the ECS's mount namespace holder and engine and imports the image.
func (e *ECS) bringUp(ctx context.Context) error {
	if err := e.startHolder(ctx); err != nil {
		return err
	}
	if err := e.StartDocker(ctx); err != nil {
		return err
	}
	return e.ensureImage(ctx)
}

// Open returns the bed with cfg's prefix and state directory that is already up, for example
// one started by `vpcroute-bed up`. Its ECSs are the ECS namespaces that exist.
func Open(cfg Config) (*Bed, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := 0
	for i := 1; i <= MaxECS && netnsExists(ecsNetns(cfg.Prefix, ecsName(i))); i++ {
		n = i
	}
	if n == 0 || !netnsExists(routerNetns(cfg.Prefix)) {
		return nil, fmt.Errorf("no test bed %q is up (no network namespace %s); start one with `vpcroute-bed up`", cfg.Prefix, ecsNetns(cfg.Prefix, ecsName(1)))
	}
	return newBed(cfg, n), nil
}

// Down removes the bed (see the package function Down, which also works without a Bed).
func (b *Bed) Down(ctx context.Context) error { return Down(ctx, b.cfg) }

// ECS returns the ECS with the given name ("ecs1").
func (b *Bed) ECS(name string) (*ECS, error) {
	for _, e := range b.ECSs {
		if e.Name == name {
			return e, nil
		}
	}
	return nil, fmt.Errorf("test bed %q has no ECS %q (it has %d)", b.Prefix, name, len(b.ECSs))
}

// RestartDocker restarts the engine of the named ECS (see ECS.RestartDocker).
func (b *Bed) RestartDocker(ctx context.Context, name string) error {
	e, err := b.ECS(name)
	if err != nil {
		return err
	}
	return e.RestartDocker(ctx)
}

// RouterExec runs argv in the VPC router's network namespace, for example
// `ip route replace 10.0.2.0/24 via 192.168.0.2`.
func (b *Bed) RouterExec(ctx context.Context, argv ...string) (string, error) {
	return Exec(ctx, b.RouterNetns, argv...)
}

// OutsideExec runs argv on the outside host.
func (b *Bed) OutsideExec(ctx context.Context, argv ...string) (string, error) {
	return Exec(ctx, b.OutsideNetns, argv...)
}

// ECSStatus is what Status found for one ECS.
type ECSStatus struct {
	Name       string
	IP         netip.Addr
	Netns      string
	DockerHost string
	DockerdPID int   // 0 when not running
	Err        error // why the engine is not usable, nil when it answers
}

// Status checks every ECS's engine and lists the ECSs with their addresses.
func (b *Bed) Status(ctx context.Context) []ECSStatus {
	out := make([]ECSStatus, 0, len(b.ECSs))
	for _, e := range b.ECSs {
		st := ECSStatus{Name: e.Name, IP: e.IP, Netns: e.Netns, DockerHost: e.DockerHost}
		pid, err := e.DockerdPID()
		if err == nil {
			st.DockerdPID = pid
			err = e.Ping(ctx)
		}
		st.Err = err
		out = append(out, st)
	}
	return out
}

// String is one line per ECS: name, IP, DOCKER_HOST, namespace and engine state.
func (s ECSStatus) String() string {
	state := fmt.Sprintf("dockerd pid %d up", s.DockerdPID)
	if s.Err != nil {
		state = "dockerd down: " + strings.ReplaceAll(s.Err.Error(), "\n", " ")
	}
	return fmt.Sprintf("%s\t%s\tDOCKER_HOST=%s\tnetns=%s\t%s", s.Name, s.IP, s.DockerHost, s.Netns, state)
}

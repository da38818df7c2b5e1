package testbed

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
)

// Addresses of the emulated VPC. They follow Huawei's guide (VPC subnet 192.168.0.0/24, ECS1
// 192.168.0.2, ECS2 192.168.0.3) so that traces read exactly as in the guide.
const (
	// VPCCIDR is the VPC subnet the ECSs are attached to.
	VPCCIDR = "192.168.0.0/24"
	// RouterIP is the VPC gateway: the router namespace's address on the VPC bridge.
	RouterIP = "192.168.0.1"
	// MetadataIP is the instance metadata address, configured on the router's loopback so
	// that a metadata server listening there in the router namespace sees each ECS's own
	// address as the request's source, as Huawei's metadata service does.
	MetadataIP = "169.254.169.254"
	// OutsideCIDR is the link between the router and the outside host.
	OutsideCIDR = "203.0.113.0/24"
	// OutsideRouterIP is the router's address on the outside link.
	OutsideRouterIP = "203.0.113.1"
	// OutsideIP is the outside host's address: a stand-in for any internet server.
	OutsideIP = "203.0.113.2"
	// ImageName is the image Up imports into every engine.
	ImageName = "vrbox:latest"
	// EngineSocket is where each ECS's engine also listens, in the ECS's own /run, as
	// Docker does on a real host: the plugins on the ECS find it there.
	EngineSocket = "/run/docker.sock"
	// MaxECS is the largest number of ECSs a bed can have.
	MaxECS = 3
)

// Config says which bed to build and with which tools. The zero value is usable: two ECSs,
// prefix "vr", state under /var/lib/vr-bed, Debian's docker.io binaries.
type Config struct {
	// Prefix names every namespace, cgroup and directory of the bed, so that several beds
	// (or a bed and other tests) can share a machine. Lower-case letters and digits,
	// starting with a letter, at most 8 characters. Default "vr".
	Prefix string
	// ECSCount is the number of ECS hosts, 1..MaxECS. Default 2.
	ECSCount int
	// StateDir holds each engine's data root, exec root, socket and logs. It is removed by
	// Down. Default /var/lib/<Prefix>-bed: a disk directory, where overlay2 works for
	// Docker (the machine's /tmp may be a tmpfs or an overlay itself).
	StateDir string
	// StorageDriver is passed to dockerd when set (for example "vfs" where overlay2 cannot
	// nest). Empty lets dockerd choose.
	StorageDriver string
	// Dockerd and Docker are the engine and CLI binaries. Defaults: /usr/sbin/dockerd (or the
	// first dockerd in PATH) and /usr/bin/docker. The Docker 28 client in /usr/local/bin is
	// deliberately not picked up: it is not the engine's version.
	Dockerd, Docker string
	// Busybox is a statically linked busybox for the image. Default /bin/busybox.
	Busybox string
	// Root, when set, is a Debian root (scripts/docker26-root.sh builds Debian 13's)
	// whose /usr and /etc every ECS binds over its own in its mount namespace: the
	// ECS then runs that release's dockerd, docker CLI, Compose and iptables, and so
	// does every program run there (Exec, Command, a plugin). Default: the
	// environment's VPCROUTE_BED_ROOT, so that one variable runs a whole suite on
	// another Docker release.
	Root string
	// Logger receives progress messages. Nil discards them.
	Logger *slog.Logger
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)

// unixPathMax is sun_path's size minus the terminating NUL: longer socket paths cannot be
// listened on.
const unixPathMax = 107

// withDefaults returns c with every empty field set to its default, or an error saying which
// field is wrong.
func (c Config) withDefaults() (Config, error) {
	if c.Prefix == "" {
		c.Prefix = "vr"
	}
	if !prefixRE.MatchString(c.Prefix) {
		return c, fmt.Errorf("testbed prefix %q: use 1-8 lower-case letters or digits, starting with a letter", c.Prefix)
	}
	if c.ECSCount == 0 {
		c.ECSCount = 2
	}
	if c.ECSCount < 1 || c.ECSCount > MaxECS {
		return c, fmt.Errorf("testbed ECS count %d: choose 1 to %d", c.ECSCount, MaxECS)
	}
	if c.StateDir == "" {
		c.StateDir = "/var/lib/" + c.Prefix + "-bed"
	}
	if !filepath.IsAbs(c.StateDir) {
		return c, fmt.Errorf("testbed state dir %q: must be an absolute path", c.StateDir)
	}
	c.StateDir = filepath.Clean(c.StateDir)
	if c.StateDir == "/" || filepath.Dir(c.StateDir) == "/" {
		return c, fmt.Errorf("testbed state dir %q: too close to / to be removed safely; use a directory such as /var/lib/%s-bed", c.StateDir, c.Prefix)
	}
	if sock := socketPath(c.StateDir, ecsName(MaxECS)); len(sock) > unixPathMax {
		return c, fmt.Errorf("testbed state dir %q: the engine socket %s would be longer than %d bytes; use a shorter directory", c.StateDir, sock, unixPathMax)
	}
	if c.Root == "" {
		c.Root = os.Getenv(RootEnv)
	}
	if c.Root != "" {
		// Inside the ECS's mount namespace these paths are the root's.
		if !isExecutable(filepath.Join(c.Root, "usr/sbin/dockerd")) {
			return c, fmt.Errorf("testbed root %q has no usr/sbin/dockerd: build it with scripts/docker26-root.sh %s", c.Root, c.Root)
		}
		if c.Dockerd == "" {
			c.Dockerd = "/usr/sbin/dockerd"
		}
		if c.Docker == "" {
			c.Docker = "/usr/bin/docker"
		}
	}
	if c.Dockerd == "" {
		c.Dockerd = firstExisting("/usr/sbin/dockerd", "/usr/bin/dockerd")
		if c.Dockerd == "" {
			if p, err := exec.LookPath("dockerd"); err == nil {
				c.Dockerd = p
			}
		}
	}
	if c.Docker == "" {
		c.Docker = "/usr/bin/docker"
	}
	if c.Busybox == "" {
		c.Busybox = "/bin/busybox"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// RootEnv names the environment variable that gives Config.Root its default.
const RootEnv = "VPCROUTE_BED_ROOT"

// ErrMissingTool is returned (wrapped) by Up when a program the bed needs is not installed,
// so that tests can skip instead of failing.
var ErrMissingTool = errors.New("testbed: required program not installed")

// checkTools reports the first program the bed needs that is missing.
func (c Config) checkTools() error {
	for _, p := range []struct{ path, pkg string }{
		{filepath.Join(c.Root, c.Dockerd), "docker.io"},
		{filepath.Join(c.Root, c.Docker), "docker.io"},
		{c.Busybox, "busybox-static"},
	} {
		if p.path == "" || !isExecutable(p.path) {
			return fmt.Errorf("%w: %q (install the Debian package %s)", ErrMissingTool, p.path, p.pkg)
		}
	}
	for _, name := range []string{"ip", "iptables", "nsenter", "unshare", "sleep", "sh", "mount"} {
		if _, err := exec.LookPath(name); err != nil {
			return fmt.Errorf("%w: %s not in PATH (install iproute2, iptables, util-linux, coreutils)", ErrMissingTool, name)
		}
	}
	return nil
}

// Names of the bed's objects, derived from the prefix so that Down finds them again without
// any saved state.

func ecsName(i int) string                   { return "ecs" + strconv.Itoa(i) }
func routerNetns(prefix string) string       { return prefix + "-vpc" }
func outsideNetns(prefix string) string      { return prefix + "-net" }
func ecsNetns(prefix, ecs string) string     { return prefix + "-" + ecs }
func cgroupParent(prefix, ecs string) string { return "/" + prefix + "-" + ecs }
func ecsDir(stateDir, ecs string) string     { return filepath.Join(stateDir, ecs) }
func socketPath(stateDir, ecs string) string {
	return filepath.Join(ecsDir(stateDir, ecs), "docker.sock")
}

// ecsIP is the VPC address of the i-th ECS (1-based): 192.168.0.2 for ECS 1, as in the guide.
func ecsIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{192, 168, 0, byte(1 + i)})
}

// bedNetnsRE matches the network namespaces a bed with the given prefix creates, and nothing
// else that merely shares the prefix.
func bedNetnsRE(prefix string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `-(vpc|net|ecs[0-9]+)$`)
}

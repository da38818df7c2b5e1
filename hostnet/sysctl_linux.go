//go:build linux

package hostnet

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// procSys is where the kernel exposes sysctls. /proc/sys/net resolves to the
// network namespace of the thread that opens the file, unlike /sys/class/net
// which shows the namespace sysfs was mounted in.
const procSys = "/proc/sys"

// hostProcSysNet is where a managed plugin sees the host's /proc/sys/net:
// Docker mounts a plugin's /proc/sys read-only and runc refuses bind mounts
// inside /proc, so plugin/config.json binds the host's /proc/sys/net here.
// Like /proc/sys/net, it resolves to the network namespace of the opener.
const hostProcSysNet = "/host/proc/sys/net"

// EnsureForwarding sets net.ipv4.ip_forward=1: without it the host does not
// route between the VPC and its container bridges.
func EnsureForwarding() error {
	return ensureSysctl("net/ipv4/ip_forward", "1")
}

// setRouteLocalnet sets net.ipv4.conf.<dev>.route_localnet, which lets the
// kernel route packets with a 127.0.0.0/8 source out of dev (needed to
// publish ports on 127.0.0.1) and accept replies to them.
func setRouteLocalnet(dev string, on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	return ensureSysctl(filepath.Join("net/ipv4/conf", dev, "route_localnet"), v)
}

// sysctlPath returns the file of sysctl name ("net/ipv4/ip_forward"): under
// hostProcSysNet when that mount exists (a managed plugin), else under procSys.
func sysctlPath(name string) string {
	if rest, ok := strings.CutPrefix(name, "net/"); ok {
		if fi, err := os.Stat(hostProcSysNet); err == nil && fi.IsDir() {
			return filepath.Join(hostProcSysNet, rest)
		}
	}
	return filepath.Join(procSys, name)
}

func ensureSysctl(name, value string) error {
	path := sysctlPath(name)
	cur, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read sysctl %s: %w", name, err)
	}
	if string(bytes.TrimSpace(cur)) == value {
		return nil
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", name, value, err)
	}
	return nil
}

//go:build linux

// Package sysctl reads and writes the kernel's network settings, also from inside a
// managed plugin, whose /proc/sys is read-only: there the host's /proc/sys/net is
// mounted at /host/proc/sys/net (plugin/config.json).
package sysctl

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

// path returns the file of sysctl name ("net/ipv4/ip_forward"): under
// hostProcSysNet when that mount exists (a managed plugin), else under procSys.
func path(name string) string {
	if rest, ok := strings.CutPrefix(name, "net/"); ok {
		if fi, err := os.Stat(hostProcSysNet); err == nil && fi.IsDir() {
			return filepath.Join(hostProcSysNet, rest)
		}
	}
	return filepath.Join(procSys, name)
}

// Get returns the value of sysctl name ("net/ipv4/ip_forward"), trimmed.
func Get(name string) (string, error) {
	cur, err := os.ReadFile(path(name))
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", name, err)
	}
	return string(bytes.TrimSpace(cur)), nil
}

// Set makes sysctl name hold value; it writes only when the value differs. A
// missing file (a device that is gone) is reported wrapping os.ErrNotExist.
func Set(name, value string) error {
	cur, err := Get(name)
	if err != nil {
		return err
	}
	if cur == value {
		return nil
	}
	if err := os.WriteFile(path(name), []byte(value), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", name, value, err)
	}
	return nil
}

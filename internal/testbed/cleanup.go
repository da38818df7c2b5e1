//go:build linux

package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// markerFile marks a state directory as the bed's, so that Down never removes a directory it
// did not create.
const markerFile = ".vpcroute-bed"

// Down removes every trace of the bed with cfg's prefix and state directory: processes in its
// namespaces or cgroups (engines, containerd, containers, plugins, holders), its cgroups, its
// network namespaces and its state directory. It needs no record of a previous run, so it
// also cleans up after a crash, and it is a no-op when nothing is left.
func Down(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	var errs []error
	netnsRE := bedNetnsRE(cfg.Prefix)
	namespaces, err := listNetns(netnsRE)
	if err != nil {
		errs = append(errs, err)
	}
	if err := killBedProcesses(ctx, cfg.Prefix, namespaces); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroups(cfg.Prefix); err != nil {
		errs = append(errs, err)
	}
	for _, ns := range namespaces {
		if err := deleteNetns(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeStateDir(cfg.StateDir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("tear down test bed %q: %w", cfg.Prefix, errors.Join(errs...))
	}
	cfg.Logger.Info("bed down", "prefix", cfg.Prefix)
	return nil
}

// listNetns returns the named network namespaces matching re.
func listNetns(re *regexp.Regexp) ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	var out []string
	for _, e := range ents {
		if re.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// cgroupRE matches a /proc/PID/cgroup line of a process under one of the bed's cgroup
// parents, in any hierarchy (v1 "4:pids:/vr-ecs1/abc", v2 "0::/vr-ecs1/abc").
func cgroupRE(prefix string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^[0-9]+:[^:]*:/` + regexp.QuoteMeta(prefix) + `-ecs[0-9]+(/|$)`)
}

// killBedProcesses SIGKILLs every process whose network namespace is one of the bed's or
// whose cgroup is under one of the bed's cgroup parents, and waits for them to die. Killing,
// not stopping: the bed is thrown away, and a graceful engine stop waits 10 s for every
// container whose PID 1 ignores SIGTERM.
func killBedProcesses(ctx context.Context, prefix string, namespaces []string) error {
	inodes := map[uint64]bool{}
	for _, ns := range namespaces {
		var st unix.Stat_t
		if err := unix.Stat(NetnsPath(ns), &st); err == nil {
			inodes[st.Ino] = true
		}
	}
	cgRE := cgroupRE(prefix)
	self := os.Getpid()
	deadline := time.Now().Add(15 * time.Second)
	for round := 0; ; round++ {
		pids, err := bedProcesses(inodes, cgRE, self)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("processes of the bed survive SIGKILL: %v", pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		// New processes may still appear (a shim restarting a container) while the first
		// round dies; the loop kills them too.
		time.Sleep(time.Duration(20*(round+1)) * time.Millisecond)
	}
}

// bedProcesses lists live processes in the given network namespaces or matching cgroups.
func bedProcesses(netnsInodes map[uint64]bool, cgRE *regexp.Regexp, self int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == 1 || !processAlive(pid) {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil && netnsInodes[st.Ino] {
			pids = append(pids, pid)
			continue
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); err == nil && cgRE.Match(b) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// removeCgroups removes the bed's cgroup parents (and what dockerd left below them) in every
// mounted hierarchy. Only empty cgroups can be removed, so this runs after the kill.
func removeCgroups(prefix string) error {
	roots, err := cgroupRoots()
	if err != nil {
		return err
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `-ecs[0-9]+$`)
	var errs []error
	for _, root := range roots {
		ents, err := os.ReadDir(root)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.IsDir() && re.MatchString(e.Name()) {
				if err := rmdirTree(filepath.Join(root, e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// cgroupRoots lists the mount points of cgroup v1 and v2 hierarchies.
func cgroupRoots() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var roots []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && (fields[i+1] == "cgroup" || fields[i+1] == "cgroup2") {
				roots = append(roots, fields[4])
			}
		}
	}
	return roots, sc.Err()
}

// rmdirTree removes a cgroup directory bottom-up; cgroup files vanish with their directory,
// so only directories are removed. Busy cgroups are retried briefly: the kernel frees a
// cgroup a moment after its last process is reaped.
func rmdirTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := rmdirTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	for i := 0; ; i++ {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || i >= 100 {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeStateDir unmounts anything left under dir in this mount namespace (normally nothing:
// the engines mount in their own namespace) and removes dir, but only if it is the bed's.
func removeStateDir(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, markerFile)); err != nil {
		ents, _ := os.ReadDir(dir)
		if len(ents) > 0 {
			return fmt.Errorf("state dir %s is not empty and has no %s marker: not removing it; remove it yourself or choose another StateDir", dir, markerFile)
		}
	}
	if err := unmountUnder(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove state dir %s: %w", dir, err)
	}
	return nil
}

// unmountUnder lazily unmounts every mount point at or below dir, deepest first.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, mp := range points {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", mp, err)
		}
	}
	return nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space, and so on).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				sb.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

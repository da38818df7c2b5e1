#!/usr/bin/env bash
# Builds (once) a Debian 13 root with Docker 26.1, iptables 1.8.11 and Compose v2, for
# the end-to-end suite's second Docker release (make e2e-docker26). The test bed binds
# its /usr and /etc over an ECS's own in that ECS's mount namespace (internal/testbed,
# VPCROUTE_BED_ROOT), so the ECS runs Debian 13's dockerd, CLI, Compose and iptables.
# Usage: scripts/docker26-root.sh DIR   (DIR is kept: later runs reuse it)
set -euo pipefail
root=${1:?usage: $0 DIR}
if [ -x "$root/usr/bin/docker" ] && [ -x "$root/usr/sbin/dockerd" ] && [ -f "$root/.vpcroute-root-done" ]; then
	exit 0
fi
command -v debootstrap >/dev/null || { echo "$0: needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
# This machine's own Debian mirror (deb822 or one-line sources), else Debian's.
mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)[[:space:]]*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)
if [ -z "$mirror" ]; then
	mirror=$(sed -n 's/^deb[[:space:]]\+\(http[^[:space:]]*\/debian\)[[:space:]].*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
rm -rf "$root"
mkdir -p "$(dirname "$root")"
echo "$0: debootstrap trixie from $mirror into $root (a few minutes)" >&2
debootstrap --variant=minbase \
	--include=docker.io,docker-cli,docker-compose,iptables,iproute2,busybox-static,procps \
	trixie "$root" "$mirror" >"$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; exit 1; }
mkdir -p "$root/etc/docker"
chroot "$root" dockerd --version >&2 || true
touch "$root/.vpcroute-root-done"

#!/usr/bin/env bash
# plugin-rootfs.sh DIR: build vpcroute's managed-plugin directory (DIR/config.json and
# DIR/rootfs/) offline, from this machine's files: no base image is pulled.
#
# The rootfs holds only what the plugin runs:
#   /vpcroute                         the static binary (bin/vpcroute, or $VPCROUTE_BIN)
#   /usr/sbin/xtables-{nft,legacy}-multi and their iptables* names, so that the
#                                     plugin drives whichever backend the host uses
#   every shared library those and the xtables extension modules load (per ldd), the
#   extension modules themselves, and the dynamic loader
#   /etc/{passwd,group,nsswitch.conf,protocols,ethertypes}, /run, /tmp, /var/lib/vpcroute
#
# The published image is built from the Dockerfile instead (`make push`); both give
# the same layout. Needs Debian's (or Ubuntu's) iptables package: apt-get install iptables.
set -euo pipefail

usage() { echo "usage: $0 DIR   (VPCROUTE_BIN=path/to/static/vpcroute, CONFIG=plugin/config.json)" >&2; exit 2; }
[ $# -eq 1 ] || usage
out=$1
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${VPCROUTE_BIN:-$here/bin/vpcroute}
config=${CONFIG:-$here/plugin/config.json}

die() { echo "plugin-rootfs: $*" >&2; exit 1; }

[ -x "$bin" ] || die "$bin is missing: run \`make build\` first"
if file_out=$(LC_ALL=C ldd "$bin" 2>&1); then
	die "$bin is dynamically linked ($file_out); build it with CGO_ENABLED=0 (make build)"
fi
[ -f "$config" ] || die "$config is missing"

sbin=/usr/sbin
for m in xtables-nft-multi xtables-legacy-multi; do
	[ -x "$sbin/$m" ] || die "$sbin/$m is missing: apt-get install -y iptables"
done

# The extension modules sit next to libxtables, in the multiarch library directory.
libxtables=$(ldd "$sbin/xtables-nft-multi" | awk '$1 ~ /^libxtables\.so/ {print $3}')
[ -n "$libxtables" ] || die "cannot find libxtables of $sbin/xtables-nft-multi"
extdir=$(readlink -f "$(dirname "$libxtables")")/xtables
[ -d "$extdir" ] || die "xtables extension directory $extdir is missing"

rm -rf "$out"
root=$out/rootfs
mkdir -p "$root"

# Debian's merged /usr: /lib, /lib64, /bin and /sbin are links into /usr, so that
# the paths ldd prints (/lib/x86_64-linux-gnu/..., /lib64/ld-linux-x86-64.so.2) and
# the ones binaries were linked against all resolve.
mkdir -p "$root"/usr/{bin,sbin,lib,lib64}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done

# copy_file SRC: copy SRC's content to the same path under the rootfs, with its
# directory resolved the way the rootfs resolves it (through the merged-/usr links).
copy_file() {
	local src=$1 dir dst
	dir=$(readlink -f "$(dirname "$src")")
	dst=$root$dir/$(basename "$src")
	[ -e "$dst" ] && return 0
	mkdir -p "$root$dir"
	cp -L --preserve=mode "$src" "$dst"
}

# copy_deps FILE...: copy every shared library the files load, and the loader.
copy_deps() {
	local f lib
	for f in "$@"; do
		while read -r lib; do
			[ -n "$lib" ] && copy_file "$lib"
		done < <(ldd "$f" | awk '/=> \// {print $3} /^[[:space:]]*\/[^ ]*ld-linux/ {print $1}')
	done
}

install -m 0755 "$bin" "$root/vpcroute"

cp --preserve=mode "$sbin/xtables-nft-multi" "$sbin/xtables-legacy-multi" "$root/usr/sbin/"
# Plain iptables is the nft variant, as on Debian 11+; package firewall picks the backend the
# host's rules are in and calls iptables-nft or iptables-legacy explicitly.
for name in iptables iptables-save iptables-restore \
	iptables-nft iptables-nft-save iptables-nft-restore; do
	ln -s xtables-nft-multi "$root/usr/sbin/$name"
done
for name in iptables-legacy iptables-legacy-save iptables-legacy-restore; do
	ln -s xtables-legacy-multi "$root/usr/sbin/$name"
done
copy_deps "$sbin/xtables-nft-multi" "$sbin/xtables-legacy-multi"

mkdir -p "$root$extdir"
cp --preserve=mode "$extdir"/*.so "$root$extdir/"
copy_deps "$extdir"/*.so

mkdir -p "$root/etc"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\nprotocols: files\nservices: files\n' >"$root/etc/nsswitch.conf"
# iptables resolves protocol names (-p sctp) and ether types through these.
for f in /etc/protocols /etc/ethertypes; do
	[ -f "$f" ] && cp "$f" "$root/etc/"
done
mkdir -p "$root"/{run,tmp,var/lib/vpcroute,proc,sys,dev,root}
chmod 1777 "$root/tmp"

cp "$config" "$out/config.json"

# Smoke test: the rootfs's iptables runs against its own libraries.
if [ "$(id -u)" = 0 ] && command -v chroot >/dev/null; then
	chroot "$root" /usr/sbin/iptables-nft --version >/dev/null ||
		die "iptables-nft does not run inside $root (a library is missing?)"
	chroot "$root" /usr/sbin/iptables-legacy --version >/dev/null ||
		die "iptables-legacy does not run inside $root (a library is missing?)"
fi
echo "plugin directory: $out ($(du -sh "$root" | cut -f1) rootfs)"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# fetch-kernel.sh SRCDIR
#
# Fetch the kernel source from the Debian package linux-source-$KVER with a
# private apt configuration: its own sources list, state and cache directories,
# so the system's apt sources are never touched (installing from a newer suite
# would drag a newer libc onto the machine).  The mirror is the one the machine
# already uses.  apt checks the package against the signed index; we also test
# the archive before extracting it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

dst=${1:?usage: fetch-kernel.sh SRCDIR}
KVER=${KVER:-7.3}
SUITE=${KSUITE:-trixie-backports}
pkg=linux-source-$KVER

[ -f "$dst/Makefile" ] && [ -f "$dst/.tlbrace-fetched" ] && exit 0

mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/\?$/\1/p' \
	/etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\/debian\)\/\?[[:space:]].*/\2/p' \
	/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d}"

work=$(dirname "$dst")/apt
mkdir -p "$work"/{etc,state/lists/partial,cache/archives/partial,deb}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$keyring] $mirror $SUITE main" >"$work/etc/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/etc/sources.list"
	-o "Dir::Etc::SourceParts=/dev/null"
	-o "Dir::State=$work/state" -o "Dir::State::status=/dev/null"
	-o "Dir::Cache=$work/cache" -o "APT::Get::List-Cleanup=0"
	-o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")

step "download $pkg from $mirror $SUITE (private apt config in $work)"
apt-get "${apt_opts[@]}" -qq update || die "apt-get update of $SUITE failed (mirror $mirror)"
(cd "$work/deb" && rm -f ./*.deb &&
	apt-get "${apt_opts[@]}" -qq download "$pkg") || die "apt-get download $pkg failed"
deb=$(ls "$work"/deb/"$pkg"_*.deb)
done_step

step "verify and extract $(basename "$deb")"
dpkg-deb --info "$deb" >/dev/null || die "$deb is not a valid package"
rm -rf "$work/x" && mkdir -p "$work/x"
dpkg-deb -x "$deb" "$work/x"
tarball=$(ls "$work"/x/usr/src/linux-source-"$KVER"*.tar.xz 2>/dev/null | head -n1)
[ -n "$tarball" ] || die "$deb holds no linux-source tarball"
xz -t "$tarball" || die "$tarball is truncated or corrupt"
rm -rf "$dst" "$dst.tmp" && mkdir -p "$dst.tmp"
tar -C "$dst.tmp" --strip-components=1 -xJf "$tarball"
[ -f "$dst.tmp/Makefile" ] || die "extracted tree has no Makefile"
basename "$deb" >"$dst.tmp/.tlbrace-fetched"
mv "$dst.tmp" "$dst"
rm -rf "$work/x"
done_step

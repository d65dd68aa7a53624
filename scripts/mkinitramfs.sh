#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# mkinitramfs.sh OUT.cpio.gz TESTDIR MODULE...
#
# Pack the guest image: busybox-static, the init and test scripts, the static
# test binaries from TESTDIR and the given kernel modules.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

out=${1:?usage: mkinitramfs.sh OUT TESTDIR MODULE...}
tests=${2:?}
shift 2
top=$(cd "$(dirname "$0")/.." && pwd)
busybox=/bin/busybox
[ -x "$busybox" ] || die "no $busybox: install busybox-static (make deps)"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,tests,lib/modules}
cp "$busybox" "$root/bin/busybox"
cp "$top/selftests/guest/init" "$root/init"
cp "$top"/selftests/guest/*.sh "$top/selftests/guest/suites" "$root/tests/"
cp "$tests"/* "$root/tests/"
for m in "$@"; do
	[ -f "$m" ] || die "module $m is missing"
	cp "$m" "$root/lib/modules/"
done
mkdir -p "$(dirname "$out")"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
echo "  INITRAMFS $(basename "$out") ($(du -h "$out" | cut -f1))"

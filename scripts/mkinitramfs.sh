#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# mkinitramfs.sh OUT.cpio.gz TESTS_DIR
#
# Pack the guest image: busybox-static, the guest's init, and TESTS_DIR (the
# output of make install-tests, the same directory a developer copies to a
# real machine) as /tests.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

out=${1:?usage: mkinitramfs.sh OUT TESTS_DIR}
tests=${2:?}
top=$(cd "$(dirname "$0")/.." && pwd)
busybox=/bin/busybox
[ -x "$busybox" ] || die "no $busybox: install busybox-static (make deps)"
[ -x "$tests/run_tests.sh" ] || die "$tests is not an install-tests directory"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp}
cp "$busybox" "$root/bin/busybox"
cp "$top/selftests/guest/init" "$root/init"
cp -r "$tests" "$root/tests"
mkdir -p "$(dirname "$out")"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
echo "  INITRAMFS $(basename "$out") ($(du -h "$out" | cut -f1))"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# check-kdir.sh KDIR
#
# Check that a user-supplied kernel build can host tlbrace.ko.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

kdir=${1:?usage: check-kdir.sh KDIR}
[ -f "$kdir/Makefile" ] || die "KDIR=$kdir is not a kernel build directory (no Makefile)"
conf=$kdir/.config
[ -f "$conf" ] || die "KDIR=$kdir has no .config: configure and build that kernel first"
for opt in CONFIG_RUST CONFIG_MMU_NOTIFIER CONFIG_MODULES; do
	grep -qx "$opt=y" "$conf" ||
		die "KDIR=$kdir: $opt is not enabled; tlbrace needs CONFIG_RUST=y and CONFIG_MMU_NOTIFIER=y (e.g. via TEST_HMM=m), see selftests/config"
done
[ -f "$kdir/Module.symvers" ] ||
	die "KDIR=$kdir has no Module.symvers: build that kernel (make modules) first"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# install-tests.sh DIR BINDIR MODULE [MODULE...]
#
# Install tlbrace's tests the kselftest way: one self-contained directory to
# copy to a test machine booted into the kernel the module was built for,
# and to run there as root with ./run_tests.sh (TAP on stdout).  The test
# guest of make check runs exactly this directory as /tests.
#   DIR/run_tests.sh, markers.sh, kunit.sh, suites   the runner
#   DIR/<tests>                                      static binaries
#   DIR/modules/*.ko                                 tlbrace.ko (+ test_hmm.ko)
#   DIR/config                                       the kernel config fragment
set -euo pipefail
. "$(dirname "$0")/lib.sh"

dir=${1:?usage: install-tests.sh DIR BINDIR MODULE [MODULE...]}
bins=${2:?}
shift 2
top=$(cd "$(dirname "$0")/.." && pwd)
guest=$top/selftests/guest

[ -d "$bins" ] || die "no test binaries in $bins (make selftests)"
mkdir -p "$dir/modules"
rm -f "$dir"/modules/*.ko
cp "$guest"/run_tests.sh "$guest"/markers.sh "$guest"/kunit.sh "$guest"/load_modules.sh \
	"$guest"/demo.sh "$guest"/bench.sh "$guest"/cli.sh "$guest"/suites "$dir/"
cp "$bins"/* "$dir/"
cp "$top/selftests/config" "$dir/config"
for m in "$@"; do
	[ -f "$m" ] || die "module $m is missing"
	cp "$m" "$dir/modules/"
done
# Every suite the runner lists must be there.
for cmd in $(sed -n 's/^[^#][^ \t]*[ \t]\+\.\/\([^ \t]*\).*/\1/p' "$dir/suites"); do
	[ -x "$dir/$cmd" ] || die "suite program $cmd is missing from $dir"
done

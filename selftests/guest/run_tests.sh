#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs the guest set-up, every suite listed in /tests/suites, and the
# teardown, each between the markers of markers.sh, which the host
# (scripts/tap-summary.py) uses to check and count results per suite.
cd /tests || exit 1
. ./markers.sh

# tlbrace_suites= on the kernel command line (make check SUITES=...) runs
# only the named suites, plus setup and teardown.
wanted() {
	case " setup teardown $(echo "${tlbrace_suites:-$1}" | tr , " ") " in
	*" $1 "*) return 0 ;;
	esac
	return 1
}

suite() {
	wanted "$1" || return 0
	marked "$@"
}

# The guest set-up, as TAP of its own.
setup() {
	echo "TAP version 13"
	echo "1..3"
	n=$(nproc)
	if [ "$n" -ge 2 ]; then echo "ok 1 guest has $n CPUs"; else echo "not ok 1 guest has $n CPUs, want >= 2"; fi
	t=1
	for m in test_hmm tlbrace; do
		t=$((t + 1))
		if out=$(insmod /lib/modules/$m.ko 2>&1); then
			echo "ok $t insmod $m.ko"
		else
			echo "not ok $t insmod $m.ko # $out"
		fi
	done
}

teardown() {
	echo "TAP version 13"
	echo "1..1"
	if out=$(rmmod tlbrace 2>&1); then echo "ok 1 rmmod tlbrace"; else echo "not ok 1 rmmod tlbrace # $out"; fi
}

# Iterations of each race-matrix cell (kernel command line, see make help).
export TLBRACE_SAFE_ITERS=${tlbrace_safe_iters:-1000}
export TLBRACE_UNSAFE_ITERS=${tlbrace_unsafe_iters:-100}

suite setup setup
grep -v '^#' suites | while read -r name cmd; do
	[ -n "$name" ] && suite "$name" $cmd </dev/null
done
suite teardown teardown

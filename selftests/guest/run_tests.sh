#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs every suite in the guest.  Each suite is delimited by markers that the
# host (scripts/tap-summary.py) uses to count results per suite:
#   # tlbrace-suite: NAME      then the suite's own TAP output
#   # tlbrace-exit: NAME RC    its exit status
cd /tests || exit 1

suite() {
	name=$1
	shift
	# tlbrace_suites= on the kernel command line (make check SUITES=...)
	# runs only the named suites, plus setup and teardown.
	case " setup teardown $(echo "${tlbrace_suites:-$name}" | tr , " ") " in
	*" $name "*) ;;
	*) return 0 ;;
	esac
	echo "# tlbrace-suite: $name"
	"$@"
	echo "# tlbrace-exit: $name $?"
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
suite kunit ./kunit.sh
suite tlbrace_basic ./tlbrace_basic
suite tlbrace_coherence ./tlbrace_coherence
suite tlbrace_lifecycle ./tlbrace_lifecycle
suite tlbrace_races ./tlbrace_races
suite tlbrace_trackers ./tlbrace_trackers
suite hmm-tests ./hmm-tests
suite teardown teardown

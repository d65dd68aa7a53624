#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# tlbrace's test runner, in the test guest (/tests) and on a real machine
# (the directory of make install-tests, run as root on the kernel the module
# was built for).  Loads the modules from ./modules, runs each suite listed
# in ./suites between the markers of markers.sh, and unloads tlbrace.
#
#   ./run_tests.sh                 every suite
#   tlbrace_suites=a,b ./run_tests.sh   only these (plus setup, teardown)
#   TLBRACE_SAFE_ITERS=N TLBRACE_UNSAFE_ITERS=N   race-matrix iterations
#   TLBRACE_FUZZ_CALLS=N TLBRACE_FUZZ_SEED=S      the fuzzer's ioctls, its seed
#
# Without test_hmm (CONFIG_TEST_HMM=m) the hmm-tests suite is skipped.
case "${1:-}" in
-h | --help)
	sed -n '3,14s/^# \{0,1\}//p' "$0"
	exit 0 ;;
esac
cd "$(dirname "$0")" || exit 1
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

# The set-up, as TAP of its own.
setup() {
	echo "TAP version 13"
	echo "1..3"
	n=$(nproc)
	if [ "$n" -ge 2 ]; then echo "ok 1 machine has $n CPUs"; else echo "not ok 1 machine has $n CPUs, want >= 2"; fi
	if [ -f modules/test_hmm.ko ]; then
		out=$(insmod modules/test_hmm.ko 2>&1) && echo "ok 2 insmod test_hmm.ko" ||
			echo "not ok 2 insmod test_hmm.ko # $out"
	elif out=$(modprobe test_hmm 2>&1); then
		echo "ok 2 modprobe test_hmm"
	else
		echo "ok 2 test_hmm # SKIP not available (CONFIG_TEST_HMM=m): $out"
	fi
	out=$(insmod modules/tlbrace.ko 2>&1) && echo "ok 3 insmod tlbrace.ko" ||
		echo "not ok 3 insmod tlbrace.ko # $out"
	kmemleak_baseline
}

# Upstream's hmm-tests need test_hmm's /dev/hmm_dmirror*.
hmm_tests() {
	if [ ! -e /dev/hmm_dmirror0 ]; then
		echo "TAP version 13"
		echo "1..0 # SKIP test_hmm is not loaded"
		return 4
	fi
	./hmm-tests
}

# The trace suite needs the kernel's event tracing (tracefs), which a
# developer's own kernel may lack (CONFIG_EVENT_TRACING, selected by any
# tracer or by lockdep): then it is skipped as a whole, with the reason.
trace_tests() {
	if ! grep -qw tracefs /proc/filesystems; then
		echo "TAP version 13"
		echo "1..0 # SKIP the kernel has no tracefs (CONFIG_EVENT_TRACING)"
		return 4
	fi
	./tlbrace_trace
}

# The CPU path needs the kernel's mmu_gather policy hook (the series in
# kernel/patches, CONFIG_MMU_GATHER_POLICY), which only the project's test
# kernel has: elsewhere it is skipped as a whole, with the reason.
cpu_tests() {
	if ! ./tlbrace info 2>/dev/null | grep -q '^cpu path: available'; then
		echo "TAP version 13"
		echo "1..0 # SKIP the kernel has no mmu_gather policy hook (CONFIG_MMU_GATHER_POLICY)"
		return 4
	fi
	./tlbrace_cpu
}

# The unload: the module stays while any of its files is open (closing a
# debugfs file after rmmod used to oops in full_proxy_release()), then rmmod
# succeeds and kmemleak finds nothing left behind since the set-up.
teardown() {
	echo "TAP version 13"
	echo "1..5"
	stats=
	if exec 3</dev/tlbrace; then
		stats=$(ls /sys/kernel/debug/tlbrace/$$-*/stats 2>/dev/null | head -n 1)
		if rmmod tlbrace 2>/dev/null; then
			echo "not ok 1 rmmod refused while a device file is open # it unloaded"
		else
			echo "ok 1 rmmod refused while a device file is open"
		fi
	else
		echo "not ok 1 rmmod refused while a device file is open # open failed"
	fi
	if [ -n "$stats" ] && exec 4<"$stats"; then
		exec 3<&-
		if rmmod tlbrace 2>/dev/null; then
			echo "not ok 2 rmmod refused while a stats file is open # it unloaded"
		else
			echo "ok 2 rmmod refused while a stats file is open"
		fi
		if cat <&4 >/dev/null 2>&1; then
			echo "not ok 3 the stats file of a closed device reads nothing # it read"
		else
			echo "ok 3 the stats file of a closed device reads nothing"
		fi
		exec 4<&-
	else
		exec 3<&-
		echo "ok 2 # SKIP no debugfs stats file"
		echo "ok 3 # SKIP no debugfs stats file"
	fi
	if out=$(rmmod tlbrace 2>&1); then echo "ok 4 rmmod tlbrace"; else echo "not ok 4 rmmod tlbrace # $out"; fi
	kmemleak_check 5
}

# kmemleak: the set-up stops the periodic scan (its first one comes 60 s
# after boot) and forgets what boot left unreferenced; the teardown scans
# after the unload, and any object reported then fails the run.
KMEMLEAK=/sys/kernel/debug/kmemleak

kmemleak_baseline() {
	[ -w $KMEMLEAK ] || return 0
	{ echo scan=off >$KMEMLEAK && echo scan >$KMEMLEAK && echo clear >$KMEMLEAK; } 2>/dev/null
	return 0
}

kmemleak_check() {
	if [ ! -w $KMEMLEAK ]; then
		echo "ok $1 no leak after the suites # SKIP no $KMEMLEAK (CONFIG_DEBUG_KMEMLEAK)"
		return
	fi
	# Objects younger than 5 s are never reported, and one whose contents
	# changed since the previous scan (a first scan has none) not yet:
	# wait out the age, then scan twice.
	sleep 6
	if ! { echo scan >$KMEMLEAK && echo scan >$KMEMLEAK; } 2>/dev/null; then
		echo "ok $1 no leak after the suites # SKIP kmemleak is off (kmemleak=off on the kernel command line)"
		return
	fi
	n=$(grep -c '^unreferenced object' $KMEMLEAK)
	if [ "$n" -eq 0 ]; then
		echo "ok $1 no leak after the suites"
	else
		echo "not ok $1 no leak after the suites # kmemleak reports $n objects"
		head -n 60 $KMEMLEAK | sed 's/^/# /'
	fi
}

# Iterations of each race-matrix cell (kernel command line, see make help).
export TLBRACE_SAFE_ITERS=${tlbrace_safe_iters:-${TLBRACE_SAFE_ITERS:-1000}}
export TLBRACE_UNSAFE_ITERS=${tlbrace_unsafe_iters:-${TLBRACE_UNSAFE_ITERS:-100}}
# The fuzzer's ioctls and seed (make check FUZZ_CALLS=N FUZZ_SEED=S).
export TLBRACE_FUZZ_CALLS=${tlbrace_fuzz_calls:-${TLBRACE_FUZZ_CALLS:-50000}}
[ -z "${tlbrace_fuzz_seed:-}" ] || export TLBRACE_FUZZ_SEED=$tlbrace_fuzz_seed

suite setup setup
grep -v '^#' suites | while read -r name cmd; do
	case "$cmd" in
	./hmm-tests) cmd=hmm_tests ;;
	./tlbrace_trace) cmd=trace_tests ;;
	./tlbrace_cpu) cmd=cpu_tests ;;
	esac
	[ -n "$name" ] && suite "$name" $cmd </dev/null
done
suite teardown teardown

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The command-line tool as a user runs it: each seed race reproduced from
# the shell (`tlbrace race`) under a contract the matrix calls unsafe, and
# not under sync; `tlbrace matrix` of one scenario; `tlbrace stats`; `tlbrace
# trace` and the interleaving its trace shows.  A case
# passes when the tool's exit status and its printed verdict are what the
# matrix expects.
cd "$(dirname "$0")" || exit 1
n=${TLBRACE_CLI_ITERS:-20}
t=0
echo "TAP version 13"
echo "1..24"

check() {	# check DESCRIPTION EXPECTED-RC PATTERN COMMAND...
	desc=$1 want=$2 pat=$3
	shift 3
	t=$((t + 1))
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" = "$want" ] && echo "$out" | grep -q -- "$pat"; then
		echo "ok $t $desc"
	else
		echo "$out" | sed 's/^/# /'
		echo "not ok $t $desc # exit $rc, want $want and /$pat/"
	fi
}

for s in cow_stale_read:deferred-end overlapping_dontneed:batched/naive \
	unmap_during_fill:none uffd_wp_lost_protection:none soft_dirty_lost:none \
	dirty_window_lost_dirty:sva; do
	scen=${s%%:*} contract=${s#*:}
	check "race $scen -c $contract reproduces" 0 "^verdict    UNSAFE (as the matrix" \
		./tlbrace race "$scen" -c "$contract" -n "$n"
	check "race $scen -c sync does not" 0 "^verdict    safe (as the matrix" \
		./tlbrace race "$scen" -c sync -n "$n"
done
check "matrix -s overlapping_dontneed: every cell as expected" 0 "batched/ranges-full .*as expected" \
	./tlbrace matrix -s overlapping_dontneed -n "$n"
check "race with an unknown tracker is refused" 2 "no contract batched/bogus" \
	./tlbrace race cow_stale_read -t bogus
check "race of a device scenario under a CPU policy is refused" 2 "does not run under cpu/naive" \
	./tlbrace race cow_stale_read -c cpu/naive
# Seed 003 on the CPUs: only the project's patched kernel has the hook.
if ./tlbrace info | grep -q '^cpu path: available'; then
	check "race cpu_overlapping_dontneed -c cpu/naive reproduces" 0 \
		"^verdict    UNSAFE (as the matrix" ./tlbrace race cpu_overlapping_dontneed -c cpu/naive -n "$n"
	check "race cpu_overlapping_dontneed -c cpu/ranges does not" 0 \
		"^verdict    safe (as the matrix" ./tlbrace race cpu_overlapping_dontneed -c cpu/ranges -n "$n"
else
	for d in "race cpu/naive" "race cpu/ranges"; do
		t=$((t + 1))
		echo "ok $t $d # SKIP the kernel has no mmu_gather policy hook"
	done
fi
check "stats shows an open device" 0 "^contract: sync" \
	sh -c 'exec 3</dev/tlbrace; ./tlbrace stats $$'

# tlbrace trace: the race's interleaving as the trace records it.  Under
# naive: gather A is parked; gather B (from page 2) closes flushing only what
# it cleared; B's madvise returns; then the device's read of page 2 is a
# stale access to that address; only after that is A released.
naive_interleaving() {	# naive_interleaving TRACE
	awk '
	NR == FNR { if (/tracing_mark_write: device reads page 2 /) page2 = $NF; next }
	/tlbrace_inject: .* parked / && !parked { parked = FNR }
	/tlbrace_inject: .* released / && !released { released = FNR }
	/tlbrace_gather_close: / && index($0, " start=" page2 " ") && /flush=cleared/ { b_close = FNR }
	/tracing_mark_write: B: madvise returned/ { b_ret = FNR }
	/tlbrace_stale: / && index($0, " addr=" page2 " ") && !stale { stale = FNR }
	END {
		printf "# lines: A parked %d, B closed %d, B returned %d, stale read of page 2 (%s) %d, A released %d\n",
		       parked, b_close, b_ret, page2, stale, released
		exit !(page2 != "" && parked && parked < b_close && b_close < b_ret &&
		       b_ret < stale && stale < released)
	}' "$1" "$1"
}
# Under ranges-wait, B's close waits for A instead: no stale access at all.
trace_ranges_wait() {
	./tlbrace trace overlapping_dontneed -t ranges-wait -o /tmp/cli-rw.txt || return
	if grep -q "tlbrace_gather_close: .* waited=1 " /tmp/cli-rw.txt &&
		! grep -q "tlbrace_stale: " /tmp/cli-rw.txt; then
		echo "trace: a close waited, no stale access"
	else
		echo "trace: no close waited, or a stale access"
		return 1
	fi
}
# Ctrl-C in the middle of a long trace: the tool still removes its trace
# instance (its own SIGINT handler, even though a background job of a
# script starts with SIGINT ignored) and exits 130.
trace_interrupted() {
	inst=/sys/kernel/tracing/instances
	./tlbrace trace overlapping_dontneed -t naive -n 100000 -o /tmp/cli-int.txt &
	pid=$!
	i=0
	while [ ! -d "$inst/tlbrace-$pid-trace" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	sleep 1
	kill -INT $pid
	i=0
	while kill -0 $pid 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL $pid 2>/dev/null
	wait $pid
	rc=$?
	if [ -d "$inst/tlbrace-$pid-trace" ]; then
		echo "interrupted: exit $rc, instance left behind"
		rmdir "$inst/tlbrace-$pid-trace"
		return 1
	fi
	echo "interrupted: exit $rc, instance removed"
}
# A kernel without tracefs (a developer's, see run_tests.sh) skips these five.
if grep -qw tracefs /proc/filesystems; then
	check "trace overlapping_dontneed -t naive: UNSAFE, traced" 0 "^trace      /tmp/cli-naive.txt: [1-9]" \
		./tlbrace trace overlapping_dontneed -t naive -o /tmp/cli-naive.txt
	check "trace -t naive: stale read of page 2 after B returned, inside A's park" 0 "stale read" \
		naive_interleaving /tmp/cli-naive.txt
	check "trace -t ranges-wait: safe; B's close waited, no stale access" 0 \
		"a close waited, no stale access" trace_ranges_wait
	check "trace interrupted by SIGINT: exits 130, its instance removed" 0 \
		"interrupted: exit 130, instance removed" trace_interrupted
	check "trace of more than its buffer holds says it lost events" 0 \
		"lost its [1-9][0-9]* oldest events" \
		./tlbrace trace overlapping_dontneed -t naive -n 2000 -o /tmp/cli-long.txt
	rm -f /tmp/cli-long.txt /tmp/cli-int.txt
else
	for d in "trace -t naive" "trace -t naive: interleaving" "trace -t ranges-wait" \
		"trace interrupted" "trace lost events"; do
		t=$((t + 1))
		echo "ok $t $d # SKIP the kernel has no tracefs (CONFIG_EVENT_TRACING)"
	done
fi
check "trace of an unknown scenario is refused" 2 "no scenario bogus" ./tlbrace trace bogus

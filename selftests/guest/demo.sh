#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# What `make demo` shows: the module loading and answering.  Each step runs
# between the markers of markers.sh; the host fails the run on a step that fails.
. /tests/markers.sh

marked load /tests/load_modules.sh || exit 1
marked lsmod lsmod
marked device ls -l /dev/tlbrace
marked info /tests/tlbrace info
marked demo /tests/tlbrace demo
# Seed 001: COW vs the device TLB, broken (deferred-end) and correct (sync).
marked cow-deferred-end /tests/tlbrace race cow_stale_read -c deferred-end -n 20
marked cow-sync /tests/tlbrace race cow_stale_read -c sync -n 20
# Seed 003: overlapping MADV_DONTNEED under the batched contract's trackers.
for t in naive counter ranges; do
	marked "overlap-$t" /tests/tlbrace race overlapping_dontneed -t "$t" -n 20
done
# The same race traced, under naive (the race) and ranges-wait (B waits for A)
# or the cells named by tlbrace_trace=SCENARIO:CONTRACT,...: each trace is
# printed between markers, for the host to draw (scripts/demo-traces.sh).
for c in $(echo "${tlbrace_trace:-overlapping_dontneed:batched/naive,overlapping_dontneed:batched/ranges-wait}" | tr , ' '); do
	name=trace-$(echo "$c" | tr :/ --)
	marked "$name" /tests/tlbrace trace "${c%%:*}" -c "${c#*:}" -o "/tmp/$name.txt" &&
		{ echo "# tlbrace-trace-begin $name"; cat "/tmp/$name.txt"; echo "# tlbrace-trace-end"; }
done
marked dmesg sh -c 'dmesg | grep -i tlbrace'

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
marked dmesg sh -c 'dmesg | grep -i tlbrace'

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The module's KUnit suites (tlbrace_*) ran when tlbrace.ko was loaded; report
# their cases from debugfs as one flat TAP list.
results=$(ls /sys/kernel/debug/kunit/tlbrace_*/results 2>/dev/null)
echo "TAP version 13"
if [ ! -d /sys/kernel/debug/kunit ]; then
	echo "1..0 # SKIP no /sys/kernel/debug/kunit (CONFIG_KUNIT, debugfs mounted?)"
	exit 4
fi
if [ -z "$results" ]; then
	echo "1..1"
	echo "not ok 1 no tlbrace KUnit results in /sys/kernel/debug/kunit"
	exit 1
fi
cases=$(for f in $results; do
	suite=$(basename "$(dirname "$f")")
	awk -v suite="$suite" '/^[ \t]+(not )?ok [0-9]+ / {
		sub(/^[ \t]+/, "")
		res = ($1 == "ok") ? "ok" : "not ok"
		sub(/^(not )?ok [0-9]+ /, "")
		print res " " suite "." $0
	}' "$f"
done)
echo "1..$(echo "$cases" | grep -c .)"
echo "$cases" | awk '{ r = ($1 == "ok") ? "ok" : "not ok"; sub(/^(not )?ok /, ""); print r " " NR " " $0 }'
! echo "$cases" | grep -q '^not ok'

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The command-line tool as a user runs it: each seed race reproduced from
# the shell (`tlbrace race`) under a contract the matrix calls unsafe, and
# not under sync; `tlbrace matrix` of one scenario; `tlbrace stats`.  A case
# passes when the tool's exit status and its printed verdict are what the
# matrix expects.
cd "$(dirname "$0")" || exit 1
n=${TLBRACE_CLI_ITERS:-20}
t=0
echo "TAP version 13"
echo "1..15"

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
check "stats shows an open device" 0 "^contract: sync" \
	sh -c 'exec 3</dev/tlbrace; ./tlbrace stats $$'

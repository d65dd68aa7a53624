#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# race-table.sh VM_LOG OUTDIR
#
# Extract the race matrix from a check run: OUTDIR/races.csv and a text table
# OUTDIR/races.txt (printed too).
set -euo pipefail
log=${1:?usage: race-table.sh VM_LOG OUTDIR}
out=${2:?}
csv=$out/races.csv
echo "scenario,contract,expect,iterations,invalid,hits,first_hit_iteration,first_hit_us,us_per_iteration" >"$csv"
sed -n 's/^# csv: //p' "$log" >>"$csv"
[ "$(wc -l <"$csv")" -gt 1 ] || exit 0
# The rate is over valid iterations: an invalid one (race window not
# opened) says nothing either way.
awk -F, 'NR > 1 {
	valid = $4 - $5
	rate = valid > 0 ? sprintf("%.1f%%", 100 * $6 / valid) : "-"
	first = $7 < 0 ? "-" : sprintf("%d (%.1f ms)", $7, $8 / 1000)
	printf "%-26s %-20s %-7s %7d %7d %7d %8s  %-18s %8.1f\n", $1, $2, $3, $4, $5, $6, rate, first, $9 / 1000
}' "$csv" | {
	printf "%-26s %-20s %-7s %7s %7s %7s %8s  %-18s %8s\n" scenario contract expect iters invalid \
		hits rate "first hit" "ms/iter"
	cat
} | tee "$out/races.txt"
echo "race matrix: $csv, $out/races.txt"

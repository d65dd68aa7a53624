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
echo "scenario,contract,expect,iterations,hits,first_hit_iteration,first_hit_us,us_per_iteration" >"$csv"
sed -n 's/^# csv: //p' "$log" >>"$csv"
[ "$(wc -l <"$csv")" -gt 1 ] || exit 0
awk -F, 'NR > 1 {
	rate = $4 ? 100 * $5 / $4 : 0
	first = $6 < 0 ? "-" : sprintf("%d (%.1f ms)", $6, $7 / 1000)
	printf "%-26s %-20s %-7s %7d %7d %7.1f%%  %-18s %8.1f\n", $1, $2, $3, $4, $5, rate, first, $8 / 1000
}' "$csv" | {
	printf "%-26s %-20s %-7s %7s %7s %8s  %-18s %8s\n" scenario contract expect iters hits rate \
		"first hit" "ms/iter"
	cat
} | tee "$out/races.txt"
echo "race matrix: $csv, $out/races.txt"

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# What `make bench` runs: every benchmark, in this one boot.  The host fails
# the run when a step fails (see demo.sh).
. /tests/markers.sh

marked load /tests/load_modules.sh
echo "# tlbrace-bench-begin"
marked bench /tests/tlbrace_bench "${tlbrace_bench_iters:-400}" 5 "${tlbrace_tracker_rounds:-3}" \
	"${tlbrace_bench_only:-all}"
echo "# tlbrace-bench-end"

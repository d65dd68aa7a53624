#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# What `make bench` runs: every benchmark, in this one boot.
/tests/load_modules.sh || exit 1
echo "# tlbrace-bench-begin"
/tests/tlbrace_bench "${tlbrace_bench_iters:-400}" 5 "${tlbrace_tracker_rounds:-3}" \
	"${tlbrace_bench_only:-all}"
echo "# tlbrace-bench-end"

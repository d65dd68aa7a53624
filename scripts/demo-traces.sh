#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# demo-traces.sh LOG OUTDIR
#
# Takes the traces `make demo` printed (demo.sh: between
# '# tlbrace-trace-begin NAME' and '# tlbrace-trace-end') out of the guest's
# log into OUTDIR/NAME.txt, and draws each as OUTDIR/NAME.svg with
# trace-timeline.py.  Fails if the log holds no trace.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

log=${1:?usage: demo-traces.sh LOG OUTDIR}
out=${2:?usage: demo-traces.sh LOG OUTDIR}
[ -f "$log" ] || die "$log: no such file (run make demo)"
names=$(sed -n 's/^# tlbrace-trace-begin \([A-Za-z0-9_.-]\+\)$/\1/p' "$log")
[ -n "$names" ] || die "$log holds no trace (did the demo's trace steps fail?)"
for name in $names; do
	sed -n "/^# tlbrace-trace-begin $name\$/,/^# tlbrace-trace-end\$/{//!p}" "$log" >"$out/$name.txt"
	python3 "$(dirname "$0")/trace-timeline.py" "$out/$name.txt" "$out/$name.svg" \
		--title "$name (make demo)"
done

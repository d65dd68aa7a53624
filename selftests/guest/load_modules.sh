#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Load test_hmm.ko (the upstream anchor) and tlbrace.ko from the modules
# directory beside this script; print why on failure.
cd "$(dirname "$0")" || exit 1
rc=0
for m in test_hmm tlbrace; do
	if ! out=$(insmod modules/$m.ko 2>&1); then
		echo "# insmod $m.ko failed: $out"
		rc=1
	fi
done
exit $rc

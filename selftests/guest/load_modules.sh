#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Load test_hmm.ko (the upstream anchor) and tlbrace.ko; print why on failure.
rc=0
for m in test_hmm tlbrace; do
	if ! out=$(insmod /lib/modules/$m.ko 2>&1); then
		echo "# insmod $m.ko failed: $out"
		rc=1
	fi
done
exit $rc

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
marked dmesg sh -c 'dmesg | grep -i tlbrace'

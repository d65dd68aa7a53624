#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# What `make demo` shows: the module loading and answering.
/tests/load_modules.sh || exit 1
echo "== lsmod"; lsmod
echo "== /dev/tlbrace"; ls -l /dev/tlbrace
echo "== tlbrace info"; /tests/tlbrace info
echo "== tlbrace demo"; /tests/tlbrace demo
echo "== kernel log"; dmesg | grep -i tlbrace

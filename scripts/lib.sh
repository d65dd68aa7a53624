# SPDX-License-Identifier: GPL-2.0
# Shared helpers for tlbrace's host scripts: progress lines with durations.

_step_start=0
_step_name=

step() {
	_step_name=$1
	_step_start=$(date +%s)
	printf '  %-8s %s\n' "[..]" "$_step_name" >&2
}

done_step() {
	printf '  %-8s %s (%ss)\n' "[ok]" "$_step_name" "$(($(date +%s) - _step_start))" >&2
}

die() {
	printf 'tlbrace: error: %s\n' "$*" >&2
	exit 1
}

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# patch-kernel.sh SRCDIR PATCHEDDIR PATCH...
#
# Make PATCHEDDIR, the fetched kernel source SRCDIR with the project's patch
# series (kernel/patches/) applied in order.  SRCDIR stays untouched:
# PATCHEDDIR is a hard-linked copy, and git apply writes every file it
# changes anew.  The caller names PATCHEDDIR after a hash of the series, so a
# finished tree is reused as is.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

src=${1:?usage: patch-kernel.sh SRCDIR PATCHEDDIR PATCH...}
dst=${2:?}
shift 2
[ -f "$dst/.tlbrace-patched" ] && exit 0
[ -f "$src/.tlbrace-fetched" ] || die "$src is not a fetched kernel source"

step "patch the kernel source: $# patch(es) from kernel/patches"
rm -rf "$dst" "$dst.tmp"
cp -al "$src" "$dst.tmp"
for p; do
	(cd "$dst.tmp" && git apply --check "$p" 2>&1 && git apply "$p") >&2 ||
		{ rm -rf "$dst.tmp"; die "$(basename "$p") does not apply to $(cat "$src/.tlbrace-fetched")"; }
	basename "$p" >>"$dst.tmp/.tlbrace-patched"
done
mv "$dst.tmp" "$dst"
done_step

# Keep the two most recent patched trees (e.g. while a series changes).
ls -dt "$(dirname "$dst")"/src-p* 2>/dev/null | tail -n +3 | xargs -r rm -rf

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# build-kernel.sh SRCDIR BUILDDIR FRAGMENT...
#
# Configure (tinyconfig + the FRAGMENTs, later ones win) and build the test
# kernel out of tree in
# BUILDDIR.  BUILDDIR is named by the caller after a hash of everything that
# goes into the build, so a finished build is reused as is.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

src=${1:?usage: build-kernel.sh SRCDIR BUILDDIR FRAGMENT...}
out=${2:?}
shift 2
(($# > 0)) || die "usage: build-kernel.sh SRCDIR BUILDDIR FRAGMENT..."
frags=()
for f; do frags+=("$(realpath "$f")"); done
: "${LLVM:=-19}"
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm$LLVM/lib}
export PATH="$HOME/.cargo/bin:$PATH"
kmake=(make -C "$src" O="$out" LLVM="$LLVM" -j"$(nproc)")

[ -f "$out/.tlbrace-built" ] && exit 0

mkdir -p "$out"
step "configure: tinyconfig + $*"
"${kmake[@]}" -s rustavailable >/dev/null ||
	die "Rust toolchain not usable for this kernel (run: make -C $src LLVM=$LLVM rustavailable)"
"${kmake[@]}" -s tinyconfig >/dev/null
(cd "$out" && "$src/scripts/kconfig/merge_config.sh" -m -O "$out" .config "${frags[@]}" >/dev/null)
"${kmake[@]}" -s olddefconfig >/dev/null
# Fail loudly when Kconfig dropped a requested option (unmet dependency).
bad=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		grep -qx -- "$line" "$out/.config" || {
			echo "  requested $line, got: $(grep -E "^(# )?${line%%=*}[= ]" "$out/.config" || echo unset)" >&2
			bad=1
		} ;;
	esac
done < <(cat "${frags[@]}")
((bad == 0)) || die "options above did not land in $out/.config (unmet dependencies?)"
done_step

step "build: bzImage + modules (~6-10 min on 2 cores, log in $out/build.log)"
"${kmake[@]}" bzImage modules >"$out/build.log" 2>&1 ||
	{ tail -n 30 "$out/build.log" >&2; die "kernel build failed, see $out/build.log"; }
done_step

step "headers_install (for the selftests)"
"${kmake[@]}" -s headers_install >/dev/null
done_step

touch "$out/.tlbrace-built"

# Keep the three most recent builds (e.g. after config changes), drop older ones.
ls -dt "$(dirname "$out")"/build-* 2>/dev/null | tail -n +4 | xargs -r rm -rf

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what the host needs to build the kernel, the module and the guest
# image.  Idempotent: every step checks first and only installs what is missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BINDGEN_VERSION=${BINDGEN_VERSION:-0.72.1}
LLVM_SUFFIX=${LLVM_SUFFIX:--19}

PACKAGES=(
	make git gcc libc6-dev flex bison bc libelf-dev libssl-dev cpio rsync xz-utils
	"clang${LLVM_SUFFIX}" "lld${LLVM_SUFFIX}" "llvm${LLVM_SUFFIX}" "libclang${LLVM_SUFFIX}-dev"
	busybox-static qemu-system-x86 python3 ca-certificates gnuplot-nox python3-sphinx
)

apt_install() {
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$@"
}

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
if ((${#missing[@]})); then
	step "apt: installing ${missing[*]}"
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq || die "apt-get update failed (is a Debian mirror reachable?)"
	log=$(mktemp)
	# One retry after "dpkg --configure -a": a first install on a fresh
	# machine can stop on a package's post-install script.
	if ! apt_install "${missing[@]}" >"$log" 2>&1; then
		$SUDO dpkg --configure -a >>"$log" 2>&1 || true
		apt_install "${missing[@]}" >>"$log" 2>&1 ||
			{ tail -n 20 "$log" >&2; die "apt-get install ${missing[*]} failed (log: $log)"; }
	fi
	rm -f "$log"
	done_step
fi

command -v rustc >/dev/null || die "no rustc on PATH: install a Rust toolchain (rustup) first"

# rust-src: the kernel builds its own core/alloc from the toolchain's sources.
sysroot=$(rustc --print sysroot)
if [ ! -d "$sysroot/lib/rustlib/src/rust/library/core" ]; then
	step "rustup: adding rust-src to $(rustc --version)"
	if ! rustup component add rust-src >/dev/null 2>&1; then
		die "rustup could not add rust-src; fallback: apt-get install rustc-web rust-web-src and put /usr/lib/rust-web/bin first on PATH"
	fi
	done_step
fi

export PATH="$HOME/.cargo/bin:$PATH"
if ! bindgen --version 2>/dev/null | grep -qx "bindgen $BINDGEN_VERSION"; then
	step "cargo: installing bindgen-cli $BINDGEN_VERSION (takes ~2 min)"
	LIBCLANG_PATH=/usr/lib/llvm${LLVM_SUFFIX}/lib \
		cargo install --quiet --locked --version "$BINDGEN_VERSION" bindgen-cli ||
		die "cargo install bindgen-cli $BINDGEN_VERSION failed"
	done_step
fi

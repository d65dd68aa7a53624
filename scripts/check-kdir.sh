#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# check-kdir.sh KDIR [module|headers|vm]
#
# Check that a user-supplied kernel build can host tlbrace.ko; with
# "headers" also install its uapi headers for the selftests if they are not
# there (as kselftest does); with "vm" also check that it can boot the test
# guest and run the suites (make check, demo, bench, shell with KDIR=).
# Names every missing option at once.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

kdir=${1:?usage: check-kdir.sh KDIR [module|headers|vm]}
mode=${2:-module}
[ -f "$kdir/Makefile" ] || die "KDIR=$kdir is not a kernel build directory (no Makefile)"
conf=$kdir/.config
[ -f "$conf" ] || die "KDIR=$kdir has no .config: configure and build that kernel first"

# OPTION:why
need=(
	CONFIG_RUST:"the module is Rust"
	CONFIG_MMU_NOTIFIER:"the device's coherence (e.g. via CONFIG_TEST_HMM=m)"
	CONFIG_MODULES:"insmod"
)
[ "$mode" = vm ] && need+=(
	CONFIG_MODULE_UNLOAD:"the suite unloads tlbrace"
	CONFIG_64BIT:"the guest is x86-64"
	CONFIG_SMP:"races need 2 CPUs"
	CONFIG_ACPI:"without it the guest sees one CPU and cannot power off"
	CONFIG_SERIAL_8250_CONSOLE:"the guest's serial consoles"
	CONFIG_BLK_DEV_INITRD:"the guest is an initramfs"
	CONFIG_RD_GZIP:"the initramfs is gzip'ed"
	CONFIG_BINFMT_ELF:"the test binaries"
	CONFIG_BINFMT_SCRIPT:"the guest's init and runner are scripts"
	CONFIG_DEVTMPFS:"/dev/tlbrace"
	CONFIG_PROC_FS:"/proc/self/pagemap, clear_refs"
	CONFIG_SYSFS:"/sys"
	CONFIG_TMPFS:"/tmp, /dev/shm"
	CONFIG_SHMEM:"memfd (COW scenario)"
	CONFIG_DEBUG_FS:"statistics and KUnit results"
	CONFIG_FUTEX:"pthreads"
	CONFIG_EVENTFD:"the injection engine's rendezvous"
	CONFIG_ADVISE_SYSCALLS:"madvise"
	CONFIG_POSIX_TIMERS:"clock_gettime timings"
	CONFIG_USERFAULTFD:"the uffd-wp scenario"
	CONFIG_MEM_SOFT_DIRTY:"the soft-dirty scenarios"
	CONFIG_PROC_PAGE_MONITOR:"pagemap evidence"
)
missing=()
for n in "${need[@]}"; do
	opt=${n%%:*}
	grep -qx "$opt=y" "$conf" || missing+=("  $opt=y  (${n#*:})")
done
if ((${#missing[@]})); then
	printf 'tlbrace: error: KDIR=%s lacks what tlbrace%s needs:\n' "$kdir" \
		"$([ "$mode" = vm ] && echo "'s test guest")" >&2
	printf '%s\n' "${missing[@]}" >&2
	die "enable them (selftests/config is a complete working fragment) and rebuild that kernel"
fi
[ -f "$kdir/Module.symvers" ] ||
	die "KDIR=$kdir has no Module.symvers: build that kernel (make modules) first"
[ "$mode" != vm ] || [ -f "$kdir/arch/x86/boot/bzImage" ] ||
	die "KDIR=$kdir has no arch/x86/boot/bzImage: build it (make bzImage) first"
if [ "$mode" != module ]; then
	# The selftests build against the kernel's exported headers, as kselftest does.
	if [ ! -f "$kdir/usr/include/linux/userfaultfd.h" ]; then
		step "headers_install in KDIR=$kdir (for the selftests)"
		make -s -C "$kdir" ${LLVM:+LLVM=$LLVM} headers_install >/dev/null || die "headers_install in $kdir failed"
		done_step
	fi
fi

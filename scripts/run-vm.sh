#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# run-vm.sh BZIMAGE INITRAMFS MODE [TAP-SUMMARY ARGS...]
#
# Boot the test guest in QEMU (KVM when /dev/kvm works, TCG otherwise).
#   check  run every test; the exit status is the verdict of
#          scripts/tap-summary.py (test results + kernel splats)
#   demo   load the module and show what it can do
#   bench  run the benchmarks (output also kept in build/bench.txt)
#   shell  interactive shell on the serial console (exit powers off)
# Outside the shell the guest's tests print on the first serial port
# (build/vm-MODE.log) and the kernel's console is the second one
# (build/vm-MODE.klog): both are followed while the guest runs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

kernel=${1:?usage: run-vm.sh BZIMAGE INITRAMFS MODE [TAP-SUMMARY ARGS...]}
initrd=${2:?}
mode=${3:?}
shift 3
top=$(cd "$(dirname "$0")/.." && pwd)
: "${VM_SMP:=2}" "${VM_MEM:=2G}" "${VM_TIMEOUT:=3000}" "${VM_APPEND:=}"
log=${VM_LOG:-$top/build/vm-$mode.log}
klog=${log%.log}.klog

# KVM only when the CPU really has VMX/SVM: a /dev/kvm without it (nested
# virtualisation turned off) opens fine and then never runs a guest.
accel=${VM_ACCEL:-}
if [ -z "$accel" ]; then
	accel=tcg,thread=multi
	if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo &&
		echo q | timeout 20 qemu-system-x86_64 -accel kvm -M q35 -display none \
			-nodefaults -monitor stdio -S >/dev/null 2>&1; then
		accel=kvm
	fi
fi

qemu=(qemu-system-x86_64 -accel "$accel" -cpu max -smp "$VM_SMP" -m "$VM_MEM"
	-kernel "$kernel" -initrd "$initrd" -nographic -no-reboot -nic none)
cmdline="panic=-1 tlbrace_mode=$mode $VM_APPEND"

echo "  VM       $mode: ${accel%%,*}, $VM_SMP vCPUs, $VM_MEM, timeout ${VM_TIMEOUT}s, log $log" >&2
case "$mode" in
shell)
	exec "${qemu[@]}" -append "console=ttyS0 loglevel=3 $cmdline" ;;
check | demo | bench)
	rm -f "$log" "$klog"
	start=$(date +%s)
	set +e
	# Everything but debug messages reaches the kernel log as it happens.
	timeout --foreground -k 10 "$VM_TIMEOUT" "${qemu[@]}" -serial mon:stdio \
		-serial "file:$klog" -append "console=ttyS1 loglevel=7 $cmdline" \
		</dev/null 2>&1 | sed -u 's/\r$//' >"$log" &
	vm=$!
	# Follow both logs live; the summary script reads them as they grow.
	python3 "$top/scripts/tap-summary.py" --mode "$mode" --follow "$log" --klog "$klog" \
		--pid "$vm" "$@"
	rc=$?
	wait "$vm"
	echo "  VM       done in $(($(date +%s) - start))s" >&2
	exit $rc ;;
*)
	die "unknown mode $mode (check, demo, bench, shell)" ;;
esac

# SPDX-License-Identifier: GPL-2.0
#
# tlbrace: a fake device with its own TLB, to make TLB-flush races visible.
# Kbuild reads ./Kbuild when it builds the module; this Makefile is the
# user-facing entry point.  `make help` lists the targets.

KVER      ?= 7.3
LLVM      ?= -19
CACHE     ?= $(HOME)/.cache/tlbrace
# Hard timeout of one VM run, in seconds.
VM_TIMEOUT ?= 3000
VM_SMP    ?= 2
VM_MEM    ?= 2G
VM_ACCEL  ?=
# Iterations per race-matrix cell: safe cells (must show 0 violations) and
# unsafe cells (must reproduce in >= 99%).
RACE_SAFE_ITERS   ?= 1000
RACE_UNSAFE_ITERS ?= 100
# Both must be positive integers: 0 would pass every safe cell without a
# single iteration.  Checked before anything is built.
$(foreach v,RACE_SAFE_ITERS RACE_UNSAFE_ITERS,$(if $(shell printf '%s\n' '$(subst ','\'',$($(v)))' \
	| grep -Ex '[1-9][0-9]{0,8}'),,$(error $(v)=$($(v)): want a positive integer, 1..999999999)))
# make bench: rounds of the tracker benchmark; BENCH_ONLY=trackers skips the
# rest, BENCH_ONLY=trackers1 runs only its one-thread part.
TRACKER_ROUNDS ?= 3
BENCH_ONLY ?=
# Run only these guest suites (comma-separated), e.g. SUITES=kunit,tlbrace_races.
SUITES    ?=

SRCTREE   := $(CURDIR)
OUT       := $(SRCTREE)/build
KSRC      := $(CACHE)/linux-$(KVER)/src
# The cached kernel build is keyed by what decides its contents: the config
# fragment, the toolchain, and RECIPE, bumped when scripts/build-kernel.sh
# changes what it builds.
RECIPE    := 1
KEY       := $(shell sha256sum < selftests/config | cut -c1-8)-r$(RECIPE)-$(shell \
		rustc --version 2>/dev/null | awk '{print $$2}')$(LLVM)
KBUILD    := $(CACHE)/linux-$(KVER)/build-$(KEY)
export PATH := $(HOME)/.cargo/bin:$(PATH)
export LIBCLANG_PATH ?= /usr/lib/llvm$(LLVM)/lib

# KDIR: the kernel build the module is built against.  Defaults to the cached
# test kernel; point it at your own Rust-enabled build to use that instead.
ifeq ($(origin KDIR),undefined)
KDIR      := $(KBUILD)
OWN_KDIR  :=
else
OWN_KDIR  := 1
endif

KMAKE      = $(MAKE) -C $(KDIR) M=$(SRCTREE) LLVM=$(LLVM)
MODULE    := $(SRCTREE)/rust/tlbrace.ko
INITRAMFS := $(OUT)/initramfs.cpio.gz

.PHONY: all modules deps kernel selftests initramfs check demo shell bench \
	rustfmt rustfmtcheck clippy clean distclean help kdir-check

all: modules

help:
	@echo 'tlbrace - a fake device with its own TLB, for TLB-flush races'
	@echo
	@echo 'Set up and run (everything is installed and built on demand):'
	@echo '  make check      - build all, boot the test VM, run every test (TAP),'
	@echo '                    fail on any test failure or kernel splat'
	@echo '  make demo       - boot the VM, load the module, show what it can do'
	@echo '  make shell      - boot the VM with the module and tests, interactive shell'
	@echo '  make bench      - run the benchmarks in the VM (ratios; build/bench.txt)'
	@echo
	@echo 'Pieces:'
	@echo '  make deps       - install host packages, rust-src and bindgen-cli'
	@echo '  make kernel     - fetch, configure and build the test kernel (cached)'
	@echo '  make [modules]  - build rust/tlbrace.ko against KDIR'
	@echo '  make selftests  - build the static test binaries'
	@echo '  make initramfs  - pack the guest image'
	@echo '  make rustfmt    - format the Rust sources; rustfmtcheck only checks'
	@echo '  make CLIPPY=1   - build the module with clippy'
	@echo '  make clean      - remove build outputs from the work tree'
	@echo '  make distclean  - also remove the cached kernel builds ($(CACHE))'
	@echo
	@echo 'Variables:'
	@echo '  KDIR=/path      - build the module against your own kernel build'
	@echo '                    (needs CONFIG_RUST=y and CONFIG_MMU_NOTIFIER=y)'
	@echo '  LLVM=$(LLVM)       - LLVM suffix passed to Kbuild'
	@echo '  VM_SMP=$(VM_SMP) VM_MEM=$(VM_MEM) VM_TIMEOUT=$(VM_TIMEOUT) VM_ACCEL=kvm|tcg (default: detected)'
	@echo '  RACE_SAFE_ITERS=$(RACE_SAFE_ITERS) RACE_UNSAFE_ITERS=$(RACE_UNSAFE_ITERS) - race matrix iterations per cell'
	@echo '  SUITES=a,b      - run only these guest suites (e.g. kunit,tlbrace_races)'
	@echo '  TRACKER_ROUNDS=3 BENCH_ONLY=trackers - make bench: tracker rounds, only trackers'
	@echo '  CACHE=$(CACHE)'
	@echo
	@echo 'Cached kernel: $(KBUILD)'

deps:
	@bash scripts/host-deps.sh

$(KSRC)/.tlbrace-fetched: | deps
	@KVER=$(KVER) bash scripts/fetch-kernel.sh $(KSRC)

$(KBUILD)/.tlbrace-built: $(KSRC)/.tlbrace-fetched | deps
	@LLVM=$(LLVM) bash scripts/build-kernel.sh $(KSRC) $(KBUILD) selftests/config

kernel: $(KBUILD)/.tlbrace-built
	@echo "kernel: $(KBUILD)/arch/x86/boot/bzImage"

ifeq ($(OWN_KDIR),)
kdir-check: kernel
else
kdir-check:
	@bash scripts/check-kdir.sh $(KDIR)
endif

modules: kdir-check
	@$(KMAKE) modules

selftests: kernel
	@$(MAKE) -s -C selftests KSRC=$(KSRC) KBUILD=$(KBUILD) OUT=$(OUT)/selftests

initramfs: modules selftests
	@bash scripts/mkinitramfs.sh $(INITRAMFS) $(OUT)/selftests $(MODULE) \
		$(KBUILD)/lib/test_hmm.ko

VM = VM_APPEND="tlbrace_safe_iters=$(RACE_SAFE_ITERS) tlbrace_unsafe_iters=$(RACE_UNSAFE_ITERS) \
	$(if $(SUITES),tlbrace_suites=$(SUITES))" \
	VM_ACCEL=$(VM_ACCEL) VM_SMP=$(VM_SMP) VM_MEM=$(VM_MEM) VM_TIMEOUT=$(VM_TIMEOUT) \
	bash scripts/run-vm.sh $(KBUILD)/arch/x86/boot/bzImage $(INITRAMFS)

check: initramfs
	@$(VM) check; rc=$$?; bash scripts/race-table.sh $(OUT)/vm-check.log $(OUT); exit $$rc

demo: initramfs
	@$(VM) demo

# Ratios of variants measured in one VM run; see Documentation/benchmarks.rst.
bench: initramfs
	@VM_APPEND="tlbrace_tracker_rounds=$(TRACKER_ROUNDS) $(if $(BENCH_ONLY),tlbrace_bench_only=$(BENCH_ONLY))" \
		VM_ACCEL=$(VM_ACCEL) VM_SMP=$(VM_SMP) VM_MEM=$(VM_MEM) VM_TIMEOUT=$(VM_TIMEOUT) \
		bash scripts/run-vm.sh $(KBUILD)/arch/x86/boot/bzImage $(INITRAMFS) bench
	@sed -n '/^# tlbrace-bench-begin/,/^# tlbrace-bench-end/{//!p}' $(OUT)/vm-bench.log \
		| grep -v '^# trackers-csv' >$(OUT)/bench.txt
	@python3 scripts/tracker-report.py $(OUT)/vm-bench.log $(OUT)
	@echo "bench: results in $(OUT)/bench.txt"

shell: initramfs
	@$(VM) shell

rustfmt:
	@find rust -name '*.rs' ! -name '*_generated.rs' | xargs rustfmt --edition 2021 --config-path $(KSRC)/.rustfmt.toml

rustfmtcheck:
	@find rust -name '*.rs' ! -name '*_generated.rs' | xargs rustfmt --edition 2021 --config-path $(KSRC)/.rustfmt.toml --check

clean:
	@[ ! -f $(KDIR)/Makefile ] || $(KMAKE) clean
	rm -rf $(OUT)

distclean: clean
	rm -rf $(CACHE)

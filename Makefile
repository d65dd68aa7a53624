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
# ioctls the fuzzer (tlbrace_fuzz) makes; CI makes 100000.
FUZZ_CALLS        ?= 50000
# All must be positive integers: 0 would pass every safe cell without a
# single iteration, or the fuzzer without a call.  Checked before anything
# is built.
$(foreach v,RACE_SAFE_ITERS RACE_UNSAFE_ITERS FUZZ_CALLS,$(if $(shell printf '%s\n' '$(subst ','\'',$($(v)))' \
	| grep -Ex '[1-9][0-9]{0,8}'),,$(error $(v)=$($(v)): want a positive integer, 1..999999999)))
# The fuzzer's seed, to replay a run (it prints its seed); default: a new one.
FUZZ_SEED ?=
$(if $(FUZZ_SEED),$(if $(shell printf '%s\n' '$(subst ','\'',$(FUZZ_SEED))' \
	| grep -Ex '[1-9][0-9]{0,18}|0x[0-9a-fA-F]{1,16}'),,$(error FUZZ_SEED=$(FUZZ_SEED): want a positive integer (decimal, or hex from the fuzzer's output))))
# make demo: the races it traces and draws, SCENARIO:CONTRACT,... (default:
# overlapping_dontneed under batched/naive and batched/ranges-wait).
TRACE ?=
$(if $(TRACE),$(if $(shell printf '%s\n' '$(subst ','\'',$(TRACE))' \
	| grep -Ex '[a-z_]+:[a-z/-]+(,[a-z_]+:[a-z/-]+)*'),,$(error TRACE=$(TRACE): want SCENARIO:CONTRACT[,...], e.g. cow_stale_read:deferred-end)))
# make bench: rounds of the tracker benchmark; BENCH_ONLY=trackers skips the
# rest, BENCH_ONLY=trackers1 runs only its one-thread part.
TRACKER_ROUNDS ?= 3
BENCH_ONLY ?=
# Run only these guest suites (comma-separated), e.g. SUITES=kunit,tlbrace_races.
SUITES    ?=
# The guest's suites (selftests/guest/suites); SUITES= may name only these.
SUITE_LIST := $(shell sed -n 's/^\([^\#][^ \t]*\).*/\1/p' selftests/guest/suites)
comma     := ,
BAD_SUITES := $(filter-out $(SUITE_LIST) setup teardown,$(subst $(comma), ,$(SUITES)))
ifneq ($(BAD_SUITES),)
$(error SUITES: no such suite: $(BAD_SUITES) (suites: $(SUITE_LIST)))
endif

# SANITIZE=kasan: a test kernel of its own with selftests/kasan.config merged
# on top (KCSAN is not offered: 7.3 does not instrument Rust for it).
SANITIZE  ?=
ifneq ($(filter-out kasan,$(SANITIZE)),)
$(error SANITIZE=$(SANITIZE): want kasan or nothing)
endif
ifneq ($(SANITIZE),)
ifneq ($(origin KDIR),undefined)
$(error SANITIZE= builds the project's own kernel; it does not apply to KDIR=)
endif
endif
FRAGMENTS := selftests/config $(if $(SANITIZE),selftests/$(SANITIZE).config)
# kmemleak's bookkeeping slows every allocation (a third more per race
# iteration under TCG): the teardown's leak scan runs on sanitizer kernels,
# and on the plain one with KMEMLEAK=on.
KMEMLEAK  ?= $(if $(SANITIZE),on,off)
ifneq ($(filter-out on off,$(KMEMLEAK)),)
$(error KMEMLEAK=$(KMEMLEAK): want on or off)
endif

SRCTREE   := $(CURDIR)
OUT       := $(SRCTREE)/build
KSRC      := $(CACHE)/linux-$(KVER)/src
# The test kernel's patch series (Documentation/cpu-path.rst), applied in
# order to a copy of the fetched source named after the series' hash.
PATCHES   := $(sort $(wildcard $(SRCTREE)/kernel/patches/*.patch))
PKEY      := $(shell cat /dev/null $(PATCHES) | sha256sum | cut -c1-8)
KSRC_TEST := $(if $(PATCHES),$(CACHE)/linux-$(KVER)/src-p$(PKEY),$(KSRC))
# The cached kernel build is keyed by what decides its contents: the config
# fragments, the patches, the toolchain, and RECIPE, bumped when
# scripts/build-kernel.sh changes what it builds.
RECIPE    := 1
KEY       := $(shell cat $(FRAGMENTS) $(PATCHES) | sha256sum | cut -c1-8)-r$(RECIPE)-$(shell \
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

.PHONY: all modules deps kernel selftests install-tests initramfs check check-harness demo shell bench \
	rustfmt rustfmtcheck clippy lint patchcheck htmldocs rust-analyzer clean distclean help \
	kdir-check kdir-headers kdir-vm-check

all: modules

help:
	@echo 'tlbrace - a fake device with its own TLB, for TLB-flush races'
	@echo
	@echo 'Set up and run (everything is installed and built on demand):'
	@echo '  make check      - build all, boot the test VM, run every test (TAP),'
	@echo '                    fail on any test failure or kernel splat'
	@echo '  make demo       - boot the VM, load the module, show what it can do;'
	@echo '                    draws its traced races as build/trace-*.svg'
	@echo '  make shell      - boot the VM with the module and tests, interactive shell'
	@echo '  make bench      - run the benchmarks in the VM (ratios; build/bench.txt)'
	@echo
	@echo 'Pieces:'
	@echo '  make deps       - install host packages, rust-src and bindgen-cli'
	@echo '  make kernel     - fetch, patch (kernel/patches), configure and build the test kernel (cached)'
	@echo '  make [modules]  - build rust/tlbrace.ko against KDIR'
	@echo '  make selftests  - build the static test binaries'
	@echo '  make install-tests [INSTALL_PATH=dir] - the tests, runner, module and config'
	@echo '                    fragment in one directory for a real machine ($(OUT)/install)'
	@echo '  make initramfs  - pack the guest image (busybox + the install-tests directory)'
	@echo '  make check-harness - test the host side of the harness (no VM)'
	@echo '  make rustfmt    - format the Rust sources; rustfmtcheck only checks'
	@echo '  make CLIPPY=1   - build the module with clippy'
	@echo '  make lint       - rustfmtcheck, clippy (warnings are errors), patchcheck, check-harness, htmldocs'
	@echo '  make patchcheck - checkpatch --strict on the kernel patches (kernel/patches)'
	@echo '  make htmldocs   - render Documentation/ into build/html (warnings are errors)'
	@echo '  make rust-analyzer - write rust-project.json for editors (against KDIR)'
	@echo '  make clean      - remove build outputs from the work tree'
	@echo '  make distclean  - also remove the cached kernel builds ($(CACHE))'
	@echo
	@echo 'Variables:'
	@echo '  KDIR=/path      - your own kernel build: the module is built against it and'
	@echo '                    check/demo/bench/shell boot its bzImage (needed options are'
	@echo '                    checked first; selftests/config is a complete fragment)'
	@echo '  SANITIZE=kasan  - a KASAN test kernel of its own (selftests/kasan.config on top;'
	@echo '                    kernel, modules and check use it; cached separately)'
	@echo '  KMEMLEAK=on|off - leak scan after the suites (default: on with SANITIZE=, else off)'
	@echo '  LLVM=$(LLVM)       - LLVM suffix passed to Kbuild'
	@echo '  VM_SMP=$(VM_SMP) VM_MEM=$(VM_MEM) VM_TIMEOUT=$(VM_TIMEOUT) VM_ACCEL=kvm|tcg (default: detected)'
	@echo '  RACE_SAFE_ITERS=$(RACE_SAFE_ITERS) RACE_UNSAFE_ITERS=$(RACE_UNSAFE_ITERS) - race matrix iterations per cell'
	@echo '  FUZZ_CALLS=$(FUZZ_CALLS) FUZZ_SEED=0x... - ioctls of the fuzzer (tlbrace_fuzz), the seed to replay'
	@echo '  SUITES=a,b      - run only these guest suites: $(SUITE_LIST)'
	@echo '  TRACKER_ROUNDS=3 BENCH_ONLY=trackers - make bench: tracker rounds, only trackers'
	@echo '  TRACE=SCENARIO:CONTRACT,... - make demo: the races it traces and draws'
	@echo '  CACHE=$(CACHE)'
	@echo
	@echo 'Cached kernel: $(KBUILD)'

deps:
	@bash scripts/host-deps.sh

$(KSRC)/.tlbrace-fetched: | deps
	@KVER=$(KVER) bash scripts/fetch-kernel.sh $(KSRC)

$(CACHE)/linux-$(KVER)/src-p$(PKEY)/.tlbrace-patched: $(KSRC)/.tlbrace-fetched
	@bash scripts/patch-kernel.sh $(KSRC) $(KSRC_TEST) $(PATCHES)

$(KBUILD)/.tlbrace-built: $(KSRC_TEST)/$(if $(PATCHES),.tlbrace-patched,.tlbrace-fetched) | deps
	@LLVM=$(LLVM) bash scripts/build-kernel.sh $(KSRC_TEST) $(KBUILD) $(FRAGMENTS)

kernel: $(KBUILD)/.tlbrace-built
	@echo "kernel: $(KBUILD)/arch/x86/boot/bzImage"

# With your own KDIR: check it early (check-kdir.sh names every missing
# option), take the selftests' headers and kselftest sources from it, boot
# its bzImage, and expect as skipped (with the reason) the suites it cannot
# run.  Otherwise everything comes from the cached test kernel.
ifeq ($(OWN_KDIR),)
kdir-check kdir-headers kdir-vm-check: kernel
TESTS_KSRC := $(KSRC_TEST)
MAY_SKIP  :=
else
kdir-check:
	@LLVM=$(LLVM) bash scripts/check-kdir.sh $(KDIR)
kdir-headers:
	@LLVM=$(LLVM) bash scripts/check-kdir.sh $(KDIR) headers
kdir-vm-check:
	@LLVM=$(LLVM) bash scripts/check-kdir.sh $(KDIR) vm
TESTS_KSRC := $(if $(wildcard $(KDIR)/source/Makefile),$(KDIR)/source,$(KDIR))
MAY_SKIP  := $(if $(wildcard $(KDIR)/lib/test_hmm.ko),,--may-skip "hmm-tests=no lib/test_hmm.ko in KDIR") \
	$(if $(shell grep -x CONFIG_KUNIT=y $(KDIR)/.config 2>/dev/null),,--may-skip "kunit=KDIR has no CONFIG_KUNIT") \
	$(if $(shell grep -x CONFIG_EVENT_TRACING=y $(KDIR)/.config 2>/dev/null),,--may-skip "tlbrace_trace=KDIR has no CONFIG_EVENT_TRACING") \
	$(if $(shell grep -x CONFIG_MMU_GATHER_POLICY=y $(KDIR)/.config 2>/dev/null),,--may-skip "tlbrace_cpu=KDIR has no CONFIG_MMU_GATHER_POLICY (kernel/patches)")
endif
BZIMAGE    = $(KDIR)/arch/x86/boot/bzImage

modules: kdir-check
	@$(KMAKE) modules

selftests: kdir-headers
	@$(MAKE) -s -C selftests KSRC=$(TESTS_KSRC) KBUILD=$(KDIR) OUT=$(OUT)/selftests

# The tests as installed for a machine booted into KDIR's kernel; the guest
# runs this very directory as /tests.
INSTALL_PATH ?= $(OUT)/install
GUEST_TESTS := $(OUT)/guest-tests
TEST_MODULES = $(MODULE) $(wildcard $(KDIR)/lib/test_hmm.ko)

install-tests: modules selftests
	@bash scripts/install-tests.sh $(INSTALL_PATH) $(OUT)/selftests $(TEST_MODULES)
	@echo "install-tests: $(INSTALL_PATH) (copy it to the test machine, run ./run_tests.sh as root)"

initramfs: kdir-vm-check modules selftests
	@bash scripts/install-tests.sh $(GUEST_TESTS) $(OUT)/selftests $(TEST_MODULES)
	@bash scripts/mkinitramfs.sh $(INITRAMFS) $(GUEST_TESTS)

VM = VM_APPEND="kmemleak=$(KMEMLEAK) tlbrace_safe_iters=$(RACE_SAFE_ITERS) tlbrace_unsafe_iters=$(RACE_UNSAFE_ITERS) \
	tlbrace_fuzz_calls=$(FUZZ_CALLS) $(if $(FUZZ_SEED),tlbrace_fuzz_seed=$(FUZZ_SEED)) \
	$(if $(TRACE),tlbrace_trace=$(TRACE)) \
	$(if $(SUITES),tlbrace_suites=$(SUITES))" \
	VM_ACCEL=$(VM_ACCEL) VM_SMP=$(VM_SMP) VM_MEM=$(VM_MEM) VM_TIMEOUT=$(VM_TIMEOUT) \
	bash scripts/run-vm.sh $(BZIMAGE) $(INITRAMFS)

# The host judges the run against the suite list and the module's KUnit
# suites; its summary line is printed again last, after the race table.
check: check-harness initramfs
	@mkdir -p $(OUT)
	@$(VM) check --suites selftests/guest/suites --only "$(SUITES)" --kunit-src rust $(MAY_SKIP) \
		--summary-file $(OUT)/check-summary.txt; rc=$$?; \
		bash scripts/race-table.sh $(OUT)/vm-check.log $(OUT); \
		cat $(OUT)/check-summary.txt 2>/dev/null || echo "0 passed, 1 failed, 0 skipped"; \
		exit $$rc

# The host side of the harness checks itself first (a second, no VM).
check-harness:
	@python3 scripts/test-tap-summary.py
	@python3 scripts/test-trace-timeline.py

# The demo's race traces are drawn as build/trace-*.svg.
demo: initramfs
	@$(VM) demo
	@bash scripts/demo-traces.sh $(OUT)/vm-demo.log $(OUT)

# Ratios of variants measured in one VM run; see Documentation/benchmarks.rst.
bench: initramfs
	@VM_APPEND="kmemleak=off tlbrace_tracker_rounds=$(TRACKER_ROUNDS) $(if $(BENCH_ONLY),tlbrace_bench_only=$(BENCH_ONLY))" \
		VM_ACCEL=$(VM_ACCEL) VM_SMP=$(VM_SMP) VM_MEM=$(VM_MEM) VM_TIMEOUT=$(VM_TIMEOUT) \
		bash scripts/run-vm.sh $(BZIMAGE) $(INITRAMFS) bench
	@sed -n '/^# tlbrace-bench-begin/,/^# tlbrace-bench-end/{//!p}' $(OUT)/vm-bench.log \
		| grep -v '^# trackers-csv' >$(OUT)/bench.txt
	@python3 scripts/tracker-report.py $(OUT)/vm-bench.log $(OUT)
	@echo "bench: results in $(OUT)/bench.txt"

shell: initramfs
	@$(VM) shell

rustfmt: $(KSRC)/.tlbrace-fetched
	@find rust -name '*.rs' ! -name '*_generated.rs' | xargs rustfmt --edition 2021 --config-path $(KSRC)/.rustfmt.toml

rustfmtcheck: $(KSRC)/.tlbrace-fetched
	@find rust -name '*.rs' ! -name '*_generated.rs' | xargs rustfmt --edition 2021 --config-path $(KSRC)/.rustfmt.toml --check

clippy: kdir-check
	@touch rust/tlbrace_main.rs
	@$(KMAKE) CLIPPY=1 KRUSTFLAGS=-Dwarnings modules

# What CI runs before the tests: formatting, clippy, the kernel patches'
# style, the harness's own tests and the documentation build.
lint: rustfmtcheck clippy patchcheck check-harness htmldocs

# checkpatch --strict on each patch of the series (they apply: the kernel
# build applies them, and stops on one that does not).
patchcheck: $(KSRC)/.tlbrace-fetched
	@for p in $(PATCHES); do \
		$(KSRC)/scripts/checkpatch.pl --strict --no-tree -q $$p || exit 1; \
	done; echo "patchcheck: $(words $(PATCHES)) patch(es) checkpatch --strict clean"

htmldocs: | deps
	@sphinx-build -W --keep-going -q -b html Documentation $(OUT)/html
	@echo "htmldocs: $(OUT)/html/index.html"

# rust-project.json for rust-analyzer, from the kernel's own generator.
rust-analyzer: kdir-check
	@$(KMAKE) rust-analyzer
	@echo "rust-analyzer: $(SRCTREE)/rust-project.json"

clean:
	@[ ! -f $(KDIR)/Makefile ] || $(KMAKE) clean
	rm -rf $(OUT)

distclean: clean
	rm -rf $(CACHE)

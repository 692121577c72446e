# Rust LUO core: build, boot and test pipeline.
#
#   make run      build the Rust-core kernel and the demo agent, boot it in
#                 QEMU, live-update (kexec) once and show what survived
#   make check    full gate, both cores: kernel builds (Rust with CLIPPY=1) +
#                 warning check, rustfmt, abi cargo test, fuzz corpus + short
#                 fuzz run, docs, VM tests on each core (ours, upstream's five,
#                 failed reboot, corrupt handovers), C/Rust parity, C<->Rust
#                 kexec; KTAP output ending in "N passed, N failed"
#   make kernel   Rust-core kernel  -> $(LUO_CACHE_DIR)/out/bzImage-rust
#   make kernel-c C-core kernel     -> $(LUO_CACHE_DIR)/out/bzImage-c
#   make selftests  static test binaries -> build/selftests/
#   make vmtest   VM tests only (against CORE), kernel must be built
#   make cross    build both kernels; VM tests kexec'ing C -> Rust and Rust -> C
#   make parity   both kernels; every ioctl/errno case compared C vs Rust
#   make fuzz     fuzz the restore parser (FUZZ_SECONDS, default 600)
#   make docs     parse Documentation/*.rst (docutils, warnings are errors)
#   make patches  git format-patch series against v7.3 in build/patches/,
#                 checked: applies, builds, checkpatch --strict, rustdoc
#   make debug-check  debug kernel (KASAN, lockdep, kmemleak, fail-nth):
#                 threaded stress and injected allocation failures
#   make bench    C vs Rust core timings -> bench/results.csv, RESULTS.md, plot.png
#   make clean    remove build/ (the kernel cache stays; see distclean)
#
# CORE=rust|c selects the core that run/vmtest use (default rust).

CORE ?= rust
export CORE
LUO_CACHE_DIR ?= $(HOME)/.cache/luo-rs
export LUO_CACHE_DIR
BUILD := $(CURDIR)/build
SELFTESTS := $(BUILD)/selftests
export LUO_BIN_DIR := $(SELFTESTS)
export LUO_LOG_DIR := $(BUILD)/logs
VM_TESTS := luo_memfd_pattern luo_multi_block agent \
	upstream-liveupdate upstream-luo_kexec_simple upstream-luo_multi_session

.PHONY: all run check deps kernel kernel-c kernel-core selftests vmtest cross clean distclean \
	parity fuzz docs debug-check bench patches

all: check

deps:
	@bash scripts/install-deps.sh

kernel: deps
	@scripts/build-kernel.sh rust

kernel-c: deps
	@scripts/build-kernel.sh c

kernel-core: deps
	@scripts/build-kernel.sh $(CORE)

selftests:
	@test -f $(LUO_CACHE_DIR)/out/headers/linux/liveupdate.h || \
		{ echo "[selftests] no kernel headers yet: run make kernel or make kernel-c"; exit 1; }
	@echo "[selftests] building static test binaries into $(SELFTESTS)"
	@$(MAKE) -s -C selftests HDR=$(LUO_CACHE_DIR)/out/headers OUT=$(SELFTESTS) \
		UPSTREAM=$(LUO_CACHE_DIR)/src/tools/testing/selftests all upstream

run: kernel-core
	@$(MAKE) -s selftests
	@scripts/run-agent.sh

vmtest: selftests
	@scripts/vmtest.sh -c $(CORE) $(VM_TESTS)

OUT_DIR := $(LUO_CACHE_DIR)/out
CROSS_TESTS := luo_memfd_pattern luo_multi_block agent upstream-luo_multi_session
cross: kernel kernel-c
	@$(MAKE) -s selftests
	@echo "[cross] C core -> Rust core"
	@scripts/vmtest.sh -k $(OUT_DIR)/bzImage-c -n $(OUT_DIR)/bzImage-rust $(CROSS_TESTS)
	@echo "[cross] Rust core -> C core"
	@scripts/vmtest.sh -k $(OUT_DIR)/bzImage-rust -n $(OUT_DIR)/bzImage-c $(CROSS_TESTS)

check:
	@scripts/check.sh

parity: kernel kernel-c
	@scripts/parity.sh

FUZZ_SECONDS ?= 600
fuzz:
	@scripts/fuzz.sh $(FUZZ_SECONDS)

docs:
	@scripts/check-docs.sh

patches: deps
	@scripts/make-patches.sh

debug-check: deps
	@scripts/debug-check.sh

bench: deps
	@scripts/bench.sh

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf $(LUO_CACHE_DIR)

#!/usr/bin/env bash
# Everything `make check` does, reported in KTAP (one line per check, the plan at the
# end) and closed by "N passed, N failed":
#   1. both kernels build from the one cached tree: the Rust core (CLIPPY=1, always
#      recompiled so no warning hides) and upstream's C core
#   2. no compiler/clippy warning from kernel/liveupdate/rust/; rustfmt --check
#   3. host tests of abi/ (cargo test), the fuzz corpus replay, a short fuzz run
#   4. the documentation parses (docutils); the patch series against v7.3
#      applies, builds, and passes checkpatch --strict and rustdoc
#   5. VM tests (QEMU, real kexec) on the Rust core: ours, upstream's five unmodified
#      selftests, a failed reboot rolled back, and 11 kinds of corrupt handover
#   6. the same portable VM tests on the C core (the reference)
#   7. parity: every ioctl/errno case gives the same result on both cores
#   8. cross-core: C -> Rust and Rust -> C kexec with every session intact
#
#   LUO_SKIP_DEPS=1      do not run scripts/install-deps.sh
#   LUO_FUZZ_SECONDS=N   length of the fuzz run (default 60)
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# shellcheck source=lib-vm.sh
. "$repo/scripts/lib-vm.sh"
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '[check] %s\n' "$*"; }
t0=$(date +%s)

if [ "${LUO_SKIP_DEPS:-0}" != 1 ]; then
	say "installing/verifying dependencies"
	bash scripts/install-deps.sh || { say "dependency install failed"; exit 1; }
fi

mkdir -p build/logs
n=0 pass=0 fail=0
ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n $1${2:+ # $2}"; }
notok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n $1 # $2"; }
indent() { sed -u "s/^/#   /"; }
# step NAME LOG CMD...: runs CMD with its output in LOG; ok/not ok by exit status.
step() {
	local name=$1 log=$2 s0
	shift 2
	s0=$(date +%s)
	if "$@" >"$log" 2>&1; then
		ok "$name" "$(($(date +%s) - s0))s"
	else
		tail -n 30 "$log" | indent
		notok "$name" "failed, see $log"
	fi
}

echo "KTAP version 1"

# ------------------------------------------------------------ kernel builds
declare -A built
for core in rust c; do
	b0=$(date +%s)
	args=()
	[ $core = rust ] && args+=(--fresh-rust)
	# Progress lines are streamed (as KTAP comments) while the kernel builds.
	scripts/build-kernel.sh $core "${args[@]}" 2>&1 | tee build/logs/build-kernel-$core.out | indent
	if [ "${PIPESTATUS[0]}" = 0 ]; then
		built[$core]=1
		ok "kernel-build-$core" "$(($(date +%s) - b0))s"
	else
		built[$core]=0
		notok "kernel-build-$core" "build failed, see $LUO_CACHE/logs/build-$core.log"
	fi
done

if [ "${built[rust]}" = 1 ] &&
	scripts/check-rust-warnings.sh "$LUO_CACHE/logs/build-rust.log" >build/logs/rust-warnings.txt; then
	ok rust-no-warnings
else
	head -n 60 build/logs/rust-warnings.txt 2>/dev/null | indent
	notok rust-no-warnings "warnings from kernel/liveupdate/rust/ or no build log"
fi

# ------------------------------------------------------------------ rustfmt
cfg=()
[ -f "$LUO_CACHE/src/.rustfmt.toml" ] && cfg=(--config-path "$LUO_CACHE/src/.rustfmt.toml")
step rustfmt build/logs/rustfmt.txt rustfmt --check --edition 2021 "${cfg[@]}" ./*.rs abi/*.rs

# ------------------------------------------------------- host tests and fuzz
step abi-cargo-test build/logs/cargo-test.txt \
	env CARGO_TARGET_DIR="$LUO_CACHE/cargo-target" cargo test --manifest-path abi/Cargo.toml
grep '^test result' build/logs/cargo-test.txt | indent
if [ -f abi/fuzz/Cargo.toml ]; then
	step fuzz-corpus-replay build/logs/fuzz-replay.txt \
		env CARGO_TARGET_DIR="$LUO_CACHE/cargo-target-fuzz" \
		cargo test --manifest-path abi/fuzz/Cargo.toml
	step "fuzz-${LUO_FUZZ_SECONDS:-60}s" build/logs/fuzz.txt scripts/fuzz.sh "${LUO_FUZZ_SECONDS:-60}"
	grep -E 'executions|crash' build/logs/fuzz.txt | tail -n 3 | indent
fi

# -------------------------------------------------------------------- docs
step docs build/logs/docs.txt scripts/check-docs.sh

# ------------------------------------------------------------ patch series
# format-patch series against v7.3: applies to a fresh tree, builds, passes
# checkpatch --strict without errors, rustdoc without warnings.
step patch-series build/logs/patches.txt scripts/make-patches.sh
grep -E '^OK:|errors' build/logs/patches.txt | tail -n 3 | indent

# --------------------------------------------------------------- VM tests
sel_ok=0
if [ "${built[rust]}" = 1 ] || [ "${built[c]}" = 1 ]; then
	if make -s -C selftests HDR="$LUO_CACHE/out/headers" OUT="$LUO_BIN_DIR" \
		UPSTREAM="$LUO_CACHE/src/tools/testing/selftests" all upstream \
		>build/logs/selftests-build.txt 2>&1; then
		sel_ok=1
		ok selftests-build
	else
		indent <build/logs/selftests-build.txt
		notok selftests-build "gcc failed"
	fi
else
	notok selftests-build "no kernel headers"
fi

# vm NAME FIRST NEXT EXPECTED-CORE TEST [CMDLINE [THIRD]]
vm() {
	local name=$1 first=$2 next=$3 want=$4 test=$5 third=${7:-}
	if [ $sel_ok = 0 ] || [ ! -f "$first" ] || [ ! -f "$next" ]; then
		notok "$name" "not run: kernel or selftests did not build"
		return
	fi
	if LUO_CMDLINE_EXTRA="${6:-}" vm_run "${name//\//-}" "$LUO_BIN_DIR/$test" "$first" "$next" \
		${third:+"$third"}; then
		if [ "$VM_CORE" = "$want" ]; then
			ok "$name" "${VM_SECS}s, core $VM_CORE"
		else
			notok "$name" "passed, but the kernels ran the $VM_CORE core, not $want (log $VM_LOG)"
		fi
	else
		echo "# core: $VM_CORE; serial log: $VM_LOG"
		tail -n 25 "$VM_LOG" | indent
		notok "$name" "$VM_REASON (${VM_SECS}s)"
	fi
}

rust=$LUO_CACHE/out/bzImage-rust
c=$LUO_CACHE/out/bzImage-c
portable=(luo_memfd_pattern luo_multi_block luo_interop agent
	upstream-liveupdate upstream-luo_kexec_simple upstream-luo_multi_session
	upstream-luo_stress_sessions upstream-luo_stress_files)
for t in "${portable[@]}"; do
	vm "rust/$t" "$rust" "$rust" rust "$t"
done
vm rust/luo_reboot_abort "$rust" "$rust" rust luo_reboot_abort luo_corrupt=freeze-fail
for kind in root-incompatible session-cycle session-too-long session-zero-count \
	session-over-count session-unaligned session-unpreserved session-unterminated-name \
	session-duplicate-name file-cycle file-unknown-compatible; do
	vm "rust/luo_corrupt/$kind" "$rust" "$rust" rust luo_corrupt "luo_corrupt=$kind"
done
for t in "${portable[@]}"; do
	vm "c/$t" "$c" "$c" c "$t"
done

# ----------------------------------------------------------------- parity
if [ "${built[rust]}" = 1 ] && [ "${built[c]}" = 1 ]; then
	s0=$(date +%s)
	scripts/parity.sh >build/logs/parity.txt 2>&1
	prc=$?
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' build/logs/parity.txt | tail -n 1)
	if [ $prc = 0 ] && [ -n "$summary" ]; then
		ok parity-c-vs-rust "$summary ($(($(date +%s) - s0))s)"
	else
		grep -E '^not ok' build/logs/parity.txt | head -n 30 | indent
		notok parity-c-vs-rust "${summary:-no result}, see build/logs/parity.txt"
	fi
else
	notok parity-c-vs-rust "not run: a kernel did not build"
fi

# ------------------------------------------------------------- cross-core
for t in luo_interop luo_memfd_pattern luo_multi_block upstream-luo_multi_session; do
	vm "cross/c-to-rust/$t" "$c" "$rust" "c -> rust" "$t"
	vm "cross/rust-to-c/$t" "$rust" "$c" "rust -> c" "$t"
done

# Two hops: the middle Rust kernel takes everything back and hands it on to C.
for t in luo_interop luo_multi_block; do
	vm "cross/rust-to-rust-to-c/$t" "$rust" "$rust" "rust -> rust -> c" "$t" "" "$c"
done

echo "1..$n"
echo "# total time $(($(date +%s) - t0))s"
echo "$pass passed, $fail failed"
[ $fail = 0 ]

#!/usr/bin/env bash
# Everything `make check` does, reported in KTAP:
#   1. the kernel with the chosen core builds (Rust core: CLIPPY=1)
#   2. no compiler/clippy warning from kernel/liveupdate/rust/   (rust only)
#   3. rustfmt --check on the Rust core and abi/
#   4. cargo test in abi/ (if abi/Cargo.toml exists)
#   5. every VM test (two-stage kexec in QEMU) against the chosen core:
#      ours (selftests/) and upstream's unmodified liveupdate selftests
# and ends with "N passed, N failed". Exits non-zero on any failure.
#
#   CORE=rust|c scripts/check.sh      (default rust)
#   LUO_SKIP_DEPS=1                   do not run scripts/install-deps.sh
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# shellcheck source=lib-vm.sh
. "$repo/scripts/lib-vm.sh"
export PATH="$HOME/.cargo/bin:$PATH"

CORE=${CORE:-rust}
case $CORE in rust | c) ;; *) echo "CORE must be rust or c" >&2; exit 2 ;; esac
say() { printf '[check] %s\n' "$*"; }
t0=$(date +%s)

if [ "${LUO_SKIP_DEPS:-0}" != 1 ]; then
	say "installing/verifying dependencies"
	bash scripts/install-deps.sh || { say "dependency install failed"; exit 1; }
fi

vm_tests=(luo_memfd_pattern luo_multi_block agent
	upstream-liveupdate upstream-luo_kexec_simple upstream-luo_multi_session)
plan=$((4 + 1 + ${#vm_tests[@]}))
mkdir -p build/logs
n=0 pass=0 fail=0 skip=0
ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n $1${2:+ # $2}"; }
notok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n $1 # $2"; }
skipped() { n=$((n + 1)); skip=$((skip + 1)); echo "ok $n $1 # SKIP $2"; }
indent() { sed -u "s/^/#   /"; }

echo "KTAP version 1"
echo "1..$plan"
echo "# core under test: $CORE"

# ------------------------------------------------------------ kernel build
kernel_ok=0
b0=$(date +%s)
args=()
[ "$CORE" = rust ] && args+=(--fresh-rust)
# Progress lines are streamed (as KTAP comments) while the kernel builds.
scripts/build-kernel.sh "$CORE" "${args[@]}" 2>&1 | tee build/logs/build-kernel-$CORE.out | indent
if [ "${PIPESTATUS[0]}" = 0 ]; then
	kernel_ok=1
	ok "kernel-build-$CORE" "$(($(date +%s) - b0))s"
else
	notok "kernel-build-$CORE" "build failed, see $LUO_CACHE/logs/build-$CORE.log"
fi

# ---------------------------------------------------------- rust warnings
if [ "$CORE" != rust ]; then
	skipped rust-no-warnings "CORE=$CORE"
elif [ $kernel_ok = 0 ]; then
	notok rust-no-warnings "no complete build log"
elif scripts/check-rust-warnings.sh "$LUO_CACHE/logs/build-rust.log" >build/logs/rust-warnings.txt; then
	ok rust-no-warnings
else
	head -n 60 build/logs/rust-warnings.txt | indent
	notok rust-no-warnings "warnings from kernel/liveupdate/rust/ (build/logs/rust-warnings.txt)"
fi

# ------------------------------------------------------------------ rustfmt
shopt -s nullglob
rs=(*.rs abi/*.rs)
shopt -u nullglob
if [ ${#rs[@]} = 0 ]; then
	skipped rustfmt "no Rust files"
else
	cfg=()
	[ -f "$LUO_CACHE/src/.rustfmt.toml" ] && cfg=(--config-path "$LUO_CACHE/src/.rustfmt.toml")
	if rustfmt --check --edition 2021 "${cfg[@]}" "${rs[@]}" >build/logs/rustfmt.txt 2>&1; then
		ok rustfmt
	else
		head -n 40 build/logs/rustfmt.txt | indent
		notok rustfmt "rustfmt --check found differences"
	fi
fi

# --------------------------------------------------------------- cargo test
if [ -f abi/Cargo.toml ]; then
	if CARGO_TARGET_DIR="$LUO_CACHE/cargo-target" cargo test --manifest-path abi/Cargo.toml \
		>build/logs/cargo-test.txt 2>&1; then
		grep '^test result' build/logs/cargo-test.txt | indent
		ok abi-cargo-test
	else
		tail -n 40 build/logs/cargo-test.txt | indent
		notok abi-cargo-test "cargo test failed (build/logs/cargo-test.txt)"
	fi
else
	skipped abi-cargo-test "no abi/Cargo.toml"
fi

# ------------------------------------------------------------------ VM tests
sel_ok=0
if [ $kernel_ok = 1 ] && make -s -C selftests HDR="$LUO_CACHE/out/headers" \
	OUT="$LUO_BIN_DIR" UPSTREAM="$LUO_CACHE/src/tools/testing/selftests" all upstream \
	>build/logs/selftests-build.txt 2>&1; then
	sel_ok=1
	ok selftests-build
else
	indent <build/logs/selftests-build.txt 2>/dev/null
	notok selftests-build "$([ $kernel_ok = 1 ] && echo 'gcc failed' || echo 'no kernel headers')"
fi

image=$LUO_CACHE/out/bzImage-$CORE
for t in "${vm_tests[@]}"; do
	if [ $kernel_ok = 0 ] || [ $sel_ok = 0 ]; then
		notok "vm-$t" "not run: kernel or selftests did not build"
		continue
	fi
	if vm_run "$t" "$LUO_BIN_DIR/$t" "$image" "$image"; then
		echo "# core: $VM_CORE"
		if [ "$VM_CORE" = "$CORE" ]; then
			ok "vm-$t" "${VM_SECS}s"
		else
			notok "vm-$t" "passed, but the kernel ran the $VM_CORE core, not $CORE (log $VM_LOG)"
		fi
	else
		echo "# core: $VM_CORE"
		echo "# serial log: $VM_LOG"
		tail -n 25 "$VM_LOG" | indent
		notok "vm-$t" "$VM_REASON (${VM_SECS}s)"
	fi
done

echo "# total time $(($(date +%s) - t0))s"
if [ $skip -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ $fail = 0 ]

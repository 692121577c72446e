#!/usr/bin/env bash
# The kernel's own checkers on the Rust LUO core.
#
#   scripts/debug-check.sh [--build-only] [--no-build] [-t SECONDS] [TEST...]
#
# 1. Builds a debug kernel with the Rust core: kconfig/base.config +
#    kconfig/rust.config + kconfig/debug.config (KASAN, lockdep, kmemleak,
#    failslab/fail_page_alloc, DEBUG_LIST, DEBUG_ATOMIC_SLEEP, Rust debug
#    assertions), in its own O= dir $LUO_CACHE_DIR/build-rust-debug, from the
#    same cached source tree as scripts/build-kernel.sh (incremental).
# 2. Builds the test binaries (static, -Wall -Werror) against that kernel's
#    UAPI headers into build/debug-check/bin.
# 3. Boots each test in QEMU (2 GiB, kho_scratch=64M,512M,512M), kexec and
#    stage 2, and fails a test on a missing stage-2 PASS, on any KASAN
#    report, lockdep splat, WARNING/BUG/Oops/panic in either kernel's log,
#    or on a kmemleak leak found after the test (the tests scan kmemleak
#    themselves, see kmemleak_* in the test sources).
#
# TEST defaults to: luo_stress_threads luo_failslab (names of selftests/*.c;
# others, e.g. luo_multi_block, are checked for splats only, as they do not
# scan kmemleak). Prints KTAP and "N passed, N failed"; exits non-zero on any
# failure. Serial logs: build/debug-check/logs/vm-*.log.
#
#   --build-only   only build the kernel and the tests
#   --no-build     use the debug kernel built before (tests are always rebuilt)
#   -t SECONDS     timeout of each VM run (default 900)
#
# Environment: LUO_CACHE_DIR, LUO_DEBUG_JOBS (make -j, default 2),
#   LUO_DEBUG_CMDLINE (kernel parameters, default kho_scratch=64M,512M,512M).
set -uo pipefail

say() { printf '# [debug-check] %s\n' "$*"; }
die() { printf '# [debug-check] ERROR: %s\n' "$*" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${LUO_CACHE_DIR:-$HOME/.cache/luo-rs}
mkdir -p "$CACHE/logs"
CACHE=$(cd "$CACHE" && pwd)
O=$CACHE/build-rust-debug
IMAGE=$O/arch/x86/boot/bzImage
OUT=$repo/build/debug-check
jobs=${LUO_DEBUG_JOBS:-2}
timeout=900
do_build=1 do_run=1
tests=()
while [ $# -gt 0 ]; do
	case $1 in
	--build-only) do_run=0 ;;
	--no-build) do_build=0 ;;
	-t) timeout=$2; shift ;;
	-h | --help) sed -n '2,31p' "$0"; exit 0 ;;
	-*) die "unknown option $1" ;;
	*) tests+=("$1") ;;
	esac
	shift
done
[ ${#tests[@]} -gt 0 ] || tests=(luo_stress_threads luo_failslab)

# ------------------------------------------------------------- debug kernel
# The same source tree, key and Rust-core sync as scripts/build-kernel.sh.
# shellcheck source=lib-kernel.sh
. "$repo/scripts/lib-kernel.sh"

build_kernel() {
	local key SRC start end log
	export PATH="$HOME/.cargo/bin:$PATH"
	local rustc_ver
	rustc_ver=$(rustc --version | awk '{print $2}')
	export RUST_LIB_SRC=${RUST_LIB_SRC:-/usr/src/rustc-${rustc_ver}/library}
	export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}

	key=$(kernel_src_key "$repo")
	SRC=$CACHE/src-$key
	if [ ! -f "$SRC/.luo-ready" ]; then
		say "no source tree $SRC yet: letting scripts/build-kernel.sh rust unpack it"
		"$repo/scripts/build-kernel.sh" rust >&2 || die "scripts/build-kernel.sh rust failed"
	fi
	# One build at a time per cache: the source tree is shared (same lock as
	# build-kernel.sh).
	exec 9>"$CACHE/.lock"
	if ! flock -n 9; then
		say "waiting for another build using $CACHE"
		flock 9
	fi
	[ -f "$SRC/.luo-ready" ] || die "source tree $SRC vanished"
	kernel_sync_rust_core "$repo" "$SRC"

	mkdir -p "$O"
	MAKE=(make -C "$SRC" O="$O" LLVM=-19 -j"$jobs")
	kernel_configure "$O" "$key" "$repo/kconfig/base.config" "$repo/kconfig/rust.config" \
		"$repo/kconfig/debug.config"

	log=$CACHE/logs/build-rust-debug.log
	say "building the debug kernel (-j$jobs) -> log $log"
	start=$(date +%s)
	if ! "${MAKE[@]}" bzImage headers_install >"$log" 2>&1; then
		grep -E 'error|Error' "$log" | tail -n 30 >&2 || true
		die "debug kernel build failed, full log: $log"
	fi
	end=$(date +%s)
	exec 9>&-
	KBUILD_SECS=$((end - start))
	say "built $IMAGE in ${KBUILD_SECS}s"
	# lib-vm.sh packs initramfs images with the cache's gen_init_cpio.
	mkdir -p "$CACHE/out"
	[ -x "$CACHE/out/gen_init_cpio" ] || cp "$O/usr/gen_init_cpio" "$CACHE/out/gen_init_cpio"
}

build_tests() {
	local hdr=$O/usr/include t
	[ -d "$hdr/linux" ] || die "no UAPI headers in $hdr: build the debug kernel first"
	mkdir -p "$OUT/bin"
	local cflags=(-static -O2 -Wall -Wextra -Wno-unused-parameter -Werror -std=gnu11 -isystem "$hdr")
	gcc "${cflags[@]}" -o "$OUT/bin/init" "$repo/selftests/init.c" || die "init.c does not build"
	for t in "${tests[@]}"; do
		gcc "${cflags[@]}" -pthread -o "$OUT/bin/$t" "$repo/selftests/$t.c" \
			"$repo/selftests/lib/luo.c" "$repo/selftests/lib/kmemleak.c" || die "selftests/$t.c does not build"
	done
	say "built init ${tests[*]} into $OUT/bin"
}

[ $do_build = 1 ] && build_kernel
build_tests
[ $do_run = 1 ] || exit 0
[ -f "$IMAGE" ] || die "no debug kernel at $IMAGE (run without --no-build)"

# ------------------------------------------------------------------- VM runs
export LUO_BIN_DIR=$OUT/bin LUO_LOG_DIR=$OUT/logs LUO_VM_TIMEOUT=$timeout
export LUO_CMDLINE_EXTRA="${LUO_DEBUG_CMDLINE:-kho_scratch=64M,512M,512M} ${LUO_CMDLINE_EXTRA:-}"
# shellcheck source=lib-vm.sh
. "$repo/scripts/lib-vm.sh"

# Kernel splats. "BUG:" also covers KASAN reports, sleeping in atomic
# context and bad page state; lockdep's reports start with "WARNING:".
SPLAT_RE='WARNING:|BUG:|KASAN|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|Oops|general protection fault|Kernel panic|kernel BUG|list_(add|del) corruption|rust_panic|panicked at|UBSAN|INFO: task .* blocked'

# Checks one serial log; sets WHY and prints details as KTAP comments.
check_log() { # LOG TEST
	local log=$1 n
	WHY=
	[ -f "$log" ] || { WHY="no serial log"; return 1; }
	if grep -nE "$SPLAT_RE" "$log" >"$OUT/splats.txt"; then
		n=$(wc -l <"$OUT/splats.txt")
		WHY="$n splat line(s): $(head -n1 "$OUT/splats.txt" | sed 's/^[0-9]*://; s/^\[[^]]*\] //')"
		say "kernel splats:"
		while IFS=: read -r ln _; do
			sed -n "$((ln > 3 ? ln - 3 : 1)),$((ln + 25))p" "$log"
			echo ---
		done < <(head -n 3 "$OUT/splats.txt") | sed 's/^/#   /'
	fi
	# Kmemleak: the tests print "KMEMLEAK-RESULT: stage S baseline B leaks L"
	# and the records of any leak with the prefix "KMEMLEAK| ".
	if ! grep -q 'KMEMLEAK-RESULT: ' "$log"; then
		# Only our debug tests scan kmemleak; for others this is no failure.
		if grep -q 'KMEMLEAK-RESULT' "$repo/selftests/$2.c" 2>/dev/null; then
			WHY="${WHY:+$WHY; }no kmemleak result in the log"
		fi
	else
		grep 'KMEMLEAK-RESULT: ' "$log" | sed 's/^/#   /'
		if grep -qE 'KMEMLEAK-RESULT: .*unavailable|kmemleak: .*disabled' "$log"; then
			WHY="${WHY:+$WHY; }kmemleak was not usable for the whole test"
			grep -m 3 -E 'KMEMLEAK-RESULT: .*unavailable|kmemleak: ' "$log" | sed 's/^/#   /'
		fi
		if grep -qE 'KMEMLEAK-RESULT: .* leaks [1-9]' "$log"; then
			WHY="${WHY:+$WHY; }kmemleak reports leaks after the test"
			grep -m 60 'KMEMLEAK| ' "$log" | sed 's/^/#   /'
		fi
		if grep -E 'KMEMLEAK-BASELINE\| ' "$log" | grep -qiE 'luo|liveupdate|kho|memfd'; then
			WHY="${WHY:+$WHY; }kmemleak baseline (boot) leaks involve LUO/KHO"
			grep -m 60 'KMEMLEAK-BASELINE| ' "$log" | sed 's/^/#   /'
		fi
	fi
	[ -z "$WHY" ]
}

echo "KTAP version 1"
echo "1..${#tests[@]}"
echo "# debug kernel: $IMAGE"
echo "# kernel parameters: console=ttyS0 liveupdate=on panic=-1 $LUO_CMDLINE_EXTRA"
pass=0 fail=0 i=0
for t in "${tests[@]}"; do
	i=$((i + 1))
	bin=$LUO_BIN_DIR/$t
	if vm_run "$t" "$bin" "$IMAGE" "$IMAGE"; then
		ok=1 reason=
	else
		ok=0 reason=$VM_REASON
	fi
	echo "# $t: core: $VM_CORE, ${VM_SECS}s, log $VM_LOG"
	if [ "$VM_CORE" != rust ]; then
		ok=0 reason="${reason:+$reason; }the kernel did not run the Rust core ($VM_CORE)"
	fi
	if ! check_log "$VM_LOG" "$t"; then
		ok=0 reason="${reason:+$reason; }$WHY"
	fi
	if [ $ok = 1 ]; then
		echo "ok $i $t"
		pass=$((pass + 1))
	else
		if [ -f "$VM_LOG" ]; then
			grep -E ': FAIL: |LUO-RESULT' "$VM_LOG" | head -n 5 | sed 's/^/#   /'
			[ -n "$VM_REASON" ] && tail -n 25 "$VM_LOG" | sed 's/^/#   /'
		fi
		echo "not ok $i $t # $reason"
		fail=$((fail + 1))
	fi
done
rm -f "$OUT/splats.txt"
echo "$pass passed, $fail failed"
[ $fail = 0 ]

# shellcheck shell=bash
# Helpers to run one two-stage LUO test in QEMU. Sourced by vmtest.sh,
# check.sh and run-agent.sh.
#
# vm_run NAME TEST_BIN FIRST_KERNEL NEXT_KERNEL
#   Packs an initramfs (init + TEST_BIN as /test; the outer one also carries
#   NEXT_KERNEL as /kernel and the inner initramfs as /initrd.img), boots
#   FIRST_KERNEL under QEMU/TCG and waits for the stage-2 verdict.
#   Returns 0 iff stage 2 reported success. With VM_SINGLE=1 the test runs
#   once, without a kexec, and must exit 0. Sets:
#     VM_LOG     serial log path
#     VM_REASON  why it failed (empty on success)
#     VM_CORE    "c", "rust" or "c -> rust" etc. (from the serial log)
#     VM_SECS    wall time of the VM run
#
# Environment: LUO_CACHE_DIR, LUO_VM_TIMEOUT (s, default 120),
#   LUO_BIN_DIR (init and test binaries; default <repo>/build/selftests),
#   LUO_LOG_DIR (serial logs; default <repo>/build/logs),
#   LUO_QEMU_EXTRA (extra QEMU args), LUO_CMDLINE_EXTRA.

LUO_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LUO_CACHE=${LUO_CACHE_DIR:-$HOME/.cache/luo-rs}
LUO_BIN_DIR=${LUO_BIN_DIR:-$LUO_REPO/build/selftests}
LUO_LOG_DIR=${LUO_LOG_DIR:-$LUO_REPO/build/logs}
LUO_VM_TIMEOUT=${LUO_VM_TIMEOUT:-120}

vm_gen_cpio() {
	local gen=$LUO_CACHE/out/gen_init_cpio
	if [ -x "$gen" ]; then
		"$gen" "$1"
	else
		echo "gen_init_cpio missing: build a kernel first" >&2
		return 1
	fi
}

# Tests that run in one boot, without a kexec.
vm_is_single() {
	case $1 in
	*upstream-liveupdate) return 0 ;;
	*) return 1 ;;
	esac
}

# The core that a kernel boot log section shows.
vm_core_of() {
	if grep -q 'Rust LUO core' <<<"$1"; then echo rust; else echo c; fi
}

# vm_run NAME BIN FIRST NEXT [THIRD]: with THIRD, the kernel NEXT relays: it
# verifies what FIRST handed over, prepares it again and kexecs into THIRD.
vm_run() {
	local name=$1 bin=$2 first=$3 next=$4 third=${5:-}
	local work start end rc first_part second_part c1 c2
	VM_REASON= VM_CORE=? VM_SECS=0 VM_SINGLE=0
	vm_is_single "$name" && VM_SINGLE=1
	mkdir -p "$LUO_LOG_DIR"
	VM_LOG=$LUO_LOG_DIR/vm-$name.log
	work=$(mktemp -d "${TMPDIR:-/tmp}/luo-vm.XXXXXX")

	for f in "$LUO_BIN_DIR/init" "$bin" "$first" "$next" ${third:+"$third"}; do
		if [ ! -f "$f" ]; then
			VM_REASON="missing $f"
			rm -rf "$work"
			return 1
		fi
	done
	cat >"$work/inner.list" <<EOF
dir /dev 0755 0 0
dir /proc 0755 0 0
dir /sys 0755 0 0
nod /dev/console 0600 0 0 c 5 1
file /init $LUO_BIN_DIR/init 0755 0 0
file /test $bin 0755 0 0
EOF
	vm_gen_cpio "$work/inner.list" >"$work/inner.cpio" || { VM_REASON="cannot pack initramfs"; rm -rf "$work"; return 1; }
	if [ -n "$third" ]; then
		cp "$work/inner.list" "$work/relay.list"
		cat >>"$work/relay.list" <<EOF
dir /relay 0755 0 0
file /kernel $third 0644 0 0
file /initrd.img $work/inner.cpio 0644 0 0
EOF
		vm_gen_cpio "$work/relay.list" >"$work/relay.cpio" || { VM_REASON="cannot pack initramfs"; rm -rf "$work"; return 1; }
		mv "$work/relay.cpio" "$work/inner.cpio"
	fi
	cp "$work/inner.list" "$work/outer.list"
	[ "${VM_SINGLE:-0}" = 1 ] && echo "dir /single-stage 0755 0 0" >>"$work/outer.list"
	cat >>"$work/outer.list" <<EOF
file /kernel $next 0644 0 0
file /initrd.img $work/inner.cpio 0644 0 0
EOF
	vm_gen_cpio "$work/outer.list" >"$work/outer.cpio" || { VM_REASON="cannot pack initramfs"; rm -rf "$work"; return 1; }

	# The serial log is written and judged in a private copy, so concurrent
	# runs from the same tree cannot mix up their verdicts; it is copied to
	# $VM_LOG at the end.
	local serial=$work/serial log=$work/log
	: >"$serial"
	start=$(date +%s.%N)
	# shellcheck disable=SC2086
	timeout -s KILL "$LUO_VM_TIMEOUT" qemu-system-x86_64 \
		-accel tcg -smp 2 -m 2G -nographic -no-reboot -nodefaults \
		-serial "file:$serial" \
		-kernel "$first" -initrd "$work/outer.cpio" \
		-append "console=ttyS0 liveupdate=on panic=-1 ${LUO_CMDLINE_EXTRA:-}" \
		${LUO_QEMU_EXTRA:-} </dev/null >"$work/qemu.out" 2>&1
	rc=$?
	end=$(date +%s.%N)
	VM_SECS=$(printf '%.1f' "$(echo "$end - $start" | bc)")
	tr -d '\r' <"$serial" >"$log"
	[ -s "$work/qemu.out" ] && { echo "=== qemu output ==="; cat "$work/qemu.out"; } >>"$log"
	cp "$log" "$VM_LOG.tmp.$$" && mv -f "$VM_LOG.tmp.$$" "$VM_LOG"

	# Each kernel's boot log starts with "Linux version"; the first kernel's
	# shutdown messages come before the second one's banner.
	local boots i cores=() all_same=1
	boots=$(grep -c 'Linux version ' "$log")
	for ((i = 1; i <= (boots > 0 ? boots : 1); i++)); do
		cores+=("$(vm_core_of "$(awk -v k=$i '/Linux version /{n++} n==k' "$log")")")
		[ "${cores[-1]}" = "${cores[0]}" ] || all_same=0
	done
	if [ $all_same = 1 ] && [ ${#cores[@]} -le 2 ]; then
		VM_CORE=${cores[0]}
	else
		VM_CORE=$(printf '%s -> ' "${cores[@]}")
		VM_CORE=${VM_CORE% -> }
	fi
	if [ -n "$third" ] && ! grep -q 'LUO-INIT: relay ok' "$log"; then
		VM_REASON="the middle kernel did not relay"
		rm -rf "$work"
		return 1
	fi

	if grep -q '^LUO-RESULT: PASS' "$log" &&
		{ grep -q 'LUO-INIT: stage 2 start' "$log" || [ "${VM_SINGLE:-0}" = 1 ]; }; then
		rm -rf "$work"
		return 0
	fi
	if grep -q '^LUO-RESULT: FAIL' "$log"; then
		VM_REASON=$(grep -m1 '^LUO-RESULT: FAIL' "$log" | sed 's/^LUO-RESULT: FAIL //')
		local why
		why=$(grep -m1 ': FAIL: ' "$log" || true)
		[ -n "$why" ] && VM_REASON="$VM_REASON; $why"
	elif grep -q 'Kernel panic' "$log"; then
		VM_REASON="kernel panic: $(grep -m1 'Kernel panic' "$log" | sed 's/^\[[^]]*\] //')"
	elif [ $rc = 137 ] || [ $rc = 124 ]; then
		VM_REASON="timeout after ${LUO_VM_TIMEOUT}s (hang)"
	elif grep -q 'LUO-INIT: stage 2 start' "$log"; then
		VM_REASON="stage 2 gave no result (qemu exit $rc)"
	elif grep -q 'LUO-INIT: stage 1 ok, kexec' "$log"; then
		VM_REASON="second kernel never reached stage 2 (qemu exit $rc)"
	else
		VM_REASON="no stage-2 result (qemu exit $rc)"
	fi
	rm -rf "$work"
	return 1
}

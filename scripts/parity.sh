#!/usr/bin/env bash
# Compare the C core and the Rust core case by case (selftests/luo_parity.c).
#
#   scripts/parity.sh [-n] [-u] [-t SECONDS]
#   scripts/parity.sh -l C_LOG RUST_LOG      compare two existing serial logs
#
#   -n   do not build; reuse the binaries in build/parity/bin
#   -u   rewrite selftests/parity.expected from this run's C results
#   -t   per-VM timeout (default 300)
#
# Builds luo_parity (static, -O2 -Wall -Werror, against selftests/lib/luo.c
# and the kernel headers in $LUO_CACHE_DIR/out/headers, or HDR) and init,
# runs both stages on $LUO_CACHE_DIR/out/bzImage-c and bzImage-rust (via
# lib-vm.sh, with logs in build/parity/logs/<core>, or PARITY_LOG_DIR),
# extracts every "PARITY <case> <result>" line of both stages and prints KTAP:
# "ok N case" when both cores agree, "not ok N case # c=... rust=..." when
# not (or when one side lacks the case), then "N passed, N failed". Exits
# non-zero when a case differs. A C result that differs from
# selftests/parity.expected (upstream's results, committed) is reported as a
# "# note:" line; it does not fail the run.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=lib-vm.sh
. "$here/lib-vm.sh"

build=1 update=0 c_log= rust_log=
LUO_VM_TIMEOUT=${PARITY_VM_TIMEOUT:-300}
while getopts 'nut:l:h' o; do
	case $o in
	n) build=0 ;;
	u) update=1 ;;
	t) LUO_VM_TIMEOUT=$OPTARG ;;
	l) c_log=$OPTARG ;;
	*) sed -n '2,21p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ -n "$c_log" ]; then
	[ $# = 1 ] || { echo "usage: $0 -l C_LOG RUST_LOG" >&2; exit 2; }
	rust_log=$1
fi

out=$repo/build/parity
expected=$repo/selftests/parity.expected
HDR=${HDR:-$LUO_CACHE/out/headers}
CFLAGS=(-static -O2 -Wall -Wextra -Wno-unused-parameter -Werror -std=gnu11 -isystem "$HDR")

echo "KTAP version 1"
notes=()

if [ -z "$c_log" ]; then
	export LUO_BIN_DIR=$out/bin
	logbase=${PARITY_LOG_DIR:-$out/logs}
	mkdir -p "$LUO_BIN_DIR" "$logbase/c" "$logbase/rust"
	if [ $build = 1 ]; then
		if [ ! -f "$HDR/linux/liveupdate.h" ]; then
			echo "# no kernel headers in $HDR: run make kernel or make kernel-c"
			echo "Bail out! no headers"
			exit 1
		fi
		if ! gcc "${CFLAGS[@]}" -o "$LUO_BIN_DIR/init" "$repo/selftests/init.c" ||
			! gcc "${CFLAGS[@]}" -o "$LUO_BIN_DIR/luo_parity" \
				"$repo/selftests/luo_parity.c" "$repo/selftests/lib/luo.c"; then
			echo "Bail out! cannot build luo_parity"
			exit 1
		fi
	fi
	for core in c rust; do
		img=$LUO_CACHE/out/bzImage-$core
		LUO_LOG_DIR=$logbase/$core
		if vm_run luo_parity "$LUO_BIN_DIR/luo_parity" "$img" "$img"; then
			echo "# $core: VM passed, core $VM_CORE, ${VM_SECS}s, log $VM_LOG"
		else
			echo "# $core: VM failed: $VM_REASON (core $VM_CORE, ${VM_SECS}s, log $VM_LOG)"
		fi
		if [ "$VM_CORE" != "$core" ]; then
			notes+=("the $core run booted core '$VM_CORE'")
		fi
		printf -v "${core}_log" '%s' "$VM_LOG"
	done
	# A kernel older than the last commit of the Rust core tests old code.
	rs_commit=$(git -C "$repo" log -1 --format=%ct -- '*.rs' 'abi/*.rs' 2>/dev/null || echo 0)
	rs_image=$(stat -c %Y "$LUO_CACHE/out/bzImage-rust" 2>/dev/null || echo 0)
	if [ "${rs_commit:-0}" -gt "$rs_image" ]; then
		notes+=("bzImage-rust is older than the last commit of *.rs: run make kernel")
	fi
fi

# "case<TAB>result" lines of one serial log, stage 1 then stage 2, in order.
extract() {
	sed -n 's/^.*\(PARITY [^ ]* .*\)$/\1/p' "$1" |
		sed -n 's/^PARITY \([^ ]*\) \(.*\)$/\1\t\2/p'
}
# Cases each stage claims to have printed.
claimed() {
	sed -n 's/^.*PARITY-DONE stage \([12]\) cases \([0-9]*\).*$/\1 \2/p' "$1"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/parity.XXXXXX")
trap 'rm -rf "$work"' EXIT
for side in c rust; do
	log=${side}_log
	log=${!log}
	if [ ! -f "$log" ]; then
		echo "# $side: no serial log $log"
		: >"$work/$side"
		continue
	fi
	extract "$log" >"$work/$side"
	got=$(wc -l <"$work/$side")
	want=0
	while read -r st n; do
		want=$((want + n))
	done < <(claimed "$log")
	stages=$(claimed "$log" | wc -l)
	[ "$stages" = 2 ] || notes+=("$side: $stages of 2 stages finished (PARITY-DONE lines)")
	[ "$got" = "$want" ] || notes+=("$side: $got PARITY lines read, the test printed $want (garbled lines?)")
	sed -n 's/^.*PARITY-KMSG \(.*\)$/\1/p' "$log" >"$work/$side.kmsg"
	dups=$(cut -f1 "$work/$side" | sort | uniq -d | head -5 | tr '\n' ' ')
	[ -z "$dups" ] || notes+=("$side: duplicate case names: $dups")
done

# All cases: the C order, then any the Rust run alone printed.
{
	cut -f1 "$work/c"
	cut -f1 "$work/rust"
} | awk '!seen[$0]++' >"$work/cases"
total=$(wc -l <"$work/cases")
echo "1..$total"

if [ $update = 1 ] && [ -s "$work/c" ]; then
	{
		echo "# selftests/parity.expected: upstream C core results of"
		echo "# selftests/luo_parity.c (scripts/parity.sh -u rewrites it)."
		echo "# <case> <result>"
		tr '\t' ' ' <"$work/c"
	} >"$expected"
	notes+=("rewrote $expected from the C run")
fi

awk -F'\t' -v exp_file="$expected" -v cfile="$work/c" -v rfile="$work/rust" \
	-v casesfile="$work/cases" -v notesfile="$work/notes" '
BEGIN {
	while ((getline line < cfile) > 0) {
		split(line, f, "\t"); if (!(f[1] in c)) c[f[1]] = substr(line, length(f[1]) + 2)
	}
	while ((getline line < rfile) > 0) {
		split(line, f, "\t"); if (!(f[1] in r)) r[f[1]] = substr(line, length(f[1]) + 2)
	}
	while ((getline line < exp_file) > 0) {
		if (line ~ /^#/ || line == "") continue
		k = line; sub(/ .*/, "", k)
		e[k] = substr(line, length(k) + 2)
	}
	n = 0; pass = 0; fail = 0
	while ((getline k < casesfile) > 0) {
		n++
		hc = (k in c); hr = (k in r)
		cv = hc ? c[k] : "(missing)"; rv = hr ? r[k] : "(missing)"
		if (hc && hr && cv == rv) {
			print "ok " n " " k; pass++
		} else {
			print "not ok " n " " k " # c=" cv " rust=" rv; fail++
		}
		if (hc && (k in e) && e[k] != cv)
			print "C result of " k " changed: expected=" e[k] " now=" cv >> notesfile
		if (hc && !(k in e))
			print "case " k " is not in parity.expected (C: " cv ")" >> notesfile
		if (k in e) delete e[k]
	}
	for (k in e)
		if (!(k in c))
			print "expected case " k " was not printed by the C run" >> notesfile
	print pass " " fail > (notesfile ".count")
}'
for n in "${notes[@]+"${notes[@]}"}"; do
	echo "# note: $n"
done
if [ -f "$work/notes" ]; then
	sort "$work/notes" | sed 's/^/# note: /'
fi
for side in c rust; do
	[ -s "$work/$side.kmsg" ] && sed "s/^/# $side kernel log (level text): /" "$work/$side.kmsg"
done
read -r pass fail <"$work/notes.count"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ] && [ "$total" -gt 0 ]

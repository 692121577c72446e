#!/usr/bin/env bash
# Run two-stage LUO tests in QEMU and report in KTAP.
#
#   scripts/vmtest.sh [-k FIRST_KERNEL] [-n NEXT_KERNEL] [-c CORE] TEST...
#
#   TEST           a test binary name in $LUO_BIN_DIR (default
#                  build/selftests, made by `make selftests`) or a path
#   -c rust|c      shorthand for -k $CACHE/out/bzImage-CORE (default rust)
#   -k IMAGE       kernel booted first (stage 1)
#   -n IMAGE       kernel kexec'd into (stage 2); default: same as -k
#   -t SECONDS     per-test timeout (default 120)
#
# Prints "KTAP version 1", the plan, one "ok"/"not ok" line per test and
# "N passed, N failed". Serial logs are kept in build/logs/.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib-vm.sh
. "$here/lib-vm.sh"

core=rust first= next=
while getopts 'c:k:n:t:h' o; do
	case $o in
	c) core=$OPTARG ;;
	k) first=$OPTARG ;;
	n) next=$OPTARG ;;
	t) LUO_VM_TIMEOUT=$OPTARG ;;
	*) sed -n '2,16p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { sed -n '2,16p' "$0"; exit 2; }
first=${first:-$LUO_CACHE/out/bzImage-$core}
next=${next:-$first}

echo "KTAP version 1"
echo "1..$#"
echo "# first kernel: $first"
echo "# next kernel:  $next"
pass=0 fail=0 i=0
for t in "$@"; do
	i=$((i + 1))
	case $t in
	*/*) bin=$t ;;
	*) bin=$LUO_BIN_DIR/$t ;;
	esac
	name=$(basename "$bin")
	if vm_run "$name" "$bin" "$first" "$next"; then
		echo "# $name: core: $VM_CORE, ${VM_SECS}s, log $VM_LOG"
		echo "ok $i $name"
		pass=$((pass + 1))
	else
		echo "# $name: core: $VM_CORE, ${VM_SECS}s"
		echo "# serial log: $VM_LOG"
		tail -n 25 "$VM_LOG" 2>/dev/null | sed 's/^/#   /'
		echo "not ok $i $name # $VM_REASON"
		fail=$((fail + 1))
	fi
done
echo "$pass passed, $fail failed"
[ $fail = 0 ]

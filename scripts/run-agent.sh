#!/usr/bin/env bash
# Boot the agent demo: stage 1 preserves the agent's state, the kernel
# kexecs into itself, stage 2 gets the state back and compares.
#
#   CORE=rust|c scripts/run-agent.sh     (after `make kernel selftests`)
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib-vm.sh
. "$repo/scripts/lib-vm.sh"
CORE=${CORE:-rust}
first=${LUO_FIRST_KERNEL:-$LUO_CACHE/out/bzImage-$CORE}
next=${LUO_NEXT_KERNEL:-$first}

echo "[run] booting $first (next kernel: $next) under QEMU/TCG"
if vm_run agent "$LUO_BIN_DIR/agent" "$first" "$next"; then rc=0; else rc=1; fi
grep -E '^(agent: |LUO-INIT: |LUO-RESULT: |luo: )' "$VM_LOG" | grep -v 'holder pid\|stage [12]: \(preparing\|verifying\)'
echo "[run] core: $VM_CORE, VM time ${VM_SECS}s, serial log: $VM_LOG"
if [ $rc = 0 ]; then
	echo "[run] PASS: the agent's state survived the live update"
else
	echo "[run] FAIL: $VM_REASON"
fi
exit $rc

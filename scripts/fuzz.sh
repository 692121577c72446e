#!/usr/bin/env bash
# Fuzz the luo-v5 restore parser (abi/) with cargo fuzz / libFuzzer.
#
#   scripts/fuzz.sh [SECONDS]        run the restore target for SECONDS (default 60)
#
# Installs cargo-fuzz from crates.io if it is missing, builds abi/fuzz, and runs the
# target on the committed seed corpus (abi/fuzz/corpus/<target>); units it discovers
# go to a temporary directory, so the clone is left as it was. Prints the number of
# executions and whether a crash occurred; exits non-zero on a crash (panic, broken
# invariant, timeout or out-of-memory), whose input is kept in
# abi/fuzz/artifacts/<target>/ (reproduce with: cargo fuzz run <target> <file>).
#
# Environment:
#   FUZZ_TARGET=restore|chain   target to run (default restore)
#   FUZZ_SANITIZER=none         cargo fuzz sanitizer (default none: abi/ is safe Rust,
#                               so AddressSanitizer finds nothing more and is ~2x slower)
#   FUZZ_JOBS=1                 libFuzzer worker processes
#
# cargo fuzz needs unstable compiler flags; on a stable toolchain they are enabled
# with RUSTC_BOOTSTRAP=1 (only for this build, which has its own target directory).
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$repo/abi/fuzz"
export PATH="$HOME/.cargo/bin:$PATH"

seconds=${1:-60}
target=${FUZZ_TARGET:-restore}
sanitizer=${FUZZ_SANITIZER:-none}
jobs=${FUZZ_JOBS:-1}
say() { printf '[fuzz] %s\n' "$*"; }

case $seconds in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
case $target in restore | chain) ;; *) echo "FUZZ_TARGET must be restore or chain" >&2; exit 2 ;; esac
[ -d "$fuzz/corpus/$target" ] || { say "no seed corpus at $fuzz/corpus/$target"; exit 2; }

if ! cargo fuzz --version >/dev/null 2>&1; then
	say "installing cargo-fuzz from crates.io"
	cargo install cargo-fuzz --locked || { say "cargo install cargo-fuzz failed"; exit 2; }
fi
export RUSTC_BOOTSTRAP=1

cd "$fuzz" || exit 2
say "building target $target ($(cargo fuzz --version 2>/dev/null), sanitizer $sanitizer)"
mkdir -p "$fuzz/artifacts/$target"
if ! cargo fuzz build -s "$sanitizer" "$target" >"$fuzz/artifacts/build-$target.log" 2>&1; then
	tail -n 30 "$fuzz/artifacts/build-$target.log" | sed 's/^/[fuzz]   /'
	say "build failed"
	exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/luo-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
log="$fuzz/artifacts/$target.log"

say "running $target for ${seconds}s on corpus/$target ($(ls "corpus/$target" | wc -l) seeds)"
args=(-max_total_time="$seconds" -max_len=20000 -timeout=10 -rss_limit_mb=2048
	-print_final_stats=1 -artifact_prefix="$fuzz/artifacts/$target/")
[ "$jobs" -gt 1 ] && args+=(-jobs="$jobs" -workers="$jobs")
cargo fuzz run -s "$sanitizer" "$target" "$work" "corpus/$target" -- "${args[@]}" >"$log" 2>&1
rc=$?
# With -jobs, each worker logs to fuzz-N.log in the working directory.
[ "$jobs" -gt 1 ] && cat fuzz-*.log >>"$log" 2>/dev/null && rm -f fuzz-*.log

execs=$(awk '/^stat::number_of_executed_units:/ { n += $2 } END { print n + 0 }' "$log")
rate=$(awk '/^stat::average_exec_per_sec:/ { n += $2 } END { print n + 0 }' "$log")
last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
cov=$(sed -n 's/.*\(cov: [0-9]* ft: [0-9]*\).*/\1/p' <<<"$last")
units=$(ls "$work" | wc -l)
say "$target: $execs executions in ${seconds}s (${rate} exec/s), ${cov:-cov: ?}, $units new units"

crash=$(grep -E 'ERROR: libFuzzer|panicked at|^SUMMARY|Test unit written to|==[0-9]+== ERROR' "$log" | head -n 8)
if [ "$rc" != 0 ] || [ -n "$crash" ]; then
	say "CRASH (cargo fuzz exit $rc); log: $log"
	[ -n "$crash" ] && sed 's/^/[fuzz]   /' <<<"$crash"
	ls "$fuzz/artifacts/$target" 2>/dev/null | sed 's/^/[fuzz]   artifact: /'
	exit 1
fi
if [ "$execs" = 0 ]; then
	say "no execution recorded; log: $log"
	exit 1
fi
say "no crash"

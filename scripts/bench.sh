#!/usr/bin/env bash
# Side-by-side benchmark of the Rust and the C LUO core (bench/luo_bench.c).
#
#   scripts/bench.sh [options]
#
#   -r RUNS        runs per size and core (default 3)
#   -R RUNS        runs for sizes of 100000 sessions or more (default 2)
#   -s "SIZES"     session counts (default "100 1000 2000 10000 100000")
#   -f "SIZES"     file counts, in one session (default "1 500 10000")
#   -C MAX         largest session count run on the C core (default 10000:
#                  the C core's name lookup is a list walk, so its create,
#                  deserialize and retrieve are O(n) each and 100000
#                  sessions take ~15 min per run under TCG); -C 0 = no limit
#   -B             do not build the kernels (use what is in $CACHE/out)
#   -o DIR         where results.csv, RESULTS.md, plot.png go (default bench/)
#   -W             wall-clock time: plain TCG, without -icount (see below)
#
# Time is QEMU's instruction count by default (-icount shift=0,sleep=off):
# the guest clock advances 1 ns per guest instruction executed, so the kernel's
# timestamps and the bench's clock_gettime() count the work each core does,
# the same on every run. Under plain TCG (-W) the guest clock follows the
# host, and whatever runs for the first time (one-off paths: first open,
# restore, reboot) mostly measures QEMU translating that code, plus host noise.
#
# Builds both kernels if needed (make kernel / make kernel-c, -j2), snapshots
# them (concurrent rebuilds by others cannot change them mid-run), builds the
# static bench binary and init, then boots every size on both cores with the
# same QEMU settings (lib-vm.sh: TCG, 2 vCPUs, 2 GiB), alternating which core
# goes first, and writes:
#   results.csv  one row per run and op
#   RESULTS.md   medians, Rust/C ratios, command and date (bench/report.py)
#   plot.png     cost per op vs size, log-log (bench/plot.py, matplotlib
#                from a venv under the cache dir)
# Serial logs go to $LUO_LOG_DIR (default /tmp/luo-bench-logs).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cmd="scripts/bench.sh $*"

runs=3 runs_big=2 sessions="100 1000 2000 10000 100000" files="1 500 10000"
c_max=10000 build=1 outdir=$repo/bench clock=icount
while getopts 'r:R:s:f:C:Bo:Wh' o; do
	case $o in
	r) runs=$OPTARG ;;
	R) runs_big=$OPTARG ;;
	s) sessions=$OPTARG ;;
	f) files=$OPTARG ;;
	C) c_max=$OPTARG ;;
	B) build=0 ;;
	o) outdir=$OPTARG ;;
	W) clock=wall ;;
	*) sed -n '2,35p' "$0"; exit 2 ;;
	esac
done
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

export LUO_CACHE_DIR=${LUO_CACHE_DIR:-$HOME/.cache/luo-rs}
export LUO_LOG_DIR=${LUO_LOG_DIR:-/tmp/luo-bench-logs}
CACHE=$LUO_CACHE_DIR
say() { printf '[bench] %s\n' "$*"; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }
t_start=$(date +%s)

# ------------------------------------------------------------------ kernels
if [ $build = 1 ]; then
	say "building kernels if needed (make kernel, make kernel-c, -j2)"
	(cd "$repo" && LUO_JOBS=2 make -s kernel && LUO_JOBS=2 make -s kernel-c) ||
		die "kernel build failed"
fi
work=$CACHE/bench
kdir=$work/kernels
bindir=$work/bin
mkdir -p "$kdir" "$bindir" "$LUO_LOG_DIR"
declare -A early_sym=([c]=liveupdate_early_init [rust]=luo_early_initcall)
declare -A early_addr
for core in rust c; do
	img=$CACHE/out/bzImage-$core map=$CACHE/build-$core/System.map
	[ -f "$img" ] || die "$img missing: run make kernel / make kernel-c"
	cp -p "$img" "$kdir/bzImage-$core"
	# The initcall lines carry raw addresses (no KALLSYMS; nokaslr on the
	# command line): resolve the early initcall from this build's System.map.
	if [ -f "$map" ] && cmp -s "$img" "$CACHE/build-$core/arch/x86/boot/bzImage"; then
		early_addr[$core]=$(awk -v s="${early_sym[$core]}" \
			'$3 == s || $3 ~ ("[0-9]" s "$") { print "0x" $1; exit }' "$map")
	else
		say "WARNING: System.map of $core does not match its bzImage: no restore initcall times"
		early_addr[$core]=none
	fi
	say "kernel $core: $(stat -c '%y' "$img" | cut -d. -f1), early initcall ${early_sym[$core]} at ${early_addr[$core]}"
done

# ------------------------------------------------------------- bench binary
hdr=$CACHE/out/headers
CFLAGS=(-static -O2 -Wall -Wextra -Wno-unused-parameter -Werror -std=gnu11 -isystem "$hdr")
gcc "${CFLAGS[@]}" -o "$bindir/init" "$repo/selftests/init.c" || die "cannot build init"
gcc "${CFLAGS[@]}" -o "$bindir/luo_bench" "$repo/bench/luo_bench.c" \
	"$repo/selftests/lib/luo.c" || die "cannot build bench/luo_bench.c"
export LUO_BIN_DIR=$bindir
# shellcheck source=lib-vm.sh
. "$here/lib-vm.sh"

# TSC as clocksource: without it the guest falls back to jiffies (4 ms
# resolution). Under plain TCG the guest TSC runs at the host TSC rate; under
# -icount it counts guest instructions (QEMU reads it from the instruction
# counter, one tick per virtual ns), so the guest is told 1 GHz: a guest
# nanosecond is then one instruction, on any host.
if [ $clock = icount ]; then
	tsc_khz=1000000
else
	tsc_khz=$(awk '/^cpu MHz/ { printf "%d", $4 * 1000; exit }' /proc/cpuinfo)
fi
# "quiet": no console backlog that the reboot path would wait for (the bench
# raises the console log level itself just before the kexec); no PS/2 probe
# (device_shutdown() waits for the mouse probe, 150+ ms under TCG).
base_cmdline="quiet i8042.noaux i8042.nokbd initcall_debug printk.time=1 nokaslr tsc_early_khz=$tsc_khz tsc=reliable"

if [ $clock = icount ]; then
	export LUO_QEMU_EXTRA="${LUO_QEMU_EXTRA:+$LUO_QEMU_EXTRA }-icount shift=0,sleep=off"
	clock_desc="instruction count: QEMU \`-icount shift=0,sleep=off\`, 1 ns of guest time per guest instruction"
else
	clock_desc="wall clock: plain TCG, the guest clock follows the host"
fi

csv=$outdir/results.csv
tmpcsv=$(mktemp)
echo "run,core,mode,size,op,n,total_ns,per_op_ns,vm_secs" >"$tmpcsv"

# parse_log LOG RUN CORE MODE SIZE VM_SECS: CSV rows on stdout.
parse_log() {
	awk -v run="$2" -v core="$3" -v mode="$4" -v size="$5" -v secs="$6" \
		-v early="${early_addr[$3]}" '
	BEGIN { mark = -1; shut = 0 }
	function ts(line) {
		if (match(line, /^\[ *[0-9]+\.[0-9]+\]/)) {
			s = substr(line, RSTART + 1, RLENGTH - 2); gsub(/ /, "", s); return s + 0
		}
		return -1
	}
	function row(op, n, total) {
		printf "%s,%s,%s,%s,%s,%d,%.0f,%.0f,%s\n", run, core, mode, size, op, n, total,
			(n ? total / n : 0), secs
	}
	/^BENCH / {
		delete f
		for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
		op = f["op"]
		if (f["stage"] == 2 && op == "open") op = "open_incoming"
		row(op, f["n"], f["total_ns"])
		next
	}
	# The reboot path: from the record init writes just before reboot(RB_KEXEC) to
	# the first device shutdown line (initcall_debug), which follows
	# liveupdate_reboot() and the reboot notifiers; device shutdown itself
	# (jittery, core-independent) is left out.
	# (the console output of init may share the line: the timestamp is the one
	# right before the record.)
	match($0, /\[ *[0-9]+\.[0-9]+\] luo-init: reboot\(RB_KEXEC\)/) {
		mark = ts(substr($0, RSTART)); shut = -1
	}
	mark >= 0 && shut < 0 && /: shutdown/ { shut = ts($0) }
	/kexec_core: Starting new kernel/ { jump = ts($0) }
	# Stage 2, Rust: "... restored S of T sessions, F files, from P pages"
	$1 == "BENCH-KLOG" && / from [0-9]+ pages/ {
		for (i = 1; i <= NF; i++) if ($i == "pages") pages = $(i - 1)
	}
	# "BENCH-KLOG <us> calling  <addr> @ <pid>" / "... initcall <addr> returned ..."
	$1 == "BENCH-KLOG" && tolower($4) == tolower(early) {
		if ($3 == "calling") t_call = $2
		if ($3 == "initcall") t_ret = $2
	}
	END {
		items = size
		if (mark >= 0 && shut > 0) row("serialize_window", items, (shut - mark) * 1e9)
		if (mark >= 0 && jump > 0) row("reboot_to_jump", items, (jump - mark) * 1e9)
		if (pages != "") row("restored_pages", pages, 0)
		if (t_call != "" && t_ret != "") row("restore_initcall", items, (t_ret - t_call) * 1000)
	}' "$1"
}

# vm_timeout MODE SIZE CORE
vm_timeout() {
	local t=120
	if [ "$1" = sessions ]; then
		if [ "$3" = c ]; then
			# O(n^2) create/deserialize/retrieve in the C core.
			t=$((120 + $2 * $2 / 4000000))
		else
			t=$((120 + $2 / 200))
		fi
	else
		t=$((120 + $2 / 50))
	fi
	# icount runs one vCPU at a time, and counts instructions instead of
	# skipping them: a few times slower than plain TCG.
	[ $clock = icount ] && t=$((t * 3))
	echo $t
}

nvm=0 nfail=0
run_one() { # RUN CORE MODE SIZE
	local run=$1 core=$2 mode=$3 size=$4 name log
	name=bench-$mode$size-$core-r$run
	LUO_CMDLINE_EXTRA="luo_bench=$mode:$size luo_bench_early=${early_addr[$core]} $base_cmdline" \
		LUO_VM_TIMEOUT=$(vm_timeout "$mode" "$size" "$core") \
		vm_run "$name" "$bindir/luo_bench" "$kdir/bzImage-$core" "$kdir/bzImage-$core"
	local rc=$?
	nvm=$((nvm + 1))
	log=$VM_LOG
	if [ $rc != 0 ]; then
		nfail=$((nfail + 1))
		say "run $run $core $mode=$size: FAILED ($VM_REASON), log $log"
		return
	fi
	# The bench tells the core from the kernel log (quiet console).
	if grep -q '^BENCH ' "$log" && grep '^BENCH ' "$log" | grep -qv " core=$core "; then
		say "WARNING: asked for core $core, the bench saw another one: $log"
	fi
	parse_log "$log" "$run" "$core" "$mode" "$size" "$VM_SECS" >>"$tmpcsv"
	say "run $run $core $mode=$size: ${VM_SECS}s"
}

sizes=()
for s in $files; do sizes+=("files:$s"); done
for s in $sessions; do sizes+=("sessions:$s"); done
max_runs=$runs
[ "$runs_big" -gt "$max_runs" ] && max_runs=$runs_big
say "sizes: ${sizes[*]}; $runs runs ($runs_big for >= 100000 sessions); C sessions up to ${c_max/#0/any}"
for ((r = 1; r <= max_runs; r++)); do
	for sz in "${sizes[@]}"; do
		mode=${sz%%:*} size=${sz#*:}
		want=$runs
		[ "$mode" = sessions ] && [ "$size" -ge 100000 ] && want=$runs_big
		[ $r -le "$want" ] || continue
		# Alternate which core goes first, per run and size.
		if (((r + ${#size}) % 2)); then order="c rust"; else order="rust c"; fi
		for core in $order; do
			if [ "$core" = c ] && [ "$mode" = sessions ] && [ "$c_max" != 0 ] &&
				[ "$size" -gt "$c_max" ]; then
				continue
			fi
			run_one "$r" "$core" "$mode" "$size"
		done
	done
done
mv "$tmpcsv" "$csv"
t_end=$(date +%s)
say "$nvm VM runs ($nfail failed) in $((t_end - t_start)) s; $csv"

# ------------------------------------------------------------ report + plot
venv=$CACHE/bench-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
	say "setting up matplotlib in $venv"
	python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib || say "WARNING: no matplotlib"
fi
py=$venv/bin/python
[ -x "$py" ] || py=python3
"$py" "$repo/bench/report.py" "$csv" "$outdir/RESULTS.md" \
	--command "$cmd" --duration $((t_end - t_start)) \
	--kernels "repo $(git -C "$repo" log -1 --format=%h) (Rust core files as committed there unless noted), rust $(stat -c '%y' "$kdir/bzImage-rust" | cut -d. -f1), c $(stat -c '%y' "$kdir/bzImage-c" | cut -d. -f1)" \
	--cmdline "$base_cmdline" --clock "$clock_desc" || say "WARNING: report failed"
"$py" "$repo/bench/plot.py" "$csv" "$outdir/plot.png" || say "WARNING: plot failed"
say "wrote $outdir/RESULTS.md and $outdir/plot.png"
[ $nfail = 0 ]

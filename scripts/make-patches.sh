#!/usr/bin/env bash
# Turn this repository into a kernel patch series against linux-source-7.3,
# then check that the series applies, builds and is checkpatch-clean.
#
#   scripts/make-patches.sh [--worktree] [--no-build] [--no-rustdoc]
#
#   --worktree    take the files from the work tree instead of the last
#                 commit (HEAD); the default makes the series reproducible
#   --no-build    only write and apply-check the series (no kernel build,
#                 no selftests build, no rustdoc)
#   --no-rustdoc  skip the rustdoc run on the Rust core
#
# Output: build/patches/0000-cover-letter.patch, 0001-....patch, ...
#
# Work directory: ${LUO_CACHE_DIR:-$HOME/.cache/luo-rs}/patches-work/
#   linux/    linux-source-7.3 as a git repo: tag luo-base = the unpacked
#             tarball, branch luo-rs-series = the series (rebuilt each run);
#             reused as long as the package version and tarball are the same
#   verify/   git worktree of linux/: luo-base + `git am` of the series
#   O/        O= build dir (config copied from the cache's build-rust/)
#   logs/     checkpatch, build, selftests and rustdoc outputs
#
# Checks: every patch applies with `git am` onto a fresh checkout of the
# base and gives the same tree as the series branch; the result builds
# rust/ and kernel/liveupdate/ (LLVM=-19, -j2 at most) and the selftests
# directory; `scripts/checkpatch.pl --strict` reports no error on any patch.
# Exits non-zero if any of this fails. Warnings and rustdoc findings are
# listed, not fatal.
set -euo pipefail
# The whole script is one block, so that editing it while it runs cannot
# change what the running instance executes.
{

say() { printf '[patches] %s\n' "$*"; }
die() { printf '[patches] ERROR: %s\n' "$*" >&2; exit 1; }

from_worktree=0
do_build=1
do_rustdoc=1
for a in "$@"; do
	case $a in
	--worktree) from_worktree=1 ;;
	--no-build) do_build=0 do_rustdoc=0 ;;
	--no-rustdoc) do_rustdoc=0 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $a (see --help)" ;;
	esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${LUO_CACHE_DIR:-$HOME/.cache/luo-rs}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
WORK=$CACHE/patches-work
L=$WORK/linux
V=$WORK/verify
O=$WORK/O
LOGS=$WORK/logs
OUTDIR=$repo/build/patches
mkdir -p "$WORK" "$LOGS" "$OUTDIR"

export PATH="$HOME/.cargo/bin:$PATH"
tarball=/usr/src/linux-source-7.3.tar.xz
[ -f "$tarball" ] || die "$tarball missing: run scripts/install-deps.sh"
jobs=${LUO_JOBS:-2}
[ "$jobs" -gt 2 ] && jobs=2

ident=(-c "user.name=Rust LUO developers" -c "user.email=luo-rs@localhost")
SOB="Signed-off-by: Rust LUO developers <luo-rs@localhost>"
G() { git "${ident[@]}" -c advice.detachedHead=false -c core.quotepath=off "$@"; }

# One run at a time per work directory.
exec 8>"$WORK/.lock"
flock -n 8 || { say "waiting for another make-patches.sh run"; flock 8; }

# ----------------------------------------------------------------- base tree
pkgver=$(dpkg-query -W -f='${Version}' linux-source-7.3 2>/dev/null || echo unknown)
basekey="linux-source-7.3 $pkgver $(stat -c '%s %Y' "$tarball")"
if [ "$(cat "$L/.git/luo-base-key" 2>/dev/null)" != "$basekey" ] ||
	! git -C "$L" rev-parse -q --verify luo-base >/dev/null; then
	say "unpacking linux-source-7.3 ($pkgver) into $L and committing it as the base"
	say "(one or two minutes)"
	[ -d "$V" ] && { git -C "$L" worktree remove --force "$V" 2>/dev/null || rm -rf "$V"; }
	rm -rf "$L" "$L.tmp" "$V" "$O"
	mkdir -p "$L.tmp"
	tar -xf "$tarball" -C "$L.tmp" --strip-components=1
	(
		cd "$L.tmp"
		git init -q -b luo-base-branch
		# Before the first commit: that commit leaves ~90 000 loose objects,
		# and the detached auto-gc it would start holds HEAD.lock while the
		# series is built.
		git config gc.auto 0
		git config maintenance.auto false
		# -f: Debian's top-level .gitignore ignores everything ("/*").
		git add -A -f
		G commit -q --no-verify \
			-m "linux-source-7.3 $pkgver" -m "Unpacked from $tarball."
		git tag luo-base
	)
	echo "$basekey" >"$L.tmp/.git/luo-base-key"
	mv "$L.tmp" "$L"
	git -C "$L" worktree prune
else
	say "base tree $L is up to date ($pkgver)"
fi
# An auto-gc started by an older version of this script may still run on the
# tree, or may have been killed and left its locks: wait for it, then clear
# what it left (nothing else uses this tree).
gcpid=$(awk '{print $1; exit}' "$L/.git/gc.pid" 2>/dev/null || true)
for _ in $(seq 300); do
	[ -n "$gcpid" ] && kill -0 "$gcpid" 2>/dev/null || break
	sleep 1
done
rm -f "$L/.git/gc.pid" "$L/.git/HEAD.lock" "$L/.git/index.lock" "$L/.git/packed-refs.lock"
# No background auto-gc: it would repack the whole tree while others build
# (and inherit the lock). Set again for a tree unpacked by an older script.
git -C "$L" config gc.auto 0
git -C "$L" config maintenance.auto false
base=$(git -C "$L" rev-parse luo-base)

# ------------------------------------------------------ source of repo files
if [ $from_worktree = 1 ]; then
	say "taking the files from the work tree of $repo"
	list_files() { (cd "$repo" && for g in "$@"; do compgen -G "$g" || true; done) | sort -u; }
	put() { mkdir -p "$(dirname "$2")" && cp "$repo/$1" "$2"; }
	srcdesc="work tree of $(git -C "$repo" rev-parse --short HEAD)"
else
	head=$(git -C "$repo" rev-parse HEAD)
	say "taking the files from commit $(git -C "$repo" rev-parse --short HEAD) (HEAD)"
	if ! git -C "$repo" diff --quiet HEAD -- '*.rs' Kbuild kernel-patch selftests Documentation; then
		say "note: uncommitted changes in the repo are NOT in the series (use --worktree)"
	fi
	list_files() {
		local g
		for g in "$@"; do
			git -C "$repo" ls-tree --name-only "$head" -- "$(dirname "$g")/" |
				while read -r f; do
					# shellcheck disable=SC2053
					if [[ $f == $g ]]; then echo "$f"; fi
				done
		done | sort -u
	}
	put() { mkdir -p "$(dirname "$2")" && git -C "$repo" show "$head:$1" >"$2"; }
	srcdesc="commit $(git -C "$repo" rev-parse --short HEAD)"
fi
# Dates from the repo's last commit, so the same input gives the same series.
date=$(git -C "$repo" log -1 --format=%aI)
export GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date

mapfile -t kpatches < <(list_files 'kernel-patch/*.patch')
mapfile -t rs_top < <(list_files '*.rs')
mapfile -t rs_abi < <(list_files 'abi/*.rs' | grep -vE '^abi/(lib|tests)\.rs$')
mapfile -t st_c < <(list_files 'selftests/*.c')
mapfile -t st_lib < <(list_files 'selftests/lib/*.c' 'selftests/lib/*.h')
mapfile -t docs < <(list_files 'Documentation/*.rst')
[ ${#rs_top[@]} -gt 0 ] && [ ${#rs_abi[@]} -gt 0 ] || die "no *.rs or abi/*.rs in $srcdesc"
[ ${#kpatches[@]} -gt 0 ] || die "no kernel-patch/*.patch in $srcdesc"
rs_format=()
rs_core=()
for f in "${rs_top[@]}"; do
	case $f in
	layout.rs) rs_format+=("$f") ;;
	*) rs_core+=("$f") ;;
	esac
done

# ------------------------------------------------------------- the series
say "building branch luo-rs-series on luo-base"
cd "$L"
git am --abort >/dev/null 2>&1 || true
G checkout -q -f -B luo-rs-series luo-base
git clean -q -fdx

msgdir=$WORK/msg
rm -rf "$msgdir"
mkdir -p "$msgdir"
commit() { # message file; the index holds what to commit
	if git diff --cached --quiet; then
		die "nothing to commit for: $(head -n1 "$1")"
	fi
	printf '\n%s\n' "$SOB" >>"$1"
	G commit -q --no-verify -F "$1"
}

# maint_add NEXT NEW: add line NEW before line NEXT of the LIVE UPDATE entry
# (checkpatch wants the F: patterns in byte order: "liveupdate-" < "liveupdate.").
maint_add() {
	[ -f "$WORK/kp.patch" ] && grep -q "^+++ b/MAINTAINERS" "$WORK/kp.patch" && return 1
	awk -v next_="$1" -v new="$2" '
		/^LIVE UPDATE$/ { inside = 1 }
		/^$/ { inside = 0 }
		inside && $0 == next_ { print new; done = 1 }
		{ print }
		END { exit !done }
	' MAINTAINERS >"$WORK/MAINTAINERS.new" || { say "note: no LIVE UPDATE '$1' line in MAINTAINERS"; return 1; }
	cat "$WORK/MAINTAINERS.new" >MAINTAINERS
}

# The kernel patch of the repo: rust/ goes into patch 1, the rest
# (Kconfig choice, Makefile hook) into patch 4.
for p in "${kpatches[@]}"; do
	put "$p" "$WORK/kp.patch"
	patch -p1 --forward --batch -s <"$WORK/kp.patch" >"$LOGS/kernel-patch.log" 2>&1 ||
		{ cat "$LOGS/kernel-patch.log" >&2; die "$p does not apply to linux-source-7.3"; }
done
find . -name '*.orig' -newer "$WORK/kp.patch" -delete

# 1 ---------------------------------------------------------------------
cat >"$msgdir/1" <<'EOF'
rust: bindings and helpers for KHO and LUO

The Rust implementation of the Live Update Orchestrator core, added
later in this series, calls into Kexec HandOver (KHO), into the file
handler and FLB interfaces of <linux/liveupdate.h> and creates anonymous
inode files for sessions. It also reads and writes the serialized
structures of <linux/kho/abi/luo.h> directly.

Make these headers visible to bindgen, and add helpers for the static
inline functions the core needs: phys_to_virt(), virt_to_phys(),
folio_address(), folio_order(), folio_put(), try_module_get() and
module_put().
EOF
git add -A -f rust/
# New files under rust/helpers/ are listed in the subsystem's entry.
if maint_add 'F:	tools/testing/selftests/liveupdate/' 'F:	rust/helpers/liveupdate.c'; then
	printf '\n%s\n' "Add the new helper file to the LIVE UPDATE entry in MAINTAINERS." >>"$msgdir/1"
	git add -f MAINTAINERS
fi
commit "$msgdir/1"

# 2 ---------------------------------------------------------------------
cat >"$msgdir/2" <<'EOF'
liveupdate: serialized format of the Rust LUO core

Add the part of the Rust LUO core that encodes and decodes the state
handed from one kernel to the next through KHO: the root and FLB
header, the session and file entries, and the chains of blocks that
hold them ("luo-v5", the format of the C core, byte for byte).

abi/ is plain no_std Rust over byte slices and physical addresses and
does not depend on the kernel crate, so the same files can also be
built on the host for unit tests and fuzzing. The restore side treats
everything it reads as untrusted: counts, addresses, chain lengths,
cycles, names and compatible strings are validated before use, and a
damaged handover is reported as an error instead of being followed.

layout.rs checks at build time that every size and offset used by abi/
matches the C structures of <linux/kho/abi/luo.h> as seen by bindgen,
so the two cores cannot drift apart.

Nothing builds these files yet; the next patch adds the core and its
Kbuild file.
EOF
mkdir -p kernel/liveupdate/rust/abi
for f in "${rs_abi[@]}" "${rs_format[@]}"; do
	put "$f" "kernel/liveupdate/rust/$f"
	git add -f "kernel/liveupdate/rust/$f"
done
commit "$msgdir/2"

# 3 ---------------------------------------------------------------------
{
	cat <<'EOF'
liveupdate: Rust implementation of the LUO core

Add a Rust implementation of the Live Update Orchestrator core, a
drop-in replacement for kernel/liveupdate/luo_{core,session,file,flb}.c:
/dev/liveupdate, sessions, preserved files, file handlers, FLBs, and
the serialization of all of it into KHO at reboot(LINUX_REBOOT_CMD_KEXEC)
and back in the next kernel (the root at early boot, the sessions at the
first open of /dev/liveupdate, as the C core does).

The core keeps the userspace API (ioctls, errno values, fd semantics),
the in-kernel API used by file handlers and FLB owners, and the
serialized format of the C core, so a kernel with either core can live
update into a kernel with the other one.

Everything read back from the previous kernel goes through the
validating parser of the previous patch; a damaged handover is logged
once, what can be trusted is kept, and /dev/liveupdate stays usable.
A test-only option (LIVEUPDATE_RUST_CORRUPT_TEST, added with the Kconfig
choice) can damage the outgoing state on request, and a KUnit suite
covers the internal data structures when KUnit is enabled.

Files:
EOF
	for f in "${rs_core[@]}"; do
		# First sentence of the module's doc comment.
		sum=$(put "$f" /dev/stdout | awk '
			/^\/\/!/ {
				l = $0
				sub(/^\/\/! ?/, "", l)
				if (l == "") { if (p != "") exit; next }
				p = p (p == "" ? "" : " ") l
				next
			}
			p != "" { exit }
			END { print p }
		' | sed 's/\([.!?]\) .*/\1/; s/\.$//' || true) # awk may stop git show early
		printf '  %s: %s\n' "$f" "${sum:-(no summary)}"
	done | fold -s -w 72 | sed 's/ *$//; 2,$ s/^\([^ ]\)/    \1/'
	cat <<'EOF'

The core is not built yet; the next patch adds the Kconfig choice
between the two cores.
EOF
} >"$msgdir/3"
put Kbuild kernel/liveupdate/rust/Kbuild
for f in "${rs_core[@]}"; do
	put "$f" "kernel/liveupdate/rust/$f"
done
git add -f kernel/liveupdate/rust/
commit "$msgdir/3"

# 4 ---------------------------------------------------------------------
cat >"$msgdir/4" <<'EOF'
liveupdate: choose between the C and the Rust LUO core

Add a Kconfig choice under LIVEUPDATE between the C core (the default)
and the Rust core of the previous patches, and build kernel/liveupdate/
rust/ instead of luo.o when the Rust core is selected.

Also add LIVEUPDATE_RUST_CORRUPT_TEST, a testing-only option that lets
the luo_corrupt= boot parameter damage the outgoing handover in one
chosen way, so that selftests can check that the next kernel survives
bad input.
EOF
git add -A -f .
rest=$(git diff --cached --name-only)
case $rest in
*kernel/liveupdate/Kconfig*) ;;
*) die "kernel-patch/ does not change kernel/liveupdate/Kconfig any more: update $0" ;;
esac
for f in $rest; do
	case $f in
	kernel/liveupdate/Kconfig | kernel/liveupdate/Makefile) ;;
	*) say "note: kernel-patch/ also changes $f: it goes into patch 4" ;;
	esac
done
commit "$msgdir/4"

# 5 ---------------------------------------------------------------------
STD=tools/testing/selftests/liveupdate/rust
cat >"$msgdir/5" <<'EOF'
selftests/liveupdate: tests for the Rust LUO core

Add the tests written with the Rust LUO core. They only use the
userspace API, so they run unchanged against either core, and most of
them are two-stage tests across a kexec: stage 1 preserves state and
the next kernel's stage 2 retrieves and checks it.

  init.c               a minimal PID 1 that loads the next kernel,
                       runs stage 1, kexecs, and runs stage 2
  agent.c              a toy VMM agent that keeps its state across a
                       live update
  luo_memfd_pattern.c  pattern, sealed, sparse and empty memfds
  luo_multi_block.c    enough sessions and files to need several
                       blocks in every serialized chain
  luo_interop.c        every session name length, the live update
                       number, memory freed by finish
  luo_reboot_abort.c   a kexec reboot that fails while freezing is
                       rolled back and the next one works
  luo_corrupt.c        a damaged handover (needs
                       LIVEUPDATE_RUST_CORRUPT_TEST) is refused cleanly
  luo_parity.c         every ioctl and errno, to compare both cores
  luo_failslab.c       allocation failures injected at every step
  luo_stress_threads.c concurrent sessions, files and ioctls

The binaries are built static, to be packed into an initramfs.
EOF
mkdir -p "$STD/lib"
for f in "${st_c[@]}" "${st_lib[@]}"; do
	put "$f" "$STD/${f#selftests/}"
done
progs=$(for f in "${st_c[@]}"; do basename "$f" .c; done | grep -vx init | tr '\n' ' ')
{
	cat <<'EOF'
# SPDX-License-Identifier: GPL-2.0-only
#
# Two-stage live update tests, written for the Rust LUO core and usable
# with either core. Static binaries, to be packed into an initramfs with
# init as PID 1 and run across a kexec.

EOF
	echo "TEST_GEN_PROGS_EXTENDED := init"
	for p in $progs; do
		echo "TEST_GEN_PROGS_EXTENDED += $p"
	done
	cat <<'EOF'

include ../../lib.mk

CFLAGS += $(KHDR_INCLUDES)
CFLAGS += -static -O2 -Wall -Wextra -Wno-unused-parameter -std=gnu11
LDLIBS += -pthread

LUO_LIB := lib/luo.c lib/kmemleak.c
LUO_PROGS := $(filter-out $(OUTPUT)/init,$(TEST_GEN_PROGS_EXTENDED))

$(OUTPUT)/init: init.c
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(LDLIBS) -o $@

$(LUO_PROGS): $(OUTPUT)/%: %.c $(LUO_LIB) $(wildcard lib/*.h)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(LUO_LIB) $(LDLIBS) -o $@
EOF
} >"$STD/Makefile"
for f in "${st_lib[@]}"; do
	case $f in
	selftests/lib/luo.c | selftests/lib/kmemleak.c | *.h) ;;
	*) say "note: $f is not in the selftests Makefile's LUO_LIB" ;;
	esac
done
git add -f "$STD"
commit "$msgdir/5"

# 6 ---------------------------------------------------------------------
DOCD=Documentation/core-api/liveupdate-rust
cat >"$msgdir/6" <<'EOF'
Documentation: describe the Rust LUO core

Add documentation for the Rust implementation of the Live Update
Orchestrator core: an overview, the userspace API as implemented, the
serialized format and how it is validated on restore, the design of the
Rust code, and how it is tested. Link it from the core-api index next
to the LUO documentation, and list the directory in the LIVE UPDATE
entry of MAINTAINERS.
EOF
mkdir -p "$DOCD"
for f in "${docs[@]}"; do
	put "$f" "$DOCD/$(basename "$f")"
done
if [ -f "$DOCD/index.rst" ] && grep -qx '   liveupdate' Documentation/core-api/index.rst; then
	sed -i 's|^   liveupdate$|&\n   liveupdate-rust/index|' Documentation/core-api/index.rst
	git add -f Documentation/core-api/index.rst
else
	say "note: no index hook for $DOCD (no index.rst, or core-api/index.rst changed)"
fi
git add -f "$DOCD"
if maint_add 'F:	Documentation/core-api/liveupdate.rst' "F:	$DOCD/"; then
	git add -f MAINTAINERS
fi
commit "$msgdir/6"

series_head=$(git rev-parse HEAD)

# ------------------------------------------------------------ format-patch
rm -f "$OUTDIR"/*.patch
G format-patch -q --cover-letter --thread=shallow -o "$OUTDIR" luo-base..luo-rs-series
cover=$OUTDIR/0000-cover-letter.patch
[ -f "$cover" ] || die "git format-patch did not write a cover letter"
subject="liveupdate: a Live Update Orchestrator core in Rust"
cat >"$WORK/blurb" <<'EOF'
This series adds a second implementation of the Live Update
Orchestrator (LUO) core, written in Rust, selectable with
CONFIG_LIVEUPDATE_RUST in place of kernel/liveupdate/luo_{core,session,
file,flb}.c. It provides /dev/liveupdate, sessions and preserved files,
the in-kernel API for file handlers and FLBs, and the serialization of
everything into Kexec HandOver at a kexec reboot.

Why: the restore path parses memory handed over by the previous kernel,
which is untrusted input. In the Rust core that parser is
kernel-independent no_std code that validates every count, address,
chain, name and compatible string before use, so it can also be unit
tested and fuzzed on the host, and a damaged handover is logged and
refused instead of being followed.

Compatibility: the userspace API, errno values, the in-kernel API and
the serialized format ("luo-v5") are the C core's, byte for byte, so a
kernel with either core live updates into a kernel with the other. The
C core stays the default.

Layout:
  1    rust: bindings and helpers the core needs
  2    the serialized format and its validating restore parser
  3    the core
  4    the Kconfig choice between the two cores
  5    selftests (two-stage tests across a kexec, usable with both cores)
  6    documentation

Testing (x86_64 guests under QEMU; the project's `make check`, 50 test
points over both cores):
- both kernels build; the Rust core without any rustc or clippy warning,
  and rustfmt-clean;
- host unit tests of the format and the restore parser, replay of the
  fuzz corpus and a short cargo-fuzz run of the parser (a longer
  campaign of 10.2 million executions found no crash);
- on each core: memfd contents (pattern, sealed, sparse, empty), 130
  sessions and 150 memfds in one session (multi-block chains), every
  session name length, a toy VMM agent, and upstream's unmodified
  liveupdate, luo_kexec_simple, luo_multi_session,
  luo_stress_sessions and luo_stress_files selftests;
- a kexec reboot that fails while freezing rolls everything back;
- 11 kinds of damaged handover (cycles, over-long chains, bad counts,
  addresses, names, unknown file type): the next kernel boots, logs
  one error and keeps serving /dev/liveupdate;
- 400+ ioctl/errno cases giving the same result on both cores;
- kexec from the C core into the Rust core and back with every session
  and byte intact;
- a debug kernel (KASAN, lockdep, kmemleak, fault injection, KUnit) with
  threaded stress and an allocation failure injected at every step.
EOF
printf '\nGenerated by scripts/make-patches.sh from %s of the luo-rs\nrepository.\n' \
	"$srcdesc" >>"$WORK/blurb"
awk -v subj="$subject" -v blurbf="$WORK/blurb" '
	/\*\*\* SUBJECT HERE \*\*\*/ { sub(/\*\*\* SUBJECT HERE \*\*\*/, subj) }
	/^\*\*\* BLURB HERE \*\*\*$/ {
		while ((getline l < blurbf) > 0) print l
		next
	}
	{ print }
' "$cover" >"$cover.new"
mv "$cover.new" "$cover"
mapfile -t pfiles < <(ls "$OUTDIR"/*.patch)
say "wrote ${#pfiles[@]} files into $OUTDIR"

# ------------------------------------------------------------------- checks
failed=()
declare -A ck_e ck_w ck_c

# checkpatch, run from the base tree (spelling.txt, const_structs, ...).
# checkpatch runs scripts/spdxcheck.py with the first python3 on PATH, which
# needs ply and GitPython (Debian: python3-ply python3-git); a pyenv python3
# may not have them.
cp_path=$PATH
if ! python3 -c 'import ply, git' 2>/dev/null; then
	if /usr/bin/python3 -c 'import ply, git' 2>/dev/null; then
		mkdir -p "$WORK/bin"
		ln -sfn /usr/bin/python3 "$WORK/bin/python3"
		cp_path=$WORK/bin:$PATH
	else
		say "note: python3-ply or python3-git missing: checkpatch cannot run spdxcheck.py (SPDX lines unchecked)"
	fi
fi
for p in "${pfiles[@]}"; do
	n=$(basename "$p")
	[ "$n" = 0000-cover-letter.patch ] && continue
	log=$LOGS/checkpatch-${n%.patch}.txt
	PATH=$cp_path ./scripts/checkpatch.pl --strict --no-color --showfile "$p" >"$log" 2>&1 || true
	tot=$(grep -E '^total: ' "$log" | tail -n1)
	if grep -q '^Traceback' "$log"; then
		say "note: a checkpatch helper script crashed on $n (see $log)"
	fi
	[ -n "$tot" ] || { failed+=("checkpatch did not run on $n (see $log)"); continue; }
	ck_e[$n]=$(sed -E 's/^total: ([0-9]+) errors.*/\1/' <<<"$tot")
	ck_w[$n]=$(sed -E 's/.* ([0-9]+) warnings.*/\1/' <<<"$tot")
	ck_c[$n]=$(sed -E 's/.* ([0-9]+) checks.*/\1/' <<<"$tot")
	[ "${ck_e[$n]}" = 0 ] || failed+=("checkpatch: ${ck_e[$n]} error(s) in $n")
done

# git am onto a fresh checkout of the base.
say "applying the series with git am onto a fresh checkout of luo-base ($V)"
if [ ! -d "$V/.git" ] && [ ! -f "$V/.git" ]; then
	rm -rf "$V"
	git worktree prune
	G worktree add -q --detach "$V" luo-base
fi
stamp=$WORK/verify-stamp # last applied content and mtime of each file the series touches
(cd "$V" && git am --abort >/dev/null 2>&1 || true)
G -C "$V" checkout -q -f --detach luo-base
git -C "$V" clean -q -fdx
applies=yes
mapfile -t series_patches < <(ls "$OUTDIR"/0*.patch | grep -v 0000-cover-letter)
if ! G -C "$V" am -q --whitespace=error-all "${series_patches[@]}" >"$LOGS/git-am.log" 2>&1; then
	applies=no
	cat "$LOGS/git-am.log" >&2
	(cd "$V" && git am --abort >/dev/null 2>&1 || true)
	failed+=("the series does not apply with git am (see $LOGS/git-am.log)")
elif ! git -C "$V" diff --quiet "$series_head" HEAD; then
	applies=no
	failed+=("git am gives a different tree than branch luo-rs-series")
fi
# Keep the mtimes of unchanged files, so the O= build stays incremental.
if [ $applies = yes ]; then
	git -C "$V" diff --name-only luo-base HEAD | while read -r f; do
		if cmp -s "$V/$f" "$stamp/$f"; then
			touch -r "$stamp/$f" "$V/$f"
		else
			mkdir -p "$(dirname "$stamp/$f")"
			cp -p "$V/$f" "$stamp/$f"
		fi
	done
fi

builds=skipped
selftests_build=skipped
if [ $do_build = 1 ] && [ $applies = yes ]; then
	rustc_ver=$(rustc --version | awk '{print $2}')
	export RUST_LIB_SRC=${RUST_LIB_SRC:-/usr/src/rustc-${rustc_ver}/library}
	export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
	[ -f "$CACHE/build-rust/.config" ] ||
		die "$CACHE/build-rust/.config missing: run scripts/build-kernel.sh rust (make kernel) once"
	mkdir -p "$O"
	if ! cmp -s "$CACHE/build-rust/.config" "$O/.config.from-cache"; then
		cp "$CACHE/build-rust/.config" "$O/.config"
		cp "$CACHE/build-rust/.config" "$O/.config.from-cache"
	fi
	MK=(make -C "$V" O="$O" LLVM=-19 -j"$jobs")
	blog=$LOGS/build.log
	say "building rust/ and kernel/liveupdate/ in $O (-j$jobs) -> $blog"
	builds=no
	if "${MK[@]}" olddefconfig >"$blog" 2>&1 &&
		grep -qx CONFIG_LIVEUPDATE_RUST=y "$O/.config" &&
		"${MK[@]}" rust/ kernel/liveupdate/ >>"$blog" 2>&1 &&
		[ -f "$O/kernel/liveupdate/rust/luo.o" ]; then
		builds=yes
	else
		grep -E 'error|Error|CONFIG_LIVEUPDATE_RUST' "$blog" | tail -n 30 >&2 || true
		grep -qx CONFIG_LIVEUPDATE_RUST=y "$O/.config" ||
			say "CONFIG_LIVEUPDATE_RUST=y did not survive olddefconfig"
		failed+=("the patched tree does not build kernel/liveupdate/ (see $blog)")
	fi
	nwarn=$(grep -cE '^(warning|error)(\[|:)' "$blog" || true)
	[ "$nwarn" = 0 ] || say "note: $nwarn rustc warning/error line(s) in $blog"

	# The selftests directory, against the patched tree's UAPI headers.
	slog=$LOGS/selftests.log
	say "building $STD -> $slog"
	selftests_build=no
	if "${MK[@]}" headers_install >"$slog" 2>&1 &&
		rm -rf "$WORK/selftests-out" && mkdir -p "$WORK/selftests-out" &&
		make -C "$V/$STD" -j"$jobs" OUTPUT="$WORK/selftests-out" \
			KHDR_INCLUDES="-isystem $O/usr/include" >>"$slog" 2>&1; then
		selftests_build=yes
	else
		tail -n 20 "$slog" >&2
		failed+=("$STD does not build (see $slog)")
	fi
fi

# rustdoc on the crate, with the flags Kbuild gave rustc for luo.o.
rustdoc_result=skipped
rustdoc_priv_result=
if [ $do_rustdoc = 1 ] && [ $builds = yes ]; then
	rlog=$LOGS/rustdoc.log
	say "rustdoc on kernel/liveupdate/rust/luo.rs -> $rlog"
	cmdfile=$O/kernel/liveupdate/rust/.luo.o.cmd
	cmd=$(sed -n 's/^savedcmd_kernel\/liveupdate\/rust\/luo.o := //p' "$cmdfile")
	read -r -a words <<<"$cmd"
	rd=()
	env_=()
	skip=0
	seen_prog=0
	for w in "${words[@]}"; do
		if [ $skip = 1 ]; then skip=0; continue; fi
		if [ $seen_prog = 0 ]; then
			case $w in
			*=*) env_+=("$w"); continue ;;
			*) rd+=(rustdoc); seen_prog=1; continue ;;
			esac
		fi
		case $w in
		--emit=* | --remap-path-scope=* | --remap-path-prefix=*) ;;
		--out-dir) skip=1 ;;
		*) rd+=("${w//\'/}") ;;
		esac
	done
	# -Zcrate-attr='feature(...)' is quoted in the .cmd file.
	rd+=(-Zunstable-options --crate-name luo -Cunsafe-allow-abi-mismatch=fixed-x18)
	run_rustdoc() { # LOG OUTDIR EXTRA-FLAGS...
		local log=$1 out=$2 r
		shift 2
		rm -rf "$out"
		# Kbuild exports RUSTC_BOOTSTRAP=1 for the -Z flags.
		if (cd "$O" && env RUSTC_BOOTSTRAP=1 "${env_[@]}" "${rd[@]}" --output "$out" "$@") >"$log" 2>&1; then
			r="ok, $(grep -cE '^warning' "$log" || true) warning(s)"
		else
			r="FAILED (see $log)"
		fi
		# Paths relative to the repo.
		sed -i "s|$V/kernel/liveupdate/rust/||g; s|kernel/liveupdate/rust/||g" "$log"
		echo "$r"
	}
	rustdoc_result=$(run_rustdoc "$rlog" "$WORK/rustdoc")
	# For information: the same with the private items, where most of the
	# crate's documentation is.
	rlog_priv=$LOGS/rustdoc-private.log
	rustdoc_priv_result=$(run_rustdoc "$rlog_priv" "$WORK/rustdoc-private" --document-private-items)
fi

# ------------------------------------------------------------------ summary
echo
echo "== patch series: $OUTDIR (from $srcdesc)"
for p in "${pfiles[@]}"; do
	n=$(basename "$p")
	if [ "$n" = 0000-cover-letter.patch ]; then
		printf '  %-60s\n' "$n"
		continue
	fi
	printf '  %-60s checkpatch: %s errors, %s warnings, %s checks\n' "$n" \
		"${ck_e[$n]:-?}" "${ck_w[$n]:-?}" "${ck_c[$n]:-?}"
done
echo "== applies with git am onto linux-source-7.3 $pkgver: $applies"
echo "== builds rust/ + kernel/liveupdate/ (CONFIG_LIVEUPDATE_RUST=y): $builds"
echo "== builds $STD: $selftests_build"
echo "== rustdoc (public items, as the kernel runs it): $rustdoc_result"
echo "== rustdoc --document-private-items (information): ${rustdoc_priv_result:-skipped}"
echo
echo "== checkpatch findings (logs in $LOGS/checkpatch-*.txt):"
for p in "${pfiles[@]}"; do
	n=$(basename "$p")
	log=$LOGS/checkpatch-${n%.patch}.txt
	[ -f "$log" ] || continue
	grep -E '^[^ ]+:[0-9]+: (ERROR|WARNING|CHECK):|^(ERROR|WARNING|CHECK):' "$log" |
		sed "s|^|  ${n%%-*}: |" || true
done
for l in "${rlog:-}" "${rlog_priv:-}"; do
	[ -f "$l" ] || continue
	echo
	echo "== rustdoc findings ($l):"
	awk '/^(warning|error)/ { w = $0 } /^ *--> / && w != "" { sub(/^ *--> /, ""); print "  " $0 ": " w; w = "" }' "$l"
done
echo
if [ ${#failed[@]} -gt 0 ]; then
	for f in "${failed[@]}"; do echo "FAIL: $f"; done
	exit 1
fi
echo "OK: ${#series_patches[@]} patches + cover letter in $OUTDIR"
exit 0
}

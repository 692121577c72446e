#!/usr/bin/env bash
# Build a minimal x86_64 test kernel with either the Rust LUO core or
# upstream's C LUO core.
#
#   scripts/build-kernel.sh rust|c [--fresh-rust]
#
# Everything lives outside the clone, in ${LUO_CACHE_DIR:-$HOME/.cache/luo-rs}:
#   src-<key>/      linux-source-7.3 unpacked + kernel-patch/*.patch applied
#                   (key = package version + patch contents)
#   build-rust/     O= dir of the Rust-core kernel (incremental)
#   build-c/        O= dir of the C-core kernel (incremental)
#   out/bzImage-*   the resulting images
#   logs/build-*.log  full build logs
#
# --fresh-rust   drop the Rust core's objects first, so that every Rust
#                diagnostic shows up again in this build's log (make check).
set -euo pipefail

say() { printf '[kernel] %s\n' "$*"; }
die() { printf '[kernel] ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib-kernel.sh
. "$(dirname "$0")/lib-kernel.sh"

core=${1:-}
shift || true
fresh_rust=0
for a in "$@"; do
	case $a in
	--fresh-rust) fresh_rust=1 ;;
	*) die "unknown option $a" ;;
	esac
done
case $core in
rust | c) ;;
*) die "usage: $0 rust|c [--fresh-rust]" ;;
esac

repo=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${LUO_CACHE_DIR:-$HOME/.cache/luo-rs}
mkdir -p "$CACHE/out" "$CACHE/logs"
CACHE=$(cd "$CACHE" && pwd)

export PATH="$HOME/.cargo/bin:$PATH"
rustc_ver=$(rustc --version | awk '{print $2}')
export RUST_LIB_SRC=${RUST_LIB_SRC:-/usr/src/rustc-${rustc_ver}/library}
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
tarball=/usr/src/linux-source-7.3.tar.xz
[ -f "$tarball" ] || die "$tarball missing: run scripts/install-deps.sh"
[ -d "$RUST_LIB_SRC" ] || die "RUST_LIB_SRC=$RUST_LIB_SRC missing: run scripts/install-deps.sh"

jobs=${LUO_JOBS:-$(($(nproc) + 1))}

# One build at a time per cache: the source tree is shared by all clones.
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
	say "waiting for another build using $CACHE"
	flock 9
fi

# ---------------------------------------------------------------- source tree
pkgver=$(dpkg-query -W -f='${Version}' linux-source-7.3 2>/dev/null || echo unknown)
shopt -s nullglob
patches=("$repo"/kernel-patch/*.patch)
shopt -u nullglob
key=$(kernel_src_key "$repo")
SRC=$CACHE/src-$key

if [ ! -f "$SRC/.luo-ready" ]; then
	say "unpacking linux-source-7.3 ($pkgver) into $SRC"
	rm -rf "$SRC" "$SRC.tmp"
	mkdir -p "$SRC.tmp"
	tar -xf "$tarball" -C "$SRC.tmp" --strip-components=1
	for p in "${patches[@]}"; do
		say "applying kernel-patch/$(basename "$p")"
		patch -d "$SRC.tmp" -p1 --forward --batch -s <"$p" ||
			die "kernel-patch/$(basename "$p") does not apply"
	done
	[ ${#patches[@]} -gt 0 ] || say "no kernel-patch/*.patch yet: plain upstream tree"
	touch "$SRC.tmp/.luo-ready"
	mv "$SRC.tmp" "$SRC"
	for old in "$CACHE"/src-*; do
		[ "$old" = "$SRC" ] && continue
		say "removing stale source tree $old"
		rm -rf "$old"
	done
else
	say "source tree $SRC is up to date (key $key)"
fi
ln -sfn "$(basename "$SRC")" "$CACHE/src"

# -------------------------------------------------- sync the Rust core files
if [ -f "$repo/Kbuild" ]; then
	kernel_sync_rust_core "$repo" "$SRC"
else
	say "no Kbuild in the repo yet: not syncing a Rust core"
fi

# --------------------------------------------------------------------- config
O=$CACHE/build-$core
mkdir -p "$O"
MAKE=(make -C "$SRC" O="$O" LLVM=-19 -j"$jobs")
[ "$core" = rust ] && MAKE+=(CLIPPY=1)

kernel_configure "$O" "$key" "$repo/kconfig/base.config" "$repo/kconfig/$core.config"

# ---------------------------------------------------------------------- build
if [ $fresh_rust = 1 ] && [ -d "$O/kernel/liveupdate/rust" ]; then
	say "dropping Rust core objects so all diagnostics are re-emitted"
	find "$O/kernel/liveupdate/rust" -name '*.o' -delete
fi
log=$CACHE/logs/build-$core.log
say "building bzImage ($core core, -j$jobs${fresh_rust:+}) -> log $log"
start=$(date +%s)
if ! "${MAKE[@]}" bzImage headers_install >"$log" 2>&1; then
	grep -E 'error|Error' "$log" | tail -n 30 >&2 || true
	die "kernel build failed, full log: $log"
fi
end=$(date +%s)
cp "$O/arch/x86/boot/bzImage" "$CACHE/out/bzImage-$core"
# gen_init_cpio is used to pack initramfs images.
cp "$O/usr/gen_init_cpio" "$CACHE/out/gen_init_cpio"
rm -rf "$CACHE/out/headers"
cp -r "$O/usr/include" "$CACHE/out/headers"
say "built $CACHE/out/bzImage-$core in $((end - start)) s"

# -------------------------------------------------------------- warning check
if [ "$core" = rust ]; then
	"$repo/scripts/check-rust-warnings.sh" "$log" >"$CACHE/logs/rust-warnings.txt" || true
	n=$(awk 'BEGIN { RS = "" } END { print NR }' "$CACHE/logs/rust-warnings.txt")
	if [ "$n" -gt 0 ]; then
		say "WARNING: $n warning(s) from kernel/liveupdate/rust/ (see $CACHE/logs/rust-warnings.txt)"
	else
		say "no warnings from kernel/liveupdate/rust/"
	fi
fi

#!/usr/bin/env bash
# Install everything the build needs from Debian's and crates.io's registries.
# Idempotent: each step is skipped when its result is already present.
set -euo pipefail

say() { printf '[deps] %s\n' "$*"; }
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

need_update=0
src=/etc/apt/sources.list.d/luo-extra.sources
if [ ! -f "$src" ]; then
	say "adding Debian suites trixie, trixie-backports, sid (low pin priority)"
	$SUDO tee "$src" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie trixie-backports sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	$SUDO tee /etc/apt/preferences.d/luo-extra >/dev/null <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100

Package: *
Pin: release n=trixie-backports
Pin-Priority: 100

Package: *
Pin: release n=sid
Pin-Priority: 50
PIN
	need_update=1
fi

rustc_ver=$(rustc --version | awk '{print $2}')
rust_lib_src=/usr/src/rustc-${rustc_ver}/library

pkgs=(flex bison bc libelf-dev libssl-dev cpio qemu-system-x86 clang-19 lld-19 llvm-19
	libclang-19-dev python3 gcc make xz-utils python3-ply python3-git)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
have_src=0
ls /usr/src/linux-source-7.3.tar.* >/dev/null 2>&1 && have_src=1
have_rustsrc=0
[ -d "$rust_lib_src" ] && have_rustsrc=1

if [ ${#missing[@]} -gt 0 ] || [ $have_src = 0 ] || [ $have_rustsrc = 0 ]; then
	need_update=1
fi
if [ $need_update = 1 ]; then
	say "apt-get update"
	$SUDO apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ $have_src = 0 ]; then
	say "installing linux-source-7.3 from trixie-backports"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t trixie-backports \
		linux-source-7.3 >/dev/null
fi
if [ $have_rustsrc = 0 ]; then
	# rust-src must match rustc exactly, or the kernel's core/alloc builds fail.
	ver=$(apt-cache madison rust-src | awk -v v="$rustc_ver" '$3 ~ "^"v"\\+" {print $3; exit}')
	if [ -z "$ver" ]; then
		say "ERROR: no rust-src package matches rustc $rustc_ver"
		apt-cache madison rust-src >&2 || true
		exit 1
	fi
	say "installing rust-src=$ver (matches rustc $rustc_ver)"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
		"rust-src=$ver" >/dev/null
fi

export PATH="$HOME/.cargo/bin:$PATH"
if ! bindgen --version 2>/dev/null | grep -q '0\.72\.1'; then
	say "installing bindgen-cli 0.72.1 from crates.io"
	LIBCLANG_PATH=/usr/lib/llvm-19/lib cargo install --locked --quiet bindgen-cli@0.72.1
fi
say "toolchain ready (rustc $rustc_ver, RUST_LIB_SRC=$rust_lib_src)"

# shellcheck shell=bash
# Shared by scripts/build-kernel.sh and scripts/debug-check.sh: the key of the
# cached source tree, copying the Rust core into it, and configuring an O= dir
# from kconfig fragments. The caller defines say() and die(), and for
# kernel_configure() the array MAKE (make -C <src> O=<dir> ...).

# kernel_src_key REPO: the source tree's key (package version + kernel patches).
kernel_src_key() {
	local repo=$1 pkgver p
	pkgver=$(dpkg-query -W -f='${Version}' linux-source-7.3 2>/dev/null || echo unknown)
	{
		echo "linux-source-7.3 $pkgver"
		for p in "$repo"/kernel-patch/*.patch; do
			[ -f "$p" ] || continue
			echo "== $(basename "$p")"
			cat "$p"
		done
	} | sha256sum | cut -c1-16
}

# kernel_sync_rust_core REPO SRC: copies Kbuild, *.rs and abi/*.rs of the repo
# into SRC/kernel/liveupdate/rust/ (changed files only; files gone from the
# repo are removed), so that Kbuild rebuilds only what changed.
kernel_sync_rust_core() {
	local repo=$1 dst=$2/kernel/liveupdate/rust f n=0
	mkdir -p "$dst"
	for f in Kbuild $(cd "$repo" && ls ./*.rs abi/*.rs 2>/dev/null | sed 's|^\./||'); do
		if ! cmp -s "$repo/$f" "$dst/$f"; then
			mkdir -p "$(dirname "$dst/$f")"
			cp "$repo/$f" "$dst/$f"
			n=$((n + 1))
		fi
	done
	(cd "$dst" && find . -type f \( -name '*.rs' -o -name Kbuild \) | sed 's|^\./||') |
		while read -r f; do
			[ -e "$repo/$f" ] || { say "removing $f (gone from repo)"; rm -f "$dst/$f"; }
		done
	say "synced Rust core into kernel/liveupdate/rust/ ($n file(s) changed)"
}

# kernel_configure O KEY FRAGMENT...: tinyconfig + the fragments, unless O
# already has that configuration (same fragments, same source key); then
# checks that every fragment line survived olddefconfig.
kernel_configure() {
	local O=$1 key=$2 frag cfgkey bad line sym
	shift 2
	frag=$O/luo-fragment.config
	cat "$@" >"$frag.new"
	cfgkey=$( (cat "$frag.new"; echo "$key") | sha256sum | cut -c1-16)
	if [ -f "$O/.config" ] && [ "$(cat "$O/.luo-config-key" 2>/dev/null)" = "$cfgkey" ]; then
		rm -f "$frag.new"
		say "config of $O is up to date"
		return
	fi
	say "configuring $O (tinyconfig + $*)"
	"${MAKE[@]}" -s rustavailable >&2 || die "Rust toolchain not usable by the kernel (make rustavailable)"
	"${MAKE[@]}" -s tinyconfig >/dev/null
	cat "$frag.new" >>"$O/.config"
	"${MAKE[@]}" -s olddefconfig 2>&1 | { grep -v "override: reassigning" || true; } >&2
	mv "$frag.new" "$frag"
	bad=0
	while read -r line; do
		case $line in
		'# CONFIG_'*' is not set')
			sym=${line#\# }
			sym=${sym%% *}
			if grep -Eq "^$sym=[ym]" "$O/.config"; then
				say "config: wanted '$line' but got '$(grep "^$sym=" "$O/.config")'"
				bad=1
			fi
			;;
		CONFIG_*)
			if ! grep -qxF "$line" "$O/.config"; then
				sym=${line%%=*}
				say "config: wanted '$line' but got '$(grep -E "^(# )?$sym[= ]" "$O/.config" || echo absent)'"
				bad=1
			fi
			;;
		esac
	done <"$frag"
	if [ $bad = 1 ]; then
		rm -f "$O/.luo-config-key"
		die "kernel config is missing fragment options (see above; CONFIG_RUST dropped = toolchain not detected, CONFIG_LIVEUPDATE_RUST missing = kernel-patch not applied)"
	fi
	echo "$cfgkey" >"$O/.luo-config-key"
	say "config OK: all fragment options present"
}

#!/usr/bin/env bash
# Print every compiler/clippy warning in a kernel build log that points into
# kernel/liveupdate/rust/ (the Rust LUO core). Exit 1 if there is any.
#
#   scripts/check-rust-warnings.sh BUILD_LOG
#
# rustc/clippy put the location on a "  --> file:line:col" line right after
# the "warning: ..." line; C compilers put it on the same line.
set -euo pipefail
log=${1:?usage: $0 BUILD_LOG}
awk '
function flush() {
	if (w != "" && hit) { print w; for (i = 1; i <= nb; i++) print b[i]; print ""; n++ }
	w = ""; nb = 0; hit = 0
}
/^warning([:\[]| \[)/ || /: warning:/ {
	flush()
	if ($0 ~ /^warning: [0-9]+ warnings? emitted/) next
	w = $0
	if ($0 ~ /kernel\/liveupdate\/rust\//) hit = 1
	next
}
w != "" {
	if (/^(error|note: .* generated)/ || nb > 40) { flush(); next }
	b[++nb] = $0
	if ($0 ~ /^ *--> .*kernel\/liveupdate\/rust\//) hit = 1
}
END { flush(); exit n > 0 }
' "$log"

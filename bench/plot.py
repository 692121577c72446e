#!/usr/bin/env python3
"""Cost per operation vs size, log-log, both cores, from bench/results.csv.

    plot.py results.csv plot.png

One panel per (mode, op); solid = Rust, dashed = C; points are medians over
runs, bars span min..max.
"""
import os
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import load  # noqa: E402  (adds the derived ops)

PANELS = [
    ("sessions", "create"), ("sessions", "close_outgoing"),
    ("sessions", "serialize_net"), ("sessions", "restore_net"),
    ("sessions", "restore_total"), ("sessions", "retrieve_session"),
    ("sessions", "finish"), ("sessions", "close_incoming"),
    ("files", "preserve"), ("files", "unpreserve"),
    ("files", "serialize_net"), ("files", "restore_net"),
    ("files", "restore_total"), ("files", "retrieve_fd"),
    ("files", "finish"),
]
STYLE = {"rust": dict(color="tab:orange", ls="-", marker="o", label="Rust"),
         "c": dict(color="tab:blue", ls="--", marker="s", label="C")}


def main():
    src, dst = sys.argv[1], sys.argv[2]
    vals = defaultdict(list)
    for r in load(src):
        if r["op"] == "restored_pages":
            continue
        per = r["per_op_ns"]
        if r["op"] == "open_incoming":
            per = r["total_ns"] / r["size"]
        if per > 0:
            vals[(r["mode"], r["op"], r["core"], r["size"])].append(per)
    cols = 4
    rows = (len(PANELS) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows))
    for ax, (mode, op) in zip(axes.flat, PANELS):
        for core in ("c", "rust"):
            pts = sorted((s, v) for (m, o, c, s), v in vals.items()
                         if m == mode and o == op and c == core)
            if not pts:
                continue
            xs = [s for s, _ in pts]
            med = [statistics.median(v) / 1e3 for _, v in pts]
            lo = [m - min(v) / 1e3 for m, (_, v) in zip(med, pts)]
            hi = [max(v) / 1e3 - m for m, (_, v) in zip(med, pts)]
            ax.errorbar(xs, med, yerr=[lo, hi], capsize=2, ms=4, **STYLE[core])
        ax.set_xscale("log")
        ax.set_yscale("log")
        unit = "session" if mode == "sessions" else "file"
        ax.set_title(f"{mode}: {op}", fontsize=10)
        ax.set_xlabel(f"{mode} (N)", fontsize=8)
        ax.set_ylabel(f"µs per {unit}", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(PANELS):]:
        ax.axis("off")
    fig.suptitle("LUO core cost per operation vs size (QEMU TCG; median, min..max)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main()

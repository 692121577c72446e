#!/usr/bin/env python3
"""Medians and Rust/C ratios from bench/results.csv -> bench/RESULTS.md.

    report.py results.csv RESULTS.md [--command CMD] [--duration S]
              [--kernels TEXT] [--cmdline TEXT]

Standard library only.
"""
import argparse
import csv
import datetime
import math
import statistics
from collections import defaultdict

# Ops in table order, with what they are.
OPS = {
    "sessions": [
        ("first_open", "stage 1: first open of /dev/liveupdate (one-off)"),
        ("open", "stage 1: open of /dev/liveupdate, warm (20 reopens)"),
        ("create", "create session (N kept)"),
        ("create_cycle", "create session on top of the N (closed again)"),
        ("close_outgoing", "close outgoing session = unpreserve (N in place)"),
        ("serialize_window", "reboot path: init's record before reboot(RB_KEXEC) -> first "
         "device 'shutdown' line (after liveupdate_reboot()), per session"),
        ("serialize_net", "serialize_window minus that of the smallest size, per added session"),
        ("restore_initcall", "early initcall (initcall_debug), per session"),
        ("open_incoming", "stage 2: first open of /dev/liveupdate (both cores read the "
         "session entries here)"),
        ("restore_total", "restore_initcall + open_incoming, per session"),
        ("restore_net", "restore_total minus that of the smallest size, per added session "
         "(the marginal cost, without the fixed first-run cost)"),
        ("retrieve_session", "retrieve session"),
        ("finish", "finish session"),
        ("close_incoming", "close finished session"),
    ],
    "files": [
        ("first_open", "stage 1: first open of /dev/liveupdate (one-off)"),
        ("open", "stage 1: open of /dev/liveupdate, warm (20 reopens)"),
        ("create", "create the session"),
        ("preserve", "preserve memfd (64 B), kept"),
        ("preserve_cycle", "preserve memfd into a second session"),
        ("unpreserve", "close() of that session, per file"),
        ("serialize_window", "reboot path: init's record before reboot(RB_KEXEC) -> first "
         "device 'shutdown' line, per file"),
        ("serialize_net", "serialize_window minus that of the smallest size, per added file"),
        ("restore_initcall", "early initcall (initcall_debug), per file"),
        ("open_incoming", "stage 2: first open of /dev/liveupdate, total"),
        ("restore_total", "restore_initcall + open_incoming, per file"),
        ("restore_net", "restore_total minus that of the smallest size, per added file"),
        ("retrieve_session", "retrieve the session"),
        ("retrieve_fd", "retrieve memfd"),
        ("finish", "finish the session, per file"),
        ("close_incoming", "close the session"),
    ],
}


def load(path):
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            r["size"] = int(r["size"])
            r["n"] = int(r["n"])
            r["total_ns"] = float(r["total_ns"])
            r["per_op_ns"] = float(r["per_op_ns"])
            rows.append(r)
    # Derived per run: restore_total = initcall + first open, per item.
    by_run = defaultdict(dict)
    for r in rows:
        by_run[(r["run"], r["core"], r["mode"], r["size"])][r["op"]] = r
    for key, ops in by_run.items():
        if "restore_initcall" in ops and "open_incoming" in ops:
            run, core, mode, size = key
            total = ops["restore_initcall"]["total_ns"] + ops["open_incoming"]["total_ns"]
            rows.append(dict(run=run, core=core, mode=mode, size=size, op="restore_total",
                             n=size, total_ns=total, per_op_ns=total / size,
                             vm_secs=ops["open_incoming"]["vm_secs"]))
    # Derived per run: X_net = X minus the median X of the smallest size of
    # that core and mode, per added item. For the reboot path that removes
    # its constant part (init's console line, sync, device shutdown); for
    # restore, the fixed cost (under plain TCG mostly the translation of the code).
    for whole, net_op in (("serialize_window", "serialize_net"), ("restore_total", "restore_net")):
        win = defaultdict(list)
        for r in rows:
            if r["op"] == whole:
                win[(r["core"], r["mode"], r["size"])].append(r["total_ns"])
        for r in list(rows):
            if r["op"] != whole:
                continue
            smallest = min(s for (c, m, s) in win if c == r["core"] and m == r["mode"])
            if r["size"] == smallest:
                continue
            base = statistics.median(win[(r["core"], r["mode"], smallest)])
            net = r["total_ns"] - base
            rows.append(dict(r, op=net_op, total_ns=net,
                             per_op_ns=net / (r["size"] - smallest)))
    return rows


def medians(rows):
    vals = defaultdict(list)
    for r in rows:
        if r["op"] == "restored_pages":
            vals[(r["core"], r["mode"], r["size"], r["op"])].append(r["n"])
        else:
            vals[(r["core"], r["mode"], r["size"], r["op"])].append(r["per_op_ns"])
    return {k: (statistics.median(v), len(v), min(v)) for k, v in vals.items()}


def fmt_ns(v):
    if v is None:
        return "–"
    if v >= 1e6:
        return f"{v / 1e6:.2f} ms"
    if v >= 1e3:
        return f"{v / 1e3:.1f} µs"
    return f"{v:.0f} ns"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("out")
    ap.add_argument("--command", default="scripts/bench.sh")
    ap.add_argument("--duration", type=int, default=0)
    ap.add_argument("--kernels", default="")
    ap.add_argument("--cmdline", default="")
    ap.add_argument("--clock", default="")
    a = ap.parse_args()

    rows = load(a.csv)
    med = medians(rows)
    nvm = len({(r["run"], r["core"], r["mode"], r["size"]) for r in rows})
    out = []
    w = out.append
    w("# LUO core benchmark: Rust vs C\n")
    w(f"Made by `{a.command}` on {datetime.date.today().isoformat()}"
      + (f", {nvm} VM runs in {a.duration // 60} min {a.duration % 60} s" if a.duration else "")
      + ".  ")
    if a.kernels:
        w(f"Kernels (build time): {a.kernels}.  ")
    w("QEMU TCG, 2 vCPUs, 2 GiB (scripts/lib-vm.sh), same for both cores; extra kernel "
      f"command line `{a.cmdline}`.  ")
    if a.clock:
        w(f"Time: {a.clock}.  ")
    w("Raw data: `results.csv` (one row per run and op); plot: `plot.png` "
      "(`bench/plot.py results.csv plot.png`).\n")
    w("Values are medians over runs of the cost per operation (loop total / count, "
      "`clock_gettime(CLOCK_MONOTONIC)` around the ioctl/close loop in the guest; "
      "serialize and restore from kernel timestamps). Ratio = Rust / C "
      "(< 1: Rust faster). Session sizes have no files; file sizes are one "
      "session with N 64-byte memfds. Under `-icount` a nanosecond is one guest "
      "instruction: the numbers count the work done (not cache misses or stalls), "
      "and repeated runs agree to a few percent. Under plain TCG (`-W`) every number "
      "is several times slower than hardware, code that runs for the first time "
      "costs QEMU's translation of it, and some runs of either core are several times "
      "slower in stage 2 than others; the fastest run of each side is shown too: "
      "`min ratio` compares those.\n")

    for mode in ("sessions", "files"):
        sizes = sorted({r["size"] for r in rows if r["mode"] == mode})
        if not sizes:
            continue
        w(f"\n## {mode}\n")
        w("| size | op | C | Rust | Rust/C | C min | Rust min | min ratio | runs C/Rust |")
        w("|---:|---|---:|---:|---:|---:|---:|---:|---|")
        for size in sizes:
            for op, _ in OPS[mode]:
                c = med.get(("c", mode, size, op))
                rs = med.get(("rust", mode, size, op))
                if not c and not rs:
                    continue
                ratio = f"{rs[0] / c[0]:.2f}" if c and rs and c[0] > 0 else "–"
                mratio = f"{rs[2] / c[2]:.2f}" if c and rs and c[2] > 0 else "–"
                w(f"| {size} | {op} | {fmt_ns(c[0] if c else None)} | "
                  f"{fmt_ns(rs[0] if rs else None)} | {ratio} | "
                  f"{fmt_ns(c[2] if c else None)} | {fmt_ns(rs[2] if rs else None)} | "
                  f"{mratio} | {c[1] if c else 0}/{rs[1] if rs else 0} |")
        w("\nOps: " + "; ".join(f"`{op}` {desc}" for op, desc in OPS[mode]) + ".\n")

    # Pages handed over: the Rust core logs how many it claimed in stage 2.
    w("\n## Blocks per chain\n")
    w("In stage 2 the Rust core logs `restored S of T sessions, F files, from P "
      "pages`: the root page and every block of the session chain and of each "
      "file chain (not the FLB page, a single page read on its own). The minimum "
      "is 1 + ceil(sessions / 51) "
      "(4 KiB block: 16-byte header + 51 session entries of 80 bytes) + the sum over "
      "sessions of ceil(files / 63) (63 file entries of 64 bytes). The sessions include "
      "the benchmark's warm-up session, which holds one memfd. The C core logs no "
      "such count.\n")
    w("| mode | size | sessions | files | pages (Rust, stage 2) | minimum |")
    w("|---|---:|---:|---:|---:|---:|")
    for mode in ("sessions", "files"):
        for size in sorted({r["size"] for r in rows if r["mode"] == mode}):
            p = med.get(("rust", mode, size, "restored_pages"))
            if mode == "sessions":
                nsess, nfiles, fblocks = size + 1, 1, 1
            else:
                nsess, nfiles, fblocks = 2, size + 1, math.ceil(size / 63) + 1
            minimum = 1 + math.ceil(nsess / 51) + fblocks
            w(f"| {mode} | {size} | {nsess} | {nfiles} | {int(p[0]) if p else '–'} | "
              f"{minimum} |")

    # Rust per-session trend.
    rs_sizes = sorted({r["size"] for r in rows if r["mode"] == "sessions" and r["core"] == "rust"})
    if rs_sizes:
        w("\n## Rust per-session cost vs number of sessions\n")
        base = 1000 if 1000 in rs_sizes else rs_sizes[0]
        w(f"Median ns per session; last column = largest size / {base}.\n")
        w("| op | " + " | ".join(str(s) for s in rs_sizes) + f" | x{rs_sizes[-1]}/{base} |")
        w("|---|" + "---:|" * (len(rs_sizes) + 1))
        for op, _ in OPS["sessions"]:
            if op == "first_open":  # one-off, not per session
                continue
            vals = [med.get(("rust", "sessions", s, op)) for s in rs_sizes]
            if not any(vals):
                continue
            if op == "open_incoming":  # a total: per session here
                vals = [(v[0] / s, v[1]) if v else None for v, s in zip(vals, rs_sizes)]
            b = vals[rs_sizes.index(base)]
            last = vals[-1]
            trend = f"{last[0] / b[0]:.2f}" if b and last and b[0] > 0 else "–"
            w(f"| {op} | " + " | ".join(f"{v[0]:.0f}" if v else "–" for v in vals)
              + f" | {trend} |")
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Summarise the tracker benchmark of a `make bench` run.

Reads the '# trackers-csv:' lines of the guest log, writes OUTDIR/trackers.csv
(every round), OUTDIR/trackers.txt (medians over rounds, plus the ratios the
tracker issue asks for) and OUTDIR/trackers.png (gnuplot).
"""
import csv
import statistics
import subprocess
import sys
from collections import defaultdict

FIELDS = ["round", "threads", "workload", "tracker", "gathers", "full_per_1k",
          "entries_flushed", "fp_nested", "stale", "ns_per_gather", "ops_per_s",
          "kernel_nested", "kernel_fp"]


def main():
    log, out = sys.argv[1], sys.argv[2]
    rows = []
    with open(log, errors="replace") as f:
        for line in f:
            if line.startswith("# trackers-csv: "):
                values = line.strip()[len("# trackers-csv: "):].split(",")
                if len(values) != len(FIELDS):
                    print(f"tracker-report: malformed row: {line.strip()}", file=sys.stderr)
                    return 1
                rows.append(dict(zip(FIELDS, values)))
    if not rows:
        print(f"tracker-report: no '# trackers-csv:' rows in {log}: the tracker "
              "benchmark did not run or failed", file=sys.stderr)
        return 1
    with open(f"{out}/trackers.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)

    groups = defaultdict(list)
    for r in rows:
        groups[(int(r["threads"]), r["workload"], r["tracker"])].append(r)

    def med(key, field):
        return statistics.median(float(r[field]) for r in groups[key])

    lines = []
    hdr = (f"{'T':>2} {'workload':<12} {'tracker':<12} {'full/1k':>8} {'flushed':>8} "
           f"{'fp-nest':>8} {'stale':>6} {'ns/gath':>8} {'ops/s':>8} {'kern-fp':>8}")
    lines.append(hdr)
    for key in sorted(groups):
        t, wl, tr = key
        lines.append(f"{t:>2} {wl:<12} {tr:<12} {med(key, 'full_per_1k'):>8.1f} "
                     f"{med(key, 'entries_flushed'):>8.0f} {med(key, 'fp_nested'):>8.3f} "
                     f"{max(int(r['stale']) for r in groups[key]):>6} "
                     f"{med(key, 'ns_per_gather'):>8.0f} {med(key, 'ops_per_s'):>8.0f} "
                     f"{med(key, 'kernel_fp'):>8.3f}")
    lines.append("")
    threads = sorted({k[0] for k in groups})
    for t in threads:
        c, r = (t, "disjoint", "counter"), (t, "disjoint", "ranges")
        if c in groups and r in groups:
            cf, rf = med(c, "full_per_1k"), med(r, "full_per_1k")
            removed = 100.0 * (1 - rf / cf) if cf else float("nan")
            ratio = med(r, "ops_per_s") / med(c, "ops_per_s")
            lines.append(f"T={t} disjoint: ranges removes {removed:.1f}% of counter's full "
                         f"flushes ({rf:.1f} vs {cf:.1f} per 1k gathers); "
                         f"throughput ranges/counter = {ratio:.3f}")
    text = "\n".join(lines) + "\n"
    with open(f"{out}/trackers.txt", "w") as f:
        f.write(text)
    print(text, end="")

    # Plot: full flushes per 1k gathers and ops/s, disjoint workload, vs T.
    dat = f"{out}/trackers.dat"
    names = ["naive", "counter", "ranges", "ranges-wait", "ranges-full"]
    with open(dat, "w") as f:
        for t in threads:
            vals = []
            for n in names:
                k = (t, "disjoint", n)
                vals += [med(k, "full_per_1k"), med(k, "ops_per_s")] if k in groups else ["?", "?"]
            f.write(f"{t} " + " ".join(str(v) for v in vals) + "\n")
    # PNG to look at, SVG for Documentation/ (text, and Sphinx shows it).
    plot = f"""
set multiplot layout 1,2 title 'batched contract, disjoint ranges (medians of rounds)'
set xlabel 'threads'
set xtics ({', '.join(str(t) for t in threads)})
set key top left
set ylabel 'full dTLB flushes per 1000 gathers'
plot {', '.join(f"'{dat}' using 1:{2 + 2 * i} with linespoints title '{n}'" for i, n in enumerate(names))}
set ylabel 'zaps per second'
plot {', '.join(f"'{dat}' using 1:{3 + 2 * i} with linespoints title '{n}'" for i, n in enumerate(names))}
unset multiplot
"""
    script = (f"set terminal png size 1000,420\nset output '{out}/trackers.png'\n{plot}"
              f"set terminal svg size 1000,420 dynamic\nset output '{out}/trackers.svg'\n{plot}")
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
        print(f"trackers: {out}/trackers.csv, {out}/trackers.txt, {out}/trackers.png, "
              f"{out}/trackers.svg")
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"trackers: plot not made ({e}); run make deps for gnuplot")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Plot a tuning grid: tuning/plot.py results.csv results.png

One column per producer batch size; rows: produce throughput (MB/s), produce p99 latency (ms), and
catch-up consume throughput (MB/s). Bars: one per (cores, spin.before.park.us), pinned and unpinned
side by side. Needs matplotlib (tuning/run-experiments.py installs it into .venv-tuning/ if missing).
"""
import csv
import sys


def main(argv):
    if len(argv) != 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(argv[0]) as f:
        rows = [r for r in csv.DictReader(f) if not r.get("error")]
    if not rows:
        sys.exit("plot.py: no successful rows")
    num = lambda r, k: float(r[k]) if r.get(k) not in (None, "") else 0.0
    batches = sorted({int(r["batch_records"]) for r in rows})
    groups = sorted({(int(r["cores"]), int(r["spin_us"])) for r in rows})
    pins = [p for p in ("on", "off") if any(r["pin"] == p for r in rows)]
    metrics = [("produce_mb_per_sec", "produce MB/s"), ("produce_p99_ms", "produce p99 ms"),
               ("consume_mb_per_sec", "catch-up consume MB/s")]
    fig, axes = plt.subplots(len(metrics), len(batches), figsize=(4.2 * len(batches), 3.2 * len(metrics)),
                             squeeze=False)
    width = 0.8 / max(len(pins), 1)
    colors = {"on": "#1f77b4", "off": "#ff7f0e"}
    for j, b in enumerate(batches):
        for i, (key, label) in enumerate(metrics):
            ax = axes[i][j]
            for k, p in enumerate(pins):
                ys = []
                for (c, s) in groups:
                    m = [r for r in rows if int(r["batch_records"]) == b and int(r["cores"]) == c
                         and int(r["spin_us"]) == s and r["pin"] == p]
                    ys.append(num(m[0], key) if m else 0.0)
                xs = [x + (k - (len(pins) - 1) / 2) * width for x in range(len(groups))]
                ax.bar(xs, ys, width, label=f"pinned" if p == "on" else "unpinned", color=colors[p])
            ax.set_xticks(range(len(groups)))
            ax.set_xticklabels([f"{c} core{'s' if c > 1 else ''}\nspin {s}µs" for c, s in groups], fontsize=8)
            ax.set_title(f"{label}, batch {b}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
    fig.suptitle("shardlog tuning grid\nacks=1, 1 KiB records, 8 partitions", fontsize=10)
    fig.tight_layout()
    fig.savefig(argv[1], dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

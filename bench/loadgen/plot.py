#!/usr/bin/env python3
"""Plot HdrHistogram percentile distributions (.hgrm files written by `shardlog-bench --hgrm`)
as the classic latency-by-percentile chart (log x axis in "nines").

    python3 bench/loadgen/plot.py out.png a-produce.hgrm [b-produce.hgrm ...]

Needs matplotlib (`pip install matplotlib`); the load generator itself does not.
"""
import sys


def read_hgrm(path):
    xs, ys = [], []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 4 or line.startswith("#"):
                continue
            try:
                value, q = float(parts[0]), float(parts[1])
            except ValueError:
                continue
            if q < 1.0:
                xs.append(1.0 / (1.0 - q))
                ys.append(value)
    return xs, ys


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot.py: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        return 1
    fig, ax = plt.subplots(figsize=(9, 5))
    for path in sys.argv[2:]:
        xs, ys = read_hgrm(path)
        ax.plot(xs, ys, label=path.rsplit("/", 1)[-1])
    ax.set_xscale("log")
    ticks = [1, 2, 10, 100, 1000, 10000, 100000]
    ax.set_xticks(ticks)
    ax.set_xticklabels(["0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.999%"])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(sys.argv[1], dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# What produce validation costs: the same closed-loop produce load against two shardlog
# binaries (e.g. before and after a change to the append path), alternating, for each codec.
# Reports produce MB/s and the broker's CPU seconds per GB of produced batches, per run.
#
#   bench/validation-cost.sh BEFORE_BIN AFTER_BIN [PAIRS] [SECONDS]
#
# BEFORE_BIN / AFTER_BIN: shardlog binaries (build the older one from a worktree:
#   git worktree add /tmp/sl-before <commit> && (cd /tmp/sl-before && cargo build --release --bin shardlog)).
# Load: bench's native client, 2 connections, 5 requests in flight each, one batch of 100 x 1 KiB
# random-letter records per request (compressed once up front), acks=1, 4 partitions.
# Output: a Markdown table on stdout and CSV in bench/results/<date>-validation-cost.csv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BEFORE="${1:?before binary}"
AFTER="${2:?after binary}"
PAIRS="${3:-3}"
SECS="${4:-8}"
PORT="${PORT:-19392}"
. "$ROOT/bench/lib.sh"
if [[ -z "${BENCH:-}" ]]; then # BENCH: a shardlog-bench binary to use instead of building one
    (cd "$ROOT" && cargo build --release --quiet --bin shardlog-bench)
    BENCH="$ROOT/target/release/shardlog-bench"
fi
OUT="$ROOT/bench/results/$(date +%F)-validation-cost.csv"
mkdir -p "$(dirname "$OUT")"
echo "pair,codec,binary,mb_per_s,broker_cpu_s,cpu_s_per_gb" >"$OUT"
WORK="$(mktemp -d)"
trap 'pkill -f "listen=127.0.0.1:$PORT" 2>/dev/null || true; rm -rf "$WORK"' EXIT


run_one() { # codec pair label binary
    local codec=$1 pair=$2 label=$3 bin=$4
    rm -rf "$WORK/data"
    start_shardlog "$bin" "$PORT" "$WORK/data" "$WORK/broker.log" || true
    local pid=$BROKER_PID
    "$BENCH" --bootstrap 127.0.0.1:$PORT --topic v --create --partitions 4 --producers 2 \
        --pipeline 5 --batch-records 100 --record-size 1024 --compression "$codec" --acks 1 \
        --warmup 2 --duration 1 --quiet >/dev/null
    local c0
    c0="$(cpu_secs $pid)"
    "$BENCH" --bootstrap 127.0.0.1:$PORT --topic v --producers 2 --pipeline 5 \
        --batch-records 100 --record-size 1024 --compression "$codec" --acks 1 \
        --warmup 0 --duration "$SECS" --json "$WORK/r.json" --quiet >/dev/null
    local c1
    c1="$(cpu_secs $pid)"
    kill $pid && wait $pid 2>/dev/null || true
    local mbs
    mbs="$(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["produce"]["mb_per_sec"])' "$WORK/r.json")"
    local cpu per_gb
    cpu="$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')"
    per_gb="$(awk -v c="$cpu" -v m="$mbs" -v s="$SECS" 'BEGIN { printf "%.3f", c / (m * s / 1000) }')"
    echo "$pair,$codec,$label,$mbs,$cpu,$per_gb" >>"$OUT"
}

for pair in $(seq "$PAIRS"); do
    for codec in none lz4 zstd; do
        ab_pair "$pair" run_one "$codec"
    done
done

python3 - "$OUT" <<'EOF'
import csv, sys, statistics
rows = list(csv.DictReader(open(sys.argv[1])))
print("| codec | binary | MB/s (runs) | median MB/s | broker CPU s/GB (runs) | median CPU s/GB |")
print("|---|---|---|---|---|---|")
for codec in ["none", "lz4", "zstd"]:
    for b in ["before", "after"]:
        rs = [r for r in rows if r["codec"] == codec and r["binary"] == b]
        if not rs:
            continue
        m = [float(r["mb_per_s"]) for r in rs]
        c = [float(r["cpu_s_per_gb"]) for r in rs]
        print(f"| {codec} | {b} | {', '.join('%.0f' % x for x in m)} | {statistics.median(m):.0f} "
              f"| {', '.join('%.2f' % x for x in c)} | {statistics.median(c):.2f} |")
print(f"\nCSV: {sys.argv[1]}")
EOF

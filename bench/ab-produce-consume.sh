#!/usr/bin/env bash
# Two shardlog binaries (e.g. before and after a refactoring that must not cost anything) under
# the same load, alternating per pair: a closed-loop produce phase, then a catch-up consume of
# what was produced. Reports MB/s and the broker's CPU seconds per GB for each phase and run.
#
#   bench/ab-produce-consume.sh BEFORE_BIN AFTER_BIN [PAIRS] [SECONDS]
#
# Build the older binary from a worktree:
#   git worktree add /tmp/sl-before <commit> && (cd /tmp/sl-before && cargo build --release --bin shardlog)
# Load: bench's native client (target/release/shardlog-bench, built if absent), 1 KiB records,
# 16 per batch, uncompressed, acks=1, 8 partitions, 2 shards; produce: 2 connections x 5 in
# flight for SECONDS after 2 s of warm-up; consume: 2 connections from the earliest offset until
# the end offsets seen at its start. Output: a Markdown table on stdout, CSV in
# bench/results/<date>-ab-produce-consume.csv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BEFORE="${1:?before binary}"
AFTER="${2:?after binary}"
PAIRS="${3:-3}"
SECS="${4:-8}"
PORT="${PORT:-19492}"
. "$ROOT/bench/lib.sh"
BENCH="${BENCH:-$ROOT/target/release/shardlog-bench}"
[[ -x "$BENCH" ]] || (cd "$ROOT" && cargo build --release --quiet --bin shardlog-bench)
OUT="$ROOT/bench/results/$(date +%F)-ab-produce-consume.csv"
mkdir -p "$(dirname "$OUT")"
echo "pair,binary,produce_mb_s,produce_cpu_s_per_gb,consume_mb_s,consume_cpu_s_per_gb" >"$OUT"
WORK="$(mktemp -d)"
trap 'pkill -f "listen=127.0.0.1:$PORT" 2>/dev/null || true; rm -rf "$WORK"' EXIT

mbs() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[sys.argv[2]]; print("%.0f %d" % (r["mb_per_sec"], r["bytes"]))' "$1" "$2"; }

run_one() { # pair label binary
    local pair=$1 label=$2 bin=$3
    rm -rf "$WORK/data"
    start_shardlog "$bin" "$PORT" "$WORK/data" "$WORK/broker.log" --cores 2 || true
    local pid=$BROKER_PID
    local c0 c1 c2
    c0=$(cpu_secs $pid)
    "$BENCH" --bootstrap 127.0.0.1:$PORT --topic ab --create --partitions 8 --producers 2 \
        --pipeline 5 --batch-records 16 --record-size 1024 --acks 1 --duration "$SECS" --warmup 2 \
        --quiet --json "$WORK/p.json" >/dev/null 2>&1
    c1=$(cpu_secs $pid)
    "$BENCH" --bootstrap 127.0.0.1:$PORT --topic ab --producers 0 --consumers 2 --from earliest \
        --duration 60 --warmup 0 --quiet --json "$WORK/c.json" >/dev/null 2>&1
    c2=$(cpu_secs $pid)
    kill $pid; wait $pid 2>/dev/null || true
    read -r pmbs pbytes < <(mbs "$WORK/p.json" produce)
    read -r cmbs cbytes < <(mbs "$WORK/c.json" consume)
    # Produce CPU covers warm-up too: scale the measured bytes by (warm-up + window) / window.
    local pcpu ccpu
    pcpu=$(awk -v a="$c0" -v b="$c1" -v by="$pbytes" -v s="$SECS" 'BEGIN { printf "%.2f", (b - a) / (by * (s + 2) / s / 1e9) }')
    ccpu=$(awk -v a="$c1" -v b="$c2" -v by="$cbytes" 'BEGIN { printf "%.2f", (b - a) / (by / 1e9) }')
    echo "$pair,$label,$pmbs,$pcpu,$cmbs,$ccpu" >>"$OUT"
    echo "| $pair | $label | $pmbs | $pcpu | $cmbs | $ccpu |"
}

echo "| pair | binary | produce MB/s | produce CPU s/GB | consume MB/s | consume CPU s/GB |"
echo "|---|---|---|---|---|---|"
for pair in $(seq 1 "$PAIRS"); do
    ab_pair "$pair" run_one
done
echo "(CSV: $OUT)"

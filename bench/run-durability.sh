#!/usr/bin/env bash
# Issue 3 durability measurements against shardlog (release build, --cores 2):
#
#  (a) produce latency at a fixed rate (open loop, coordinated-omission corrected) for acks=1 and
#      acks=-1: p50 / p99 / p99.9 (and the rest);
#  (b) group commit: syncs/s vs batches/s with 1, 8 and 64 concurrent closed-loop producers
#      (acks=-1, one request in flight each), on 1 and on 8 partitions. Each cell gets a fresh
#      broker; on SIGTERM the broker logs `sync stats: shard=N syncs=X acks_all_appends=Y` per
#      shard, which this script sums.
#
# Writes bench/results/<date>-durability.md (+ .csv with every run's numbers and parameters).
# Knobs (environment): RATE RECORD_SIZE BATCH PARTITIONS DURATION WARMUP SYNC_DURATION
# SYNC_WARMUP PRODUCERS_A PIPELINE_A. Defaults keep the whole script under ~5 minutes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

RATE="${RATE:-20000}"               # records/s, total, for (a)
RECORD_SIZE="${RECORD_SIZE:-1024}"
BATCH="${BATCH:-10}"                # records per batch (= per Produce request)
PARTITIONS="${PARTITIONS:-8}"       # for (a)
DURATION="${DURATION:-30}"          # measured seconds for (a)
WARMUP="${WARMUP:-5}"
PRODUCERS_A="${PRODUCERS_A:-4}"     # connections for (a)
PIPELINE_A="${PIPELINE_A:-16}"      # in flight per connection for (a): the schedule, not the
                                    # window, should decide when requests go out
SYNC_DURATION="${SYNC_DURATION:-10}"
SYNC_WARMUP="${SYNC_WARMUP:-2}"

DATE="$(date -u +%Y-%m-%d)"
OUT_MD="bench/results/$DATE-durability.md"
OUT_CSV="bench/results/$DATE-durability.csv"
mkdir -p bench/results

echo "== building release binaries" >&2
if ! cargo build --release --bin shardlog --bin shardlog-bench >&2; then
    # Others edit src/ concurrently; a transiently broken tree should not block a measurement.
    if [[ -x target/release/shardlog && -x target/release/shardlog-bench ]]; then
        echo "run-durability.sh: WARNING: build failed; using the existing target/release binaries" >&2
        BUILD_NOTE=" (build failed: existing binaries from $(date -u -r target/release/shardlog +%FT%TZ))"
    else
        exit 1
    fi
fi
BROKER="$ROOT/target/release/shardlog"
BENCH="$ROOT/target/release/shardlog-bench"

# Data on the same disk as the repository (not tmpfs).
WORK="$(mktemp -d "$ROOT/target/bench-durability.XXXXXX")"
BROKER_PID=""
cleanup() {
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK/data-"*
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 20000))
        if port_free "$p"; then echo "$p"; return 0; fi
    done
    echo "run-durability.sh: no free port found" >&2
    return 1
}

# start_broker NAME: starts a fresh broker on a free port; sets BROKER_PID, PORT, BROKER_LOG.
start_broker() {
    PORT="$(pick_port)"
    BROKER_LOG="$WORK/broker-$1.log"
    NO_COLOR=1 "$BROKER" start --cores 2 --data-dir "$WORK/data-$1" \
        --listen "127.0.0.1:$PORT" >"$BROKER_LOG" 2>&1 &
    BROKER_PID=$!
    local deadline=$((SECONDS + 30))
    until ! port_free "$PORT"; do
        if ! kill -0 "$BROKER_PID" 2>/dev/null || ((SECONDS > deadline)); then
            echo "run-durability.sh: broker did not start; log:" >&2
            cat "$BROKER_LOG" >&2
            exit 1
        fi
        sleep 0.2
    done
}

# stop_broker: SIGTERM, wait, then SYNCS / APPENDS = sums over shards of the sync stats lines
# ("n/a" when the broker does not print them).
stop_broker() {
    kill -TERM "$BROKER_PID"
    wait "$BROKER_PID" || true
    BROKER_PID=""
    local clean
    clean="$(sed 's/\x1b\[[0-9;]*m//g' "$BROKER_LOG")"
    if grep -q 'sync stats:' <<<"$clean"; then
        SYNCS="$(grep 'sync stats:' <<<"$clean" | grep -o ' syncs=[0-9]*' | cut -d= -f2 |
            awk '{s+=$1} END {print s+0}')"
        APPENDS="$(grep 'sync stats:' <<<"$clean" | grep -o 'acks_all_appends=[0-9]*' |
            cut -d= -f2 | awk '{s+=$1} END {print s+0}')"
    else
        SYNCS="n/a"
        APPENDS="n/a"
    fi
}

# field FILE.json EXPR: a number from a result file (python3 expression over `r`).
field() {
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); v=$2; print('n/a' if v is None else (f'{v:.3f}' if isinstance(v,float) else v))" "$1"
}

LOAD_BEFORE="$(cat /proc/loadavg)"
{
    echo "# Durability benchmark, $DATE"
    echo
    echo "Produced by \`bench/run-durability.sh\` (see bench/README.md for what each number means)."
    echo
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')${BUILD_NOTE:-}"
    echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r)"
    echo "- data dir filesystem: $(df -T "$WORK" | awk 'NR==2 {print $2 " on " $1}')"
    echo "- broker: \`shardlog start --cores 2\`; load generator on the same 2 CPUs"
    echo "- /proc/loadavg before: \`$LOAD_BEFORE\`"
    echo
} >"$OUT_MD"

# ---- (a) latency at a fixed rate -------------------------------------------------------------
echo "== (a) produce latency at $RATE records/s" >&2
start_broker a
{
    echo "## (a) Produce latency at a fixed rate"
    echo
    echo "$RATE records/s open loop, $RECORD_SIZE-byte records, $BATCH records/batch, $PARTITIONS partitions,"
    echo "$PRODUCERS_A connections x $PIPELINE_A in flight, ${WARMUP}s warm-up + ${DURATION}s measured."
    echo "Latency from each request's intended send time (coordinated-omission corrected), in ms."
    echo
    echo "| acks | achieved msg/s | p50 | p90 | p99 | p99.9 | p99.99 | max | errors |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >>"$OUT_MD"
for acks in 1 -1; do
    json="$WORK/a-acks$acks.json"
    "$BENCH" --bootstrap "127.0.0.1:$PORT" --topic "lat-acks$acks" --create \
        --partitions "$PARTITIONS" --producers "$PRODUCERS_A" --pipeline "$PIPELINE_A" \
        --rate "$RATE" --record-size "$RECORD_SIZE" --batch-records "$BATCH" --acks "$acks" \
        --duration "$DURATION" --warmup "$WARMUP" --quiet \
        --label "latency acks=$acks" --json "$json" --csv "$OUT_CSV" \
        --hgrm "bench/results/$DATE-durability-acks${acks/-1/all}" || echo "(run exited with $?)" >&2
    l='r["produce"]["latency"]'
    echo "| $acks | $(field "$json" 'r["produce"]["msgs_per_sec"]') | $(field "$json" "$l['p50_ms']") | $(field "$json" "$l['p90_ms']") | $(field "$json" "$l['p99_ms']") | $(field "$json" "$l['p99_9_ms']") | $(field "$json" "$l['p99_99_ms']") | $(field "$json" "$l['max_ms']") | $(field "$json" 'r["produce"]["errors"]') |" >>"$OUT_MD"
done
stop_broker
{
    echo
    echo "Broker syncs during (a): $SYNCS (acks=all appends: $APPENDS)."
    echo
} >>"$OUT_MD"

# ---- (b) group commit: syncs/s vs batches/s ---------------------------------------------------
{
    echo "## (b) Group commit: syncs vs batches (acks=-1, closed loop)"
    echo
    echo "Each producer connection keeps one request in flight (one batch of $BATCH x $RECORD_SIZE B);"
    echo "${SYNC_WARMUP}s warm-up + ${SYNC_DURATION}s measured; a fresh broker per row."
    echo "batches/s: acknowledged Produce requests per second in the measured window."
    echo "syncs/s: the broker's syncs over its whole life / (warm-up + measured seconds);"
    echo "batches per sync: all acknowledged batches (warm-up included) / syncs."
    echo
    echo "| partitions | producers | batches/s | msg/s | syncs/s | batches per sync | p50 ms | p99 ms | errors |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >>"$OUT_MD"
for parts in 1 8; do
    for producers in 1 8 64; do
        echo "== (b) $parts partition(s), $producers producer(s)" >&2
        start_broker "b-$parts-$producers"
        json="$WORK/b-$parts-$producers.json"
        "$BENCH" --bootstrap "127.0.0.1:$PORT" --topic "sync" --create --partitions "$parts" \
            --producers "$producers" --pipeline 1 --acks -1 \
            --record-size "$RECORD_SIZE" --batch-records "$BATCH" \
            --duration "$SYNC_DURATION" --warmup "$SYNC_WARMUP" --quiet \
            --label "sync p=$parts n=$producers" --json "$json" --csv "$OUT_CSV" ||
            echo "(run exited with $?)" >&2
        stop_broker
        total="$(field "$json" 'r["produce"]["total_batches"]')"
        if [[ "$SYNCS" =~ ^[0-9]+$ && "$SYNCS" -gt 0 && "$total" =~ ^[0-9]+$ ]]; then
            per_sync="$(awk -v b="$total" -v s="$SYNCS" 'BEGIN {printf "%.2f", b/s}')"
            syncs_s="$(awk -v s="$SYNCS" -v t="$((SYNC_WARMUP + SYNC_DURATION))" 'BEGIN {printf "%.0f", s/t}')"
        else
            per_sync="n/a"
            syncs_s="n/a (syncs=$SYNCS)"
        fi
        l='r["produce"]["latency"]'
        echo "| $parts | $producers | $(field "$json" 'r["produce"]["batches_per_sec"]') | $(field "$json" 'r["produce"]["msgs_per_sec"]') | $syncs_s | $per_sync | $(field "$json" "$l['p50_ms']") | $(field "$json" "$l['p99_ms']") | $(field "$json" 'r["produce"]["errors"]') |" >>"$OUT_MD"
    done
done

{
    echo
    echo "- /proc/loadavg after: \`$(cat /proc/loadavg)\`"
    echo "- raw numbers: \`$OUT_CSV\`; latency distributions: \`bench/results/$DATE-durability-acks*-produce.hgrm\`"
} >>"$OUT_MD"
echo "== wrote $OUT_MD" >&2
cat "$OUT_MD"

#!/usr/bin/env bash
# Partitions at scale on one broker: a baseline produce run on a fresh broker, then TOPICS x
# PER_TOPIC partitions (RF 1) created with kafka-python's admin client; the broker's descriptors,
# RSS and CPU seconds; a restart timed to listening and to every partition answering ListOffsets;
# one record produced to every partition (descriptor cache cycling through all of them); then
# the baseline's produce runs again, on ROUNDS random topics of the big broker.
#
#   bench/partitions-at-scale.sh [TOPICS] [PER_TOPIC] [ROUNDS]
#     (default 100 x 100, 3 rounds; target/release/shardlog and shardlog-bench, built if absent;
#      the compat venv: scripts/install-deps.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOPICS="${1:-100}"
PER="${2:-100}"
ROUNDS="${3:-3}"
BIN="$ROOT/target/release/shardlog"
LOADGEN="$ROOT/target/release/shardlog-bench"
[[ -x "$BIN" && -x "$LOADGEN" ]] || (cd "$ROOT" && cargo build --release --bin shardlog --bin shardlog-bench >&2)
PY="$ROOT/.venv-compat/bin/python"
PORT=$((30000 + RANDOM % 20000))
WORK="$(mktemp -d)"
trap '[[ -n "${PID:-}" ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

. "$ROOT/bench/lib.sh"
start() {
    local t0=$SECONDS
    # A restart over tens of thousands of partitions takes a while: no time limit.
    WAIT_S=0 start_shardlog "$BIN" "$PORT" "$WORK/data" "$WORK/broker.log"
    PID=$BROKER_PID
    echo "listening after $((SECONDS - t0)) s"
}
cpu() { cpu_secs "$PID"; }
report() {
    echo "descriptors: $(ls /proc/$PID/fd | wc -l) (limit $(awk '/Max open files/ {print $4}' /proc/$PID/limits)); RSS: $(awk '/VmRSS/ {print $2 / 1024 " MB"}' /proc/$PID/status); broker CPU so far: $(cpu) s"
}
# 10 s of produce (native load generator, 2 connections, 1 KiB records, batches of 10, acks=1)
# to the 100-or-so partitions of topic $1, with the broker's CPU seconds over the run.
produce_run() {
    local before after
    before=$(cpu)
    "$LOADGEN" --bootstrap 127.0.0.1:$PORT --topic "$1" --producers 2 --duration 10 --warmup 2 \
        --quiet --json "$WORK/run.json" >/dev/null 2>"$WORK/loadgen.err" || { cat "$WORK/loadgen.err"; return 1; }
    after=$(cpu)
    "$PY" - "$WORK/run.json" "$1" "$before" "$after" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
side = r["produce"]
mbs = side["mb_per_sec"]
cpu = float(sys.argv[4]) - float(sys.argv[3])
print(f"produce to {sys.argv[2]}: {mbs:.0f} MB/s, {side['errors']} errors, broker CPU {cpu:.1f} s "
      f"over 12 s ({cpu / max(side['bytes'] * 12 / 10 / 1e9, 1e-9):.2f} s per GB)")
PYEOF
}
serve_all() {
    # kafka-python's accumulator walks every partition it has seen on each send loop: one
    # producer per 5,000 partitions keeps the client from being what is measured.
    "$PY" - 127.0.0.1:$PORT "$TOPICS" "$PER" <<'PYEOF'
import sys, time
from kafka import KafkaProducer, KafkaConsumer, TopicPartition
b, topics, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = time.time()
tps = [(f"scale-{t:03d}", i) for t in range(topics) for i in range(per)]
errors = 0
for at in range(0, len(tps), 5000):
    p = KafkaProducer(bootstrap_servers=b, linger_ms=20, acks=1)
    futs = [p.send(t, b"x", partition=i) for t, i in tps[at:at + 5000]]
    p.flush()
    p.close()
    errors += sum(1 for f in futs if f.exception is not None)
t1 = time.time()
c = KafkaConsumer(bootstrap_servers=b)
ends = c.end_offsets([TopicPartition(t, i) for t, i in tps])
print(f"produced one record to each of {len(tps)} partitions in {t1 - t0:.1f} s ({errors} errors); "
      f"end offsets: {sum(1 for v in ends.values() if v == 1)} of {len(tps)} at 1, "
      f"in {time.time() - t1:.1f} s")
PYEOF
}
# Every partition answers ListOffsets (latest): how long after the restart that takes.
answered_all() {
    "$PY" - 127.0.0.1:$PORT "$TOPICS" "$PER" <<'PYEOF'
import sys
from kafka import KafkaConsumer, TopicPartition
b, topics, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = KafkaConsumer(bootstrap_servers=b)
tps = [TopicPartition(f"scale-{t:03d}", i) for t in range(topics) for i in range(per)]
ends = c.end_offsets(tps)
print(f"{len(ends)} of {len(tps)} partitions answered ListOffsets")
PYEOF
}

start
"$BIN" topic -b 127.0.0.1:$PORT create baseline --partitions "$PER" >/dev/null
echo "baseline, a broker with one topic of $PER partitions:"
for r in $(seq 1 "$ROUNDS"); do produce_run baseline; done
t0=$SECONDS
"$PY" - 127.0.0.1:$PORT "$TOPICS" "$PER" <<'PYEOF'
import sys
from kafka.admin import KafkaAdminClient, NewTopic
b, topics, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
a = KafkaAdminClient(bootstrap_servers=b, request_timeout_ms=300000)
for i in range(0, topics, 10):
    a.create_topics([NewTopic(f"scale-{t:03d}", per, 1) for t in range(i, min(i + 10, topics))],
                    timeout_ms=300000)
PYEOF
echo "created $((TOPICS * PER)) partitions in $((SECONDS - t0)) s"
report
t0=$SECONDS
kill "$PID"; wait "$PID" 2>/dev/null || true
echo "stopped in $((SECONDS - t0)) s"
t0=$SECONDS
start
answered_all
echo "restart to every partition answering: $((SECONDS - t0)) s"
report
before=$(cpu)
serve_all
echo "broker CPU for that: $(awk -v a="$before" -v b="$(cpu)" 'BEGIN {printf "%.1f", b - a}') s"
report
for r in $(seq 1 "$ROUNDS"); do
    produce_run "scale-$(printf %03d $((RANDOM % TOPICS)))"
done
report

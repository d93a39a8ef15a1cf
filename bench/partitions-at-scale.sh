#!/usr/bin/env bash
# Partitions at scale on one broker: creates TOPICS x PER_TOPIC partitions (RF 1) with
# kafka-python's admin client, then reports the broker's descriptors and RSS, restarts it and
# times how long until every partition answers (one record produced to each and read back).
#
#   bench/partitions-at-scale.sh [TOPICS] [PER_TOPIC] [SHARDLOG_BINARY]
#     (default 100 x 100 with target/release/shardlog; needs the compat venv:
#      scripts/install-deps.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOPICS="${1:-100}"
PER="${2:-100}"
BIN="${3:-$ROOT/target/release/shardlog}"
PY="$ROOT/.venv-compat/bin/python"
PORT=$((30000 + RANDOM % 20000))
WORK="$(mktemp -d)"
trap '[[ -n "${PID:-}" ]] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT

start() {
    "$BIN" start --set data.dir="$WORK/data" --set listen=127.0.0.1:$PORT \
        --set metrics.listen= >>"$WORK/broker.log" 2>&1 &
    PID=$!
    local t0=$SECONDS
    until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do sleep 0.1; done
    echo "listening after $((SECONDS - t0)) s"
}
report() {
    echo "descriptors: $(ls /proc/$PID/fd | wc -l) (limit $(awk '/Max open files/ {print $4}' /proc/$PID/limits)); RSS: $(awk '/VmRSS/ {print $2 / 1024 " MB"}' /proc/$PID/status)"
}
serve_all() {
    "$PY" - 127.0.0.1:$PORT "$TOPICS" "$PER" <<'PYEOF'
import sys, time
from kafka import KafkaProducer, KafkaConsumer, TopicPartition
b, topics, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = time.time()
p = KafkaProducer(bootstrap_servers=b, linger_ms=20, acks=1)
futs = [p.send(f"scale-{t:03d}", b"x", partition=i) for t in range(topics) for i in range(per)]
p.flush()
errors = sum(1 for f in futs if f.exception is not None)
t1 = time.time()
c = KafkaConsumer(bootstrap_servers=b)
tps = [TopicPartition(f"scale-{t:03d}", i) for t in range(topics) for i in range(per)]
ends = c.end_offsets(tps)
print(f"produced to {len(futs)} partitions in {t1 - t0:.1f} s ({errors} errors); "
      f"end offsets: {sum(1 for v in ends.values() if v == 1)} of {len(tps)} at 1, "
      f"in {time.time() - t1:.1f} s")
PYEOF
}

start
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
serve_all
echo "restart to every partition served: $((SECONDS - t0)) s"
report

#!/usr/bin/env bash
# Regenerates the fuzz seed corpora in fuzz/corpus/ from real client traffic:
#   - request: every request frame kcat (librdkafka) and kafka-python send to a broker, recorded
#     by fuzz/capture.py between them (the broker advertises the proxy, so every connection
#     goes through it);
#   - batch, segment, producer_snapshot, group_records, metadata_log, leader_epoch: the files that traffic
#     left in the broker's data directory (stored batches of every codec, segments with their
#     indexes, producer snapshots, __consumer_offsets, the metadata log).
# (quorum's seeds are hand-made until the metadata quorum runs in the broker: a Raft log of
# entries and hard states, and an append message; this script leaves them alone.)
#
#   fuzz/seeds.sh [SHARDLOG_BINARY]     (default target/debug/shardlog; needs kcat and the
#                                        compat venv from scripts/install-deps.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/target/debug/shardlog}"
CORPUS="$ROOT/fuzz/corpus"
PY="$ROOT/.venv-compat/bin/python"
WORK="$(mktemp -d)"
PORT=$((20000 + RANDOM % 20000))
PROXY=$((PORT + 1))
cleanup() {
    [[ -n "${BROKER:-}" ]] && kill "$BROKER" 2>/dev/null || true
    [[ -n "${CAPTURE:-}" ]] && kill "$CAPTURE" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$CORPUS"/{request,batch,segment,producer_snapshot,group_records,metadata_log,leader_epoch}
"$BIN" start --set data.dir="$WORK/data" --set listen=127.0.0.1:$PORT \
    --set advertise=127.0.0.1:$PROXY --set metrics.listen= --set cores=1 \
    --set group.initial.rebalance.delay.ms=0 >"$WORK/broker.log" 2>&1 &
BROKER=$!
python3 "$ROOT/fuzz/capture.py" $PROXY 127.0.0.1:$PORT "$CORPUS/request" &
CAPTURE=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PROXY) 2>/dev/null && break; sleep 0.1; done
sleep 0.5

B=127.0.0.1:$PROXY
kcat -b $B -L >/dev/null
for codec in none gzip snappy lz4 zstd; do
    seq 1 50 | sed "s/^/k$codec:value-$codec-/" |
        kcat -b $B -P -t "seed-$codec" -K: -z "$codec" -X enable.idempotence=true 2>/dev/null ||
        seq 1 50 | kcat -b $B -P -t "seed-$codec" -z "$codec"
done
kcat -b $B -C -t seed-gzip -o beginning -e -q >/dev/null
kcat -b $B -C -t seed-none -o -5 -e -q >/dev/null
kcat -b $B -Q -t seed-lz4:0:0 >/dev/null || true
timeout 20 kcat -b $B -G seed-group seed-none seed-lz4 -o beginning -e -q >/dev/null || true
"$PY" - "$B" <<'EOF' || true
import sys
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic, ConfigResource, ConfigResourceType, NewPartitions
b = sys.argv[1]
a = KafkaAdminClient(bootstrap_servers=b)
a.create_topics([NewTopic("seed-admin", 2, 1, topic_configs={"retention.ms": "3600000"})])
a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "seed-admin")])
a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "seed-admin", configs={"segment.ms": "600000"})])
a.create_partitions({"seed-admin": NewPartitions(3)})
a.list_consumer_groups()
a.describe_consumer_groups(["seed-group"])
p = KafkaProducer(bootstrap_servers=b, acks="all")
for i in range(20):
    p.send("seed-admin", key=b"k%d" % i, value=b"v%d" % i, headers=[("h", b"x")])
p.flush()
c = KafkaConsumer("seed-admin", bootstrap_servers=b, group_id="seed-py", auto_offset_reset="earliest",
                  consumer_timeout_ms=3000)
for _ in c:
    pass
c.commit()
c.close()
a.delete_topics(["seed-admin"])
EOF
sleep 1
kill "$BROKER"; wait "$BROKER" 2>/dev/null || true
BROKER=""

python3 - "$WORK/data" "$CORPUS" <<'EOF'
import hashlib, os, struct, sys
data, corpus = sys.argv[1], sys.argv[2]
def put(kind, blob):
    if blob:
        with open(os.path.join(corpus, kind, hashlib.sha1(blob).hexdigest()), "wb") as f:
            f.write(blob)
for d in sorted(os.listdir(data)):
    path = os.path.join(data, d)
    if d == "__metadata":
        put("metadata_log", open(os.path.join(path, "metadata.log"), "rb").read())
        continue
    if not os.path.isdir(path):
        continue
    for name in sorted(os.listdir(path)):
        f = os.path.join(path, name)
        if name.endswith(".snapshot"):
            put("producer_snapshot", open(f, "rb").read())
        if name == "leader-epoch-checkpoint":
            put("leader_epoch", open(f, "rb").read())
        if not name.endswith(".log"):
            continue
        log = open(f, "rb").read()[: 64 * 1024]
        if not log:
            continue
        if d.startswith("__consumer_offsets"):
            put("group_records", log)
            continue
        stem = f[: -len(".log")]
        ix = open(stem + ".index", "rb").read() if os.path.exists(stem + ".index") else b""
        tx = open(stem + ".timeindex", "rb").read() if os.path.exists(stem + ".timeindex") else b""
        put("segment", struct.pack(">HH", len(ix), len(tx)) + ix + tx + log)
        # The first stored batch, under its own codec id (the batch target's first byte).
        if len(log) >= 61:
            (length,) = struct.unpack(">i", log[8:12])
            batch = log[: 12 + length]
            put("batch", bytes([log[22] & 7]) + batch)
EOF
for k in request batch segment producer_snapshot group_records metadata_log leader_epoch; do
    echo "seeds: $k: $(ls "$CORPUS/$k" | wc -l) files"
done

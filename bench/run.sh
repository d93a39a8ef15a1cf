#!/usr/bin/env bash
# Issue 5 standard benchmark: shardlog vs Apache Kafka 4.4, same machine, same disk, same run.
#
#   bench/run.sh            # full run, ~6-8 minutes after the build (15 s measured per point)
#   bench/run.sh --quick    # ~3-4 minutes (5 s per point, smaller ceilings and perf-test counts)
#
# 1. Machine ceilings, on the disk of the data dirs ($BENCH_DIR):
#    - sequential write with O_DIRECT: dd bs=1M oflag=direct into a fresh file;
#    - sequential write with fdatasync after every 64 KiB write: fio (ioengine=sync, fdatasync=1,
#      appending to a fresh sparse file, as a log does); `dd bs=64k oflag=dsync` if fio is missing
#      and cannot be installed;
#    - loopback TCP: iperf3, one stream, 127.0.0.1 (a compiled tool with 128 KiB writes, so the
#      number is the kernel's loopback cost, not an interpreter's copy loop; JSON output), and
#      two streams with sendfile on the sending side (-P 2 -Z), closer to a zero-copy fetch.
#    fio and iperf3 are installed with apt-get only when missing.
# 2. The same matrix, same load generator (target/release/shardlog-bench) and settings, against
#    Apache Kafka 4.4 (scripts/kafka.sh, KRaft single node, heap $KAFKA_HEAP) and then against
#    shardlog (release build, --cores 2, fresh data dir). Each broker first gets $BROKER_WARMUP s
#    of unmeasured produce load (a fresh JVM needs several seconds of JIT before it is at speed).
#    (a) produce throughput: 1 KiB records, acks=1, 8 partitions, $PRODUCERS connections,
#        closed loop (as fast as responses allow);
#    (b) catch-up consume of everything (a) produced;
#    (c) produce latency at a fixed rate = half of Kafka's (a) msg/s, open loop with
#        coordinated-omission correction, acks=1 and acks=-1 (p50/p99/p99.9...);
#    (e) acks=-1 produce throughput, closed loop (for the fdatasync-ceiling target); Kafka also
#        with topic config flush.messages=1, its fsync-before-ack equivalent (by default Kafka
#        does not fsync on acks=-1);
#    (g) acks=1 produce through librdkafka (`--client rdkafka`, $RK_PRODUCERS producers, closed
#        loop, librdkafka's own batching defaults: what an application using it would send);
#    plus Kafka's own tools against both: org.apache.kafka.tools.ProducerPerformance
#    (kafka-producer-perf-test, acks=1, $PERF_RECORDS records of 1 KiB, producer defaults) and
#    ConsumerPerformance (kafka-consumer-perf-test) reading them back, on a fresh 8-partition
#    topic (jars from bench/kafka-tools-pom/pom.xml into .kafka/tools-lib).
#    (d) shardlog --cores 1: (a) again on a fresh broker; ratio --cores 2 / --cores 1.
#    (i) (a) again with $BIG_BATCH records per batch (256 KiB), both brokers, $BIG_DURATION s;
#    (h) shardlog with log.drop.behind.bytes=32 MiB (not the default): (a), (b), (g), (i) again.
#    Both brokers run with group.initial.rebalance.delay.ms=0 (scripts/kafka.sh sets it for Kafka;
#    shardlog gets it with --set), so ConsumerPerformance's group join is comparable. No other
#    broker setting is changed from its default.
# 3. Writes bench/results/<date>/ (a suffix when that exists): every run's JSON, all.csv,
#    .hgrm latency distributions, the perf tools' output, ceilings, phases.csv (broker CPU
#    seconds per phase, load average), and summary.md (bench/summarize.py); latency charts:
#    latency-acks1.png and latency-acksall.png (shardlog and Kafka on one chart, produce latency
#    and service time at the fixed rate of (c)) and one chart per broker and (c) run.
#
# Knobs (environment): BENCH_DIR DURATION WARMUP PRODUCERS RK_PRODUCERS PIPELINE LAT_PIPELINE BATCH
# BIG_BATCH BIG_DURATION PARTITIONS RECORD_SIZE CONSUMERS PERF_RECORDS KAFKA_HEAP BROKER_WARMUP LAT_RATE (override the rate of (c))
# SKIP_BUILD=1 SKIP_KAFKA=1 SKIP_SHARDLOG=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

if ((QUICK)); then
    DURATION="${DURATION:-5}"; WARMUP="${WARMUP:-2}"; PERF_RECORDS="${PERF_RECORDS:-200000}"
    DD_MB="${DD_MB:-512}"; FIO_SECS="${FIO_SECS:-5}"; IPERF_SECS="${IPERF_SECS:-3}"
    BROKER_WARMUP="${BROKER_WARMUP:-5}"
else
    DURATION="${DURATION:-15}"; WARMUP="${WARMUP:-3}"; PERF_RECORDS="${PERF_RECORDS:-500000}"
    DD_MB="${DD_MB:-2048}"; FIO_SECS="${FIO_SECS:-10}"; IPERF_SECS="${IPERF_SECS:-5}"
    BROKER_WARMUP="${BROKER_WARMUP:-10}"
fi
PRODUCERS="${PRODUCERS:-4}"          # produce connections
RK_PRODUCERS="${RK_PRODUCERS:-2}"    # librdkafka producer instances in (g)
PIPELINE="${PIPELINE:-5}"            # requests in flight per connection, closed loop
LAT_PIPELINE="${LAT_PIPELINE:-16}"   # in flight per connection at a fixed rate (the schedule decides)
BATCH="${BATCH:-16}"                 # records per batch: 16 x 1 KiB ~ Kafka's default batch.size
BIG_BATCH="${BIG_BATCH:-256}"        # records per batch in (i): 256 KiB, below librdkafka's 1 MB batches
BIG_DURATION="${BIG_DURATION:-5}"    # seconds measured in (i) (+2 s warm-up)
PARTITIONS="${PARTITIONS:-8}"
RECORD_SIZE="${RECORD_SIZE:-1024}"
CONSUMERS="${CONSUMERS:-2}"          # catch-up consumer connections
KAFKA_HEAP="${KAFKA_HEAP:-1G}"
export KAFKA_HEAP

BENCH_DIR="${BENCH_DIR:-$ROOT/target/bench}"
mkdir -p "$BENCH_DIR"
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"
WORK="$(mktemp -d "$BENCH_DIR/run.XXXXXX")"

DATE="$(date -u +%Y-%m-%d)"
NAME="$DATE"; ((QUICK)) && NAME="$DATE-quick"
OUT="bench/results/$NAME"
[[ -e "$OUT" ]] && OUT="bench/results/$NAME-$(date -u +%H%M%S)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
T0=$SECONDS
log() { echo "== [$((SECONDS - T0))s] $*" >&2; }

# ---- processes we start, and their cleanup ---------------------------------------------------
SL_PID=""
KAFKA_DATA=""
IPERF_PID=""
cleanup() {
    if [[ -n "$SL_PID" ]] && kill -0 "$SL_PID" 2>/dev/null; then
        kill -TERM "$SL_PID" 2>/dev/null || true
        wait "$SL_PID" 2>/dev/null || true
    fi
    if [[ -n "$KAFKA_DATA" ]]; then scripts/kafka.sh stop "$KAFKA_DATA" >/dev/null 2>&1 || true; fi
    if [[ -n "$IPERF_PID" ]] && kill -0 "$IPERF_PID" 2>/dev/null; then kill "$IPERF_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { # a free port P with P+1 free too (Kafka's controller)
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 20000))
        if port_free "$p" && port_free $((p + 1)); then echo "$p"; return 0; fi
    done
    echo "run.sh: no free port found" >&2
    return 1
}

. "$ROOT/bench/lib.sh"
machine_cpu() { # "busy idle steal" CPU seconds of the whole machine since boot (/proc/stat)
    awk -v t="$CLK_TCK" '/^cpu / { tot = 0; for (i = 2; i <= NF; i++) tot += $i;
        printf "%.2f %.2f %.2f", (tot - $5 - $6) / t, ($5 + $6) / t, $9 / t }' /proc/stat
}
echo "broker,phase,wall_s,broker_cpu_s,machine_busy_cpu_s,machine_idle_cpu_s,steal_cpu_s,loadavg_1m_before,loadavg_1m_after" >"$OUT/phases.csv"
BROKER_NAME=""; BROKER_PID=""
# phase NAME CMD...: runs CMD, records wall time, the broker's CPU seconds and the whole machine's
# (busy - broker = load generator + everything else on the machine); never fails the script.
phase() {
    local name=$1; shift
    local c0 m0 w0 l0 rc=0
    c0="$(cpu_secs "$BROKER_PID")"; m0="$(machine_cpu)"; w0=$SECONDS; l0="$(cut -d' ' -f1 /proc/loadavg)"
    "$@" || rc=$?
    ((rc == 0)) || { log "$BROKER_NAME $name exited with $rc"; echo "$BROKER_NAME,$name,$rc" >>"$OUT/failures.csv"; }
    echo "$BROKER_NAME,$name,$((SECONDS - w0)),$(awk -v a="$c0" -v b="$(cpu_secs "$BROKER_PID")" 'BEGIN {printf "%.2f", b - a}'),$(awk -v a="$m0" -v b="$(machine_cpu)" 'BEGIN {split(a, x, " "); split(b, y, " "); printf "%.2f,%.2f,%.2f", y[1] - x[1], y[2] - x[2], y[3] - x[3]}'),$l0,$(cut -d' ' -f1 /proc/loadavg)" >>"$OUT/phases.csv"
    return 0
}

# ---- build ---------------------------------------------------------------------------------------
BUILD_NOTE=""
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "building release binaries"
    # Two builds: the broker with the default features, exactly what `cargo build --release
    # --bin shardlog` gives; the load generator with librdkafka (--client rdkafka) and the PNG
    # charts (--png), features the broker build should not compile.
    if ! { cargo build --release --bin shardlog >&2 &&
        cargo build --release --bin shardlog-bench --features rdkafka-client,png-plot >&2; }; then
        # Others edit src/ concurrently; a transiently broken tree should not block a measurement.
        [[ -x target/release/shardlog && -x target/release/shardlog-bench ]] || exit 1
        BUILD_NOTE="build failed: existing binaries from $(date -u -r target/release/shardlog +%FT%TZ)"
        log "WARNING: $BUILD_NOTE"
    fi
fi
SL="$ROOT/target/release/shardlog"
BENCH="$ROOT/target/release/shardlog-bench"
# Charts need the png-plot feature; a load generator left over from a failed build may lack it,
# and then the runs go ahead without charts rather than fail.
CHARTS=1
probe="$("$BENCH" --png "$WORK/probe.png" --plot-hgrm "$WORK/no-such.hgrm" 2>&1 || true)"
if [[ "$probe" == *"built without"* ]]; then
    CHARTS=0
    log "WARNING: $BENCH was built without png-plot: no latency charts"
fi
T_MEASURE=$SECONDS

# ---- tools: fio, iperf3 (apt, only if missing), Kafka jars, Kafka perf-tool jars ------------------
need=()
command -v fio >/dev/null || need+=(fio)
command -v iperf3 >/dev/null || need+=(iperf3)
if ((${#need[@]})); then
    log "installing ${need[*]} with apt-get"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >&2 ||
        log "WARNING: could not install ${need[*]}"
fi
if [[ "${SKIP_KAFKA:-0}" != 1 ]]; then
    scripts/kafka.sh fetch
fi
TOOLS_POM="$ROOT/bench/kafka-tools-pom/pom.xml"
TOOLS_LIB="$ROOT/.kafka/tools-lib"
sum="$(sha256sum "$TOOLS_POM" | cut -d' ' -f1)"
if [[ ! -f "$TOOLS_LIB/.stamp" || "$(cat "$TOOLS_LIB/.stamp")" != "$sum" ]]; then
    log "fetching Kafka perf tools (org.apache.kafka:kafka-tools) into $TOOLS_LIB"
    rm -rf "$TOOLS_LIB"; mkdir -p "$TOOLS_LIB"
    mvn -q -B -Dstyle.color=never -f "$TOOLS_POM" dependency:copy-dependencies \
        -DoutputDirectory="$TOOLS_LIB" -DincludeScope=runtime >&2
    echo "$sum" >"$TOOLS_LIB/.stamp"
fi
KTOOLS=(java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true -cp "$TOOLS_LIB/*")

# ---- metadata -------------------------------------------------------------------------------------
LOAD_BEFORE="$(cat /proc/loadavg)"
{
    echo "date_utc=$(date -u +%FT%TZ)"
    echo "command=bench/run.sh $*"
    echo "quick=$QUICK"
    echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "build_note=$BUILD_NOTE"
    echo "cpus=$(nproc)"
    echo "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
    echo "kernel=$(uname -r)"
    echo "mem_total=$(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "data_fs=$(df -T "$WORK" | awk 'NR==2 {print $2 " on " $1}')"
    echo "bench_dir=$BENCH_DIR"
    echo "java=$(java -version 2>&1 | head -1)"
    echo "kafka_jar=$(basename "$(ls .kafka/lib/kafka_2.13-*.jar 2>/dev/null | head -1)" 2>/dev/null)"
    echo "kafka_heap=$KAFKA_HEAP"
    echo "duration=$DURATION"; echo "warmup=$WARMUP"; echo "producers=$PRODUCERS"; echo "rk_producers=$RK_PRODUCERS"
    echo "pipeline=$PIPELINE"; echo "lat_pipeline=$LAT_PIPELINE"; echo "batch=$BATCH"; echo "big_batch=$BIG_BATCH"
    echo "partitions=$PARTITIONS"; echo "record_size=$RECORD_SIZE"; echo "consumers=$CONSUMERS"
    echo "perf_records=$PERF_RECORDS"; echo "broker_warmup=$BROKER_WARMUP"
    echo "loadavg_before=$LOAD_BEFORE"
} >"$OUT/meta.env"
log "load average before: $LOAD_BEFORE"

# ---- 1. machine ceilings ------------------------------------------------------------------------
log "ceiling: sequential write, O_DIRECT, ${DD_MB} MiB"
dd if=/dev/zero of="$WORK/ceiling.dd" bs=1M count="$DD_MB" oflag=direct 2>"$OUT/ceiling-dd-direct.txt" ||
    echo "dd failed" >>"$OUT/ceiling-dd-direct.txt"
rm -f "$WORK/ceiling.dd"
if command -v fio >/dev/null; then
    log "ceiling: sequential write + fdatasync per 64 KiB (fio, ${FIO_SECS}s)"
    fio --name=fdatasync64k --filename="$WORK/ceiling.fio" --rw=write --bs=64k --size=4G \
        --ioengine=sync --fdatasync=1 --fallocate=none --runtime="$FIO_SECS" \
        --output-format=json >"$OUT/ceiling-fio-fdatasync.json" 2>"$WORK/fio.err" ||
        { log "fio failed: $(cat "$WORK/fio.err")"; rm -f "$OUT/ceiling-fio-fdatasync.json"; }
    rm -f "$WORK/ceiling.fio"
fi
if [[ ! -s "$OUT/ceiling-fio-fdatasync.json" ]]; then
    log "ceiling: sequential write, O_DSYNC per 64 KiB (dd)"
    dd if=/dev/zero of="$WORK/ceiling.dsync" bs=64k count=$((FIO_SECS * 200)) oflag=dsync \
        2>"$OUT/ceiling-dd-dsync.txt" || true
    rm -f "$WORK/ceiling.dsync"
fi
if command -v iperf3 >/dev/null; then
    log "ceiling: loopback TCP (iperf3, ${IPERF_SECS}s)"
    IPORT="$(pick_port)"
    iperf3 -s -p "$IPORT" -B 127.0.0.1 >/dev/null 2>&1 &
    IPERF_PID=$!
    ok=0
    for _ in 1 2 3 4 5; do # (no port probe: a bare connection confuses the server)
        sleep 0.5
        if iperf3 -c 127.0.0.1 -p "$IPORT" -t "$IPERF_SECS" -J >"$OUT/ceiling-iperf3.json" 2>&1; then
            ok=1; break
        fi
    done
    ((ok)) || log "iperf3 failed"
    # Two streams with sendfile (-Z): closer to a zero-copy fetch path using both CPUs.
    sleep 0.3
    iperf3 -c 127.0.0.1 -p "$IPORT" -t "$IPERF_SECS" -P 2 -Z -J >"$OUT/ceiling-iperf3-P2-zerocopy.json" 2>&1 ||
        log "iperf3 -P 2 -Z failed"
    kill "$IPERF_PID" 2>/dev/null || true
    wait "$IPERF_PID" 2>/dev/null || true
    IPERF_PID=""
fi

# ---- helpers for the matrix ---------------------------------------------------------------------
# lg NAME ARGS...: one load generator run, JSON + CSV + hgrm into $OUT, capped in time.
lg() {
    local name=$1; shift
    timeout --signal=INT $((WARMUP + DURATION + 90)) \
        "$BENCH" --bootstrap "127.0.0.1:$PORT" --record-size "$RECORD_SIZE" --batch-records "$BATCH" \
        --label "$BROKER_NAME $name" --json "$OUT/$BROKER_NAME-$name.json" \
        --csv "$OUT/all.csv" "$@" >"$OUT/$BROKER_NAME-$name.txt" 2>&1
}
warm_up() { # unmeasured load first, so that (a) sees a JIT-compiled Kafka (done for both brokers)
    lg warmup --topic warm --create --partitions "$PARTITIONS" --producers "$PRODUCERS" \
        --pipeline "$PIPELINE" --acks 1 --duration "$BROKER_WARMUP" --warmup 0
}
produce_max() { # (a): closed loop, acks=1
    lg produce --topic thr --create --partitions "$PARTITIONS" --producers "$PRODUCERS" \
        --pipeline "$PIPELINE" --acks 1 --duration "$DURATION" --warmup "$WARMUP"
}
produce_big() { # (i): (a) with $BIG_BATCH records per batch, closed loop, acks=1
    # Shorter than the other points: at 1.5 GB/s a 15 s point alone writes 27 GB, and the data
    # dir's disk must hold every phase of a broker.
    local BATCH="$BIG_BATCH"
    lg produce-big --topic big --create --partitions "$PARTITIONS" --producers "$PRODUCERS" \
        --pipeline "$PIPELINE" --acks 1 --duration "$BIG_DURATION" --warmup 2
}
consume_catchup() { # (b): everything in "thr", from the start
    lg consume --topic thr --producers 0 --consumers "$CONSUMERS" --from earliest \
        --warmup 0 --duration 120
}
latency() { # (c) at $RATE: latency ACKS FILE-SUFFIX
    local chart=()
    if ((CHARTS)); then chart=(--png "$OUT/$BROKER_NAME-latency-acks$2.png"); fi
    lg "latency-acks$2" --topic "lat$2" --create --partitions "$PARTITIONS" \
        --producers "$PRODUCERS" --pipeline "$LAT_PIPELINE" --rate "$RATE" --acks "$1" \
        --duration "$DURATION" --warmup "$WARMUP" --hgrm "$OUT/$BROKER_NAME-latency-acks$2" \
        "${chart[@]}"
}
compare_png() { # compare_png SUFFIX TITLE: shardlog's and Kafka's (c) distributions on one chart
    local files=() b kind
    if ((CHARTS == 0)); then return 0; fi
    for b in kafka shardlog; do
        for kind in produce service; do
            if [[ -s "$OUT/$b-latency-$1-$kind.hgrm" ]]; then
                files+=(--plot-hgrm "$OUT/$b-latency-$1-$kind.hgrm")
            fi
        done
    done
    if ((${#files[@]} == 0)); then return 0; fi
    "$BENCH" --png "$OUT/latency-$1.png" --label "$2" "${files[@]}" >&2 ||
        log "WARNING: chart latency-$1.png failed"
}
produce_all() { # (e): closed loop, acks=-1 [extra args, e.g. --topic-config]
    local name=$1; shift
    lg "$name" --topic "$name" --create --partitions "$PARTITIONS" --producers "$PRODUCERS" \
        --pipeline "$PIPELINE" --acks -1 --duration "$DURATION" --warmup "$WARMUP" "$@"
}
produce_rdkafka() { # (g): closed loop, acks=1, through librdkafka with its own defaults
    lg produce-rdkafka --client rdkafka --topic rk --create --partitions "$PARTITIONS" \
        --producers "$RK_PRODUCERS" --acks 1 --duration "$DURATION" --warmup "$WARMUP"
}
perf_producer() {
    timeout 300 "${KTOOLS[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" \
        --create --topic perf --partitions "$PARTITIONS" --replication-factor 1 \
        >"$OUT/$BROKER_NAME-perf-topic.txt" 2>&1 || true
    timeout 300 "${KTOOLS[@]}" org.apache.kafka.tools.ProducerPerformance --topic perf \
        --num-records "$PERF_RECORDS" --record-size "$RECORD_SIZE" --throughput -1 \
        --command-property bootstrap.servers="127.0.0.1:$PORT" acks=1 \
        >"$OUT/$BROKER_NAME-perf-producer.txt" 2>&1
}
perf_consumer() {
    timeout 300 "${KTOOLS[@]}" org.apache.kafka.tools.ConsumerPerformance \
        --bootstrap-server "127.0.0.1:$PORT" --topic perf --num-records "$PERF_RECORDS" \
        --timeout 60000 >"$OUT/$BROKER_NAME-perf-consumer.txt" 2>&1
}
jfield() { # jfield FILE EXPR -> value or empty
    python3 -c "import json,sys
try:
    r=json.load(open(sys.argv[1])); v=$2
    print('' if v is None else v)
except Exception: print('')" "$1" 2>/dev/null
}

start_shardlog() { # start_shardlog NAME CORES [extra shardlog args]
    BROKER_NAME=$1
    PORT="$(pick_port)"
    rm -rf "$WORK/data-$1"
    NO_COLOR=1 "$SL" start --cores "$2" --data-dir "$WORK/data-$1" --listen "127.0.0.1:$PORT" \
        --metrics-listen "" --set group.initial.rebalance.delay.ms=0 "${@:3}" >"$WORK/$1.log" 2>&1 &
    SL_PID=$!
    BROKER_PID=$SL_PID
    local deadline=$((SECONDS + 30))
    until ! port_free "$PORT"; do
        if ! kill -0 "$SL_PID" 2>/dev/null || ((SECONDS > deadline)); then
            log "shardlog did not start"; cat "$WORK/$1.log" >&2; return 1
        fi
        sleep 0.2
    done
}
stop_shardlog() {
    kill -TERM "$SL_PID" 2>/dev/null || true
    wait "$SL_PID" 2>/dev/null || true
    SL_PID=""
    tail -50 "$WORK/$BROKER_NAME.log" >"$OUT/$BROKER_NAME-broker-log-tail.txt" 2>/dev/null || true
    rm -rf "$WORK/data-$BROKER_NAME"
    sync
}

# ---- 2a. Apache Kafka ---------------------------------------------------------------------------
RATE="${LAT_RATE:-}"
if [[ "${SKIP_KAFKA:-0}" != 1 ]]; then
    BROKER_NAME=kafka
    PORT="$(pick_port)"
    KAFKA_DATA="$WORK/kafka"
    log "kafka: starting on 127.0.0.1:$PORT (heap $KAFKA_HEAP)"
    if scripts/kafka.sh start "$PORT" "$KAFKA_DATA" >&2; then
        BROKER_PID="$(cat "$KAFKA_DATA/kafka.pid")"
        log "kafka: warm-up load, ${BROKER_WARMUP}s (not reported)"; phase warmup warm_up
        log "kafka: (a) produce, closed loop";       phase produce produce_max
        log "kafka: (b) catch-up consume";           phase consume consume_catchup
        if [[ -z "$RATE" ]]; then
            max="$(jfield "$OUT/kafka-produce.json" 'r["produce"]["msgs_per_sec"]')"
            [[ -n "$max" ]] && RATE="$(awk -v m="$max" 'BEGIN {printf "%d", m / 2}')"
        fi
        if [[ -n "$RATE" && "$RATE" != 0 ]]; then
            log "kafka: (c) latency at $RATE msg/s, acks=1";  phase latency-acks1 latency 1 1
            log "kafka: (c) latency at $RATE msg/s, acks=-1"; phase latency-acksall latency -1 all
        fi
        log "kafka: (e) acks=-1 closed loop";        phase produce-acksall produce_all produce-acksall
        log "kafka: (e) acks=-1 closed loop, flush.messages=1"
        phase produce-acksall-flush produce_all produce-acksall-flush --topic-config flush.messages=1
        log "kafka: (g) produce through librdkafka";  phase produce-rdkafka produce_rdkafka
        log "kafka: (i) produce, $BIG_BATCH-record batches"; phase produce-big produce_big
        log "kafka: ProducerPerformance";            phase perf-producer perf_producer
        log "kafka: ConsumerPerformance";            phase perf-consumer perf_consumer
        cp "$KAFKA_DATA/server.properties" "$OUT/kafka-server.properties" 2>/dev/null || true
        log "kafka: stopping"
        scripts/kafka.sh stop "$KAFKA_DATA" >&2 || true
        grep -E ' (ERROR|WARN) ' "$KAFKA_DATA/logs/server.log" 2>/dev/null | tail -30 \
            >"$OUT/kafka-broker-log-warnings.txt" || true
        rm -rf "$KAFKA_DATA"; KAFKA_DATA=""
        sync
    else
        log "kafka did not start"; echo "kafka,start,1" >>"$OUT/failures.csv"; KAFKA_DATA=""
    fi
fi

# ---- 2b. shardlog --cores 2, then (d) --cores 1 ----------------------------------------------------
if [[ "${SKIP_SHARDLOG:-0}" != 1 ]]; then
    if [[ -z "$RATE" ]]; then RATE=20000; log "no Kafka maximum: latency rate defaults to $RATE"; fi
    if start_shardlog shardlog 2; then
        log "shardlog: warm-up load, ${BROKER_WARMUP}s (not reported)"; phase warmup warm_up
        log "shardlog: (a) produce, closed loop";    phase produce produce_max
        log "shardlog: (b) catch-up consume";        phase consume consume_catchup
        log "shardlog: (c) latency at $RATE msg/s, acks=1";  phase latency-acks1 latency 1 1
        log "shardlog: (c) latency at $RATE msg/s, acks=-1"; phase latency-acksall latency -1 all
        log "shardlog: (e) acks=-1 closed loop";     phase produce-acksall produce_all produce-acksall
        log "shardlog: (g) produce through librdkafka"; phase produce-rdkafka produce_rdkafka
        log "shardlog: (i) produce, $BIG_BATCH-record batches"; phase produce-big produce_big
        log "shardlog: ProducerPerformance";         phase perf-producer perf_producer
        log "shardlog: ConsumerPerformance";         phase perf-consumer perf_consumer
        stop_shardlog
    else
        echo "shardlog,start,1" >>"$OUT/failures.csv"
    fi
    # (f) the fetch path: the same (a) + (b) with fetch.zero.copy=false (pread + writev) against
    # the default sendfile path above, so every run re-checks the default.
    if start_shardlog shardlog-copy 2 --set fetch.zero.copy=false; then
        log "shardlog fetch.zero.copy=false: warm-up load"; phase warmup warm_up
        log "shardlog fetch.zero.copy=false: (a) produce";  phase produce produce_max
        log "shardlog fetch.zero.copy=false: (b) catch-up consume"; phase consume consume_catchup
        stop_shardlog
    else
        echo "shardlog-copy,start,1" >>"$OUT/failures.csv"
    fi
    # (h) drop-behind, not the default: (a), (b) and (g) again with log.drop.behind.bytes=32 MiB,
    # to show what recycling page-cache memory buys for produce and costs for catch-up consume.
    if start_shardlog shardlog-dropbehind 2 --set log.drop.behind.bytes=33554432; then
        log "shardlog log.drop.behind.bytes=32MiB: warm-up load"; phase warmup warm_up
        log "shardlog log.drop.behind.bytes=32MiB: (a) produce"; phase produce produce_max
        log "shardlog log.drop.behind.bytes=32MiB: (b) catch-up consume"; phase consume consume_catchup
        log "shardlog log.drop.behind.bytes=32MiB: (g) produce through librdkafka"; phase produce-rdkafka produce_rdkafka
        log "shardlog log.drop.behind.bytes=32MiB: (i) produce, $BIG_BATCH-record batches"; phase produce-big produce_big
        stop_shardlog
    else
        echo "shardlog-dropbehind,start,1" >>"$OUT/failures.csv"
    fi
    if start_shardlog shardlog-cores1 1; then
        log "shardlog --cores 1: warm-up load"; phase warmup warm_up
        log "shardlog --cores 1: (a) produce, closed loop"; phase produce produce_max
        stop_shardlog
    else
        echo "shardlog-cores1,start,1" >>"$OUT/failures.csv"
    fi
fi

{
    echo "latency_rate=$RATE"
    echo "loadavg_after=$(cat /proc/loadavg)"
    echo "measure_secs=$((SECONDS - T_MEASURE))"
    echo "total_secs=$((SECONDS - T0))"
} >>"$OUT/meta.env"
log "latency charts: $OUT/latency-acks1.png, $OUT/latency-acksall.png"
compare_png acks1 "produce at $RATE msg/s, acks=1: shardlog vs Kafka (latency from intended send time; service time from the write)"
compare_png acksall "produce at $RATE msg/s, acks=-1: shardlog vs Kafka (latency from intended send time; service time from the write)"
log "writing $OUT/summary.md"
python3 bench/summarize.py "$OUT"
log "done in $((SECONDS - T0))s: $OUT"
cat "$OUT/summary.md"

#!/usr/bin/env bash
# Run a real Apache Kafka (single-node KRaft, broker+controller) on loopback, so that
# we can ask it what the reference implementation answers and benchmark against it.
#
# Kafka is assembled from Maven Central jars (scripts/kafka-pom/pom.xml) into .kafka/lib,
# because our machines reach Maven Central but not the Apache download site.
#
#   scripts/kafka.sh fetch                 download jars into .kafka/lib (no-op when present)
#   scripts/kafka.sh start PORT DATADIR    format DATADIR, start Kafka on 127.0.0.1:PORT
#                                          (controller on PORT+1), wait until PORT accepts
#   scripts/kafka.sh stop DATADIR          stop the Kafka started with DATADIR
#   scripts/kafka.sh status DATADIR        exit 0 if it is running
#
# Extra broker properties: KAFKA_EXTRA_PROPS="num.partitions=3\nlog.segment.bytes=..."
# JVM heap: KAFKA_HEAP (default 1G; the machine has 2 cores and is shared with the broker
# under test, so Kafka also gets fewer background threads than its defaults).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_HOME="${KAFKA_HOME:-$ROOT/.kafka}"
LIB="$KAFKA_HOME/lib"
POM="$ROOT/scripts/kafka-pom/pom.xml"

die() { echo "kafka.sh: $*" >&2; exit 1; }

fetch() {
    # The stamp holds the pom's checksum, so bumping kafka.version re-fetches.
    local sum
    sum="$(sha256sum "$POM" | cut -d' ' -f1)"
    if [[ -f "$LIB/.stamp" && "$(cat "$LIB/.stamp")" == "$sum" ]]; then
        return 0
    fi
    echo "kafka.sh: fetching Kafka jars from Maven Central into $LIB" >&2
    rm -rf "$LIB"
    mkdir -p "$LIB"
    mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DoutputDirectory="$LIB" -DincludeScope=runtime >&2
    echo "$sum" >"$LIB/.stamp"
}

java_args() {
    # Sets JAVA_ARGS: the JVM options and classpath shared by the storage tool and the server.
    JAVA_ARGS=(-Xms256m -Xmx"${KAFKA_HEAP:-1G}" -XX:+UseG1GC -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$DATADIR/log4j2.properties"
        -Dkafka.logs.dir="$DATADIR/logs"
        -cp "$LIB/*")
}

wait_port() {
    # Wait until 127.0.0.1:$1 accepts a TCP connection, or the pid dies, or timeout.
    local port=$1 pid=$2 deadline=$((SECONDS + ${3:-90}))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.3
    done
    return 1
}

start() {
    local port=${1:?usage: kafka.sh start PORT DATADIR}
    DATADIR=${2:?usage: kafka.sh start PORT DATADIR}
    local cport=$((port + 1))
    fetch
    mkdir -p "$DATADIR"
    DATADIR="$(cd "$DATADIR" && pwd)"
    if [[ -f "$DATADIR/kafka.pid" ]] && kill -0 "$(cat "$DATADIR/kafka.pid")" 2>/dev/null; then
        die "already running in $DATADIR (pid $(cat "$DATADIR/kafka.pid"))"
    fi
    mkdir -p "$DATADIR/logs" "$DATADIR/log-dirs"

    cat >"$DATADIR/log4j2.properties" <<EOF
# Everything INFO+ to a file in the data dir; the terminal stays quiet.
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $DATADIR/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
EOF

    cat >"$DATADIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATADIR/log-dirs
# Single node: every internal topic has one replica.
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
offsets.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
num.partitions=1
auto.create.topics.enable=true
# Small machine: fewer threads than the defaults.
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
EOF
    if [[ -n "${KAFKA_EXTRA_PROPS:-}" ]]; then
        printf '%b\n' "$KAFKA_EXTRA_PROPS" >>"$DATADIR/server.properties"
    fi

    java_args
    # Format once: a random cluster id, the node as the only (standalone) controller voter.
    if [[ ! -f "$DATADIR/log-dirs/meta.properties" ]]; then
        local cid
        cid="$(java "${JAVA_ARGS[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
        java "${JAVA_ARGS[@]}" kafka.tools.StorageTool format --standalone -t "$cid" \
            -c "$DATADIR/server.properties" >"$DATADIR/logs/format.log" 2>&1 ||
            { cat "$DATADIR/logs/format.log" >&2; die "storage format failed"; }
    fi

    # Fresh server.log, so the STARTED line we wait for below is this run's.
    : >"$DATADIR/logs/server.log"
    # setsid: detached from the caller's session, so Kafka outlives the shell that
    # started it and a Ctrl-C there does not reach it; `stop` ends it by pid.
    setsid java "${JAVA_ARGS[@]}" kafka.Kafka "$DATADIR/server.properties" \
        >"$DATADIR/logs/stdout.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$DATADIR/kafka.pid"
    if ! wait_port "$port" "$pid" 120; then
        tail -30 "$DATADIR/logs/stdout.log" "$DATADIR/logs/server.log" >&2 || true
        stop "$DATADIR" || true
        die "Kafka did not start on 127.0.0.1:$port"
    fi
    # The port opens a little before the broker has caught up with the metadata log and
    # unfenced itself; wait for that so the first CreateTopics does not race it.
    local deadline=$((SECONDS + 60))
    until grep -q -E 'Transition from STARTING to STARTED|Kafka Server started' \
        "$DATADIR/logs/server.log" 2>/dev/null; do
        ((SECONDS < deadline)) || break
        sleep 0.3
    done
    echo "kafka.sh: Kafka $(basename "$(ls "$LIB"/kafka_2.13-*.jar)" .jar | sed 's/kafka_2.13-//') on 127.0.0.1:$port (pid $pid, data $DATADIR)"
}

stop() {
    DATADIR=${1:?usage: kafka.sh stop DATADIR}
    local pidfile="$DATADIR/kafka.pid" pid
    [[ -f "$pidfile" ]] || { echo "kafka.sh: not running ($pidfile missing)" >&2; return 0; }
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        # Controlled shutdown takes a few seconds; then insist.
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "kafka.sh: pid $pid still up after 20 s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

status() {
    DATADIR=${1:?usage: kafka.sh status DATADIR}
    [[ -f "$DATADIR/kafka.pid" ]] && kill -0 "$(cat "$DATADIR/kafka.pid")" 2>/dev/null
}

case "${1:-}" in
    fetch) fetch ;;
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    status) shift; status "$@" ;;
    *) echo "usage: $0 fetch | start PORT DATADIR | stop DATADIR | status DATADIR" >&2; exit 2 ;;
esac

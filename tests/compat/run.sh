#!/usr/bin/env bash
# Client compatibility suite: real Kafka clients against a broker.
#
#   tests/compat/run.sh BROKER_BIN [-- EXTRA_BROKER_ARGS...]
#       start BROKER_BIN (shardlog) on a free loopback port with a temp data dir, run
#       every client, stop the broker. The broker gets
#       --set group.initial.rebalance.delay.ms=0 (as scripts/kafka.sh configures real
#       Kafka), so each group's first join is not held back 3 s; EXTRA_BROKER_ARGS come
#       after it and may override it.
#   tests/compat/run.sh --bootstrap HOST:PORT
#       run every client against a broker that is already running (e.g. real Kafka
#       from scripts/kafka.sh, to check the suite itself)
#   tests/compat/run.sh --kafka
#       start real Apache Kafka (scripts/kafka.sh) on free ports, run, stop it
#
# Clients (all by default; choose with COMPAT_CLIENTS="python java kcat"):
#   python  tests/compat/python/compat_kafka_python.py   kafka-python, pure Python
#   java    tests/compat/java                            official kafka-clients 4.x
#   kcat    tests/compat/kcat/compat_kcat.sh             librdkafka 2.0.2 (Debian)
#   cluster the Java client (ClusterCompat) against a 3-node cluster of BROKER_BIN
#           started with scripts/cluster.sh (only when a broker binary is given)
# Each prints `PASS client.check` / `FAIL client.check: why`; a client that dies
# without saying why counts as one failure. Last line: `compat: N passed, M failed`;
# exit status 1 if anything failed. Needs scripts/install-deps.sh to have run.
#
# Env: COMPAT_KEEP=1 keeps the temp data dir and broker log; COMPAT_TIMEOUT (seconds
# per client, default 180); RUST_LOG is passed through to the broker.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV_PY="$ROOT/.venv-compat/bin/python"
CLIENTS=${COMPAT_CLIENTS:-python java kcat cluster}
CLIENT_TIMEOUT=${COMPAT_TIMEOUT:-180}

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

BOOTSTRAP=""
BROKER_BIN=""
BROKER_ARGS=()
KAFKA=""
case "${1:-}" in
    --bootstrap) BOOTSTRAP=${2:?--bootstrap needs HOST:PORT} ;;
    --kafka) KAFKA=1 ;;
    "" | -h | --help) usage ;;
    *)
        BROKER_BIN=$1
        shift
        [[ "${1:-}" == "--" ]] && shift
        BROKER_ARGS=("$@")
        ;;
esac

WORK="$(mktemp -d "${TMPDIR:-/tmp}/shardlog-compat.XXXXXX")"
BROKER_PID=""
passed=0
failed=0

cleanup() {
    stop_broker
    if [[ -d "$WORK/cluster" ]]; then
        CLUSTER_DIR="$WORK/cluster" "$ROOT/scripts/cluster.sh" stop >&2 || true
    fi
    if [[ -n "$KAFKA" && -d "$WORK/kafka" ]]; then
        "$ROOT/scripts/kafka.sh" stop "$WORK/kafka" || true
    fi
    if [[ -n "${COMPAT_KEEP:-}" ]]; then
        echo "compat: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

free_port() {
    # Bind port 0 and report what the kernel chose; the tiny race until the broker
    # binds it is acceptable on a test machine.
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

start_broker() {
    local port
    port=$(free_port)
    mkdir -p "$WORK/data"
    echo "compat: starting $BROKER_BIN on 127.0.0.1:$port" >&2
    "$BROKER_BIN" start --data-dir "$WORK/data" --listen "127.0.0.1:$port" \
        --advertise "127.0.0.1:$port" --cores 1 \
        --set group.initial.rebalance.delay.ms=0 "${BROKER_ARGS[@]}" \
        >"$WORK/broker.log" 2>&1 </dev/null &
    BROKER_PID=$!
    local deadline=$((SECONDS + 30))
    until port_open 127.0.0.1 "$port"; do
        if ! kill -0 "$BROKER_PID" 2>/dev/null || ((SECONDS >= deadline)); then
            echo "compat: broker did not start; its log:" >&2
            tail -50 "$WORK/broker.log" >&2 || true
            echo "FAIL broker.start: not listening on 127.0.0.1:$port"
            echo "compat: 0 passed, 1 failed"
            exit 1
        fi
        sleep 0.1
    done
    BOOTSTRAP="127.0.0.1:$port"
}

stop_broker() {
    [[ -n "$BROKER_PID" ]] || return 0
    if kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$BROKER_PID" 2>/dev/null; then
            echo "compat: broker ignored SIGTERM for 5 s; killing it" >&2
            kill -KILL "$BROKER_PID" 2>/dev/null || true
        fi
    fi
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
}

# run_client NAME CMD... : run one client, echo its output, add its PASS/FAIL lines.
run_client() {
    local name=$1 rc=0 p f
    shift
    echo "--- $name" >&2
    timeout "$CLIENT_TIMEOUT" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
    cat "$WORK/$name.out"
    p=$(grep -c '^PASS ' "$WORK/$name.out" || true)
    f=$(grep -c '^FAIL ' "$WORK/$name.out" || true)
    if [[ $rc -ne 0 && $f -eq 0 ]]; then
        # Died without reporting a failed check: show why, count it once.
        tail -20 "$WORK/$name.err" >&2
        echo "FAIL $name.client: exited with status $rc$([[ $rc -eq 124 ]] && echo " (timeout ${CLIENT_TIMEOUT}s)")"
        f=$((f + 1))
    elif [[ $f -gt 0 && -s "$WORK/$name.err" ]]; then
        echo "  ($name stderr, last lines:)" >&2
        tail -5 "$WORK/$name.err" | sed 's/^/  /' >&2
    fi
    passed=$((passed + p))
    failed=$((failed + f))
}

missing_dep() {
    echo "FAIL $1.client: $2 (run scripts/install-deps.sh)"
    failed=$((failed + 1))
}

start_kafka() {
    # Kafka needs two ports: PORT (clients) and PORT+1 (its controller).
    local port
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        port_open 127.0.0.1 $((port + 1)) || break
    done
    "$ROOT/scripts/kafka.sh" start "$port" "$WORK/kafka" >&2
    BOOTSTRAP="127.0.0.1:$port"
}

if [[ -n "$BROKER_BIN" ]]; then
    start_broker
elif [[ -n "$KAFKA" ]]; then
    start_kafka
fi
PREFIX="compat-$(date +%s)-$$"
echo "compat: bootstrap $BOOTSTRAP, topics $PREFIX-*" >&2

for client in $CLIENTS; do
    case "$client" in
        python)
            if [[ -x "$VENV_PY" ]]; then
                run_client python "$VENV_PY" "$HERE/python/compat_kafka_python.py" "$BOOTSTRAP" "$PREFIX"
            else
                missing_dep python "no $VENV_PY"
            fi
            ;;
        java)
            if "$HERE/java/build.sh" >"$WORK/java-build.log" 2>&1; then
                run_client java java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
                    -cp "$HERE/java/target/classes:$HERE/java/target/lib/*" \
                    shardlog.compat.Compat "$BOOTSTRAP" "$PREFIX"
            else
                tail -20 "$WORK/java-build.log" >&2
                missing_dep java "build failed"
            fi
            ;;
        kcat)
            if ! command -v kcat >/dev/null; then
                missing_dep kcat "kcat not installed"
            elif [[ ! -x "$VENV_PY" ]]; then
                missing_dep kcat "no $VENV_PY to create the topic with"
            else
                # kcat cannot create topics: the Python admin client makes one first.
                topic="$PREFIX-kcat"
                if "$VENV_PY" "$HERE/python/compat_kafka_python.py" "$BOOTSTRAP" --create-topic "$topic" 3 \
                    >"$WORK/kcat-create.log" 2>&1; then
                    run_client kcat "$HERE/kcat/compat_kcat.sh" "$BOOTSTRAP" "$topic"
                else
                    echo "FAIL kcat.createTopic: $(tail -1 "$WORK/kcat-create.log")"
                    failed=$((failed + 1))
                fi
            fi
            ;;
        cluster)
            # Needs a shardlog binary to start three of; skipped against a given bootstrap
            # or real Kafka.
            [[ -n "$BROKER_BIN" ]] || continue
            if ! "$HERE/java/build.sh" >"$WORK/java-build.log" 2>&1; then
                missing_dep cluster "Java client build failed"
                continue
            fi
            kafka_base=$(free_port)
            controller_base=$(free_port)
            export CLUSTER_DIR="$WORK/cluster" CLUSTER_BIN="$BROKER_BIN" BASE_PORT=$kafka_base \
                CONTROLLER_BASE_PORT=$controller_base METRICS_BASE_PORT=0 NODES=3
            if "$ROOT/scripts/cluster.sh" start >"$WORK/cluster-start.log" 2>&1; then
                run_client cluster java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
                    -cp "$HERE/java/target/classes:$HERE/java/target/lib/*" \
                    shardlog.compat.ClusterCompat \
                    "127.0.0.1:$kafka_base,127.0.0.1:$((kafka_base + 1)),127.0.0.1:$((kafka_base + 2))" 3 "$PREFIX"
            else
                tail -20 "$WORK/cluster-start.log" >&2
                echo "FAIL cluster.start: scripts/cluster.sh start failed"
                failed=$((failed + 1))
            fi
            "$ROOT/scripts/cluster.sh" stop >&2 || true
            ;;
        *)
            echo "compat: unknown client '$client'" >&2
            exit 2
            ;;
    esac
done

if [[ -n "$BROKER_PID" ]]; then
    # A broker that crashed mid-suite shows up as a pile of client failures; say so.
    if kill -0 "$BROKER_PID" 2>/dev/null; then
        echo "PASS broker.aliveAfterSuite"
        passed=$((passed + 1))
    else
        # The first panic (if any) names the culprit; the log tail follows below.
        echo "FAIL broker.aliveAfterSuite: broker exited: $(grep -m1 -A1 'panicked at' "$WORK/broker.log" | tr '\n' ' ')"
        failed=$((failed + 1))
    fi
    if ((failed)); then
        echo "--- broker log (last 30 lines)" >&2
        tail -30 "$WORK/broker.log" >&2 || true
    fi
fi

echo "compat: $passed passed, $failed failed"
((failed == 0))

#!/usr/bin/env bash
# A shardlog cluster on loopback, for trying it out: NODES combined broker/controller nodes
# (node ids 1..NODES), one shard each, forming one metadata quorum.
#
#   scripts/cluster.sh start        build the release binary, start every node not running,
#                                   wait until each accepts Kafka connections
#   scripts/cluster.sh stop         stop every node (SIGTERM; SIGKILL after 30 s)
#   scripts/cluster.sh status       each node's process state, then `shardlog cluster info`
#   scripts/cluster.sh kill N       SIGKILL node N (`start` brings it back)
#   scripts/cluster.sh pause N      SIGSTOP node N
#   scripts/cluster.sh resume N     SIGCONT node N
#
# Node N: Kafka listener 127.0.0.1:$((BASE_PORT + N - 1)) (9092, 9093, 9094 by default),
# quorum listener 127.0.0.1:$((CONTROLLER_BASE_PORT + N - 1)), metrics on
# 127.0.0.1:$((METRICS_BASE_PORT + N - 1)) (METRICS_BASE_PORT=0: none); data in $CLUSTER_DIR/nodeN, log in
# $CLUSTER_DIR/nodeN.log. Settings for every node: EXTRA="--set key=value ...". CLUSTER_BIN: a
# shardlog binary to use instead of building target/release/shardlog.
# The cluster id is made once and kept in $CLUSTER_DIR/cluster.id, and every node is started
# with it, so a data directory of another cluster is refused even at the first start.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODES=${NODES:-3}
BASE_PORT=${BASE_PORT:-9092}
CONTROLLER_BASE_PORT=${CONTROLLER_BASE_PORT:-9192}
METRICS_BASE_PORT=${METRICS_BASE_PORT:-9644}
CLUSTER_DIR=${CLUSTER_DIR:-$ROOT/cluster}
BIN=${CLUSTER_BIN:-$ROOT/target/release/shardlog}
# Absolute from here on: `start` changes directory, the other commands do not.
mkdir -p "$CLUSTER_DIR"
CLUSTER_DIR=$(cd "$CLUSTER_DIR" && pwd)
[[ $BIN == /* ]] || BIN=$PWD/$BIN
EXTRA=${EXTRA:-}

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

pid_of() { cat "$CLUSTER_DIR/node$1.pid" 2>/dev/null || true; }

# Node N runs if its recorded pid is alive and is that node's broker (its command line names
# the node's data directory), not some other process that got the pid since.
running() {
    local pid
    pid=$(pid_of "$1")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$CLUSTER_DIR/node$1"
}

node_arg() {
    [[ ${1:-} =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= NODES)) || { echo "node must be 1..$NODES" >&2; exit 2; }
}

voters() {
    local v="" n
    for ((n = 1; n <= NODES; n++)); do
        v+="${v:+,}$n@127.0.0.1:$((CONTROLLER_BASE_PORT + n - 1))"
    done
    echo "$v"
}

start() {
    cd "$ROOT"
    [[ -n ${CLUSTER_BIN:-} ]] || cargo build --release --bin shardlog
    mkdir -p "$CLUSTER_DIR"
    [[ -s $CLUSTER_DIR/cluster.id ]] || tr -d '-' </proc/sys/kernel/random/uuid >"$CLUSTER_DIR/cluster.id"
    local id n
    local -A from
    id=$(cat "$CLUSTER_DIR/cluster.id")
    for ((n = 1; n <= NODES; n++)); do
        if running "$n"; then continue; fi
        # Readiness is read from this start's part of the log (a port that accepts could be
        # somebody else's).
        from[$n]=1
        [[ -f $CLUSTER_DIR/node$n.log ]] && from[$n]=$(($(wc -l <"$CLUSTER_DIR/node$n.log") + 1))
        local metrics=""
        ((METRICS_BASE_PORT == 0)) || metrics="127.0.0.1:$((METRICS_BASE_PORT + n - 1))"
        # shellcheck disable=SC2086 # EXTRA is a list of arguments
        nohup "$BIN" start --data-dir "$CLUSTER_DIR/node$n" \
            --listen "127.0.0.1:$((BASE_PORT + n - 1))" --cores 1 \
            --set "node.id=$n" --set "cluster.id=$id" \
            --set "controller.listener=127.0.0.1:$((CONTROLLER_BASE_PORT + n - 1))" \
            --set "controller.quorum.voters=$(voters)" \
            --set "metrics.listen=$metrics" \
            $EXTRA >>"$CLUSTER_DIR/node$n.log" 2>&1 &
        echo $! >"$CLUSTER_DIR/node$n.pid"
        echo "node $n: pid $!, Kafka 127.0.0.1:$((BASE_PORT + n - 1)), log $CLUSTER_DIR/node$n.log"
    done
    for ((n = 1; n <= NODES; n++)); do
        [[ -n ${from[$n]:-} ]] || continue
        local deadline=$((SECONDS + 60))
        until tail -n "+${from[$n]}" "$CLUSTER_DIR/node$n.log" | grep -q "ready: accepting Kafka connections"; do
            if ! running "$n"; then
                echo "node $n exited; last lines of its log:" >&2
                tail -n 20 "$CLUSTER_DIR/node$n.log" >&2
                exit 1
            fi
            if ((SECONDS > deadline)); then
                echo "node $n not ready within 60 s (a quorum needs a majority of the $NODES nodes)" >&2
                exit 1
            fi
            sleep 0.2
        done
    done
    echo "ready: bootstrap.servers=$(bootstrap)"
}

bootstrap() {
    local b="" n
    for ((n = 1; n <= NODES; n++)); do b+="${b:+,}127.0.0.1:$((BASE_PORT + n - 1))"; done
    echo "$b"
}

stop() {
    local n pid
    for ((n = 1; n <= NODES; n++)); do
        if running "$n"; then
            pid=$(pid_of "$n")
            kill -CONT "$pid" 2>/dev/null || true
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for ((n = 1; n <= NODES; n++)); do
        local deadline=$((SECONDS + 30))
        while running "$n"; do
            if ((SECONDS > deadline)); then kill -KILL "$(pid_of "$n")" 2>/dev/null || true; fi
            sleep 0.2
        done
        rm -f "$CLUSTER_DIR/node$n.pid"
    done
    echo "stopped"
}

status() {
    local n state any=""
    for ((n = 1; n <= NODES; n++)); do
        if running "$n"; then
            state=$(awk '/^State:/ {print $2 $3}' "/proc/$(pid_of "$n")/status" 2>/dev/null || echo gone)
            echo "node $n: pid $(pid_of "$n") $state, Kafka 127.0.0.1:$((BASE_PORT + n - 1))"
            [[ $state == T* ]] || any=$((BASE_PORT + n - 1))
        else
            echo "node $n: not running"
        fi
    done
    if [[ -n $any ]] && [[ -x $BIN ]]; then
        "$BIN" cluster info --bootstrap "127.0.0.1:$any" || true
    fi
}

signal() {
    node_arg "${2:-}"
    running "$2" || { echo "node $2 is not running" >&2; exit 1; }
    kill "-$1" "$(pid_of "$2")" 2>/dev/null || { echo "node $2 is not running" >&2; exit 1; }
    echo "node $2: SIG$1"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    kill) signal KILL "${2:-}" ;;
    pause) signal STOP "${2:-}" ;;
    resume) signal CONT "${2:-}" ;;
    *) usage ;;
esac

# Helpers the bench scripts share; source it: . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLK_TCK="$(getconf CLK_TCK)"

# User+system CPU seconds of a pid (0 if it is gone). Fields are counted after the ")" that
# ends the command name, which may itself contain spaces.
cpu_secs() {
    awk -v t="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# Waits until something accepts on 127.0.0.1:PORT, at most SECONDS (default 10; 0: no limit).
# Returns non-zero on timeout.
wait_port() {
    local port=$1 limit=${2:-10} t0=$SECONDS
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if ((limit > 0 && SECONDS - t0 >= limit)); then
            return 1
        fi
        sleep 0.1
    done
}

# Starts BINARY (a shardlog) on 127.0.0.1:PORT with DATA_DIR, appending its output to LOG, with
# any further arguments; sets BROKER_PID and waits until it accepts (at most WAIT_S, default 10).
start_shardlog() {
    local bin=$1 port=$2 data=$3 log=$4
    shift 4
    "$bin" start --set data.dir="$data" --set listen=127.0.0.1:"$port" --set metrics.listen= \
        "$@" >>"$log" 2>&1 &
    BROKER_PID=$!
    wait_port "$port" "${WAIT_S:-10}"
}

# A/B pair PAIR: runs `"$@" PAIR LABEL BINARY` for $BEFORE and $AFTER, before first on odd
# pairs and after first on even ones, so drift in the machine's state through a run hits both.
ab_pair() {
    local pair=$1
    shift
    if ((pair % 2)); then
        "$@" "$pair" before "$BEFORE"
        "$@" "$pair" after "$AFTER"
    else
        "$@" "$pair" after "$AFTER"
        "$@" "$pair" before "$BEFORE"
    fi
}

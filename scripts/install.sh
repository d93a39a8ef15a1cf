#!/usr/bin/env bash
# Installs shardlog as a systemd service. Idempotent: running it again upgrades the binary and
# keeps an existing configuration.
#
#   scripts/install.sh [--dry-run] [--no-build] [--no-enable] [--prefix /usr/local]
#
#   1. builds the release binary (cargo build --release)      [skip: --no-build]
#   2. installs it as $PREFIX/bin/shardlog
#   3. creates the system user and group `shardlog`
#   4. creates /etc/shardlog with a sample shardlog.toml (only if absent)
#   5. creates the data directory /var/lib/shardlog (owned by shardlog)
#   6. installs scripts/shardlog.service, reloads systemd, enables and starts the service
#      [--no-enable: install the unit only]
#
# --dry-run prints every command instead of running it (needs neither root nor systemd).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

DRY_RUN=0
BUILD=1
ENABLE=1
PREFIX=/usr/local
CONF_DIR=/etc/shardlog
DATA_DIR=/var/lib/shardlog
UNIT_DIR=/etc/systemd/system
USER_NAME=shardlog

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --no-build) BUILD=0 ;;
        --no-enable) ENABLE=0 ;;
        --prefix)
            [[ $# -ge 2 ]] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }
            PREFIX="$2"
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

run() {
    if [[ $DRY_RUN == 1 ]]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# Writes stdin to a file (through `run` semantics: printed in a dry run).
write_file() {
    local path="$1" mode="$2"
    if [[ $DRY_RUN == 1 ]]; then
        echo "+ write $path (mode $mode):"
        sed 's/^/    | /'
    else
        install -m "$mode" /dev/stdin "$path"
    fi
}

if [[ $DRY_RUN == 0 && $(id -u) -ne 0 ]]; then
    echo "install.sh: run as root (or with --dry-run to see what it would do)" >&2
    exit 1
fi
[[ $DRY_RUN == 1 ]] && echo "# dry run: nothing is changed"

# 1. Build.
BIN="$ROOT/target/release/shardlog"
if [[ $BUILD == 1 ]]; then
    run cargo build --release --locked --bin shardlog --manifest-path "$ROOT/Cargo.toml"
elif [[ ! -x $BIN && $DRY_RUN == 0 ]]; then
    echo "install.sh: --no-build but $BIN does not exist" >&2
    exit 1
fi

# 2. Binary.
run install -D -m 0755 "$BIN" "$PREFIX/bin/shardlog"

# 3. User and group.
if id -u "$USER_NAME" >/dev/null 2>&1; then
    echo "# user $USER_NAME exists"
else
    run useradd --system --user-group --no-create-home --home-dir "$DATA_DIR" \
        --shell /usr/sbin/nologin "$USER_NAME"
fi

# 4. Configuration (never overwritten).
run install -d -m 0755 "$CONF_DIR"
if [[ -e $CONF_DIR/shardlog.toml ]]; then
    echo "# $CONF_DIR/shardlog.toml exists: kept"
else
    write_file "$CONF_DIR/shardlog.toml" 0644 <<TOML
# shardlog broker settings: Kafka-style keys, see \`shardlog config list\`.
# Precedence: defaults < this file < SHARDLOG_* environment < --set.
"data.dir" = "$DATA_DIR"
"listen" = "0.0.0.0:9092"
# The address clients are told to connect to (set this to the host's name or IP).
"advertise" = "127.0.0.1:9092"
# Shards: 0 = one per usable CPU; or pin to chosen CPUs with "cpuset" = "2-7".
"cores" = 0
"num.partitions" = 3
"log.retention.ms" = 604800000
"log.format" = "json"
TOML
fi

# 5. Data directory.
run install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$DATA_DIR"

# 6. systemd unit.
run install -D -m 0644 "$ROOT/scripts/shardlog.service" "$UNIT_DIR/shardlog.service"
run systemctl daemon-reload
if [[ $ENABLE == 1 ]]; then
    run systemctl enable --now shardlog.service
else
    echo "# unit installed; start it with: systemctl enable --now shardlog.service"
fi
echo "# done: $PREFIX/bin/shardlog, $CONF_DIR/shardlog.toml, $DATA_DIR, $UNIT_DIR/shardlog.service"

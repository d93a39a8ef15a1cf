#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian 12 machine. Idempotent: a second
# run only checks and returns quickly.
#
#   - apt: C toolchain + cmake for rdkafka's bundled librdkafka (dev-dependency, feature
#     cmake-build), kcat (Debian's links librdkafka 2.0.2: an old client on purpose),
#     Java 17 + Maven (Java compat client, real Kafka), python3-venv
#   - .venv-compat/: Python clients (tests/compat/python/requirements.txt)
#   - Maven: the Java compat client's dependencies, built once so later runs work offline
#   - .kafka/lib: Apache Kafka jars for scripts/kafka.sh (reference broker)
#   - the nightly Rust toolchain and cargo-fuzz (bench/fuzz.sh, the fuzz step of the tests)
#
# Skip parts with SKIP_APT=1, SKIP_PYTHON=1, SKIP_JAVA=1, SKIP_KAFKA=1, SKIP_FUZZ=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { echo "install-deps: $*" >&2; }

# --- apt -------------------------------------------------------------------------------
APT_PACKAGES=(
    build-essential cmake pkg-config zlib1g-dev libssl-dev # rdkafka-sys (cmake-build)
    kcat                                                   # compat client + quick poking
    openjdk-17-jdk-headless maven                          # Java client, real Kafka
    python3 python3-venv                                   # kafka-python venv
    curl ca-certificates
)

apt_missing() {
    local p
    for p in "${APT_PACKAGES[@]}"; do
        # Debian's python3 may be shadowed by pyenv; we still only check dpkg's view.
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            echo "$p"
        fi
    done
}

if [[ -z "${SKIP_APT:-}" ]]; then
    mapfile -t missing < <(apt_missing)
    if ((${#missing[@]})); then
        log "apt: installing ${missing[*]}"
        SUDO=""
        [[ $(id -u) -eq 0 ]] || SUDO="sudo"
        # Package lists may be absent or stale on a fresh machine: update only when needed.
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        log "apt: all packages present"
    fi
fi

# --- Python venv -----------------------------------------------------------------------
if [[ -z "${SKIP_PYTHON:-}" ]]; then
    VENV="$ROOT/.venv-compat"
    REQ="$ROOT/tests/compat/python/requirements.txt"
    PY="${PYTHON:-python3}"
    # Re-install when requirements.txt changes (its checksum is kept in the venv).
    sum="$(sha256sum "$REQ" | cut -d' ' -f1)"
    if [[ -x "$VENV/bin/python" && -f "$VENV/.req-sha256" && "$(cat "$VENV/.req-sha256")" == "$sum" ]] &&
        "$VENV/bin/python" -c 'import kafka, lz4' 2>/dev/null; then
        log "python: $VENV up to date"
    else
        log "python: creating $VENV"
        rm -rf "$VENV"
        "$PY" -m venv "$VENV"
        "$VENV/bin/pip" install -q -r "$REQ"
        echo "$sum" >"$VENV/.req-sha256"
    fi
fi

# --- Java compat client ----------------------------------------------------------------
if [[ -z "${SKIP_JAVA:-}" ]]; then
    # Building it downloads the plugins and kafka-clients into ~/.m2, so that
    # tests/compat/run.sh can rebuild offline (-o) later.
    if tests/compat/java/build.sh; then
        log "java: compat client built"
    else
        log "java: build failed"
        exit 1
    fi
fi

# --- Fuzzing: the nightly toolchain and cargo-fuzz --------------------------------------
if [[ -z "${SKIP_FUZZ:-}" ]]; then
    if ! rustup toolchain list | grep -q '^nightly'; then
        log "fuzz: installing the nightly toolchain"
        rustup toolchain install nightly --profile minimal
    fi
    if ! command -v cargo-fuzz >/dev/null; then
        log "fuzz: installing cargo-fuzz"
        cargo install --locked cargo-fuzz
    fi
fi

# --- Apache Kafka (reference broker) ---------------------------------------------------
if [[ -z "${SKIP_KAFKA:-}" ]]; then
    scripts/kafka.sh fetch
    log "kafka: jars in .kafka/lib"
fi

log "done"

#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what it needs, then runs
#   1. formatting and lint gates (cargo fmt --check, cargo clippy -D warnings)
#   2. unit tests and the Rust integration tests (real broker process + librdkafka via rdkafka)
#   3. the patched kafka-protocol's malformed-input tests
#   4. the compatibility suite (kafka-python, the Java client, Debian's kcat) against a real broker
#   5. every cargo-fuzz target for a few seconds from its seed corpus (nightly toolchain)
# Exit status is non-zero if anything fails. The last line is "test.sh: N passed, M failed".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# SKIP_KAFKA: the reference Apache Kafka jars are only needed for side-by-side checks and
# benchmarks, not by the tests.
SKIP_KAFKA="${SKIP_KAFKA:-1}" scripts/install-deps.sh

passed=0
failed=0
step() {
    local name="$1"
    shift
    echo "=== $name"
    local start=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "=== $name: ok ($((SECONDS - start)) s)"
    else
        failed=$((failed + 1))
        echo "=== $name: FAILED ($((SECONDS - start)) s)"
    fi
}

step "cargo fmt --check" cargo fmt --check
step "cargo clippy" cargo clippy --all-targets --locked -- -D warnings
step "cargo test (unit + integration)" cargo test --locked
step "kafka-protocol malformed-input tests" \
    env CARGO_TARGET_DIR="$ROOT/target/kafka-protocol" cargo test --manifest-path third_party/kafka-protocol/Cargo.toml --test tests shardlog_malformed_input
step "compatibility suite" tests/compat/run.sh "$ROOT/target/debug/shardlog"
# Every fuzz target for a few seconds from its seed corpus (longer runs: bench/fuzz.sh SECONDS).
step "fuzz targets (5 s each)" bench/fuzz.sh 5 2

echo "test.sh: $passed passed, $failed failed"
[[ $failed -eq 0 ]]

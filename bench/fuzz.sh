#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) for SECONDS each, from its seed corpus in
# fuzz/corpus/ (regenerate with fuzz/seeds.sh), JOBS targets at a time. Crashes land in
# fuzz/artifacts/<target>/; fix each and keep it as a regression test. Needs the nightly
# toolchain and cargo-fuzz (installed here if missing).
#
#   bench/fuzz.sh SECONDS [JOBS] [TARGET...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECS="${1:?seconds per target}"
JOBS="${2:-1}"
shift $(( $# >= 2 ? 2 : 1 ))
cd "$ROOT"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
cargo +nightly fuzz build -O >/dev/null
BIN_DIR="$ROOT/fuzz/target/x86_64-unknown-linux-gnu/release"
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || mapfile -t TARGETS < <(cargo +nightly fuzz list)
LOGS="$(mktemp -d)"
failed=0
run() {
    local t=$1 work
    # New inputs go to a scratch corpus: the committed seeds stay as fuzz/seeds.sh made them.
    work="$LOGS/corpus-$t"
    mkdir -p "$work" "fuzz/artifacts/$t"
    # The binaries built above run directly (cargo fuzz run would rebuild from the working
    # tree at each start, so an edit made during a long run would change what is fuzzed).
    if "$BIN_DIR/$t" "$work" "fuzz/corpus/$t" -max_total_time="$SECS" \
        -artifact_prefix="fuzz/artifacts/$t/" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$LOGS/$t.log" 2>&1; then
        echo "fuzz $t: ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$LOGS/$t.log" | grep -o '[0-9]*$') runs in ${SECS} s)"
    else
        echo "fuzz $t: FAILED, see fuzz/artifacts/$t and:"; tail -40 "$LOGS/$t.log"
        return 1
    fi
}
pids=()
for t in "${TARGETS[@]}"; do
    run "$t" & pids+=($!)
    if (( ${#pids[@]} >= JOBS )); then
        wait "${pids[0]}" || failed=1
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
rm -rf "$LOGS"
exit $failed

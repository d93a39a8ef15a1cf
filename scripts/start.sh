#!/usr/bin/env bash
# Start a broker with embedded defaults: data in ./data, Kafka listener 127.0.0.1:9092, one
# shard per core. Extra arguments are passed to `shardlog start` (e.g. --cores 1, --set k=v).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
cargo build --release --bin shardlog
exec target/release/shardlog start "$@"

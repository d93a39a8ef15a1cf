//! shardlog: a Kafka-compatible streaming broker, thread-per-core.
//!
//! Module layering (each depends only on those below it; `tests/layers.rs` checks the full
//! table in docs/ARCHITECTURE.md): `server` (listener, sessions, the list of APIs, handlers) →
//! `controller` (metadata changes, on shard 0) → `shard` (per-core state, partition operations)
//! → `partition` (replica set, leader epoch, high watermark) → `log` (storage) → `runtime` (the
//! only glommio user). `metadata`, `wire`, `timer`, `metrics` and `config` sit beside them.

// Anything a client or the disk can make fail is handled, never unwrapped (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
pub mod config;
pub mod controller;
pub mod group;
pub mod log;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod node;
pub mod partition;
pub mod quorum;
pub mod runtime;
pub mod server;
pub mod shard;
pub mod timer;
pub mod wire;

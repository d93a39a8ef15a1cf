//! shardlog: a Kafka-compatible streaming broker, thread-per-core.
//!
//! Module layering (each depends only on those below it):
//! `server` (listener, connections, per-API handlers) → `shard` (per-core state, partition
//! operations, metadata controller) → `log` / `metadata` → `runtime` (the only glommio user).
//! `wire` (framing and the API table) knows nothing of storage. See docs/ARCHITECTURE.md.

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
pub mod partition;
pub mod runtime;
pub mod server;
pub mod shard;
pub mod timer;
pub mod wire;

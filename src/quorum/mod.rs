//! The metadata quorum: the cluster metadata log replicated with Raft, on tikv's raft-rs.
//!
//! Why raft-rs (docs/ARCHITECTURE.md has the longer form): it is sans-io — a synchronous state
//! machine that neither owns a thread nor a clock nor a socket — so it runs as one task on a
//! shard, ticked by the shard's timing wheel, with its log written on the blocking-thread pool
//! like every other fsync here. openraft needs an async runtime of its own (tokio, or an
//! adapter glommio does not have). The engine stays behind `controller::commit`, so it can be
//! swapped.
//!
//! Pieces: `core` (one node's Raft state machine and the Ready protocol split around the
//! durable write; compaction into a snapshot), `storage` (the in-memory log raft-rs reads),
//! `log_store` (the node's durable snapshot, Raft log and hard state), `wire` (messages between
//! nodes, bounded against hostile peers), `transport` (those messages over TCP on
//! `controller.listener`, with a hello that refuses nodes that disagree), `driver` (the task that
//! runs it all on the controller shard).

pub mod core;
pub mod driver;
pub mod log_store;
pub mod storage;
pub mod transport;
pub mod wire;

#[cfg(test)]
mod tests;

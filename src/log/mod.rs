//! Partition storage: segments of RecordBatch v2 bytes as the client sent them, sparse offset
//! and time indexes, recovery, roll and retention. One [`PartitionLog`] per partition, owned
//! by one shard; nothing here is `Send` and nothing takes a lock shared between threads.
//!
//! Module map (each file does one job):
//! - [`batch`]: RecordBatch v2 header parsing, validation (length, magic, CRC32C) and the
//!   header rewrites the broker makes (offset, leader epoch, LogAppendTime).
//! - [`record_walk`]: the records inside a batch, one at a time, decompressed as they go
//!   (bounded memory): the one way anything looks inside a batch.
//! - [`validator`]: what a client's records must satisfy before they are stored (Kafka's
//!   LogValidator).
//! - [`offset_index`], [`time_index`]: sparse index files (shared code in `sparse_index`).
//! - [`segment`]: one `.log` file + its indexes: append, find, read.
//! - [`recovery`]: opening a directory after a clean or unclean stop.
//! - [`producer_state`]: idempotent producers (epoch, last 5 batches): sequence checks,
//!   duplicate detection, snapshots and their rebuild from the log.
//! - [`partition_log`]: the public type: offsets, roll, retention, sync, close.
//! - [`error`]: [`LogError`] and its Kafka error codes.
//! - [`batch_builder`]: builders of valid uncompressed batches (`__consumer_offsets` records, tests).

pub mod batch;
pub mod batch_builder;
pub mod error;
pub mod offset_index;
pub mod partition_log;
pub mod producer_state;
pub mod record_walk;
pub mod recovery;
pub mod segment;
mod sparse_index;
pub mod time_index;
pub mod validator;

#[cfg(test)]
mod producer_tests;
#[cfg(test)]
mod tests;

pub use batch::TimestampType;
pub use error::LogError;
pub use partition_log::{AppendInfo, LogConfig, PartitionLog};

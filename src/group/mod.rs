//! Consumer groups: Kafka's classic group protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup)
//! and committed offsets, stored in the internal topic `__consumer_offsets`.
//!
//! Each group lives on the shard that owns its `__consumer_offsets` partition
//! ([`placement::partition_for`], Kafka's hash), so group work spreads over the cores exactly as
//! partitions do, and a group's records are appended to a log the coordinator's own shard owns.
//!
//! Module map (one job each):
//! - [`placement`]: Java `String.hashCode` and the group → partition function.
//! - [`codec`]: Kafka's key/value formats for `__consumer_offsets` records, and splitting
//!   record batches back into records for replay.
//! - [`member`]: a member and the JoinGroup/SyncGroup answers parked on it.
//! - [`state`]: the group state machine (pure: time is an argument), generations, protocol
//!   selection, static membership.
//! - [`offsets`]: one group's committed offsets ("last record in the log wins").
//! - [`consumer_protocol`]: reading subscription metadata (OffsetDelete only).
//! - [`timers`]: the clock/timer/spawn trait the coordinator runs on.
//! - [`coordinator`]: the per-shard coordinator tying these to storage and timers.
//!
//! This module depends only on `log` (batch parsing) and `runtime` (the default driver); the
//! shard glue (which log to append to, when to load) is in `server::group_host`.

pub mod codec;
pub mod consumer_protocol;
pub mod coordinator;
pub mod member;
pub mod offsets;
pub mod placement;
pub mod state;
pub mod timers;

#[cfg(test)]
mod tests;

pub use coordinator::{CoordinatorConfig, GroupCoordinator, GroupStorage};
pub use placement::{partition_for, OFFSETS_TOPIC};
pub use state::{GroupConfig, GroupState};

//! Cluster metadata: topics, their partitions, and which shard owns each partition.
//!
//! Shard 0 owns the authoritative copy and persists every change as a record in an append-only
//! metadata log ([`store`]); it then broadcasts the same record to every shard, which applies it
//! to its read-only [`MetadataImage`]. Records are the unit of change so that the same stream can
//! later become the replicated state machine of a metadata quorum (as KRaft does for Kafka).

pub mod image;
pub mod placement;
pub mod store;
pub mod topic_name;

pub use image::{MetadataImage, MetadataRecord, TopicMeta};

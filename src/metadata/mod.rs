//! Cluster metadata: topics, their partitions (replicas, leader, epochs, ISR), configs and
//! producer-id blocks, in node ids only.
//!
//! The controller persists every change as a record in an append-only metadata log ([`store`]),
//! then every shard applies the same record to its read-only [`MetadataImage`]. Records are the
//! unit of change so that the same stream can become the replicated state machine of a metadata
//! quorum (as KRaft does for Kafka). Which shard of a node serves a partition is not here: each
//! node places its partitions itself (`node::placement`).

pub mod image;
pub mod json_lines;
pub mod legacy;
pub mod store;
pub mod topic_name;

pub use image::{MetadataImage, MetadataRecord, PartitionMeta, TopicMeta};

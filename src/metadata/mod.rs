//! Cluster metadata: topics, their partitions (replicas, leader, epochs, ISR), configs and
//! producer-id blocks, in node ids only.
//!
//! Every change is a record, committed through the metadata quorum (`quorum`, as KRaft does for
//! Kafka) and applied in log order to every shard's read-only [`MetadataImage`]; an image is
//! also a quorum snapshot's content. [`store`] reads the metadata log of an older shardlog for
//! its conversion. Which shard of a node serves a partition is not here: each
//! node places its partitions itself (`node::placement`).

pub mod election;
pub mod image;
pub mod json_lines;
pub mod legacy;
pub mod store;
pub mod topic_name;

pub use image::{BrokerMeta, MetadataImage, MetadataRecord, PartitionMeta, TopicMeta};

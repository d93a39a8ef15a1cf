//! The cluster metadata every shard keeps a copy of, and the records that change it.
//!
//! The records say what Kafka's KRaft records say — topics with their ids and configs, partitions
//! with their replicas, leader, leader epoch, partition epoch and ISR, producer-id blocks — in
//! node ids only. Which core (shard) of a node serves a partition is that node's own business
//! (`node::placement`), never part of these records, so nodes with different core counts can
//! share one metadata log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One partition as the cluster sees it (Kafka's PartitionRecord / PartitionRegistration).
/// Invariants: `leader` is one of `replicas` (or -1, no leader); `isr` is a subset of `replicas`;
/// `leader_epoch` grows with every leader change, `partition_epoch` with every change at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// Node ids holding a replica, the preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas (node ids).
    pub isr: Vec<i32>,
    /// Node id of the leader, -1 when none.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

impl PartitionMeta {
    /// A partition whose only replica is `node`, leading at epoch 0 (a one-node cluster).
    pub fn single(node: i32) -> PartitionMeta {
        PartitionMeta {
            replicas: vec![node],
            isr: vec![node],
            leader: node,
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }

    /// True if `node` holds a replica of this partition.
    pub fn hosted_by(&self, node: i32) -> bool {
        self.replicas.contains(&node)
    }
}

/// One topic. Invariant: partition indexes are dense from 0 (`partitions[i]` is partition `i`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionMeta>,
    /// Topic-level overrides only (broker defaults are not copied in).
    pub configs: BTreeMap<String, String>,
}

impl TopicMeta {
    /// Partition `p`, if it exists.
    pub fn partition(&self, p: i32) -> Option<&PartitionMeta> {
        usize::try_from(p).ok().and_then(|p| self.partitions.get(p))
    }
}

/// A change to the metadata. Applied in log order on every shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// The cluster id, written once when the data directory is initialised.
    ClusterId {
        id: String,
    },
    CreateTopic {
        topic: TopicMeta,
    },
    /// Appends partitions to a topic (CreatePartitions).
    AddPartitions {
        name: String,
        partitions: Vec<PartitionMeta>,
    },
    DeleteTopic {
        name: String,
    },
    /// Replaces a topic's overrides (IncrementalAlterConfigs / AlterConfigs): `configs` is the
    /// complete new set of topic-level overrides, already validated.
    SetTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// Producer ids below `end` may have been handed out (InitProducerId reserves in blocks, so
    /// a restart continues above every id ever issued).
    ProducerIdBlock {
        end: i64,
    },
}

/// A shard's copy of the metadata.
#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    pub cluster_id: String,
    /// First producer id never reserved.
    pub producer_id_block_end: i64,
    topics: BTreeMap<String, TopicMeta>,
    by_id: BTreeMap<Uuid, String>,
}

impl MetadataImage {
    /// The records that rebuild this image from nothing: the metadata log compacted to its
    /// current state (what replaying them yields is equal to `self`).
    pub fn snapshot_records(&self) -> Vec<MetadataRecord> {
        let mut out = vec![MetadataRecord::ClusterId {
            id: self.cluster_id.clone(),
        }];
        if self.producer_id_block_end > 0 {
            out.push(MetadataRecord::ProducerIdBlock {
                end: self.producer_id_block_end,
            });
        }
        out.extend(
            self.topics
                .values()
                .map(|t| MetadataRecord::CreateTopic { topic: t.clone() }),
        );
        out
    }

    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicMeta> {
        self.by_id.get(id).and_then(|n| self.topics.get(n))
    }

    pub fn topics(&self) -> impl Iterator<Item = &TopicMeta> {
        self.topics.values()
    }

    /// Partition `p` of `topic`, if both exist.
    pub fn partition(&self, topic: &str, p: i32) -> Option<&PartitionMeta> {
        self.topics.get(topic)?.partition(p)
    }

    /// Applies one record. Records that do not fit the current image (replayed twice, or naming a
    /// deleted topic) are ignored: the log is the truth and replay must never fail half-way.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::ClusterId { id } => self.cluster_id = id.clone(),
            MetadataRecord::CreateTopic { topic } => {
                self.by_id.insert(topic.id, topic.name.clone());
                self.topics.insert(topic.name.clone(), topic.clone());
            }
            MetadataRecord::AddPartitions { name, partitions } => {
                if let Some(t) = self.topics.get_mut(name) {
                    t.partitions.extend_from_slice(partitions);
                }
            }
            MetadataRecord::SetTopicConfigs { name, configs } => {
                if let Some(t) = self.topics.get_mut(name) {
                    t.configs = configs.clone();
                }
            }
            MetadataRecord::ProducerIdBlock { end } => {
                self.producer_id_block_end = self.producer_id_block_end.max(*end);
            }
            MetadataRecord::DeleteTopic { name } => {
                if let Some(t) = self.topics.remove(name) {
                    self.by_id.remove(&t.id);
                }
            }
        }
    }
}

//! The in-memory view of metadata that every shard keeps, and the records that change it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One topic. Invariant: `partitions[i]` is the shard that owns partition `i`; partition
/// indexes are dense from 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    /// Owning shard per partition index.
    pub partitions: Vec<usize>,
    /// Topic-level overrides only (broker defaults are not copied in).
    pub configs: BTreeMap<String, String>,
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
    /// Appends partitions owned by these shards (CreatePartitions).
    AddPartitions {
        name: String,
        shards: Vec<usize>,
    },
    /// Moves a partition to another shard (restart with a different shard count).
    MovePartition {
        name: String,
        partition: usize,
        shard: usize,
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

    /// Owning shard of (topic, partition), if both exist.
    pub fn shard_of(&self, topic: &str, partition: i32) -> Option<usize> {
        let t = self.topics.get(topic)?;
        usize::try_from(partition)
            .ok()
            .and_then(|p| t.partitions.get(p).copied())
    }

    /// Partitions owned by each shard, used to balance new placements.
    pub fn partitions_per_shard(&self, shards: usize) -> Vec<usize> {
        let mut counts = vec![0; shards];
        for t in self.topics.values() {
            for &s in &t.partitions {
                if let Some(c) = counts.get_mut(s) {
                    *c += 1;
                }
            }
        }
        counts
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
            MetadataRecord::AddPartitions { name, shards } => {
                if let Some(t) = self.topics.get_mut(name) {
                    t.partitions.extend_from_slice(shards);
                }
            }
            MetadataRecord::MovePartition {
                name,
                partition,
                shard,
            } => {
                if let Some(slot) = self
                    .topics
                    .get_mut(name)
                    .and_then(|t| t.partitions.get_mut(*partition))
                {
                    *slot = *shard;
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

//! Metadata logs written before placement left the cluster metadata (shardlog up to the layering
//! change) stored a shard number per partition: `CreateTopic` with `partitions: [shard, ...]`,
//! `AddPartitions { shards }` and `MovePartition`. Such a log is read here and converted once at
//! start: its records become today's (every partition replicated on this node only, leading at
//! epoch 0, which is what a one-node broker was), and the shards it named become this node's
//! placement, so a broker upgraded in place serves every partition from the shard it used before.

use std::collections::BTreeMap;

use serde::Deserialize;
use uuid::Uuid;

use super::image::{MetadataRecord, PartitionMeta, TopicMeta};

/// A line of the metadata log as read back: today's record, or one only old logs hold.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StoredRecord {
    Current(MetadataRecord),
    Legacy(LegacyRecord),
}

/// The records whose form changed; the others read as [`MetadataRecord`] unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type")]
pub enum LegacyRecord {
    CreateTopic {
        topic: LegacyTopic,
    },
    AddPartitions {
        name: String,
        shards: Vec<usize>,
    },
    MovePartition {
        name: String,
        partition: usize,
        shard: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LegacyTopic {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<usize>,
    pub configs: BTreeMap<String, String>,
}

/// A metadata log converted to today's records.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Converted {
    pub records: Vec<MetadataRecord>,
    /// True if any legacy record was read: the log must be rewritten in today's form (and the
    /// placement below kept) before anything is appended to it.
    pub had_legacy: bool,
    /// The shard each partition of a live topic had in the old log: (topic id, partition, shard).
    pub shards: Vec<(Uuid, i32, usize)>,
}

/// Converts a replayed log, `node` being this broker's node id (the only replica of everything
/// an old log describes).
pub fn convert(stored: Vec<StoredRecord>, node: i32) -> Converted {
    let mut out = Converted::default();
    // Topic name -> (id, shard per partition), following creates, moves and deletes in order.
    let mut shards: BTreeMap<String, (Uuid, Vec<usize>)> = BTreeMap::new();
    for s in stored {
        match s {
            StoredRecord::Current(r) => {
                match &r {
                    MetadataRecord::DeleteTopic { name } => {
                        shards.remove(name);
                    }
                    MetadataRecord::CreateTopic { topic } => {
                        // A topic created in today's form replaces any old one of that name.
                        shards.remove(&topic.name);
                    }
                    _ => {}
                }
                out.records.push(r);
            }
            StoredRecord::Legacy(l) => {
                out.had_legacy = true;
                match l {
                    LegacyRecord::CreateTopic { topic } => {
                        let partitions = vec![PartitionMeta::single(node); topic.partitions.len()];
                        shards.insert(topic.name.clone(), (topic.id, topic.partitions));
                        out.records.push(MetadataRecord::CreateTopic {
                            topic: TopicMeta {
                                name: topic.name,
                                id: topic.id,
                                partitions,
                                configs: topic.configs,
                            },
                        });
                    }
                    LegacyRecord::AddPartitions {
                        name,
                        shards: added,
                    } => {
                        let partitions = vec![PartitionMeta::single(node); added.len()];
                        if let Some((_, s)) = shards.get_mut(&name) {
                            s.extend(added);
                        }
                        out.records.push(MetadataRecord::AddPartitions {
                            name,
                            partitions,
                            first: None,
                        });
                    }
                    LegacyRecord::MovePartition {
                        name,
                        partition,
                        shard,
                    } => {
                        if let Some(slot) = shards
                            .get_mut(&name)
                            .and_then(|(_, s)| s.get_mut(partition))
                        {
                            *slot = shard;
                        }
                    }
                }
            }
        }
    }
    for (id, s) in shards.into_values() {
        for (p, shard) in s.into_iter().enumerate() {
            if let Ok(p) = i32::try_from(p) {
                out.shards.push((id, p, shard));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::MetadataImage;

    fn parse(lines: &str) -> Vec<StoredRecord> {
        lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn an_old_log_becomes_todays_records_and_keeps_its_shards_as_placement() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let c = Uuid::from_u128(3);
        let old = format!(
            r#"{{"type":"ClusterId","id":"k"}}
{{"type":"CreateTopic","topic":{{"name":"a","id":"{a}","partitions":[0,1,0],"configs":{{"retention.ms":"5"}}}}}}
{{"type":"CreateTopic","topic":{{"name":"b","id":"{b}","partitions":[1],"configs":{{}}}}}}
{{"type":"AddPartitions","name":"a","shards":[1]}}
{{"type":"MovePartition","name":"a","partition":1,"shard":0}}
{{"type":"DeleteTopic","name":"b"}}
{{"type":"ProducerIdBlock","end":2000}}
{{"type":"CreateTopic","topic":{{"name":"c","id":"{c}","partitions":[1,1],"configs":{{}}}}}}"#
        );
        let stored = parse(&old);
        assert!(matches!(stored[1], StoredRecord::Legacy(_)));
        assert!(matches!(stored[5], StoredRecord::Current(_)));
        let conv = convert(stored, 7);
        assert!(conv.had_legacy);
        let mut image = MetadataImage::default();
        conv.records.iter().for_each(|r| image.apply(r));
        assert_eq!(image.cluster_id, "k");
        assert_eq!(image.producer_id_block_end, 2000);
        let ta = image.topic("a").unwrap();
        assert_eq!(ta.partitions, vec![PartitionMeta::single(7); 4]);
        assert_eq!(
            ta.configs.get("retention.ms").map(String::as_str),
            Some("5")
        );
        assert!(image.topic("b").is_none());
        let mut shards = conv.shards.clone();
        shards.sort();
        assert_eq!(
            shards,
            vec![
                (a, 0, 0),
                (a, 1, 0),
                (a, 2, 0),
                (a, 3, 1),
                (c, 0, 1),
                (c, 1, 1)
            ]
        );
    }

    #[test]
    fn a_current_log_is_left_as_it_is() {
        let t = MetadataRecord::CreateTopic {
            topic: TopicMeta {
                name: "t".into(),
                id: Uuid::from_u128(9),
                partitions: vec![PartitionMeta::single(1)],
                configs: BTreeMap::new(),
            },
        };
        let line = serde_json::to_string(&t).unwrap();
        let stored = parse(&line);
        let conv = convert(stored, 1);
        assert!(!conv.had_legacy && conv.shards.is_empty());
        assert_eq!(conv.records, vec![t]);
    }
}

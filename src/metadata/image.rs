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

use super::election;

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

/// A registered broker (Kafka's RegisterBrokerRecord): where clients reach it. Each start
/// registers again with a new incarnation; the latest registration of an id wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerMeta {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub incarnation: Uuid,
    /// Fenced by the controller (no heartbeat within `broker.session.timeout.ms`): not offered
    /// to clients, leads nothing, out of every ISR it was not the last member of.
    #[serde(default)]
    pub fenced: bool,
    /// Fenced because it is shutting down (controlled shutdown): stays fenced until it
    /// registers again, whatever its heartbeats say meanwhile.
    #[serde(default)]
    pub shutting_down: bool,
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
    /// Appends partitions to a topic (CreatePartitions), numbered from `first` (the count the
    /// proposer saw): applied once even if proposed twice (a retry after a timeout, or two nodes
    /// racing). Records written before `first` existed carry none.
    AddPartitions {
        name: String,
        partitions: Vec<PartitionMeta>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first: Option<usize>,
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
    /// A broker started (or restarted) and is reachable at its advertised endpoint. It leads
    /// again the leaderless partitions whose ISR holds it (`election::on_unfence`).
    RegisterBroker {
        broker: BrokerMeta,
    },
    /// The controller fenced this incarnation of a broker (Kafka's FenceBrokerRecord); its
    /// partitions' leadership and ISRs change with it (`election::on_fence`).
    FenceBroker {
        id: i32,
        incarnation: Uuid,
        /// The broker asked for it (controlled shutdown, Kafka's `wantShutDown`): it leads
        /// nothing from now on and stays fenced until it registers again.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        controlled: bool,
    },
    /// A topic's partitions as they now are — leader, ISR, epochs (Kafka's PartitionChangeRecord,
    /// whole): a follower catching up from a snapshot takes changes this way, never by
    /// re-creating the topic (which would delete its partitions' data). Applied only to the
    /// topic with this id and as many partitions.
    SetPartitions {
        name: String,
        id: Uuid,
        partitions: Vec<PartitionMeta>,
    },
    /// The broker's heartbeats are back (Kafka's UnfenceBrokerRecord).
    UnfenceBroker {
        id: i32,
        incarnation: Uuid,
    },
}

/// How a refused producer-id block's reason starts (its proposer tries the next block).
pub const BLOCK_TAKEN: &str = "producer-id block taken";

/// A shard's copy of the metadata.
#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    pub cluster_id: String,
    /// First producer id never reserved.
    pub producer_id_block_end: i64,
    topics: BTreeMap<String, TopicMeta>,
    by_id: BTreeMap<Uuid, String>,
    brokers: BTreeMap<i32, BrokerMeta>,
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
            self.brokers
                .values()
                .map(|b| MetadataRecord::RegisterBroker { broker: b.clone() }),
        );
        out.extend(
            self.topics
                .values()
                .map(|t| MetadataRecord::CreateTopic { topic: t.clone() }),
        );
        out
    }

    /// [`MetadataImage::snapshot_records`] as bytes (JSON lines): a quorum snapshot's data.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for r in self.snapshot_records() {
            // Serializing these plain structs cannot fail.
            if serde_json::to_writer(&mut out, &r).is_ok() {
                out.push(b'\n');
            }
        }
        out
    }

    /// The image a quorum snapshot's data describes.
    pub fn decode_snapshot(data: &[u8]) -> Result<MetadataImage, String> {
        let mut image = MetadataImage::default();
        for (n, line) in data.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let r: MetadataRecord = serde_json::from_slice(line)
                .map_err(|e| format!("metadata snapshot line {}: {e}", n + 1))?;
            image.apply(&r);
        }
        Ok(image)
    }

    /// Records that turn this image into `target` (a leader's snapshot replacing a follower's
    /// state): topics gone or re-created deleted, new ones created, grown ones grown, changed
    /// configs set.
    pub fn changes_to(&self, target: &MetadataImage) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        if self.cluster_id != target.cluster_id {
            out.push(MetadataRecord::ClusterId {
                id: target.cluster_id.clone(),
            });
        }
        if target.producer_id_block_end > self.producer_id_block_end {
            out.push(MetadataRecord::ProducerIdBlock {
                end: target.producer_id_block_end,
            });
        }
        for b in target.brokers.values() {
            let old = self.brokers.get(&b.id);
            if old.is_some_and(|o| o.incarnation == b.incarnation) {
                if old.is_some_and(|o| o.fenced != b.fenced || o.shutting_down != b.shutting_down) {
                    out.push(match b.fenced {
                        true => MetadataRecord::FenceBroker {
                            id: b.id,
                            incarnation: b.incarnation,
                            controlled: b.shutting_down,
                        },
                        false => MetadataRecord::UnfenceBroker {
                            id: b.id,
                            incarnation: b.incarnation,
                        },
                    });
                }
            } else {
                out.push(MetadataRecord::RegisterBroker { broker: b.clone() });
            }
        }
        for t in self.topics.values() {
            if target.topic(&t.name).is_none_or(|n| n.id != t.id) {
                out.push(MetadataRecord::DeleteTopic {
                    name: t.name.clone(),
                });
            }
        }
        for t in target.topics.values() {
            match self.topic(&t.name).filter(|o| o.id == t.id) {
                None => out.push(MetadataRecord::CreateTopic { topic: t.clone() }),
                Some(old) => {
                    let (had, has) = (old.partitions.len(), t.partitions.len());
                    if has < had {
                        // Partitions never shrink: a snapshot that says so is taken as it is.
                        out.push(MetadataRecord::DeleteTopic {
                            name: t.name.clone(),
                        });
                        out.push(MetadataRecord::CreateTopic { topic: t.clone() });
                        continue;
                    }
                    if has > had {
                        out.push(MetadataRecord::AddPartitions {
                            name: t.name.clone(),
                            partitions: t.partitions[had..].to_vec(),
                            first: Some(had),
                        });
                    }
                    if t.partitions[..had] != old.partitions[..] {
                        // Leaders, ISRs, epochs moved (fencing, elections): changed in place,
                        // never by re-creating the topic (that would delete its data here).
                        out.push(MetadataRecord::SetPartitions {
                            name: t.name.clone(),
                            id: t.id,
                            partitions: t.partitions.clone(),
                        });
                    }
                    if t.configs != old.configs {
                        out.push(MetadataRecord::SetTopicConfigs {
                            name: t.name.clone(),
                            configs: t.configs.clone(),
                        });
                    }
                }
            }
        }
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

    /// Registered brokers, in id order.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerMeta> {
        self.brokers.values()
    }

    pub fn broker(&self, id: i32) -> Option<&BrokerMeta> {
        self.brokers.get(&id)
    }

    /// Partition `p` of `topic`, if both exist.
    pub fn partition(&self, topic: &str, p: i32) -> Option<&PartitionMeta> {
        self.topics.get(topic)?.partition(p)
    }

    /// Why `record` does not fit this image, if it does not: a topic created twice, or a change
    /// to a topic that does not exist. Every node applying the log skips such records alike
    /// (two nodes may propose conflicting changes; the first in the log wins), and the proposer
    /// reports the reason.
    pub fn refusal(&self, record: &MetadataRecord) -> Option<String> {
        match record {
            MetadataRecord::CreateTopic { topic } if self.topics.contains_key(&topic.name) => {
                Some(format!("Topic '{}' already exists.", topic.name))
            }
            MetadataRecord::CreateTopic { topic } if self.by_id.contains_key(&topic.id) => {
                Some(format!("Topic id {} is taken.", topic.id))
            }
            MetadataRecord::AddPartitions {
                name,
                first: Some(first),
                ..
            } if self
                .topics
                .get(name)
                .is_some_and(|t| t.partitions.len() != *first) =>
            {
                Some(format!(
                    "The topic '{name}' no longer has {first} partitions (a concurrent or repeated change)."
                ))
            }
            MetadataRecord::AddPartitions { name, .. }
            | MetadataRecord::DeleteTopic { name }
            | MetadataRecord::SetTopicConfigs { name, .. }
                if !self.topics.contains_key(name) =>
            {
                Some(format!("The topic '{name}' does not exist."))
            }
            MetadataRecord::SetPartitions {
                name,
                id,
                partitions,
            } if self
                .topics
                .get(name)
                .is_none_or(|t| t.id != *id || t.partitions.len() != partitions.len()) =>
            {
                Some(format!(
                    "The topic '{name}' with id {id} and {} partitions does not exist.",
                    partitions.len()
                ))
            }
            MetadataRecord::ProducerIdBlock { end } if *end <= self.producer_id_block_end => {
                Some(format!(
                    "{BLOCK_TAKEN}: ids below {} are reserved",
                    self.producer_id_block_end
                ))
            }
            MetadataRecord::ClusterId { id }
                if !self.cluster_id.is_empty() && *id != self.cluster_id =>
            {
                Some(format!("the cluster id is {}, not {id}", self.cluster_id))
            }
            MetadataRecord::FenceBroker { id, incarnation, .. }
            | MetadataRecord::UnfenceBroker { id, incarnation } => {
                let fence = matches!(record, MetadataRecord::FenceBroker { .. });
                match self.brokers.get(id) {
                    None => Some(format!("broker {id} is not registered")),
                    Some(b) if b.incarnation != *incarnation => Some(format!(
                        "broker {id} registered again (incarnation {}, not {incarnation})",
                        b.incarnation
                    )),
                    // A broker shutting down is unfenced only by registering again.
                    Some(b) if !fence && b.shutting_down => {
                        Some(format!("broker {id} is shutting down"))
                    }
                    // A controlled shutdown still marks an already fenced broker.
                    Some(b)
                        if b.fenced == fence
                            && !(fence && controlled_fence(record) && !b.shutting_down) =>
                    {
                        Some(format!(
                            "broker {id} is already {}",
                            if fence { "fenced" } else { "unfenced" }
                        ))
                    }
                    Some(_) => None,
                }
            }
            _ => None,
        }
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
            MetadataRecord::AddPartitions {
                name,
                partitions,
                first,
            } => {
                if let Some(t) = self.topics.get_mut(name) {
                    if first.is_none_or(|f| f == t.partitions.len()) {
                        t.partitions.extend_from_slice(partitions);
                    }
                }
            }
            MetadataRecord::SetTopicConfigs { name, configs } => {
                if let Some(t) = self.topics.get_mut(name) {
                    t.configs = configs.clone();
                }
            }
            MetadataRecord::SetPartitions {
                name,
                id,
                partitions,
            } => {
                if let Some(t) = self
                    .topics
                    .get_mut(name)
                    .filter(|t| t.id == *id && t.partitions.len() == partitions.len())
                {
                    t.partitions = partitions.clone();
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
            MetadataRecord::RegisterBroker { broker } => {
                self.brokers.insert(broker.id, broker.clone());
                if !broker.fenced {
                    self.for_each_partition(|p| election::on_unfence(p, broker.id));
                }
            }
            MetadataRecord::FenceBroker {
                id,
                incarnation,
                controlled,
            } => {
                let Some(b) = self.incarnation_mut(*id, incarnation) else {
                    return;
                };
                b.fenced = true;
                b.shutting_down |= *controlled;
                let fenced: Vec<i32> = self
                    .brokers
                    .values()
                    .filter(|b| b.fenced)
                    .map(|b| b.id)
                    .collect();
                self.for_each_partition(|p| election::on_fence(p, *id, |b| fenced.contains(&b)));
            }
            MetadataRecord::UnfenceBroker { id, incarnation } => {
                let Some(b) = self.incarnation_mut(*id, incarnation) else {
                    return;
                };
                b.fenced = false;
                self.for_each_partition(|p| election::on_unfence(p, *id));
            }
        }
    }

    /// Broker `id` if `incarnation` is its current registration (a fence or unfence of an
    /// earlier one does nothing).
    fn incarnation_mut(&mut self, id: i32, incarnation: &Uuid) -> Option<&mut BrokerMeta> {
        self.brokers
            .get_mut(&id)
            .filter(|b| b.incarnation == *incarnation)
    }

    /// Runs `change` on every partition; true if it changed any.
    fn for_each_partition(&mut self, mut change: impl FnMut(&mut PartitionMeta) -> bool) -> bool {
        let mut changed = false;
        for t in self.topics.values_mut() {
            for p in &mut t.partitions {
                changed |= change(p);
            }
        }
        changed
    }
}

/// True for a FenceBroker record of a controlled shutdown.
fn controlled_fence(record: &MetadataRecord) -> bool {
    matches!(
        record,
        MetadataRecord::FenceBroker {
            controlled: true,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, id: u128, partitions: usize) -> TopicMeta {
        TopicMeta {
            name: name.into(),
            id: Uuid::from_u128(id),
            partitions: vec![PartitionMeta::single(1); partitions],
            configs: BTreeMap::new(),
        }
    }

    fn image(records: &[MetadataRecord]) -> MetadataImage {
        let mut i = MetadataImage::default();
        records.iter().for_each(|r| i.apply(r));
        i
    }

    #[test]
    fn a_snapshot_round_trips_and_changes_to_turn_one_image_into_another() {
        let mut grown = topic("grown", 2, 3);
        grown.configs.insert("retention.ms".into(), "5".into());
        let target = image(&[
            MetadataRecord::ClusterId { id: "c".into() },
            MetadataRecord::ProducerIdBlock { end: 3000 },
            MetadataRecord::CreateTopic {
                topic: topic("new", 1, 2),
            },
            MetadataRecord::CreateTopic { topic: grown },
            MetadataRecord::CreateTopic {
                topic: topic("again", 9, 1),
            },
        ]);
        let decoded = MetadataImage::decode_snapshot(&target.encode_snapshot()).unwrap();
        assert_eq!(decoded.snapshot_records(), target.snapshot_records());
        let mut current = image(&[
            MetadataRecord::ClusterId { id: "c".into() },
            MetadataRecord::ProducerIdBlock { end: 1000 },
            MetadataRecord::CreateTopic {
                topic: topic("gone", 3, 1),
            },
            MetadataRecord::CreateTopic {
                topic: topic("grown", 2, 1),
            },
            MetadataRecord::CreateTopic {
                topic: topic("again", 8, 1),
            },
        ]);
        for r in current.changes_to(&target) {
            assert!(current.refusal(&r).is_none(), "{r:?}");
            current.apply(&r);
        }
        assert_eq!(current.snapshot_records(), target.snapshot_records());
        assert!(current.changes_to(&target).is_empty());
        assert!(MetadataImage::decode_snapshot(b"{not json").is_err());
    }

    #[test]
    fn records_that_do_not_fit_are_named() {
        let i = image(&[MetadataRecord::CreateTopic {
            topic: topic("t", 1, 1),
        }]);
        let again = MetadataRecord::CreateTopic {
            topic: topic("t", 2, 1),
        };
        assert!(i.refusal(&again).unwrap().contains("already exists"));
        let missing = MetadataRecord::DeleteTopic { name: "x".into() };
        assert!(i.refusal(&missing).unwrap().contains("does not exist"));
        assert!(i
            .refusal(&MetadataRecord::DeleteTopic { name: "t".into() })
            .is_none());
        // Growing from 1 partition applies once, however often it is proposed.
        let grow = MetadataRecord::AddPartitions {
            name: "t".into(),
            partitions: vec![PartitionMeta::single(1); 2],
            first: Some(1),
        };
        let mut i = i;
        assert!(i.refusal(&grow).is_none());
        i.apply(&grow);
        assert!(i.refusal(&grow).unwrap().contains("no longer has 1"));
        i.apply(&grow);
        assert_eq!(i.topic("t").unwrap().partitions.len(), 3);
    }

    fn broker(id: i32, incarnation: u128) -> MetadataRecord {
        MetadataRecord::RegisterBroker {
            broker: BrokerMeta {
                id,
                host: "h".into(),
                port: 9000 + id,
                incarnation: Uuid::from_u128(incarnation),
                fenced: false,
                shutting_down: false,
            },
        }
    }

    #[test]
    fn fencing_moves_leadership_and_a_new_registration_takes_it_back() {
        let mut t = topic("t", 1, 2);
        t.partitions[1] = PartitionMeta::single(2);
        let mut i = image(&[
            broker(1, 10),
            broker(2, 20),
            MetadataRecord::CreateTopic { topic: t },
        ]);
        let fence = |id, inc, controlled| MetadataRecord::FenceBroker {
            id,
            incarnation: Uuid::from_u128(inc),
            controlled,
        };
        // Another incarnation's fence, or an unknown broker's, does not fit.
        assert!(i.refusal(&fence(1, 11, false)).is_some());
        assert!(i.refusal(&fence(7, 10, false)).is_some());
        i.apply(&fence(1, 10, false));
        assert!(i.broker(1).unwrap().fenced);
        assert_eq!(i.partition("t", 0).unwrap().leader, -1);
        assert_eq!(
            i.partition("t", 1).unwrap().leader,
            2,
            "another broker's partition"
        );
        assert!(i.refusal(&fence(1, 10, false)).is_some(), "already fenced");
        // A controlled shutdown still marks an already fenced broker...
        assert!(i.refusal(&fence(1, 10, true)).is_none());
        i.apply(&fence(1, 10, true));
        assert!(i.broker(1).unwrap().shutting_down);
        // ...and a snapshot carries that over.
        let mut other = image(&[broker(1, 10), broker(2, 20)]);
        for r in other.changes_to(&i) {
            other.apply(&r);
        }
        assert_eq!(other.broker(1), i.broker(1));
        assert_eq!(other.partition("t", 0), i.partition("t", 0));
        // Registering again (a restart) unfences and leads again, at a new epoch.
        i.apply(&broker(1, 12));
        let p = i.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (1, 2));
        assert!(!i.broker(1).unwrap().fenced);
    }

    #[test]
    fn a_snapshot_moves_leaders_in_place_and_never_recreates_a_topic() {
        let mut t = topic("t", 1, 2);
        let before = image(&[MetadataRecord::CreateTopic { topic: t.clone() }]);
        t.partitions[1].leader = -1;
        t.partitions[1].leader_epoch = 4;
        t.partitions.push(PartitionMeta::single(2));
        let after = image(&[MetadataRecord::CreateTopic { topic: t.clone() }]);
        let changes = before.changes_to(&after);
        assert!(
            changes
                .iter()
                .all(|r| !matches!(r, MetadataRecord::DeleteTopic { .. })),
            "{changes:?}"
        );
        let mut caught_up = before.clone();
        for r in &changes {
            assert_eq!(caught_up.refusal(r), None, "{r:?}");
            caught_up.apply(r);
        }
        assert_eq!(caught_up.topic("t"), after.topic("t"));
        // Another incarnation of the name, or another partition count, is refused.
        let stale = MetadataRecord::SetPartitions {
            name: "t".into(),
            id: Uuid::from_u128(99),
            partitions: t.partitions.clone(),
        };
        assert!(caught_up.refusal(&stale).is_some());
    }
}

//! Which shard of this node serves each partition it hosts: node-local, never in the cluster
//! metadata (nodes with different core counts share one metadata log), persisted in this node's
//! placement log (`node::placement_log`) so that a restart keeps every partition on its shard.
//!
//! New partitions go to the shard that serves the fewest (ties to the lowest shard). Balancing by
//! count, not load, is deliberate: it is deterministic and needs no statistics. A restart with
//! fewer shards re-places only the partitions whose shard is gone.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::metadata::{MetadataImage, MetadataRecord, TopicMeta};

/// A change to the placement, as persisted (one JSON line each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PlacementRecord {
    /// These partitions of topic `topic` (by id) are served by these shards: `(partition, shard)`.
    Place {
        topic: Uuid,
        partitions: Vec<(i32, usize)>,
    },
    /// The topic is gone; so is its placement.
    Forget { topic: Uuid },
}

/// This node's partition -> shard map.
///
/// Invariants: keyed by topic id, so a topic deleted and created again under its name is placed
/// afresh; after start-up every shard number is below the node's shard count and every partition
/// this node hosts (per the metadata image) has one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    topics: HashMap<Uuid, BTreeMap<i32, usize>>,
}

impl Placement {
    /// The shard serving partition `p` of topic `topic`, if this node placed it.
    pub fn shard_of(&self, topic: &Uuid, p: i32) -> Option<usize> {
        self.topics.get(topic)?.get(&p).copied()
    }

    /// Partitions placed on each of `shards` shards (places on shards beyond are not counted).
    pub fn counts(&self, shards: usize) -> Vec<usize> {
        let mut counts = vec![0; shards];
        for &s in self.topics.values().flat_map(|t| t.values()) {
            if let Some(c) = counts.get_mut(s) {
                *c += 1;
            }
        }
        counts
    }

    pub fn apply(&mut self, record: &PlacementRecord) {
        match record {
            PlacementRecord::Place { topic, partitions } => {
                self.topics
                    .entry(*topic)
                    .or_default()
                    .extend(partitions.iter().copied());
            }
            PlacementRecord::Forget { topic } => {
                self.topics.remove(topic);
            }
        }
    }

    /// The records that rebuild this placement from nothing (sorted, so equal maps give equal
    /// snapshots).
    pub fn snapshot_records(&self) -> Vec<PlacementRecord> {
        let mut ids: Vec<&Uuid> = self.topics.keys().collect();
        ids.sort();
        ids.into_iter()
            .map(|id| PlacementRecord::Place {
                topic: *id,
                partitions: self.topics[id].iter().map(|(p, s)| (*p, *s)).collect(),
            })
            .collect()
    }

    /// Places the partitions of `topic` that `node` hosts and that have no shard among `shards`
    /// yet; `None` if there are none.
    pub fn place_topic(
        &self,
        topic: &TopicMeta,
        node: i32,
        shards: usize,
    ) -> Option<PlacementRecord> {
        let mut counts = self.counts(shards);
        let partitions = self.unplaced(topic, node, shards, &mut counts);
        (!partitions.is_empty()).then_some(PlacementRecord::Place {
            topic: topic.id,
            partitions,
        })
    }

    fn unplaced(
        &self,
        topic: &TopicMeta,
        node: i32,
        shards: usize,
        counts: &mut [usize],
    ) -> Vec<(i32, usize)> {
        let placed = self.topics.get(&topic.id);
        let mut out = Vec::new();
        for (p, meta) in topic.partitions.iter().enumerate() {
            let Ok(p) = i32::try_from(p) else { break };
            let current = placed.and_then(|m| m.get(&p)).copied();
            if !meta.hosted_by(node) || current.is_some_and(|s| s < shards) {
                continue;
            }
            if let Some(&s) = place(counts, 1).first() {
                out.push((p, s));
            }
        }
        out
    }

    /// The placement changes a metadata record needs on this node (applied together with it).
    /// `image` is the metadata before the record.
    pub fn changes_for(
        &self,
        image: &MetadataImage,
        record: &MetadataRecord,
        node: i32,
        shards: usize,
    ) -> Vec<PlacementRecord> {
        match record {
            MetadataRecord::CreateTopic { topic } => {
                let mut out: Vec<PlacementRecord> = image
                    .topic(&topic.name)
                    .map(|old| PlacementRecord::Forget { topic: old.id })
                    .into_iter()
                    .collect();
                out.extend(self.place_topic(topic, node, shards));
                out
            }
            MetadataRecord::AddPartitions {
                name, partitions, ..
            } => {
                let Some(old) = image.topic(name) else {
                    return Vec::new();
                };
                let mut grown = old.clone();
                grown.partitions.extend_from_slice(partitions);
                self.place_topic(&grown, node, shards).into_iter().collect()
            }
            // Replicas do not move yet (no reassignment): leaders and ISRs change in place.
            MetadataRecord::SetPartitions { .. } => Vec::new(),
            MetadataRecord::DeleteTopic { name } => image
                .topic(name)
                .map(|t| PlacementRecord::Forget { topic: t.id })
                .into_iter()
                .collect(),
            MetadataRecord::ClusterId { .. }
            | MetadataRecord::SetTopicConfigs { .. }
            | MetadataRecord::ProducerIdBlock { .. }
            | MetadataRecord::RegisterBroker { .. }
            | MetadataRecord::FenceBroker { .. }
            | MetadataRecord::UnfenceBroker { .. } => Vec::new(),
        }
    }

    /// Start-up: the records that bring this placement in line with `image` on a node with
    /// `shards` shards — topics no longer in the metadata forgotten, partitions beyond a topic's
    /// count or no longer hosted here dropped, and every hosted partition without a shard (new,
    /// or its shard gone after a restart with fewer cores) placed.
    pub fn reconcile(
        &self,
        image: &MetadataImage,
        node: i32,
        shards: usize,
    ) -> Vec<PlacementRecord> {
        let mut out = Vec::new();
        let mut kept = Placement::default();
        let mut ids: Vec<&Uuid> = self.topics.keys().collect();
        ids.sort();
        for id in ids {
            let Some(topic) = image.topic_by_id(id) else {
                out.push(PlacementRecord::Forget { topic: *id });
                continue;
            };
            let keep: BTreeMap<i32, usize> = self.topics[id]
                .iter()
                .filter(|(p, s)| {
                    **s < shards && topic.partition(**p).is_some_and(|m| m.hosted_by(node))
                })
                .map(|(p, s)| (*p, *s))
                .collect();
            if keep.len() != self.topics[id].len() {
                // Rewrite the topic's entry from scratch with what survives.
                out.push(PlacementRecord::Forget { topic: *id });
                if !keep.is_empty() {
                    out.push(PlacementRecord::Place {
                        topic: *id,
                        partitions: keep.iter().map(|(p, s)| (*p, *s)).collect(),
                    });
                }
            }
            kept.topics.insert(*id, keep);
        }
        let mut counts = kept.counts(shards);
        for topic in image.topics() {
            let partitions = kept.unplaced(topic, node, shards, &mut counts);
            if !partitions.is_empty() {
                out.push(PlacementRecord::Place {
                    topic: topic.id,
                    partitions,
                });
            }
        }
        out
    }
}

/// Picks a shard for each of `new_partitions` partitions, given how many each shard serves
/// already. Ties go to the lowest shard id, so results are deterministic.
pub fn place(counts: &mut [usize], new_partitions: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(new_partitions);
    if counts.is_empty() {
        return out;
    }
    for _ in 0..new_partitions {
        let (shard, _) = counts
            .iter()
            .enumerate()
            .min_by_key(|(i, c)| (**c, *i))
            .unwrap_or((0, &0));
        counts[shard] += 1;
        out.push(shard);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_evenly_and_fills_the_emptiest_first() {
        let mut counts = vec![0, 0];
        assert_eq!(place(&mut counts, 5), vec![0, 1, 0, 1, 0]);
        assert_eq!(place(&mut counts, 1), vec![1]);
        let mut skewed = vec![4, 0, 1];
        assert_eq!(place(&mut skewed, 4), vec![1, 1, 2, 1]);
        assert_eq!(skewed, vec![4, 3, 2]);
    }

    #[test]
    fn no_shards_places_nothing() {
        assert!(place(&mut [], 3).is_empty());
    }

    use crate::metadata::PartitionMeta;

    fn topic(name: &str, id: u128, hosts: &[i32]) -> TopicMeta {
        TopicMeta {
            name: name.into(),
            id: Uuid::from_u128(id),
            partitions: hosts.iter().map(|n| PartitionMeta::single(*n)).collect(),
            configs: Default::default(),
        }
    }

    fn image(topics: &[TopicMeta]) -> MetadataImage {
        let mut i = MetadataImage::default();
        for t in topics {
            i.apply(&MetadataRecord::CreateTopic { topic: t.clone() });
        }
        i
    }

    #[test]
    fn only_partitions_this_node_hosts_are_placed_and_balanced() {
        let t = topic("t", 1, &[1, 2, 1, 1]);
        let mut pl = Placement::default();
        let r = pl.place_topic(&t, 1, 2).unwrap();
        assert_eq!(
            r,
            PlacementRecord::Place {
                topic: t.id,
                partitions: vec![(0, 0), (2, 1), (3, 0)]
            }
        );
        pl.apply(&r);
        assert_eq!(pl.shard_of(&t.id, 1), None);
        assert_eq!(pl.shard_of(&t.id, 3), Some(0));
        assert_eq!(pl.counts(2), vec![2, 1]);
        assert!(pl.place_topic(&t, 1, 2).is_none());
    }

    #[test]
    fn records_place_and_forget_with_the_metadata() {
        let t = topic("t", 1, &[1, 1]);
        let img = image(std::slice::from_ref(&t));
        let mut pl = Placement::default();
        let grow = MetadataRecord::AddPartitions {
            name: "t".into(),
            partitions: vec![PartitionMeta::single(1)],
            first: Some(2),
        };
        for r in pl.changes_for(
            &MetadataImage::default(),
            &MetadataRecord::CreateTopic { topic: t.clone() },
            1,
            2,
        ) {
            pl.apply(&r);
        }
        for r in pl.changes_for(&img, &grow, 1, 2) {
            pl.apply(&r);
        }
        assert_eq!(pl.counts(2), vec![2, 1]);
        assert_eq!(pl.shard_of(&t.id, 2), Some(0));
        let del = MetadataRecord::DeleteTopic { name: "t".into() };
        assert_eq!(
            pl.changes_for(&img, &del, 1, 2),
            vec![PlacementRecord::Forget { topic: t.id }]
        );
        // The snapshot rebuilds the same map.
        let mut again = Placement::default();
        pl.snapshot_records().iter().for_each(|r| again.apply(r));
        assert_eq!(again, pl);
    }

    #[test]
    fn reconcile_keeps_what_fits_and_replaces_only_what_does_not() {
        let a = topic("a", 1, &[1, 1, 1]);
        let b = topic("b", 2, &[1, 1]);
        let mut pl = Placement::default();
        pl.apply(&PlacementRecord::Place {
            topic: a.id,
            partitions: vec![(0, 0), (1, 3), (2, 1), (7, 0)],
        });
        pl.apply(&PlacementRecord::Place {
            topic: Uuid::from_u128(99),
            partitions: vec![(0, 0)],
        });
        let img = image(&[a.clone(), b.clone()]);
        let changes = pl.reconcile(&img, 1, 2);
        for r in &changes {
            pl.apply(r);
        }
        // Kept where they were: a-0 on 0, a-2 on 1; a-1 (shard 3 is gone) and b re-placed.
        assert_eq!(pl.shard_of(&a.id, 0), Some(0));
        assert_eq!(pl.shard_of(&a.id, 2), Some(1));
        assert!(pl.shard_of(&a.id, 1).is_some_and(|s| s < 2));
        assert_eq!(pl.shard_of(&a.id, 7), None);
        assert!(pl.shard_of(&b.id, 0).is_some() && pl.shard_of(&b.id, 1).is_some());
        assert_eq!(pl.shard_of(&Uuid::from_u128(99), 0), None);
        let counts = pl.counts(2);
        assert_eq!(counts.iter().sum::<usize>(), 5);
        assert!(counts[0].abs_diff(counts[1]) <= 1);
        // Once in line, nothing more to do.
        assert!(pl.reconcile(&img, 1, 2).is_empty());
        // Another node id hosts nothing here.
        assert!(Placement::default().reconcile(&img, 2, 2).is_empty());
    }
}

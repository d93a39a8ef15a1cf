//! The per-shard state and how shard code finds it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use crate::config::BrokerConfig;
use crate::log::LogError;
use crate::metadata::{MetadataImage, MetadataRecord};
use crate::node::{Placement, PlacementRecord};
use crate::partition::Partition;
use crate::shard::waiters::Waiters;
use crate::timer::Timer;

/// (topic name, partition index).
pub type TopicPartition = (String, i32);

/// Everything one shard owns.
pub struct Shard {
    pub id: usize,
    pub config: BrokerConfig,
    image: RefCell<MetadataImage>,
    /// Which shard of this node serves each partition it hosts (`node::placement`); every shard
    /// has the same copy, changed only together with the metadata (`shard::publish`).
    placement: RefCell<Placement>,
    partitions: RefCell<HashMap<TopicPartition, Rc<Partition>>>,
    /// Partitions this shard owns whose logs failed to open (KAFKA_STORAGE_ERROR until restart).
    offline: RefCell<std::collections::HashSet<TopicPartition>>,
    /// Fetches waiting for appends, and the per-partition group-commit gates.
    pub waiters: Waiters,
    /// This shard's timing wheel: deadlines of every delayed operation (long-poll fetch, group
    /// session and rebalance timeouts). 1 ms ticks, 512 slots: one level spans 512 ms, two
    /// levels 4.4 minutes, three 37 hours (bench/timer/README.md).
    pub timer: Timer,
    /// The consumer-group coordinator for the `__consumer_offsets` partitions this shard owns;
    /// set once at startup, after the partitions are replayed.
    pub groups: std::cell::OnceCell<Rc<crate::group::GroupCoordinator>>,
    /// The metadata quorum's leader as last published (`shard::publish::publish_quorum_leader`),
    /// with that publication's sequence number (a late one never overwrites a newer one).
    quorum_leader: std::cell::Cell<(u64, Option<i32>)>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Shard>>> = const { RefCell::new(None) };
}

/// Makes `shard` the current thread's shard.
pub fn install(shard: Rc<Shard>) {
    CURRENT.with(|c| *c.borrow_mut() = Some(shard));
}

/// The shard running on this thread. Only shard threads call this; it is installed before any
/// task that could call it is spawned.
pub fn current() -> Rc<Shard> {
    CURRENT.with(|c| c.borrow().clone()).unwrap_or_else(|| {
        // Reached only by a programming error (shard code on a non-shard thread).
        panic!("shard::current() called outside a shard")
    })
}

impl Shard {
    /// Creates the shard's state; call on the shard's own executor (the timer starts a task).
    pub fn new(id: usize, config: BrokerConfig) -> Shard {
        Shard {
            id,
            config,
            image: RefCell::new(MetadataImage::default()),
            placement: RefCell::new(Placement::default()),
            partitions: RefCell::new(HashMap::new()),
            offline: RefCell::new(Default::default()),
            waiters: Waiters::default(),
            timer: Timer::new(1, 512),
            groups: std::cell::OnceCell::new(),
            quorum_leader: std::cell::Cell::new((0, None)),
        }
    }

    /// The metadata quorum's leader (the active controller), if one is known.
    pub fn quorum_leader(&self) -> Option<i32> {
        self.quorum_leader.get().1
    }

    /// Records a published quorum leader unless a later publication arrived first.
    pub(super) fn set_quorum_leader(&self, seq: u64, leader: Option<i32>) {
        if seq > self.quorum_leader.get().0 {
            self.quorum_leader.set((seq, leader));
        }
    }

    /// Runs `f` with a read-only view of the metadata. Never hold the view across an await.
    pub fn with_image<T>(&self, f: impl FnOnce(&MetadataImage) -> T) -> T {
        f(&self.image.borrow())
    }

    /// The shard of this node serving partition `partition` of `topic` as its leader, if the
    /// topic exists, this node hosts that partition and leads it (clients produce to and fetch
    /// from the leader only; a fenced or deposed leader answers NOT_LEADER_OR_FOLLOWER).
    pub fn shard_of(&self, topic: &str, partition: i32) -> Option<usize> {
        let id = self.with_image(|i| {
            let t = i.topic(topic)?;
            (t.partition(partition)?.leader == self.config.node_id()).then_some(t.id)
        })?;
        self.placement.borrow().shard_of(&id, partition)
    }

    /// Runs `f` with this node's placement. Never hold it across an await.
    pub fn with_placement<T>(&self, f: impl FnOnce(&Placement) -> T) -> T {
        f(&self.placement.borrow())
    }

    /// The partition `tp` if this shard owns it and its log is open.
    pub fn partition(&self, tp: &TopicPartition) -> Option<Rc<Partition>> {
        self.partitions.borrow().get(tp).cloned()
    }

    pub fn partitions_by_name(&self) -> Vec<(TopicPartition, Rc<Partition>)> {
        self.partitions
            .borrow()
            .iter()
            .map(|(tp, p)| (tp.clone(), p.clone()))
            .collect()
    }

    /// A numeric topic setting's effective value for `topic` (see `BrokerConfig::topic_value`).
    pub fn topic_value(&self, topic: &str, key: &str) -> i64 {
        let overrides = self
            .with_image(|i| i.topic(topic).map(|t| t.configs.clone()))
            .unwrap_or_default();
        self.config.topic_value(&overrides, key)
    }

    pub fn partitions(&self) -> Vec<Rc<Partition>> {
        self.partitions.borrow().values().cloned().collect()
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        super::partition_dirs::partition_dir(&self.config.data_dir(), topic, partition)
    }

    /// Replaces this shard's placement (start-up, before the metadata is loaded).
    pub fn set_placement(&self, placement: Placement) {
        *self.placement.borrow_mut() = placement;
    }

    /// Applies a metadata record and the placement changes it brings on this node (see
    /// `shard::publish`): updates the image and placement, and opens or removes the logs of the
    /// partitions this shard owns.
    pub async fn apply(
        &self,
        record: &MetadataRecord,
        placed: &[PlacementRecord],
    ) -> Result<(), LogError> {
        // Best effort per partition: one partition whose files cannot be opened or removed must
        // not stop the others, nor (at startup) the whole broker. It is marked offline and
        // answers KAFKA_STORAGE_ERROR until a restart opens it.
        let before: Vec<TopicPartition> = self.owned_partitions(record);
        self.image.borrow_mut().apply(record);
        {
            let mut placement = self.placement.borrow_mut();
            placed.iter().for_each(|r| placement.apply(r));
        }
        let after: Vec<TopicPartition> = self.owned_partitions(record);
        for tp in &before {
            if !after.contains(tp) {
                let removed = self.partitions.borrow_mut().remove(tp);
                self.offline.borrow_mut().remove(tp);
                self.waiters.remove(tp);
                if let Some(partition) = removed {
                    if let Err(e) = partition.close().await {
                        tracing::error!("closing {}-{}: {e}", tp.0, tp.1);
                    }
                }
                if let MetadataRecord::DeleteTopic { .. } = record {
                    // Other tasks may still hold the log briefly (an in-flight fetch); deleting
                    // the directory under them makes their reads fail cleanly.
                    let dir = self.partition_dir(&tp.0, tp.1);
                    if let Err(e) = super::partition_dirs::delete_partition_dir(&dir).await {
                        tracing::error!("removing {}-{}: {e}", tp.0, tp.1);
                    }
                }
            }
        }
        if matches!(
            record,
            MetadataRecord::RegisterBroker { .. }
                | MetadataRecord::FenceBroker { .. }
                | MetadataRecord::UnfenceBroker { .. }
                | MetadataRecord::SetPartitions { .. }
        ) {
            // Leadership of any partition may have moved with the broker.
            for (tp, partition) in self.partitions_by_name() {
                if let Some(meta) = self.with_image(|i| i.partition(&tp.0, tp.1).cloned()) {
                    partition.follow_metadata(meta.replicas, meta.leader_epoch);
                }
            }
        }
        if let MetadataRecord::SetTopicConfigs { configs, .. } = record {
            // Open logs pick the new settings up for their next append / roll / retention run.
            let config = self.config.log_config(configs);
            for tp in &after {
                if let Some(partition) = self.partition(tp) {
                    partition.log().set_config(config.clone());
                }
            }
        }
        for tp in after {
            if self.partitions.borrow().contains_key(&tp) {
                continue;
            }
            let Some((overrides, meta)) = self.with_image(|i| {
                let t = i.topic(&tp.0)?;
                Some((t.configs.clone(), t.partition(tp.1)?.clone()))
            }) else {
                continue;
            };
            match Partition::open(
                &self.partition_dir(&tp.0, tp.1),
                self.config.log_config(&overrides),
                meta.replicas,
                meta.leader_epoch,
            )
            .await
            {
                Ok(partition) => {
                    self.offline.borrow_mut().remove(&tp);
                    self.partitions.borrow_mut().insert(tp, Rc::new(partition));
                }
                Err(e) => {
                    tracing::error!(
                        "partition {}-{} is offline: opening its log failed: {e}",
                        tp.0,
                        tp.1
                    );
                    self.offline.borrow_mut().insert(tp);
                }
            }
        }
        Ok(())
    }

    /// True if this shard owns `tp` but could not open its log.
    pub fn is_offline(&self, tp: &TopicPartition) -> bool {
        self.offline.borrow().contains(tp)
    }

    /// The partitions of the topic a record names that this shard owns right now.
    fn owned_partitions(&self, record: &MetadataRecord) -> Vec<TopicPartition> {
        let name = match record {
            MetadataRecord::ClusterId { .. }
            | MetadataRecord::ProducerIdBlock { .. }
            | MetadataRecord::RegisterBroker { .. }
            | MetadataRecord::FenceBroker { .. }
            | MetadataRecord::UnfenceBroker { .. } => return Vec::new(),
            MetadataRecord::CreateTopic { topic } => &topic.name,
            MetadataRecord::AddPartitions { name, .. }
            | MetadataRecord::SetPartitions { name, .. }
            | MetadataRecord::DeleteTopic { name }
            | MetadataRecord::SetTopicConfigs { name, .. } => name,
        };
        let placement = self.placement.borrow();
        self.with_image(|img| {
            img.topic(name)
                .map(|t| {
                    (0..t.partitions.len() as i32)
                        .filter(|p| placement.shard_of(&t.id, *p) == Some(self.id))
                        .map(|p| (name.clone(), p))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// Closes every log (sync + clean-shutdown marker). Errors are logged, not fatal: the next
    /// start recovers whatever was not closed cleanly.
    pub async fn close_all(&self) {
        let partitions: Vec<_> = self.partitions.borrow_mut().drain().collect();
        for ((topic, p), partition) in partitions {
            if let Err(e) = partition.close().await {
                tracing::warn!("closing {topic}-{p}: {e}");
            }
        }
    }
}

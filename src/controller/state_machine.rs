//! The metadata as the quorum's state machine: every committed record is checked against the
//! committed image (a record that does not fit — a topic created twice, a change to a topic that
//! does not exist, a producer-id block already taken — is skipped alike on every node, and its
//! proposer is told why), applied to it, and, once the node serves, published to every shard
//! (`shard::publish`: placement, then each shard's image and partitions).
//!
//! At start the node replays its log "offline" (the image only, nothing opened), then loads the
//! result on the shards in one go, and from then on publishes record by record.

use std::collections::HashSet;

use crate::metadata::{MetadataImage, MetadataRecord};
use crate::quorum::driver::StateMachine;
use crate::shard::publish::publish;

#[derive(Default)]
pub struct MetadataStateMachine {
    pub image: MetadataImage,
    /// Publishing to the shards (after start-up has loaded them).
    pub online: bool,
    /// Topics deleted by records replayed at start (their directories may have outlived a crash).
    pub deleted_at_start: HashSet<String>,
    /// While the shards load at start: records applied meanwhile, for start-up to publish
    /// once they are loaded (then `online`).
    pub backlog: Option<std::rc::Rc<std::cell::RefCell<Vec<MetadataRecord>>>>,
}

impl MetadataStateMachine {
    async fn apply_record(&mut self, record: MetadataRecord) -> Result<(), String> {
        if let Some(why) = self.image.refusal(&record) {
            if self.online {
                tracing::info!("metadata change skipped: {why}");
            }
            return Err(why);
        }
        if self.online {
            log_change(&self.image, &record);
            if let Err(e) = publish(record.clone()).await {
                // A shard that did not answer; the committed image moves on regardless.
                tracing::error!("publishing a metadata change: {e}");
            }
        } else if let Some(backlog) = &self.backlog {
            backlog.borrow_mut().push(record.clone());
        } else if let MetadataRecord::DeleteTopic { name } = &record {
            self.deleted_at_start.insert(name.clone());
        } else if let MetadataRecord::CreateTopic { topic } = &record {
            self.deleted_at_start.remove(&topic.name);
        }
        self.image.apply(&record);
        Ok(())
    }
}

impl StateMachine for MetadataStateMachine {
    async fn apply(&mut self, record: &[u8]) -> Result<(), String> {
        let record: MetadataRecord = serde_json::from_slice(record)
            .map_err(|e| format!("undecodable metadata record skipped: {e}"))?;
        self.apply_record(record).await
    }

    async fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let target = MetadataImage::decode_snapshot(snapshot)?;
        if !self.online {
            if let Some(backlog) = &self.backlog {
                backlog.borrow_mut().extend(self.image.changes_to(&target));
            }
            self.image = target;
            return Ok(());
        }
        for r in self.image.changes_to(&target) {
            let _ = self.apply_record(r).await;
        }
        Ok(())
    }

    fn snapshot(&self) -> Vec<u8> {
        self.image.encode_snapshot()
    }

    fn snapshot_records(&self) -> usize {
        self.image.topics().count() + 2
    }
}

/// What an operator reads in the broker log for each metadata change (Kafka's controller and
/// brokers log theirs the same way), before it is applied.
fn log_change(before: &MetadataImage, record: &MetadataRecord) {
    match record {
        MetadataRecord::CreateTopic { topic } => {
            tracing::info!(
            "created topic {} with topic id {} and {} partition(s), replicas {:?}, configs {:?}",
            topic.name,
            topic.id,
            topic.partitions.len(),
            topic.partitions.first().map(|p| p.replicas.clone()).unwrap_or_default(),
            topic.configs
        )
        }
        MetadataRecord::DeleteTopic { name } => tracing::info!(
            "deleted topic {name} with topic id {}",
            before
                .topic(name)
                .map(|t| t.id.to_string())
                .unwrap_or_default()
        ),
        MetadataRecord::AddPartitions {
            name, partitions, ..
        } => tracing::info!(
            "added {} partition(s) to topic {name}: {} now",
            partitions.len(),
            before.topic(name).map_or(0, |t| t.partitions.len()) + partitions.len()
        ),
        MetadataRecord::SetPartitions {
            name, partitions, ..
        } => {
            let before = before
                .topic(name)
                .map(|t| t.partitions.clone())
                .unwrap_or_default();
            for (i, (old, new)) in before.iter().zip(partitions).enumerate() {
                if old != new {
                    tracing::info!(
                        "partition {name}-{i}: leader {} -> {} (epoch {}), ISR {:?} -> {:?}",
                        old.leader,
                        new.leader,
                        new.leader_epoch,
                        old.isr,
                        new.isr
                    );
                }
            }
        }
        MetadataRecord::SetTopicConfigs { name, configs } => {
            tracing::info!("changed the configuration of topic {name}: overrides now {configs:?}")
        }
        MetadataRecord::ClusterId { id } => tracing::info!("cluster id {id}"),
        MetadataRecord::RegisterBroker { broker } => tracing::info!(
            "registered broker {} at {}:{} (incarnation {})",
            broker.id,
            broker.host,
            broker.port,
            broker.incarnation
        ),
        MetadataRecord::FenceBroker {
            id,
            incarnation,
            controlled,
        } => {
            let led = led_by(before, *id);
            let why = match controlled {
                true => "controlled shutdown",
                false => "no heartbeat within broker.session.timeout.ms",
            };
            tracing::warn!(
                "fenced broker {id} (incarnation {incarnation}): {why}; {led} partition(s) it \
                 led elect a new leader or go offline"
            )
        }
        MetadataRecord::UnfenceBroker { id, incarnation } => {
            tracing::info!("unfenced broker {id} (incarnation {incarnation}): heartbeats are back")
        }
        MetadataRecord::ProducerIdBlock { end } => {
            tracing::debug!("producer ids below {end} reserved")
        }
    }
}

/// How many partitions broker `id` leads in `image`.
fn led_by(image: &MetadataImage, id: i32) -> usize {
    image
        .topics()
        .flat_map(|t| t.partitions.iter())
        .filter(|p| p.leader == id)
        .count()
}

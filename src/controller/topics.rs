//! Topic operations: create, delete, grow. Each runs on shard 0 under the controller lock (see
//! [`super::commit`]) and is answered once every shard has applied it.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::assignment::{self, assign, random};
use super::commit::{commit, controller_lock};
use crate::config::validate_topic_configs;
use crate::config::ConfigError;
use crate::metadata::topic_name::validate_topic_name;
use crate::metadata::{MetadataRecord, TopicMeta};
use crate::shard::current;

/// Kafka's limit on partitions per CreateTopics/CreatePartitions call is the broker's memory; we
/// cap one topic at this many partitions so a request cannot make us open millions of files.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// A topic to create (decoded from CreateTopics or from Metadata auto-creation).
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    /// -1 = broker default (`num.partitions`).
    pub num_partitions: i32,
    /// -1 = broker default.
    pub replication_factor: i16,
    /// Manual assignment: one broker-id list per partition (empty = automatic).
    pub assignments: Vec<Vec<i32>>,
    pub configs: Vec<(String, Option<String>)>,
    pub validate_only: bool,
}

/// The answer for one topic operation.
#[derive(Debug, Clone, Default)]
pub struct TopicOutcome {
    pub name: String,
    pub id: Uuid,
    pub error_code: i16,
    pub error_message: Option<String>,
    pub num_partitions: i32,
    pub configs: BTreeMap<String, String>,
}

impl TopicOutcome {
    fn error(name: &str, e: ResponseError, message: impl Into<String>) -> TopicOutcome {
        TopicOutcome {
            name: name.into(),
            error_code: e.code(),
            error_message: Some(message.into()),
            ..Default::default()
        }
    }
}

/// Creates topics; one outcome per spec, in order.
pub async fn create_topics(specs: Vec<TopicSpec>) -> Vec<TopicOutcome> {
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        out.push(create_topic(spec).await);
    }
    out
}

/// Memory one partition may take, for the budget below: its log, segment and metadata structures,
/// idle producer state and index entries (measured ~5 KiB at 50,000 partitions, see bench/README
/// "partitions at scale"), with room for the active segment's index and producer ids in use.
const BYTES_PER_PARTITION: u64 = 64 * 1024;

/// Whether `more` partitions fit what this broker can serve. Descriptors no longer bound it
/// (segment files are opened on demand under `log.open.files.max`, see `runtime::file_cache`);
/// memory does: at most one partition per [`BYTES_PER_PARTITION`] of physical memory.
/// `max.partitions` (when lower) is the operator's own bound. A request past the budget is
/// refused whole, before anything is written.
fn within_partition_budget(more: usize) -> Result<(), String> {
    let shard = current();
    let have: usize = shard.with_image(|i| i.topics().map(|t| t.partitions.len()).sum());
    let memory = physical_memory_bytes();
    let by_memory = (memory / BYTES_PER_PARTITION) as usize;
    let configured = shard.config.int("max.partitions").max(0) as usize;
    let budget = by_memory.min(configured);
    if have + more > budget {
        return Err(format!(
            "{more} more partitions would make {} on this broker, which can serve {budget} \
             (max.partitions {configured}; {} MiB of memory at {} KiB per partition)",
            have + more,
            memory >> 20,
            BYTES_PER_PARTITION >> 10
        ));
    }
    Ok(())
}

/// Physical memory of the machine (`sysconf`); 1 GiB if it cannot be read.
fn physical_memory_bytes() -> u64 {
    // SAFETY: `sysconf` reads system constants; no memory is passed.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    match (u64::try_from(pages), u64::try_from(page)) {
        (Ok(p), Ok(s)) if p > 0 && s > 0 => p.saturating_mul(s),
        _ => 1 << 30,
    }
}

async fn create_topic(spec: TopicSpec) -> TopicOutcome {
    let lock = controller_lock();
    let _serial = match lock.lock().await {
        Ok(g) => g,
        Err(e) => {
            return TopicOutcome::error(&spec.name, ResponseError::KafkaStorageError, e.to_string())
        }
    };
    let shard = current();
    let name = spec.name.clone();
    if let Err(why) = validate_topic_name(&name) {
        return TopicOutcome::error(&name, ResponseError::InvalidTopicException, why);
    }
    if shard.with_image(|i| i.topic(&name).is_some()) {
        return TopicOutcome::error(
            &name,
            ResponseError::TopicAlreadyExists,
            format!("Topic '{name}' already exists."),
        );
    }
    let partitions = match (spec.num_partitions, spec.assignments.len()) {
        (-1, 0) => shard.config.int("num.partitions") as i32,
        (-1, n) => n as i32,
        (p, 0) => p,
        (_, _) => {
            return TopicOutcome::error(
                &name,
                ResponseError::InvalidRequest,
                "Both numPartitions and replicaAssignments were set.",
            )
        }
    };
    if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
        return TopicOutcome::error(
            &name,
            ResponseError::InvalidPartitions,
            format!("Number of partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC}, got {partitions}."),
        );
    }
    if let Err(why) = within_partition_budget(partitions as usize) {
        return TopicOutcome::error(&name, ResponseError::InvalidPartitions, why);
    }
    let rf = if spec.replication_factor == -1 {
        shard.config.int("default.replication.factor") as i16
    } else {
        spec.replication_factor
    };
    let brokers = registered_brokers();
    if spec.assignments.is_empty() {
        if let Err(why) = check_replication_factor(rf, brokers.len()) {
            return TopicOutcome::error(&name, ResponseError::InvalidReplicationFactor, why);
        }
    }
    if let Err(why) = check_assignments(&spec.assignments, &brokers) {
        return TopicOutcome::error(&name, ResponseError::InvalidReplicaAssignment, why);
    }
    let configs = match validate_topic_configs(
        spec.configs.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
    ) {
        Ok(c) => c,
        Err(ConfigError { key, message }) => {
            return TopicOutcome::error(
                &name,
                ResponseError::InvalidConfig,
                format!("Invalid config {key}: {message}"),
            )
        }
    };
    let mut effective = shard.config.topic_defaults();
    effective.extend(configs.clone());
    let id = Uuid::new_v4();
    let ok = TopicOutcome {
        name: name.clone(),
        id,
        error_code: 0,
        error_message: None,
        num_partitions: partitions,
        configs: effective,
    };
    if spec.validate_only {
        return TopicOutcome {
            id: Uuid::nil(),
            ..ok
        };
    }
    let replicas = match spec.assignments.is_empty() {
        true => assign(&brokers, 1, 0, partitions as usize, random(), random()),
        false => spec.assignments.clone(),
    };
    let topic = TopicMeta {
        name: name.clone(),
        id,
        partitions: assignment::partitions(replicas),
        configs,
    };
    match commit(MetadataRecord::CreateTopic { topic }).await {
        Ok(()) => ok,
        // Refused: another node created it first.
        Err(e) => TopicOutcome::error(&name, e.error(ResponseError::TopicAlreadyExists), e),
    }
}

/// Which topic to delete.
#[derive(Debug, Clone)]
pub enum DeleteTarget {
    Name(String),
    Id(Uuid),
}

/// Deletes topics; one outcome per target.
pub async fn delete_topics(targets: Vec<DeleteTarget>) -> Vec<TopicOutcome> {
    let shard = current();
    let mut out = Vec::with_capacity(targets.len());
    let lock = controller_lock();
    for target in targets {
        let _serial = lock.lock().await;
        let found = shard.with_image(|i| match &target {
            DeleteTarget::Name(n) => i.topic(n).map(|t| (t.name.clone(), t.id)),
            DeleteTarget::Id(id) => i.topic_by_id(id).map(|t| (t.name.clone(), t.id)),
        });
        let outcome = match (found, &target) {
            (Some((name, id)), _) if name == crate::group::OFFSETS_TOPIC => TopicOutcome {
                id,
                ..TopicOutcome::error(
                    &name,
                    ResponseError::InvalidTopicException,
                    "cannot delete an internal topic",
                )
            },
            (Some((name, id)), _) => {
                match commit(MetadataRecord::DeleteTopic { name: name.clone() }).await {
                    Ok(()) => TopicOutcome {
                        name,
                        id,
                        ..Default::default()
                    },
                    // Refused: another node deleted it first.
                    Err(e) => TopicOutcome {
                        id,
                        ..TopicOutcome::error(
                            &name,
                            e.error(ResponseError::UnknownTopicOrPartition),
                            e,
                        )
                    },
                }
            }
            (None, DeleteTarget::Name(n)) => TopicOutcome::error(
                n,
                ResponseError::UnknownTopicOrPartition,
                "This server does not host this topic-partition.",
            ),
            (None, DeleteTarget::Id(id)) => TopicOutcome {
                id: *id,
                ..TopicOutcome::error(
                    "",
                    ResponseError::UnknownTopicId,
                    "This server does not host this topic ID.",
                )
            },
        };
        out.push(outcome);
    }
    out
}

/// Grows a topic to `count` partitions.
pub async fn create_partitions(
    name: String,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> TopicOutcome {
    let lock = controller_lock();
    let _serial = lock.lock().await;
    let shard = current();
    if name == crate::group::OFFSETS_TOPIC {
        // Group placement hashes over this topic's partition count: growing it would move
        // every group away from its committed offsets.
        return TopicOutcome::error(
            &name,
            ResponseError::InvalidTopicException,
            "cannot add partitions to an internal topic",
        );
    }
    let Some(existing) = shard.with_image(|i| i.topic(&name).map(|t| t.partitions.len() as i32))
    else {
        return TopicOutcome::error(
            &name,
            ResponseError::UnknownTopicOrPartition,
            format!("The topic '{name}' does not exist."),
        );
    };
    if count <= existing || count > MAX_PARTITIONS_PER_TOPIC {
        return TopicOutcome::error(
            &name,
            ResponseError::InvalidPartitions,
            format!("Topic currently has {existing} partitions, {count} would not be an increase (max {MAX_PARTITIONS_PER_TOPIC})."),
        );
    }
    if let Err(why) = within_partition_budget((count - existing) as usize) {
        return TopicOutcome::error(&name, ResponseError::InvalidPartitions, why);
    }
    let brokers = registered_brokers();
    if let Some(a) = &assignments {
        if a.len() as i32 != count - existing {
            return TopicOutcome::error(
                &name,
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "Increasing the number of partitions by {} but {} assignments provided.",
                    count - existing,
                    a.len()
                ),
            );
        }
        if let Err(why) = check_assignments(a, &brokers) {
            return TopicOutcome::error(&name, ResponseError::InvalidReplicaAssignment, why);
        }
    }
    if validate_only {
        return TopicOutcome {
            name,
            ..Default::default()
        };
    }
    match commit(MetadataRecord::AddPartitions {
        name: name.clone(),
        partitions: assignment::partitions(match assignments {
            Some(a) => a,
            None => assign(
                &brokers,
                1,
                existing as usize,
                (count - existing) as usize,
                random(),
                random(),
            ),
        }),
        first: Some(existing as usize),
    })
    .await
    {
        Ok(()) => TopicOutcome {
            name,
            ..Default::default()
        },
        // Refused: the topic was deleted or grown by another change first.
        Err(e) => TopicOutcome::error(&name, e.error(ResponseError::InvalidPartitions), e),
    }
}

/// Registered, unfenced brokers' ids, sorted (this node among them even before its
/// registration is applied here): where new replicas may go, as Kafka places only on
/// unfenced brokers.
fn registered_brokers() -> Vec<i32> {
    let shard = current();
    let mut ids: Vec<i32> =
        shard.with_image(|i| i.brokers().filter(|b| !b.fenced).map(|b| b.id).collect());
    let me = shard.config.node_id();
    if !ids.contains(&me) {
        ids.push(me);
        ids.sort();
    }
    ids
}

/// A replication factor this cluster can place. Replication itself is not built yet: until it
/// is, every partition has one replica, and asking for more is refused rather than pretended.
fn check_replication_factor(rf: i16, brokers: usize) -> Result<(), String> {
    if rf < 1 {
        return Err(format!(
            "Replication factor must be larger than 0, got {rf}."
        ));
    }
    if rf as usize > brokers {
        return Err(format!(
            "Replication factor: {rf} larger than available brokers: {brokers}."
        ));
    }
    if rf > 1 {
        return Err(format!(
            "Replication factor: {rf}: this shardlog does not replicate partitions yet; only 1 is \
             supported."
        ));
    }
    Ok(())
}

/// Explicit replica assignments: one registered broker per partition, none twice.
fn check_assignments(assignments: &[Vec<i32>], brokers: &[i32]) -> Result<(), String> {
    for (p, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() {
            return Err(format!("Partition {p} has an empty replica list."));
        }
        if let Some(b) = replicas.iter().find(|b| !brokers.contains(b)) {
            return Err(format!("The manual partition assignment includes broker {b}, which is not registered (brokers {brokers:?})."));
        }
        let mut sorted = replicas.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != replicas.len() {
            return Err(format!("Duplicate brokers not allowed in replica assignment: {replicas:?} for partition {p}."));
        }
        check_replication_factor(replicas.len() as i16, brokers.len())?;
    }
    Ok(())
}

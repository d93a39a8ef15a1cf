//! Metadata changes, run on shard 0 (the metadata owner).
//!
//! Each change is validated against shard 0's image, written durably to the metadata log, applied
//! on shard 0 and then on every other shard before the caller is answered — so a client that sees
//! its CreateTopics succeed can produce through any connection, whatever shard accepted it.
//!
//! Changes are serialized: each operation holds the controller lock from its validation until
//! every shard has applied it, so two concurrent requests for one name cannot both pass
//! validation, and a delete has renamed a topic's directories before a create of the same name
//! can run. Holding it across awaits is what lets the metadata log's write and fdatasync run on
//! the blocking-thread pool instead of stalling shard 0's clients.

use std::collections::BTreeMap;
use std::io;

use futures_util::future::join_all;
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::current;
use crate::config::{validate_topic_configs, ConfigError};
use crate::metadata::placement::place;
use crate::metadata::topic_name::validate_topic_name;
use crate::metadata::{MetadataImage, MetadataRecord, TopicMeta};
use crate::runtime::file::{blocking, SerialLock};
use crate::runtime::{shard_count, submit_to};

/// The shard that owns metadata.
pub const CONTROLLER_SHARD: usize = 0;

thread_local! {
    static CONTROLLER_LOCK: std::rc::Rc<SerialLock> = std::rc::Rc::new(SerialLock::new());
}

/// The lock every metadata change holds from validation to its last shard's apply.
fn controller_lock() -> std::rc::Rc<SerialLock> {
    CONTROLLER_LOCK.with(|l| l.clone())
}

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
    let node_id = shard.config.node_id();
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
    if rf != 1 && spec.assignments.is_empty() {
        return TopicOutcome::error(
            &name,
            ResponseError::InvalidReplicationFactor,
            format!("Replication factor: {rf} larger than available brokers: 1."),
        );
    }
    if spec.assignments.iter().any(|a| a.as_slice() != [node_id]) {
        return TopicOutcome::error(
            &name,
            ResponseError::InvalidReplicaAssignment,
            format!("Every replica must be broker {node_id}."),
        );
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
    let mut counts = shard.with_image(|i| i.partitions_per_shard(shard_count()));
    let shards = place(&mut counts, partitions as usize);
    let topic = TopicMeta {
        name: name.clone(),
        id,
        partitions: shards,
        configs,
    };
    match commit(MetadataRecord::CreateTopic { topic }).await {
        Ok(()) => ok,
        Err(e) => TopicOutcome::error(&name, ResponseError::KafkaStorageError, e),
    }
}

/// Removes `<data>/<topic>-<p>` directories for a topic that does not exist (yet).
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
                    Err(e) => TopicOutcome {
                        id,
                        ..TopicOutcome::error(&name, ResponseError::KafkaStorageError, e)
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
    let node_id = shard.config.node_id();
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
    if let Some(a) = &assignments {
        if a.len() as i32 != count - existing || a.iter().any(|b| b.as_slice() != [node_id]) {
            return TopicOutcome::error(
                &name,
                ResponseError::InvalidReplicaAssignment,
                "Invalid replica assignment.",
            );
        }
    }
    if validate_only {
        return TopicOutcome {
            name,
            ..Default::default()
        };
    }
    let mut counts = shard.with_image(|i| i.partitions_per_shard(shard_count()));
    let shards = place(&mut counts, (count - existing) as usize);
    match commit(MetadataRecord::AddPartitions {
        name: name.clone(),
        shards,
    })
    .await
    {
        Ok(()) => TopicOutcome {
            name,
            ..Default::default()
        },
        Err(e) => TopicOutcome::error(&name, ResponseError::KafkaStorageError, e),
    }
}

/// IncrementalAlterConfigs operation codes (Kafka's `AlterConfigOp.OpType`).
pub const OP_SET: i8 = 0;
pub const OP_DELETE: i8 = 1;
pub const OP_APPEND: i8 = 2;
pub const OP_SUBTRACT: i8 = 3;

/// Topic settings whose values are comma-separated lists (Kafka's `ConfigDef.Type.LIST`): the only
/// ones APPEND and SUBTRACT may change.
const LIST_SETTINGS: &[&str] = &["cleanup.policy"];

/// A change to one topic's configuration.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    /// IncrementalAlterConfigs: `(key, operation, value)` applied to the current overrides.
    Incremental(Vec<(String, i8, Option<String>)>),
    /// AlterConfigs: the complete new set of overrides (keys not named return to the default).
    Replace(Vec<(String, Option<String>)>),
}

/// Why a config change was refused: Kafka's error and message.
pub type ConfigRefusal = (ResponseError, String);

/// The topic's new overrides after `change`, validated exactly as CreateTopics configs are.
/// `defaults` are the broker-level defaults (APPEND/SUBTRACT start from the effective value).
pub fn apply_config_change(
    current: &BTreeMap<String, String>,
    defaults: &BTreeMap<String, String>,
    change: &ConfigChange,
) -> Result<BTreeMap<String, String>, ConfigRefusal> {
    let invalid_request = |m: String| (ResponseError::InvalidRequest, m);
    let mut seen = std::collections::BTreeSet::new();
    let mut next: BTreeMap<String, Option<String>>;
    match change {
        ConfigChange::Replace(pairs) => {
            next = BTreeMap::new();
            for (key, value) in pairs {
                if !seen.insert(key.clone()) {
                    return Err(invalid_request("Error due to duplicate config keys".into()));
                }
                let Some(v) = value else {
                    return Err(invalid_request(format!(
                        "Null value not supported for topic configs: {key}"
                    )));
                };
                next.insert(key.clone(), Some(v.clone()));
            }
        }
        ConfigChange::Incremental(ops) => {
            next = current
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            for (key, op, value) in ops {
                if !seen.insert(key.clone()) {
                    return Err(invalid_request("Error due to duplicate config keys".into()));
                }
                match *op {
                    OP_SET => {
                        let Some(v) = value else {
                            return Err(invalid_request(format!(
                                "Null value not supported for : {key}"
                            )));
                        };
                        next.insert(key.clone(), Some(v.clone()));
                    }
                    // `None` still names the key, so an unknown key is refused below.
                    OP_DELETE => {
                        next.insert(key.clone(), None);
                    }
                    OP_APPEND | OP_SUBTRACT => {
                        let verb = if *op == OP_APPEND {
                            "append"
                        } else {
                            "subtract"
                        };
                        if !LIST_SETTINGS.contains(&key.as_str()) {
                            // Unknown keys are INVALID_CONFIG too (from validation), so check
                            // them first for the clearer message.
                            validate_topic_configs([(key.as_str(), None)])
                                .map_err(config_refusal)?;
                            return Err((
                                ResponseError::InvalidConfig,
                                format!("Config value {verb} is not allowed for config key: {key}"),
                            ));
                        }
                        let split = |s: &str| -> Vec<String> {
                            s.split(',')
                                .map(|x| x.trim().to_string())
                                .filter(|x| !x.is_empty())
                                .collect()
                        };
                        let old = next
                            .get(key)
                            .cloned()
                            .flatten()
                            .or_else(|| defaults.get(key).cloned())
                            .unwrap_or_default();
                        let mut parts = split(&old);
                        let given = split(value.as_deref().unwrap_or(""));
                        if *op == OP_APPEND {
                            for g in given {
                                if !parts.contains(&g) {
                                    parts.push(g);
                                }
                            }
                        } else {
                            parts.retain(|p| !given.contains(p));
                        }
                        next.insert(key.clone(), Some(parts.join(",")));
                    }
                    other => {
                        return Err(invalid_request(format!(
                            "Unknown alter config operation {other} for {key}"
                        )))
                    }
                }
            }
        }
    }
    validate_topic_configs(next.iter().map(|(k, v)| (k.as_str(), v.as_deref())))
        .map_err(config_refusal)
}

fn config_refusal(ConfigError { key, message }: ConfigError) -> ConfigRefusal {
    (
        ResponseError::InvalidConfig,
        format!("Invalid config {key}: {message}"),
    )
}

/// Settings of `__consumer_offsets` that no client may change: each could delete committed
/// offsets.
const OFFSETS_TOPIC_FIXED: &[&str] = &["retention.ms", "retention.bytes", "cleanup.policy"];

/// Changes a topic's configuration: validated on shard 0, persisted as a `SetTopicConfigs`
/// record, then applied on every shard (whose open logs take the new `LogConfig`).
pub async fn alter_topic_configs(
    name: String,
    change: ConfigChange,
    validate_only: bool,
) -> Result<(), ConfigRefusal> {
    let lock = controller_lock();
    let _serial = lock.lock().await;
    let shard = current();
    let Some(current_configs) = shard.with_image(|i| i.topic(&name).map(|t| t.configs.clone()))
    else {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("Topic '{name}' does not exist."),
        ));
    };
    let configs = apply_config_change(&current_configs, &shard.config.topic_defaults(), &change)?;
    if name == crate::group::OFFSETS_TOPIC {
        // Committed offsets live in __consumer_offsets until it is compacted (not yet
        // implemented): time or size retention on it would delete every group's offsets.
        for key in OFFSETS_TOPIC_FIXED {
            if configs.get(*key) != current_configs.get(*key) {
                return Err((
                    ResponseError::InvalidConfig,
                    format!(
                        "Invalid config {key}: {} keeps committed offsets until they expire \
                         (offsets.retention.minutes); changing {key} would delete them",
                        crate::group::OFFSETS_TOPIC
                    ),
                ));
            }
        }
    }
    if validate_only || configs == current_configs {
        return Ok(());
    }
    commit(MetadataRecord::SetTopicConfigs { name, configs })
        .await
        .map_err(|e| (ResponseError::KafkaStorageError, e))
}

/// Producer ids are reserved this many at a time, so the metadata log sees one record per block.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Hands out a new producer id (InitProducerId for idempotent producers). Ids are never reused:
/// a block is persisted before any id in it is returned.
pub async fn allocate_producer_id() -> Result<i64, String> {
    let shard = current();
    let (next, end) = shard.producer_ids.get();
    if next < end {
        shard.producer_ids.set((next + 1, end));
        return Ok(next);
    }
    // The block is used up: reserve the next one, durably, before handing out any id of it.
    // Callers arriving meanwhile wait here and then take ids from the new block.
    let lock = controller_lock();
    let _serial = lock.lock().await;
    let (next, end) = shard.producer_ids.get();
    if next < end {
        shard.producer_ids.set((next + 1, end));
        return Ok(next);
    }
    let new_end = end + PRODUCER_ID_BLOCK;
    persist(vec![MetadataRecord::ProducerIdBlock { end: new_end }]).await?;
    shard.producer_ids.set((end + 1, new_end));
    Ok(end)
}

/// Appends records to the metadata log, written and fdatasync-ed on the blocking-thread pool.
/// The caller holds the controller lock, so no other change uses the store meanwhile.
async fn persist(records: Vec<MetadataRecord>) -> Result<(), String> {
    let shard = current();
    let Some(mut store) = shard.store.borrow_mut().take() else {
        return Err("metadata changes must run on shard 0".to_string());
    };
    let (store, written) = blocking(move || {
        let r = store.append(&records);
        (store, r)
    })
    .await;
    *shard.store.borrow_mut() = Some(store);
    written.map_err(|e| format!("metadata log: {e}"))
}

/// Persists a record, then applies it on shard 0 and on every other shard.
async fn commit(record: MetadataRecord) -> Result<(), String> {
    let shard = current();
    persist(vec![record.clone()]).await?;
    // Shard 0 first: its image changes on the first poll, before any other request can run.
    shard.apply(&record).await.map_err(|e| e.to_string())?;
    broadcast(vec![record], false).await
}

/// Applies `records` on every shard other than this one (and on this one too if `include_self`).
async fn broadcast(records: Vec<MetadataRecord>, include_self: bool) -> Result<(), String> {
    let me = current().id;
    let calls = (0..shard_count())
        .filter(|s| include_self || *s != me)
        .map(|s| {
            let records = records.clone();
            submit_to(s, move || async move {
                let shard = current();
                for r in &records {
                    shard.apply(r).await.map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            })
        });
    for r in join_all(calls).await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Startup on shard 0: replays the metadata log, gives the data directory a cluster id, moves
/// partitions whose shard no longer exists (restart with fewer shards), and loads the resulting
/// metadata on every shard (opening and recovering each shard's partition logs).
/// Records of history the metadata log may carry beyond twice its snapshot before start-up
/// compacts it.
const METADATA_COMPACT_SLACK: usize = 1_000;

pub async fn bootstrap() -> io::Result<()> {
    let shard = current();
    let replayed = {
        let data_dir = shard.config.data_dir();
        let (store, records) =
            blocking(move || crate::metadata::store::MetadataStore::open(&data_dir)).await?;
        *shard.store.borrow_mut() = Some(store);
        records
    };
    let mut image = MetadataImage::default();
    for r in &replayed {
        image.apply(r);
    }
    let mut new_records = Vec::new();
    if image.cluster_id.is_empty() {
        let id = match shard.config.get("cluster.id") {
            "" => Uuid::new_v4().simple().to_string(),
            id => id.to_string(),
        };
        new_records.push(MetadataRecord::ClusterId { id });
    }
    let shards = shard_count();
    let mut counts = image.partitions_per_shard(shards);
    for t in image.topics() {
        for (p, s) in t.partitions.iter().enumerate() {
            if *s >= shards {
                let shard = place(&mut counts, 1).first().copied().unwrap_or(0);
                new_records.push(MetadataRecord::MovePartition {
                    name: t.name.clone(),
                    partition: p,
                    shard,
                });
            }
        }
    }
    if !new_records.is_empty() {
        persist(new_records.clone())
            .await
            .map_err(io::Error::other)?;
        for r in &new_records {
            image.apply(r);
        }
    }
    shard
        .producer_ids
        .set((image.producer_id_block_end, image.producer_id_block_end));
    // Directories of deleted topics a crash left behind, before any partition is opened.
    let deleted: std::collections::HashSet<String> = replayed
        .iter()
        .filter_map(|r| match r {
            MetadataRecord::DeleteTopic { name } if image.topic(name).is_none() => {
                Some(name.clone())
            }
            _ => None,
        })
        .collect();
    let data_dir = shard.config.data_dir();
    let listed = image.clone();
    match crate::runtime::file::blocking(move || {
        super::partition_dirs::clean_data_dir(&data_dir, &listed, &deleted)
    })
    .await
    {
        Ok(c) if !c.removed.is_empty() => {
            tracing::info!("removed directories of deleted partitions: {:?}", c.removed)
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cleaning the data directory: {e}"),
    }
    // Compact the metadata log to the current state once the history is much longer (every
    // create, delete and config change is a line; the cleanup above no longer needs the
    // deletes). Before any other change can be committed.
    let snapshot_records = image.snapshot_records();
    if replayed.len() + new_records.len() > 2 * snapshot_records.len() + METADATA_COMPACT_SLACK {
        let taken = shard.store.borrow_mut().take();
        if let Some(mut store) = taken {
            let records = snapshot_records.clone();
            let (store, rewritten) = blocking(move || {
                let r = store.rewrite(&records);
                (store, r)
            })
            .await;
            *shard.store.borrow_mut() = Some(store);
            rewritten?;
        }
        tracing::info!(
            "metadata log compacted from {} records to {}",
            replayed.len() + new_records.len(),
            snapshot_records.len()
        );
    }
    // Ship the final state, not the history: replaying a create-then-delete would open and
    // then remove directories for nothing.
    let mut snapshot = vec![MetadataRecord::ClusterId {
        id: image.cluster_id.clone(),
    }];
    snapshot.extend(
        image
            .topics()
            .map(|t| MetadataRecord::CreateTopic { topic: t.clone() }),
    );
    broadcast(snapshot, true).await.map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn op(key: &str, op: i8, value: Option<&str>) -> (String, i8, Option<String>) {
        (key.into(), op, value.map(str::to_string))
    }

    #[test]
    fn incremental_set_delete_append_subtract() {
        let defaults = crate::config::BrokerConfig::default().topic_defaults();
        let cur = map(&[("retention.ms", "1000"), ("segment.bytes", "4096")]);
        let next = apply_config_change(
            &cur,
            &defaults,
            &ConfigChange::Incremental(vec![
                op("retention.ms", OP_SET, Some("2000")),
                op("segment.bytes", OP_DELETE, None),
                op("flush.messages", OP_SET, Some(" 10 ")),
            ]),
        )
        .unwrap();
        assert_eq!(
            next,
            map(&[("flush.messages", "10"), ("retention.ms", "2000")])
        );

        // APPEND on a list setting starts from the effective (default) value, without repeats.
        let next = apply_config_change(
            &cur,
            &defaults,
            &ConfigChange::Incremental(vec![op("cleanup.policy", OP_APPEND, Some("delete"))]),
        )
        .unwrap();
        assert_eq!(next.get("cleanup.policy").unwrap(), "delete");
        // SUBTRACT leaves an empty list, which is not a valid cleanup.policy here.
        let (e, m) = apply_config_change(
            &cur,
            &defaults,
            &ConfigChange::Incremental(vec![op("cleanup.policy", OP_SUBTRACT, Some("delete"))]),
        )
        .unwrap_err();
        assert_eq!(
            (e, m.contains("cleanup.policy")),
            (ResponseError::InvalidConfig, true)
        );
        // APPEND on a non-list setting.
        let (e, m) = apply_config_change(
            &cur,
            &defaults,
            &ConfigChange::Incremental(vec![op("retention.ms", OP_APPEND, Some("1"))]),
        )
        .unwrap_err();
        assert_eq!(e, ResponseError::InvalidConfig);
        assert!(m.contains("append is not allowed"), "{m}");
    }

    #[test]
    fn incremental_refusals_match_kafka() {
        let d = BTreeMap::new();
        let cur = BTreeMap::new();
        let refuse = |ops| {
            apply_config_change(&cur, &d, &ConfigChange::Incremental(ops))
                .unwrap_err()
                .0
        };
        assert_eq!(
            refuse(vec![op("retention.ms", OP_SET, Some("soon"))]),
            ResponseError::InvalidConfig
        );
        assert_eq!(
            refuse(vec![op("no.such", OP_SET, Some("1"))]),
            ResponseError::InvalidConfig
        );
        assert_eq!(
            refuse(vec![op("no.such", OP_DELETE, None)]),
            ResponseError::InvalidConfig
        );
        assert_eq!(
            refuse(vec![op("segment.bytes", OP_SET, Some("10"))]),
            ResponseError::InvalidConfig
        );
        assert_eq!(
            refuse(vec![op("retention.ms", OP_SET, None)]),
            ResponseError::InvalidRequest
        );
        assert_eq!(
            refuse(vec![op("retention.ms", 9, Some("1"))]),
            ResponseError::InvalidRequest
        );
        assert_eq!(
            refuse(vec![
                op("retention.ms", OP_SET, Some("1")),
                op("retention.ms", OP_DELETE, None)
            ]),
            ResponseError::InvalidRequest
        );
    }

    #[test]
    fn replace_drops_keys_not_named() {
        let cur = map(&[("retention.ms", "1000"), ("segment.bytes", "4096")]);
        let next = apply_config_change(
            &cur,
            &BTreeMap::new(),
            &ConfigChange::Replace(vec![("retention.bytes".into(), Some("5000".into()))]),
        )
        .unwrap();
        assert_eq!(next, map(&[("retention.bytes", "5000")]));
        let (e, _) = apply_config_change(
            &cur,
            &BTreeMap::new(),
            &ConfigChange::Replace(vec![("retention.bytes".into(), None)]),
        )
        .unwrap_err();
        assert_eq!(e, ResponseError::InvalidRequest);
    }
}

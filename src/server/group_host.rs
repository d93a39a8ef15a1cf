//! Where the consumer-group coordinator lives on a shard: its storage (`__consumer_offsets`
//! appends through the normal produce path), the creation of that topic at start-up, and the
//! loading of each shard's groups from it before the shard accepts clients. Not a handler: the
//! group APIs are in `handlers::groups`; this is the start-up and storage side.
//!
//! Kept out of `group/` so that module depends only on `log`, `timer` and `runtime`
//! (docs/ARCHITECTURE.md).

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::controller::{self, TopicSpec};
use crate::group::codec::records_in;
use crate::group::coordinator::CoordinatorConfig;
use crate::group::timers::{LocalFuture, ShardDriver};
use crate::group::{GroupConfig, GroupCoordinator, GroupStorage, OFFSETS_TOPIC};
use crate::log::batch_builder::{build, RecordSpec};
use crate::runtime::{self, now_ms};
use crate::shard::{self, partition_ops};

/// Segment size of `__consumer_offsets` (Kafka's `offsets.topic.segment.bytes` default).
const OFFSETS_SEGMENT_BYTES: &str = "104857600";
/// Bytes read per step while replaying a partition.
const REPLAY_CHUNK: usize = 1 << 20;

/// Appends through the normal produce path with acks=-1 (group-committed fdatasync).
///
/// All records of one call go into one uncompressed RecordBatch v2, so they get consecutive
/// offsets (the coordinator relies on that) and are durable together. One batch is bounded by
/// `max.message.bytes` (1 MiB by default: ~15,000 offsets per commit); a larger commit fails with
/// INVALID_COMMIT_OFFSET_SIZE, as in Kafka.
pub struct ShardGroupStorage;

impl GroupStorage for ShardGroupStorage {
    fn append(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> LocalFuture<Result<i64, i16>> {
        Box::pin(async move {
            let recs: Vec<RecordSpec> = records
                .into_iter()
                .map(|(k, v)| RecordSpec {
                    key: Some(k.to_vec()),
                    value: v.map(|v| v.to_vec()),
                    timestamp_delta: 0,
                })
                .collect();
            let batch = Bytes::from(build(now_ms(), &recs));
            let out =
                partition_ops::append_on_owner(OFFSETS_TOPIC.to_string(), partition, batch, -1)
                    .await;
            match out.error_code {
                0 => Ok(out.base_offset),
                e => Err(e),
            }
        })
    }
}

/// How long the first start of a cluster waits for every voter to register before it creates
/// `__consumer_offsets` on the brokers that did.
const OFFSETS_TOPIC_BROKER_WAIT_MS: u64 = 10_000;

/// On shard 0 at startup: creates `__consumer_offsets` if it does not exist, through the same
/// controller path as CreateTopics. Kafka's topic is compacted; ours cannot be yet (compaction is
/// not implemented), so it keeps everything (`retention.ms=-1`) and replay takes the last record
/// per key.
pub async fn ensure_offsets_topic() {
    let shard = shard::current();
    if shard.with_image(|i| i.topic(OFFSETS_TOPIC).is_some()) {
        return;
    }
    // In a cluster the voters start together: wait (a little) for every one to register, so
    // the offsets partitions — and with them the group coordinators — spread over all brokers
    // instead of landing on the first one up.
    let voters = shard.config.quorum_voters().map(|v| v.len()).unwrap_or(0);
    let deadline = shard.timer.now_ms() + OFFSETS_TOPIC_BROKER_WAIT_MS;
    while shard.with_image(|i| i.brokers().count()) < voters && shard.timer.now_ms() < deadline {
        shard.timer.sleep(100).await;
        if shard.with_image(|i| i.topic(OFFSETS_TOPIC).is_some()) {
            return;
        }
    }
    let spec = TopicSpec {
        name: OFFSETS_TOPIC.to_string(),
        num_partitions: shard.config.int("offsets.topic.num.partitions").max(1) as i32,
        replication_factor: -1,
        assignments: Vec::new(),
        configs: vec![
            ("retention.ms".into(), Some("-1".into())),
            ("segment.bytes".into(), Some(OFFSETS_SEGMENT_BYTES.into())),
        ],
        validate_only: false,
    };
    let out = controller::create_topics(vec![spec]).await;
    match out.as_deref() {
        Ok([o]) if o.error_code == 0 => tracing::info!("created {OFFSETS_TOPIC}"),
        // Another node of the cluster created it first.
        Ok([o]) if o.error_code == ResponseError::TopicAlreadyExists.code() => {}
        other => tracing::error!("creating {OFFSETS_TOPIC} failed: {other:?}"),
    }
}

/// On every shard at startup (after metadata is loaded, before accepting clients): builds the
/// shard's coordinator, replays the `__consumer_offsets` partitions this shard owns, and starts
/// the offset-expiry task.
pub async fn start_shard_groups() {
    let shard = shard::current();
    let cfg = &shard.config;
    let partitions = shard
        .with_image(|i| i.topic(OFFSETS_TOPIC).map(|t| t.partitions.len() as i32))
        .unwrap_or_else(|| cfg.int("offsets.topic.num.partitions").max(1) as i32);
    let coordinator = GroupCoordinator::new(
        CoordinatorConfig {
            group: GroupConfig {
                min_session_timeout_ms: cfg.int("group.min.session.timeout.ms") as i32,
                max_session_timeout_ms: cfg.int("group.max.session.timeout.ms") as i32,
                initial_rebalance_delay_ms: cfg.int("group.initial.rebalance.delay.ms").max(0),
                max_size: cfg.int("group.max.size").max(1) as usize,
            },
            partitions,
            offsets_retention_ms: cfg.int("offsets.retention.minutes").saturating_mul(60_000),
            metadata_max_bytes: cfg.int("offset.metadata.max.bytes").max(0) as usize,
        },
        Rc::new(ShardGroupStorage),
        Rc::new(ShardDriver {
            timer: crate::shard::current().timer.clone(),
        }),
    );
    if shard.groups.set(coordinator.clone()).is_err() {
        return; // already started
    }
    for p in 0..partitions {
        let Some(partition) = shard.partition(&(OFFSETS_TOPIC.to_string(), p)) else {
            continue;
        };
        let mut offset = partition.log_start_offset();
        let mut records = Vec::new();
        loop {
            let chunk = match partition.read(offset, REPLAY_CHUNK, true).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("replaying {OFFSETS_TOPIC}-{p} at {offset}: {e}");
                    break;
                }
            };
            let (recs, next) = records_in(&chunk);
            records.extend(recs);
            match next {
                Some(n) if n > offset => offset = n,
                _ => break,
            }
        }
        coordinator.load(&records);
    }
    coordinator.set_loaded();
    if coordinator.group_count() > 0 {
        tracing::info!(
            "shard {}: loaded {} consumer group(s)",
            shard.id,
            coordinator.group_count()
        );
    }
    let interval = cfg.int("offsets.retention.check.interval.ms").max(100) as u64;
    runtime::spawn(async move {
        loop {
            runtime::sleep(Duration::from_millis(interval)).await;
            coordinator.expire_offsets().await;
        }
    });
}

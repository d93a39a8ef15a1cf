//! Partition-level operations, each run on the partition's owning shard.
//!
//! Callers on any shard use the `*_on_owner` functions, which look up the owner in the local
//! metadata image and hop there with `submit_to` (or run in place when the owner is local).
//! Results are plain `Send` structs so they can travel back across shards; record data travels as
//! `Bytes` (reference-counted, never copied).

use bytes::Bytes;
use futures_channel::oneshot;
use kafka_protocol::error::ResponseError;

use super::current;
use crate::log::LogError;
use crate::partition::Partition;
use crate::runtime::{now_ms, submit_to};
use crate::wire::Records;

/// The outcome of appending one partition's records.
#[derive(Debug, Clone, Default)]
pub struct AppendOutcome {
    pub error_code: i16,
    pub error_message: Option<String>,
    /// Kafka's per-record errors (`record_errors`: index in the batch, message).
    pub record_errors: Vec<(i32, String)>,
    pub base_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// The outcome of reading one partition.
#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Records,
}

/// The outcome of resolving one ListOffsets query.
#[derive(Debug, Clone, Default)]
pub struct OffsetOutcome {
    pub error_code: i16,
    pub offset: i64,
    pub timestamp: i64,
    /// The partition's current leader epoch (ListOffsets v4+), -1 on errors.
    pub leader_epoch: i32,
}

// Kafka's special ListOffsets timestamps.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

fn owner(topic: &str, partition: i32) -> Option<usize> {
    current().shard_of(topic, partition)
}

fn unknown() -> i16 {
    ResponseError::UnknownTopicOrPartition.code()
}

/// KIP-320: a client's `current_leader_epoch` checked against the partition's (-1: unchecked).
/// An older one is FENCED_LEADER_EPOCH (the client's metadata is stale), a newer one
/// UNKNOWN_LEADER_EPOCH (this broker has not heard of it yet).
fn leader_epoch_error(current_leader_epoch: i32, partition: &Partition) -> Option<i16> {
    let epoch = partition.leader_epoch();
    match current_leader_epoch {
        e if e < 0 || e == epoch => None,
        e if e < epoch => Some(ResponseError::FencedLeaderEpoch.code()),
        _ => Some(ResponseError::UnknownLeaderEpoch.code()),
    }
}

/// The error for a partition no shard of this node serves: NOT_LEADER_OR_FOLLOWER if it exists
/// on other brokers (the client refreshes its metadata and goes there), else unknown.
fn not_here(topic: &str, partition: i32) -> i16 {
    match current().with_image(|i| i.partition(topic, partition).is_some()) {
        true => ResponseError::NotLeaderOrFollower.code(),
        false => unknown(),
    }
}

/// The error for a partition whose log this (owning) shard does not have: offline after a failed
/// open (KAFKA_STORAGE_ERROR, retriable) or gone (UNKNOWN_TOPIC_OR_PARTITION).
fn missing_log(topic: &str, partition: i32) -> i16 {
    match current().is_offline(&(topic.to_string(), partition)) {
        true => ResponseError::KafkaStorageError.code(),
        false => unknown(),
    }
}

/// Appends `records` to (topic, partition) on its owner. With `acks = -1` the answer waits until
/// the data is fdatasync-ed.
pub async fn append_on_owner(
    topic: String,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> AppendOutcome {
    let (mut outcome, wait) = append_on_owner_deferred(topic, partition, records, acks).await;
    if let Some(wait) = wait {
        finish_sync(&mut outcome, wait).await;
    }
    outcome
}

/// Waits for a deferred sync and turns its failure into the partition's answer.
pub async fn finish_sync(outcome: &mut AppendOutcome, wait: SyncWait) {
    let failed = match wait.await {
        Ok(Ok(())) => None,
        Ok(Err((code, message))) => Some((code, message)),
        // The owner shard dropped the sync (shutting down): not known to be durable.
        Err(_) => Some((
            ResponseError::NotLeaderOrFollower.code(),
            "the partition's shard stopped before the sync completed".to_string(),
        )),
    };
    if let Some((code, message)) = failed {
        outcome.error_code = code;
        outcome.error_message = Some(message);
        outcome.base_offset = -1;
        outcome.log_append_time = -1;
    }
}

/// The durability wait of an acks=-1 append that was answered before its sync: `Ok` once the
/// data is synced, or the error code and message the partition must be answered with instead.
pub type SyncWait = oneshot::Receiver<Result<(), (i16, String)>>;

/// [`append_on_owner`], except that an acks=-1 append returns as soon as the data is in the log
/// (and visible), with the sync still running on the owner: the caller must await the
/// [`SyncWait`] before acknowledging. This lets a connection read and append the client's next
/// pipelined request while the previous one's fdatasync is in flight, so one sync covers both
/// (group commit without needing a connection per in-flight request).
pub async fn append_on_owner_deferred(
    topic: String,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> (AppendOutcome, Option<SyncWait>) {
    let Some(shard) = owner(&topic, partition) else {
        return (
            AppendOutcome {
                error_code: not_here(&topic, partition),
                ..Default::default()
            },
            None,
        );
    };
    submit_to(shard, move || append(topic, partition, records, acks))
        .await
        .unwrap_or_else(|e| {
            let o = AppendOutcome {
                error_code: ResponseError::NotLeaderOrFollower.code(),
                error_message: Some(e.to_string()),
                ..Default::default()
            };
            (o, None)
        })
}

/// Syncs every partition of this shard whose `flush.ms` has passed since its last sync and that
/// has unsynced data. Run periodically (`log.flush.scheduler.interval.ms`).
pub async fn flush_due_partitions() {
    let shard = current();
    for (tp, partition) in shard.partitions_by_name() {
        if partition.log_end_offset() <= partition.flushed_offset() {
            continue;
        }
        let flush_ms = shard.topic_value(&tp.0, "flush.ms");
        if flush_ms == i64::MAX || (shard.waiters.since_last_sync(&tp) as i64) < flush_ms {
            continue;
        }
        if let Err(e) = shard
            .waiters
            .sync_through(&tp, &partition, partition.log_end_offset())
            .await
        {
            log_storage_error(&e);
        }
    }
}

async fn append(
    topic: String,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> (AppendOutcome, Option<SyncWait>) {
    let shard = current();
    let tp = (topic, partition);
    let size = records.len() as u64;
    crate::metrics::with(|m| {
        m.produce_appends.inc();
        m.produce_batch_size.record(size);
    });
    let Some(partition) = shard.partition(&tp) else {
        crate::metrics::with(|m| m.append_errors.inc());
        let o = AppendOutcome {
            error_code: missing_log(&tp.0, tp.1),
            ..Default::default()
        };
        return (o, None);
    };
    if acks == -1 && shard.topic_value(&tp.0, "min.insync.replicas") > 1 {
        // One node is an ISR of one: Kafka refuses acks=-1 below min.insync.replicas before
        // appending anything.
        crate::metrics::with(|m| m.append_errors.inc());
        let o = AppendOutcome {
            error_code: ResponseError::NotEnoughReplicas.code(),
            error_message: Some(format!(
                "The size of the current ISR 1 is insufficient to satisfy the min.isr \
                 requirement of {} for partition {}-{}",
                shard.topic_value(&tp.0, "min.insync.replicas"),
                tp.0,
                tp.1
            )),
            base_offset: -1,
            log_append_time: -1,
            log_start_offset: partition.log_start_offset(),
            ..Default::default()
        };
        return (o, None);
    }
    let mut deferred = None;
    let result = match partition.append_from_client(records, now_ms()).await {
        Ok(info) => {
            if !info.duplicate {
                crate::metrics::with(|m| {
                    m.produce_bytes.add(size);
                    m.produce_records
                        .add((info.last_offset - info.base_offset + 1).max(0) as u64);
                });
            }
            shard.waiters.notify(&tp);
            // acks=-1 waits for durability; otherwise `flush.messages` may still force a sync
            // (Kafka's flush knob: checked before answering, like Kafka's append path).
            let unsynced = partition.log_end_offset() - partition.flushed_offset();
            if acks == -1 {
                shard
                    .waiters
                    .acks_all_appends
                    .set(shard.waiters.acks_all_appends.get() + 1);
            }
            if acks == -1 {
                let (tx, rx) = oneshot::channel();
                let target = info.last_offset + 1;
                let partition = partition.clone();
                let tp = tp.clone();
                crate::runtime::spawn(async move {
                    let shard = current();
                    let result = shard.waiters.sync_through(&tp, &partition, target).await;
                    let _ = tx.send(result.map_err(|e| {
                        log_storage_error(&e);
                        crate::metrics::with(|m| m.append_errors.inc());
                        (e.kafka_error_code(), e.to_string())
                    }));
                });
                deferred = Some(rx);
                Ok(info)
            } else if unsynced >= shard.topic_value(&tp.0, "flush.messages") {
                shard
                    .waiters
                    .sync_through(&tp, &partition, info.last_offset + 1)
                    .await
                    .map(|()| info)
            } else {
                Ok(info)
            }
        }
        Err(e) => Err(e),
    };
    let outcome = match result {
        Ok(info) => AppendOutcome {
            error_code: 0,
            error_message: None,
            record_errors: Vec::new(),
            base_offset: info.base_offset,
            log_append_time: info.log_append_time,
            log_start_offset: info.log_start_offset,
        },
        Err(e) => {
            crate::metrics::with(|m| m.append_errors.inc());
            log_storage_error(&e);
            AppendOutcome {
                error_code: e.kafka_error_code(),
                error_message: Some(e.to_string()),
                record_errors: e.record_errors(),
                base_offset: -1,
                log_append_time: -1,
                log_start_offset: partition.log_start_offset(),
            }
        }
    };
    (outcome, deferred)
}

/// Registers interest in the next append to (topic, partition) past `offset`, on its owner. The
/// receiver completes at once if data beyond `offset` is already there, or if the partition is
/// gone (the caller's re-read then reports the error).
// The owner hands back the receiver itself (not its completion): the caller awaits it on its own
// shard, so the owner's task ends at once.
#[allow(clippy::async_yields_async)]
pub async fn wait_for_data_on_owner(
    topic: String,
    partition: i32,
    offset: i64,
) -> oneshot::Receiver<()> {
    let ready = || {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(());
        rx
    };
    let Some(shard) = owner(&topic, partition) else {
        return ready();
    };
    submit_to(shard, move || async move {
        let shard = current();
        let tp = (topic, partition);
        let has_data = shard
            .partition(&tp)
            .is_none_or(|partition| partition.high_watermark() > offset);
        shard.waiters.register(tp, has_data)
    })
    .await
    .unwrap_or_else(|_| ready())
}

/// One partition read within a multi-partition fetch.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The partition's own limit (`partition_max_bytes`).
    pub max_bytes: usize,
    /// The leader epoch the client knows (Fetch v9+), -1 if none.
    pub current_leader_epoch: i32,
}

/// Reads several partitions for one fetch with a byte budget: one cross-shard call per owning
/// shard (not per partition), each shard reading its partitions in request order with the
/// running budget `budget` (only its first non-empty partition may exceed it, by one batch).
/// Outcomes come back in request order. Shards read in parallel, so at most
/// `shards x budget` bytes are held before the caller trims to its own budget.
pub async fn read_many(requests: Vec<ReadRequest>, budget: usize) -> Vec<ReadOutcome> {
    let missing = |code: i16| ReadOutcome {
        error_code: code,
        high_watermark: -1,
        log_start_offset: -1,
        records: Records::default(),
    };
    let mut outcomes: Vec<Option<ReadOutcome>> = vec![None; requests.len()];
    let mut per_shard: std::collections::BTreeMap<usize, Vec<(usize, ReadRequest)>> =
        Default::default();
    for (i, r) in requests.into_iter().enumerate() {
        match owner(&r.topic, r.partition) {
            Some(shard) => per_shard.entry(shard).or_default().push((i, r)),
            None => outcomes[i] = Some(missing(not_here(&r.topic, r.partition))),
        }
    }
    let calls = per_shard.into_iter().map(|(shard, reads)| {
        let idx: Vec<usize> = reads.iter().map(|(i, _)| *i).collect();
        async move {
            let result = submit_to(shard, move || async move {
                let mut used = 0usize;
                let mut out = Vec::with_capacity(reads.len());
                for (_, r) in reads {
                    let left = budget.saturating_sub(used);
                    // Budget spent: report offsets without reading (max 0 reads nothing).
                    let max = match used {
                        0 => r.max_bytes.min(left.max(1)),
                        _ => r.max_bytes.min(left),
                    };
                    let o = read(&r, max, used == 0).await;
                    used = used.saturating_add(o.records.len());
                    out.push(o);
                }
                out
            })
            .await;
            (idx, result)
        }
    });
    for (idx, result) in futures_util::future::join_all(calls).await {
        match result {
            Ok(reads) => {
                for (i, o) in idx.into_iter().zip(reads) {
                    outcomes[i] = Some(o);
                }
            }
            Err(_) => {
                for i in idx {
                    outcomes[i] = Some(missing(ResponseError::NotLeaderOrFollower.code()));
                }
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| missing(unknown())))
        .collect()
}

async fn read(r: &ReadRequest, max_bytes: usize, min_one: bool) -> ReadOutcome {
    crate::metrics::with(|m| m.log_reads.inc());
    let offset = r.offset;
    let Some(partition) = current().partition(&(r.topic.clone(), r.partition)) else {
        crate::metrics::with(|m| m.read_errors.inc());
        return ReadOutcome {
            error_code: missing_log(&r.topic, r.partition),
            high_watermark: -1,
            log_start_offset: -1,
            records: Records::default(),
        };
    };
    if let Some(code) = leader_epoch_error(r.current_leader_epoch, &partition) {
        return ReadOutcome {
            error_code: code,
            high_watermark: -1,
            log_start_offset: -1,
            records: Records::default(),
        };
    }
    // Consumers read up to the high watermark only; on one node it equals the log end offset.
    let high_watermark = partition.high_watermark();
    // `fetch.zero.copy`: hand back a file range for the connection to sendfile, not the bytes.
    let zero_copy = current().config.bool("fetch.zero.copy");
    let result = if max_bytes == 0 {
        Ok(Records::default())
    } else if zero_copy {
        match partition.read_slice(offset, max_bytes, min_one).await {
            // A range too large to stand in the response encode (one batch over 64 MiB, only
            // possible with max.message.bytes raised that far) is read the copying way.
            Ok(Some(s)) if s.len > crate::wire::response::MAX_PLACEHOLDER => partition
                .read(offset, max_bytes, min_one)
                .await
                .map(Records::Mem),
            other => other.map(|s| s.map(Records::File).unwrap_or_default()),
        }
    } else {
        partition
            .read(offset, max_bytes, min_one)
            .await
            .map(Records::Mem)
    };
    match result {
        Ok(records) => {
            crate::metrics::with(|m| m.log_read_bytes.add(records.len() as u64));
            ReadOutcome {
                error_code: 0,
                high_watermark,
                log_start_offset: partition.log_start_offset(),
                records,
            }
        }
        Err(e) => {
            crate::metrics::with(|m| m.read_errors.inc());
            log_storage_error(&e);
            ReadOutcome {
                error_code: e.kafka_error_code(),
                high_watermark,
                log_start_offset: partition.log_start_offset(),
                records: Records::default(),
            }
        }
    }
}

/// DeleteRecords on the owner: `(error code, low watermark)`.
pub async fn delete_records_on_owner(topic: String, partition: i32, offset: i64) -> (i16, i64) {
    let Some(shard) = owner(&topic, partition) else {
        return (not_here(&topic, partition), -1);
    };
    submit_to(shard, move || async move {
        let Some(p) = current().partition(&(topic.clone(), partition)) else {
            return (missing_log(&topic, partition), -1);
        };
        match p.delete_records(offset).await {
            Ok(low) => (0, low),
            Err(e) => (e.kafka_error_code(), -1),
        }
    })
    .await
    .unwrap_or((ResponseError::NotLeaderOrFollower.code(), -1))
}

impl OffsetOutcome {
    fn error(error_code: i16) -> OffsetOutcome {
        OffsetOutcome {
            error_code,
            offset: -1,
            timestamp: -1,
            leader_epoch: -1,
        }
    }
}

/// Resolves a ListOffsets timestamp query on the owner; `current_leader_epoch` as the client
/// knows it (-1: unchecked).
pub async fn list_offset_on_owner(
    topic: String,
    partition: i32,
    timestamp: i64,
    current_leader_epoch: i32,
) -> OffsetOutcome {
    let Some(shard) = owner(&topic, partition) else {
        return OffsetOutcome::error(not_here(&topic, partition));
    };
    submit_to(shard, move || {
        list_offset(topic, partition, timestamp, current_leader_epoch)
    })
    .await
    .unwrap_or_else(|_| OffsetOutcome::error(ResponseError::NotLeaderOrFollower.code()))
}

async fn list_offset(
    topic: String,
    partition: i32,
    timestamp: i64,
    current_leader_epoch: i32,
) -> OffsetOutcome {
    let Some(partition) = current().partition(&(topic.clone(), partition)) else {
        return OffsetOutcome::error(missing_log(&topic, partition));
    };
    if let Some(code) = leader_epoch_error(current_leader_epoch, &partition) {
        return OffsetOutcome::error(code);
    }
    let mut outcome = list_offset_in(&partition, timestamp).await;
    if outcome.error_code == 0 {
        outcome.leader_epoch = partition.leader_epoch();
    }
    outcome
}

async fn list_offset_in(partition: &Partition, timestamp: i64) -> OffsetOutcome {
    let found = |offset| OffsetOutcome {
        error_code: 0,
        offset,
        timestamp: -1,
        leader_epoch: -1,
    };
    match timestamp {
        LATEST_TIMESTAMP => found(partition.high_watermark()),
        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => found(partition.log_start_offset()),
        // Nothing is tiered: no offset has been uploaded.
        LATEST_TIERED_TIMESTAMP => found(-1),
        MAX_TIMESTAMP => lookup_outcome(
            partition
                .max_timestamp_and_offset()
                .await
                .map(|r| r.map(|(ts, o)| (o, ts))),
        ),
        ts if ts < 0 => OffsetOutcome::error(ResponseError::InvalidRequest.code()),
        ts => lookup_outcome(partition.offset_for_timestamp(ts).await),
    }
}

/// The answer for a timestamp lookup that found `(offset, timestamp)`, nothing (-1), or failed.
fn lookup_outcome(found: Result<Option<(i64, i64)>, LogError>) -> OffsetOutcome {
    match found {
        Ok(Some((offset, timestamp))) => OffsetOutcome {
            error_code: 0,
            offset,
            timestamp,
            leader_epoch: -1,
        },
        Ok(None) => OffsetOutcome {
            error_code: 0,
            ..OffsetOutcome::error(0)
        },
        Err(e) => {
            log_storage_error(&e);
            OffsetOutcome::error(e.kafka_error_code())
        }
    }
}

/// OffsetForLeaderEpoch on the owner: where `epoch` ends in the leader's log.
pub struct EpochEndOutcome {
    pub error_code: i16,
    pub leader_epoch: i32,
    pub end_offset: i64,
}

/// OffsetForLeaderEpoch for one partition, on its leader; `current_leader_epoch` as the asker
/// knows it (-1: unchecked).
pub async fn epoch_end_on_owner(
    topic: String,
    partition: i32,
    current_leader_epoch: i32,
    epoch: i32,
) -> EpochEndOutcome {
    let failed = |error_code| EpochEndOutcome {
        error_code,
        leader_epoch: -1,
        end_offset: -1,
    };
    let Some(shard) = owner(&topic, partition) else {
        return failed(not_here(&topic, partition));
    };
    submit_to(shard, move || async move {
        let Some(p) = current().partition(&(topic.clone(), partition)) else {
            return failed(missing_log(&topic, partition));
        };
        if let Some(code) = leader_epoch_error(current_leader_epoch, &p) {
            return failed(code);
        }
        let (leader_epoch, end_offset) = p.end_offset_for_epoch(epoch);
        EpochEndOutcome {
            error_code: 0,
            leader_epoch,
            end_offset,
        }
    })
    .await
    .unwrap_or_else(|_| failed(ResponseError::NotLeaderOrFollower.code()))
}

fn log_storage_error(e: &LogError) {
    if let LogError::Io(io) = e {
        tracing::error!("storage error: {io}");
    }
}

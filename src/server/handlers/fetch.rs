//! Fetch: read each requested partition on its owning shard, respect the response and
//! per-partition byte limits, and wait (up to max_wait_ms) while fewer than min_bytes are ready.
//!
//! Waiting costs nothing while idle: the fetch registers a waiter on every partition it reads
//! (on each partition's owning shard, see `shard::waiters`), then sleeps until the first append to
//! any of them or its deadline on the shard's timing wheel, and re-reads.

use futures_util::future::{join_all, select_all};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};

use crate::shard::partition_ops::{read_many, wait_for_data_on_owner, ReadOutcome, ReadRequest};
use crate::shard::{self};
use crate::wire::{PartsBuf, Records};
use bytes::Bytes;

/// Kafka's default broker `fetch.max.bytes`: the most one fetch response may hold.
const FETCH_MAX_BYTES: usize = 57_671_680;

/// One requested partition, resolved.
struct Want {
    topic_index: usize,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    current_leader_epoch: i32,
}

/// The response and the buffer to encode it into: record data is registered with the buffer, so
/// the encode does not copy it (see `wire::response`).
pub async fn handle(req: FetchRequest, version: i16) -> (FetchResponse, PartsBuf) {
    let shard = shard::current();
    // Fetch v13+ names topics by id; resolve ids to names once, here.
    let mut topics: Vec<(TopicName, uuid::Uuid, Option<String>)> = Vec::new();
    let mut wants: Vec<Want> = Vec::new();
    // Kafka collects a fetch's partitions into a map: a partition named twice is read once, at
    // its first place, with the offset and limit of its last mention, and answered once.
    let mut seen: std::collections::HashMap<(String, uuid::Uuid, i32), usize> = Default::default();
    for t in &req.topics {
        let resolved = if version >= 13 {
            shard.with_image(|i| i.topic_by_id(&t.topic_id).map(|m| m.name.clone()))
        } else {
            Some(t.topic.0.to_string())
        };
        let topic_index = topics.len();
        topics.push((t.topic.clone(), t.topic_id, resolved));
        for p in &t.partitions {
            let want = Want {
                topic_index,
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                current_leader_epoch: p.current_leader_epoch,
            };
            let key = (t.topic.0.to_string(), t.topic_id, p.partition);
            match seen.get(&key) {
                Some(&i) => {
                    wants[i].offset = want.offset;
                    wants[i].max_bytes = want.max_bytes;
                    wants[i].current_leader_epoch = want.current_leader_epoch;
                }
                None => {
                    seen.insert(key, wants.len());
                    wants.push(want);
                }
            }
        }
    }
    // Answers follow the order of `wants`, grouped under their topic entry.
    wants.sort_by_key(|w| w.topic_index);
    // Kafka caps a fetch response with the broker's `fetch.max.bytes` (55 MiB by default), so a
    // client asking for i32::MAX cannot make us buffer gigabytes.
    let response_max = (req.max_bytes.max(0) as usize).min(FETCH_MAX_BYTES);
    let min_bytes = req.min_bytes.max(0) as usize;
    let timer = shard.timer.clone();
    let deadline = timer.now_ms() + req.max_wait_ms.max(0) as u64;
    // A follower's fetch (replica id >= 0; v15+ carries it in `replica_state`). No partition
    // has followers yet (one replica each): refused, never answered as a consumer's read, so a
    // client claiming to be a broker gets nothing a consumer would not (CVE-2018-1288's class).
    let replica_id = match version >= 15 {
        true => req.replica_state.replica_id.0,
        false => req.replica_id.0,
    };
    let outcomes = if replica_id >= 0 {
        wants
            .iter()
            .map(|_| ReadOutcome {
                error_code: ResponseError::NotLeaderOrFollower.code(),
                high_watermark: -1,
                log_start_offset: -1,
                records: Default::default(),
            })
            .collect()
    } else {
        loop {
            let outcomes = read_all(&topics, &wants, response_max).await;
            let ready: usize = outcomes.iter().map(|o| o.records.len()).sum();
            let any_error = outcomes.iter().any(|o| o.error_code != 0);
            // (No shutdown check: a stopping shard returns from its executor, which drops this
            // fetch with its connection, as Kafka's SocketServer closes connections at shutdown.)
            if ready >= min_bytes.max(1) || any_error || timer.now_ms() >= deadline {
                break outcomes;
            }
            // Wait for data beyond what this read saw, on any partition, or for the deadline.
            let waits = wants.iter().zip(&outcomes).filter_map(|(w, o)| {
                let name = topics[w.topic_index].2.clone()?;
                Some(wait_for_data_on_owner(
                    name,
                    w.partition,
                    w.offset.max(o.high_watermark),
                ))
            });
            let receivers = join_all(waits).await;
            // The deadline lives on the shard's timing wheel; dropping the sleep cancels it.
            if receivers.is_empty() {
                timer.sleep_until(deadline).await;
            } else {
                let woken = async {
                    let _ = select_all(receivers).await;
                };
                futures_lite::future::or(woken, timer.sleep_until(deadline)).await;
            }
        }
    };

    let returned: usize = outcomes.iter().map(|o| o.records.len()).sum();
    crate::metrics::with(|m| m.fetch_bytes.add(returned as u64));
    let mut resp = FetchResponse::default();
    let mut buf = PartsBuf::with_capacity(256 + 64 * outcomes.len());
    let mut outcomes = outcomes.into_iter();
    let mut wants = wants.into_iter().peekable();
    for (i, (name, id, _)) in topics.into_iter().enumerate() {
        let mut t = FetchableTopicResponse::default();
        t.topic = name;
        t.topic_id = id;
        if wants.peek().is_none_or(|w| w.topic_index != i) {
            // Every partition of this entry was named again under an earlier one.
            continue;
        }
        while wants.peek().is_some_and(|w| w.topic_index == i) {
            let Some(w) = wants.next() else { break };
            let o = outcomes.next().unwrap_or_default();
            let mut pd = PartitionData::default();
            pd.partition_index = w.partition;
            pd.error_code = o.error_code;
            pd.high_watermark = o.high_watermark;
            pd.last_stable_offset = o.high_watermark;
            pd.log_start_offset = o.log_start_offset;
            pd.aborted_transactions = (req.isolation_level == 1).then(Vec::new);
            pd.preferred_read_replica = (-1).into();
            pd.records = match register(&mut buf, o.records) {
                Some(records) => Some(records),
                None => {
                    tracing::error!("fetch: a file range too large for the response encoder");
                    pd.error_code = ResponseError::UnknownServerError.code();
                    Some(Bytes::new())
                }
            };
            t.partitions.push(pd);
        }
        resp.responses.push(t);
    }
    (resp, buf)
}

/// The value to encode for one partition's records. `None` for a file range too large for a
/// placeholder: `partition_ops::read` never returns one (it reads those into memory), so this is
/// a bug guard that fails the partition instead of sending wrong bytes.
fn register(buf: &mut PartsBuf, records: Records) -> Option<Bytes> {
    buf.register(records)
}

/// Reads the wanted partitions with Kafka's byte-budget semantics: in request order, each read
/// may use at most `min(partition_max_bytes, what is left of max_bytes)`, and only the first
/// non-empty partition may exceed the budget with one whole batch (KIP-74) so a consumer always
/// makes progress. The owning shards read their partitions in parallel (one hop per shard, each
/// with the full budget), then the response is trimmed to the budget in request order: memory
/// per fetch stays within about `shards x max_bytes` whatever the request names.
async fn read_all(
    topics: &[(TopicName, uuid::Uuid, Option<String>)],
    wants: &[Want],
    response_max: usize,
) -> Vec<ReadOutcome> {
    let mut requests = Vec::with_capacity(wants.len());
    let mut positions = Vec::with_capacity(wants.len()); // index into `requests`, or None
    for w in wants {
        match &topics[w.topic_index].2 {
            Some(name) => {
                positions.push(Some(requests.len()));
                requests.push(ReadRequest {
                    topic: name.clone(),
                    partition: w.partition,
                    offset: w.offset,
                    max_bytes: w.max_bytes,
                    current_leader_epoch: w.current_leader_epoch,
                });
            }
            None => positions.push(None),
        }
    }
    let mut read = read_many(requests, response_max)
        .await
        .into_iter()
        .map(Some)
        .collect::<Vec<_>>();
    let mut used = 0usize;
    positions
        .into_iter()
        .map(|pos| {
            let mut o = match pos.and_then(|p| read.get_mut(p).and_then(Option::take)) {
                Some(o) => o,
                None => ReadOutcome {
                    error_code: ResponseError::UnknownTopicId.code(),
                    high_watermark: -1,
                    log_start_offset: -1,
                    records: Default::default(),
                },
            };
            if !o.records.is_empty() {
                if used > 0 && used.saturating_add(o.records.len()) > response_max {
                    o.records = Default::default();
                } else {
                    used = used.saturating_add(o.records.len());
                }
            }
            o
        })
        .collect()
}

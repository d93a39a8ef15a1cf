//! Requests shared by the topic and group commands: partition leaders and ListOffsets.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::client::{Client, Target};
use super::error::{CliError, Result};

/// ListOffsets special timestamps.
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

/// A topic partition.
pub type Tp = (String, i32);

/// The partitions of one topic from Metadata: partition → leader node id (-1 = none).
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub topic: MetadataResponseTopic,
}

impl TopicInfo {
    pub fn leaders(&self) -> BTreeMap<i32, i32> {
        self.topic
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.leader_id.0))
            .collect()
    }
}

/// Metadata for the named topics. A topic the broker does not know is an error
/// (UNKNOWN_TOPIC_OR_PARTITION) when `must_exist`; otherwise it is left out.
pub fn topics(client: &mut Client, names: &[String], must_exist: bool) -> Result<Vec<TopicInfo>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = client.metadata(Some(names))?;
        let mut out = Vec::new();
        let mut retry = false;
        for t in resp.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            match t.error_code {
                0 => out.push(TopicInfo { name, topic: t }),
                // LEADER_NOT_AVAILABLE right after creation: wait a moment.
                5 if Instant::now() < deadline => retry = true,
                3 if !must_exist => {}
                code => {
                    return Err(CliError::broker(
                        code,
                        &format!("look up topic {name}"),
                        None,
                    ))
                }
            }
        }
        if !retry {
            out.sort_by(|a, b| a.name.cmp(&b.name));
            return Ok(out);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Error codes that go away once a freshly created partition's leader is ready:
/// UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER,
/// FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, OFFSET_NOT_AVAILABLE.
const NOT_READY: [i16; 6] = [3, 5, 6, 74, 75, 78];

/// The answer for one partition: `Ok((offset, timestamp))` or a Kafka error code.
pub type OffsetAnswer = std::result::Result<(i64, i64), i16>;

/// ListOffsets at `timestamp` (EARLIEST, LATEST or Unix ms) for `partitions`, each sent to its
/// leader (`leader` < 0: the bootstrap broker). Partitions still becoming ready are retried for
/// a few seconds; other per-partition errors are returned in the map, not raised.
pub fn list_offsets(
    client: &mut Client,
    partitions: &BTreeMap<Tp, i32>,
    timestamp: i64,
) -> Result<BTreeMap<Tp, OffsetAnswer>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut answers: BTreeMap<Tp, OffsetAnswer> = BTreeMap::new();
    let mut pending: BTreeMap<Tp, i32> = partitions.clone();
    loop {
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        for ((t, p), leader) in &pending {
            by_leader
                .entry(*leader)
                .or_default()
                .entry(t.clone())
                .or_default()
                .push(*p);
        }
        for (leader, topics) in by_leader {
            let target = if leader >= 0 {
                Target::Node(leader)
            } else {
                Target::Bootstrap
            };
            let (_, resp) = client.call(target, |_| {
                ListOffsetsRequest::default()
                    .with_replica_id((-1).into())
                    .with_isolation_level(0)
                    .with_timeout_ms(30_000)
                    .with_topics(
                        topics
                            .iter()
                            .map(|(t, ps)| {
                                ListOffsetsTopic::default()
                                    .with_name(TopicName(StrBytes::from_string(t.clone())))
                                    .with_partitions(
                                        ps.iter()
                                            .map(|&p| {
                                                ListOffsetsPartition::default()
                                                    .with_partition_index(p)
                                                    .with_current_leader_epoch(-1)
                                                    .with_timestamp(timestamp)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })?;
            for t in resp.topics {
                for p in t.partitions {
                    let tp = (t.name.0.to_string(), p.partition_index);
                    let a = if p.error_code == 0 {
                        Ok((p.offset, p.timestamp))
                    } else {
                        Err(p.error_code)
                    };
                    answers.insert(tp, a);
                }
            }
        }
        let retry: BTreeMap<Tp, i32> = pending
            .iter()
            .filter(|(tp, _)| match answers.get(*tp) {
                None => true,
                Some(Err(code)) => NOT_READY.contains(code),
                Some(Ok(_)) => false,
            })
            .map(|(tp, l)| (tp.clone(), *l))
            .collect();
        if retry.is_empty() || Instant::now() > deadline {
            for tp in retry.keys() {
                answers.entry(tp.clone()).or_insert(Err(3));
            }
            return Ok(answers);
        }
        pending = retry;
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Like [`list_offsets`], but any partition error is raised.
pub fn list_offsets_strict(
    client: &mut Client,
    partitions: &BTreeMap<Tp, i32>,
    timestamp: i64,
    what: &str,
) -> Result<BTreeMap<Tp, (i64, i64)>> {
    let mut out = BTreeMap::new();
    for (tp, a) in list_offsets(client, partitions, timestamp)? {
        match a {
            Ok(v) => {
                out.insert(tp, v);
            }
            Err(code) => {
                return Err(CliError::broker(
                    code,
                    &format!("ListOffsets ({what}) for {}-{}", tp.0, tp.1),
                    None,
                ))
            }
        }
    }
    Ok(out)
}

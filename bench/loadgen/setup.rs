//! Setup exchanges: ApiVersions (pick versions), Metadata (partitions and leaders), CreateTopics,
//! ListOffsets.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::conn::{Conn, Result};

/// The request versions this run uses, agreed with the broker.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Versions {
    pub produce: i16,
    pub fetch: i16,
    pub metadata: i16,
    pub list_offsets: i16,
    pub create_topics: i16,
}

/// The versions to use with the broker behind `conn` (its ApiVersions, read when it opened).
pub fn negotiate(conn: &Conn) -> Result<Versions> {
    Ok(Versions {
        produce: conn.version::<ProduceRequest>(9)?,
        fetch: conn.version::<FetchRequest>(12)?,
        metadata: conn.version::<MetadataRequest>(12)?,
        list_offsets: conn.version::<ListOffsetsRequest>(7)?,
        create_topics: conn.version::<CreateTopicsRequest>(7)?,
    })
}

/// Partitions of the topic and the broker address leading each.
#[derive(Debug, Clone)]
pub struct TopicLayout {
    /// (partition index, leader address host:port), sorted by partition.
    pub partitions: Vec<(i32, String)>,
}

impl TopicLayout {
    /// Partitions grouped by leader address (deterministic order).
    pub fn by_leader(&self) -> Vec<(String, Vec<i32>)> {
        let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (p, addr) in &self.partitions {
            m.entry(addr.clone()).or_default().push(*p);
        }
        m.into_iter().collect()
    }
}

/// Fetches the topic's partitions and leaders; retries (up to `wait`) while the topic is unknown
/// or a partition has no leader yet (right after creation).
pub fn metadata(conn: &mut Conn, v: &Versions, topic: &str, wait: Duration) -> Result<TopicLayout> {
    let deadline = Instant::now() + wait;
    loop {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                TopicName(StrBytes::from_string(topic.to_string())),
            ))]))
            .with_allow_auto_topic_creation(false);
        let resp = conn.call(v.metadata, &req)?;
        let brokers: BTreeMap<i32, String> = resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        let problem = match resp.topics.first() {
            None => "no topic in Metadata response".to_string(),
            Some(t) if t.error_code != 0 => format!("topic error code {}", t.error_code),
            Some(t) if t.partitions.is_empty() => "topic has no partitions".to_string(),
            Some(t) => {
                let mut parts = Vec::new();
                let mut missing = None;
                for p in &t.partitions {
                    match brokers.get(&p.leader_id.0) {
                        Some(addr) if p.error_code == 0 => {
                            parts.push((p.partition_index, addr.clone()))
                        }
                        _ => {
                            missing = Some(format!(
                                "partition {} has no usable leader (leader {}, error {})",
                                p.partition_index, p.leader_id.0, p.error_code
                            ))
                        }
                    }
                }
                match missing {
                    None => {
                        parts.sort();
                        return Ok(TopicLayout { partitions: parts });
                    }
                    Some(m) => m,
                }
            }
        };
        if Instant::now() >= deadline {
            return Err(format!("metadata for topic {topic}: {problem}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Creates the topic. An existing topic is fine (reported on stderr).
pub fn create_topic(
    conn: &mut Conn,
    v: &Versions,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
) -> Result<()> {
    let t = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
        .with_configs(
            configs
                .iter()
                .map(|(k, val)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.clone()))
                        .with_value(Some(StrBytes::from_string(val.clone())))
                })
                .collect(),
        );
    let req = CreateTopicsRequest::default()
        .with_topics(vec![t])
        .with_timeout_ms(30_000);
    let resp = conn.call(v.create_topics, &req)?;
    for r in &resp.topics {
        match r.error_code {
            0 => {}
            36 => eprintln!("note: topic {topic} already exists; using it as it is"),
            code => {
                return Err(format!(
                    "CreateTopics {topic}: error code {code}: {}",
                    r.error_message.as_ref().map(|m| m.as_str()).unwrap_or("")
                ))
            }
        }
    }
    Ok(())
}

/// Error codes that go away once a freshly created partition's leader is ready:
/// UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER,
/// FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH.
const NOT_READY: [i16; 5] = [3, 5, 6, 74, 75];

/// Offsets of `partitions` at `timestamp` (-2 = earliest, -1 = latest), in the given order.
/// Retries for up to 15 s while partitions are not ready (right after CreateTopics), so this also
/// serves as the readiness check before a run.
pub fn list_offsets(
    conn: &mut Conn,
    v: &Versions,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<Vec<i64>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match list_offsets_once(conn, v, topic, partitions, timestamp)? {
            Ok(offsets) => return Ok(offsets),
            Err((code, _)) if NOT_READY.contains(&code) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err((_, msg)) => return Err(msg),
        }
    }
}

type Attempt = std::result::Result<Vec<i64>, (i16, String)>;

fn list_offsets_once(
    conn: &mut Conn,
    v: &Versions,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<Attempt> {
    let req = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let resp = conn.call(v.list_offsets, &req)?;
    let mut found: BTreeMap<i32, i64> = BTreeMap::new();
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                return Ok(Err((
                    p.error_code,
                    format!(
                        "ListOffsets {topic}-{}: error code {}",
                        p.partition_index, p.error_code
                    ),
                )));
            }
            found.insert(p.partition_index, p.offset);
        }
    }
    Ok(partitions
        .iter()
        .map(|p| {
            found
                .get(p)
                .copied()
                .ok_or_else(|| (3, format!("ListOffsets: no answer for {topic}-{p}")))
        })
        .collect())
}

//! OffsetForLeaderEpoch (v2–4, as Kafka 4 offers): where a leader epoch ends in the leader's
//! log. Consumers ask after a leader change to detect a log truncated under them (KIP-320), and
//! followers ask to find where their log diverges from the leader's (KIP-101/279). Answered by
//! each partition's leader; `current_leader_epoch` is checked as Fetch checks it.

use futures_util::future::join_all;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::shard::partition_ops::epoch_end_on_owner;

pub async fn handle(req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let mut calls = Vec::new();
    let mut shape = Vec::new();
    for t in req.topics {
        let name = t.topic.0.to_string();
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            parts.push(p.partition);
            calls.push(epoch_end_on_owner(
                name.clone(),
                p.partition,
                p.current_leader_epoch,
                p.leader_epoch,
            ));
        }
        shape.push((t.topic, parts));
    }
    let mut outcomes = join_all(calls).await.into_iter();
    let mut resp = OffsetForLeaderEpochResponse::default();
    for (topic, parts) in shape {
        let mut t = OffsetForLeaderTopicResult::default();
        t.topic = topic;
        for partition in parts {
            let Some(o) = outcomes.next() else { break };
            let mut e = EpochEndOffset::default();
            e.partition = partition;
            e.error_code = o.error_code;
            e.leader_epoch = o.leader_epoch;
            e.end_offset = o.end_offset;
            t.partitions.push(e);
        }
        resp.topics.push(t);
    }
    resp
}

//! DescribeQuorum (KIP-595/KIP-853): the metadata quorum's leader, epoch (Raft's term), high
//! watermark and voters, for `kafka-metadata-quorum describe --status` and
//! `Admin.describeMetadataQuorum`. The quorum's log is named as Kafka names it,
//! `__cluster_metadata` partition 0; Raft index `i` is offset `i - 1`, so the high watermark and
//! a voter's log end offset are the indexes committed and held.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};

use super::{broker_endpoint, str_bytes};
use crate::controller;
use crate::runtime::time::now_ms;
use crate::server::peer::{self, PEER_CLIENT_ID};

/// The name Kafka gives the metadata log.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// How long a follower waits for the leader's answer to a forwarded DescribeQuorum.
const FORWARD_TIMEOUT_MS: u64 = 5_000;

/// Answers DescribeQuorum: on the quorum's leader from what it knows; on a follower by asking
/// the leader (only the leader knows every voter's progress), as a Kafka broker forwards it to
/// the active controller. A call from another broker is never forwarded again.
pub async fn handle(
    req: DescribeQuorumRequest,
    version: i16,
    client_id: &str,
) -> DescribeQuorumResponse {
    let mut r = DescribeQuorumResponse::default();
    let names_the_log = matches!(&req.topics[..], [t] if t.topic_name.0.as_str() == METADATA_TOPIC
        && matches!(&t.partitions[..], [p] if p.partition_index == 0));
    if !names_the_log {
        r.error_code = ResponseError::UnknownTopicOrPartition.code();
        return r;
    }
    let status = match controller::quorum_status().await {
        Ok(Some(s)) => s,
        _ => {
            r.error_code = ResponseError::CoordinatorNotAvailable.code();
            r.error_message = Some(str_bytes("the metadata quorum is not running".to_string()));
            return r;
        }
    };
    if let Some(leader) = status.leader.filter(|l| *l != status.node) {
        if client_id != PEER_CLIENT_ID {
            let endpoint = i32::try_from(leader).ok().and_then(broker_endpoint);
            if let Some((_, host, port)) = endpoint {
                match peer::call(&host, port, version, &req, FORWARD_TIMEOUT_MS).await {
                    Ok(answer) => return answer,
                    Err(e) => tracing::debug!("forwarding DescribeQuorum to node {leader}: {e}"),
                }
            }
        }
    }
    let mut p = PartitionData::default();
    p.partition_index = 0;
    p.leader_id = BrokerId(status.leader.map_or(-1, |l| l as i32));
    p.leader_epoch = status.term as i32;
    p.high_watermark = status.commit as i64;
    if status.leader != Some(status.node) {
        // Only the leader knows every voter's progress (Kafka answers the same way).
        p.error_code = ResponseError::NotLeaderOrFollower.code();
    } else {
        let now = now_ms();
        p.current_voters = status
            .voters
            .iter()
            .map(|&(id, held)| {
                let mut v = ReplicaState::default();
                v.replica_id = BrokerId(id as i32);
                v.log_end_offset = held as i64;
                let caught_up = held >= status.commit;
                // The leader itself, and followers known caught up, as of now; Raft keeps no
                // fetch times, so a lagging follower's are unknown (-1).
                let at = if id == status.node || caught_up {
                    now
                } else {
                    -1
                };
                v.last_fetch_timestamp = at;
                v.last_caught_up_timestamp = at;
                v
            })
            .collect();
    }
    let mut t = TopicData::default();
    t.topic_name = TopicName(str_bytes(METADATA_TOPIC.to_string()));
    t.partitions = vec![p];
    r.topics = vec![t];
    r
}

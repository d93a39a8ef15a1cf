//! ListOffsets: earliest, latest, max-timestamp and by-timestamp lookups, per partition on its owner.

use futures_util::future::join_all;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::shard::partition_ops::list_offset_on_owner;

pub async fn handle(req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let mut calls = Vec::new();
    let mut shape = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut parts = Vec::new();
        for p in t.partitions {
            parts.push(p.partition_index);
            calls.push(list_offset_on_owner(
                name.clone(),
                p.partition_index,
                p.timestamp,
                p.current_leader_epoch,
            ));
        }
        shape.push((t.name, parts));
    }
    let mut outcomes = join_all(calls).await.into_iter();
    let mut resp = ListOffsetsResponse::default();
    for (name, parts) in shape {
        let mut t = ListOffsetsTopicResponse::default();
        t.name = name;
        for index in parts {
            let o = outcomes.next().unwrap_or_default();
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = index;
            pr.error_code = o.error_code;
            pr.offset = o.offset;
            pr.timestamp = o.timestamp;
            // leader_epoch exists from v4 on; encoding a non-default value earlier is an error.
            if version >= 4 && o.error_code == 0 {
                pr.leader_epoch = o.leader_epoch;
            }
            t.partitions.push(pr);
        }
        resp.topics.push(t);
    }
    resp
}

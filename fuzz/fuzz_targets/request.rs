//! A request frame as a client sends it (without the size prefix): the header is parsed as the
//! broker does, then the body is decoded with the codec of its API and version, for every API
//! and version the broker answers. Produce records then go through the record walker as the
//! validator walks them. Nothing may panic or allocate beyond the input's size.
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;
use shardlog::log::batch::split_and_validate;
use shardlog::log::record_walk::RecordWalker;
use shardlog::server::apis::OFFERED;
use shardlog::wire::api_table::supported_versions;
use shardlog::wire::frame::parse_request;

fn walk(records: &[u8]) {
    if let Ok(spans) = split_and_validate(records, usize::MAX) {
        for s in spans {
            let batch = &records[s.pos..s.pos + s.header.total_len()];
            if let Ok(mut w) = RecordWalker::new(batch, &s.header) {
                while let Ok(Some(_)) = w.next_record() {}
            }
        }
    }
}

macro_rules! decode_as {
    ($body:expr, $version:expr, $ty:ty) => {{
        let mut b = $body.clone();
        let _ = <$ty>::decode(&mut b, $version);
    }};
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut frame) = parse_request(Bytes::copy_from_slice(data), OFFERED) else {
        return;
    };
    let key = frame.api_key;
    let Some(range) = supported_versions(OFFERED, key) else {
        return;
    };
    let v = frame.api_version;
    if v < range.min || v > range.max {
        return;
    }
    let body = &mut frame.body;
    match key {
        ApiKey::Produce => {
            if let Ok(req) = ProduceRequest::decode(body, v) {
                for t in &req.topic_data {
                    for p in &t.partition_data {
                        if let Some(r) = &p.records {
                            walk(r);
                        }
                    }
                }
            }
        }
        ApiKey::Fetch => decode_as!(body, v, FetchRequest),
        ApiKey::ListOffsets => decode_as!(body, v, ListOffsetsRequest),
        ApiKey::Metadata => decode_as!(body, v, MetadataRequest),
        ApiKey::OffsetCommit => decode_as!(body, v, OffsetCommitRequest),
        ApiKey::OffsetFetch => decode_as!(body, v, OffsetFetchRequest),
        ApiKey::FindCoordinator => decode_as!(body, v, FindCoordinatorRequest),
        ApiKey::JoinGroup => decode_as!(body, v, JoinGroupRequest),
        ApiKey::Heartbeat => decode_as!(body, v, HeartbeatRequest),
        ApiKey::LeaveGroup => decode_as!(body, v, LeaveGroupRequest),
        ApiKey::SyncGroup => decode_as!(body, v, SyncGroupRequest),
        ApiKey::DescribeGroups => decode_as!(body, v, DescribeGroupsRequest),
        ApiKey::ListGroups => decode_as!(body, v, ListGroupsRequest),
        ApiKey::SaslHandshake => decode_as!(body, v, SaslHandshakeRequest),
        ApiKey::ApiVersions => decode_as!(body, v, ApiVersionsRequest),
        ApiKey::CreateTopics => decode_as!(body, v, CreateTopicsRequest),
        ApiKey::DeleteTopics => decode_as!(body, v, DeleteTopicsRequest),
        ApiKey::InitProducerId => decode_as!(body, v, InitProducerIdRequest),
        ApiKey::DescribeConfigs => decode_as!(body, v, DescribeConfigsRequest),
        ApiKey::AlterConfigs => decode_as!(body, v, AlterConfigsRequest),
        ApiKey::DeleteGroups => decode_as!(body, v, DeleteGroupsRequest),
        ApiKey::CreatePartitions => decode_as!(body, v, CreatePartitionsRequest),
        ApiKey::OffsetDelete => decode_as!(body, v, OffsetDeleteRequest),
        ApiKey::DescribeCluster => decode_as!(body, v, DescribeClusterRequest),
        ApiKey::IncrementalAlterConfigs => decode_as!(body, v, IncrementalAlterConfigsRequest),
        _ => {}
    }
});

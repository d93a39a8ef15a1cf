//! Fetch byte limits with Kafka's semantics, and bounded work for hostile fetches: the response
//! holds at most `max_bytes` (plus one whole batch for the first partition with data), and a
//! fetch naming one partition thousands of times is answered without blowing up memory.

mod common;

use std::time::Duration;

use common::{raw_call, Broker, BrokerOpts};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

const TOPIC: &str = "limits";

fn fetch(broker: &Broker, partitions: &[i32], max_bytes: i32, partition_max: i32) -> FetchResponse {
    let mut topic = FetchTopic::default();
    topic.topic = TopicName(StrBytes::from_static_str(TOPIC));
    topic.partitions = partitions
        .iter()
        .map(|p| {
            let mut fp = FetchPartition::default();
            fp.partition = *p;
            fp.fetch_offset = 0;
            fp.partition_max_bytes = partition_max;
            fp
        })
        .collect();
    let mut req = FetchRequest::default();
    req.max_wait_ms = 0;
    req.min_bytes = 1;
    req.max_bytes = max_bytes;
    req.topics = vec![topic];
    raw_call(broker.addr(), ApiKey::Fetch, 12, &req)
}

fn sizes(resp: &FetchResponse) -> Vec<usize> {
    resp.responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        })
        .collect()
}

#[test]
fn response_respects_max_bytes_and_repeated_partitions_stay_bounded() {
    let mut broker = Broker::start(BrokerOpts::default().cores(2));
    broker.create_topic(TOPIC, 4, &[]);
    // 4 partitions x 20 batches of one ~10 KB record each (linger 0: one record per batch).
    let mut p = broker.producer_with(&[("linger.ms", "0"), ("compression.type", "none")]);
    let value = vec![b'x'; 10_000];
    for i in 0..80 {
        p.send(TOPIC, Some(i % 4), None, &value, None);
        if i % 4 == 3 {
            assert!(p
                .flush(Duration::from_secs(30))
                .iter()
                .all(|d| d.error.is_none()));
        }
    }

    // Plenty of room: every partition returns all its data.
    let all = sizes(&fetch(&broker, &[0, 1, 2, 3], 10_000_000, 1_000_000));
    assert!(all.iter().all(|s| *s >= 200_000), "{all:?}");

    // 25 KB for 4 partitions: about two batches in total, in request order, never far over.
    let limited = sizes(&fetch(&broker, &[0, 1, 2, 3], 25_000, 1_000_000));
    let total: usize = limited.iter().sum();
    assert!(total > 0 && total <= 25_000 + 10_200, "{limited:?}");
    assert!(
        limited[0] > 0,
        "the first partition always gets data: {limited:?}"
    );

    // A limit below one batch still returns the first batch whole (KIP-74).
    let tiny = sizes(&fetch(&broker, &[0, 1], 100, 100));
    assert!(tiny[0] > 10_000 && tiny[1] == 0, "{tiny:?}");

    // One partition named 5,000 times with a 1 MB budget: merged into one, as Kafka collects a
    // fetch's partitions into a map; answered, bounded, broker fine.
    let repeated = vec![0; 5_000];
    let resp = fetch(&broker, &repeated, 1_000_000, 1_000_000);
    let total: usize = sizes(&resp).iter().sum();
    assert_eq!(sizes(&resp).len(), 1);
    assert!(
        total <= 2 * 1_000_000 + 10_200,
        "repeated fetch returned {total} bytes"
    );
    broker.assert_metadata_ok();
}

#[test]
fn a_partition_named_twice_is_read_once_at_its_last_offset() {
    let broker = Broker::start(BrokerOpts::default());
    broker.create_topic(TOPIC, 1, &[]);
    let mut p = broker.producer_with(&[("linger.ms", "0")]);
    for _ in 0..20 {
        p.send(TOPIC, Some(0), None, b"v", None);
        assert!(p
            .flush(Duration::from_secs(20))
            .iter()
            .all(|d| d.error.is_none()));
    }
    let part = |offset| {
        let mut fp = FetchPartition::default();
        fp.partition = 0;
        fp.fetch_offset = offset;
        fp.partition_max_bytes = 1 << 20;
        fp
    };
    let topic = |parts| {
        let mut t = FetchTopic::default();
        t.topic = TopicName(StrBytes::from_static_str(TOPIC));
        t.partitions = parts;
        t
    };
    let mut req = FetchRequest::default();
    req.max_wait_ms = 0;
    req.min_bytes = 1;
    req.max_bytes = 1 << 20;
    // Twice in one topic entry, then once more under a repeated topic entry.
    req.topics = vec![topic(vec![part(0), part(5)]), topic(vec![part(10)])];
    let resp: FetchResponse = raw_call(broker.addr(), ApiKey::Fetch, 12, &req);
    assert_eq!(resp.responses.len(), 1);
    assert_eq!(resp.responses[0].partitions.len(), 1);
    let records = resp.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    let first = shardlog::log::batch::BatchHeader::parse(&records).expect("a batch");
    assert_eq!(first.base_offset, 10, "read at the last mention's offset");
}

/// A fetch that claims to come from a replica (replica id >= 0, in the request header field
/// before v15 and in `replica_state` from v15) gets NOT_LEADER_OR_FOLLOWER and no data: no
/// partition has followers, and a client must not read past what consumers may by posing as
/// a broker. The same fetch as a consumer (-1) reads.
#[test]
fn a_fetch_posing_as_a_replica_is_refused() {
    use kafka_protocol::messages::fetch_request::ReplicaState;
    let broker = Broker::start_default();
    broker.create_topic(TOPIC, 1, &[]);
    let mut p = broker.producer();
    p.send(TOPIC, Some(0), None, b"secret", None);
    assert!(p
        .flush(Duration::from_secs(30))
        .iter()
        .all(|d| d.error.is_none()));
    let ask = |version: i16, replica: i32| {
        let mut topic = FetchTopic::default();
        topic.topic = TopicName(StrBytes::from_static_str(TOPIC));
        topic.topic_id = uuid_of(&broker);
        let mut fp = FetchPartition::default();
        fp.partition = 0;
        fp.partition_max_bytes = 1 << 20;
        topic.partitions = vec![fp];
        let mut req = FetchRequest::default();
        req.max_wait_ms = 0;
        req.max_bytes = 1 << 20;
        req.topics = vec![topic];
        match version >= 15 {
            true => {
                let mut state = ReplicaState::default();
                state.replica_id = replica.into();
                req.replica_state = state;
            }
            false => req.replica_id = replica.into(),
        }
        let r: FetchResponse = raw_call(broker.addr(), ApiKey::Fetch, version, &req);
        let part = &r.responses[0].partitions[0];
        (
            part.error_code,
            part.records.as_ref().map_or(0, |b| b.len()),
        )
    };
    let refused = kafka_protocol::error::ResponseError::NotLeaderOrFollower.code();
    for version in [12, 16] {
        assert_eq!(ask(version, 1), (refused, 0), "v{version} as broker 1");
        let (code, bytes) = ask(version, -1);
        assert_eq!(code, 0, "v{version} as a consumer");
        assert!(bytes > 0, "v{version} as a consumer read nothing");
    }
}

/// The topic id of TOPIC (Fetch v13+ names topics by id).
fn uuid_of(broker: &Broker) -> uuid::Uuid {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    let mut t = MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_static_str(TOPIC)));
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![t]);
    let r: MetadataResponse = raw_call(broker.addr(), ApiKey::Metadata, 12, &req);
    r.topics[0].topic_id
}

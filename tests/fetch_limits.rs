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

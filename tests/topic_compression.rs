//! `compression.type` on a topic: batches are stored with the topic's codec whatever the
//! producer sent (Kafka re-encodes the same way), and consumers read the same records.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use shardlog::log::batch::BatchHeader;

/// Codec ids of the batches stored in partition 0 of `topic`, read with a raw Fetch.
fn stored_codecs(b: &Broker, topic: &str) -> Vec<u8> {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let resp: FetchResponse = raw_call(b.addr(), ApiKey::Fetch, 12, &req);
    let records: Bytes = resp.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let Ok(h) = BatchHeader::parse(&records[pos..]) else {
            break;
        };
        out.push(h.compression());
        pos += h.total_len();
    }
    out
}

#[test]
fn batches_are_stored_with_the_topics_codec() {
    let b = Broker::start(BrokerOpts::default().cores(1));
    // (topic codec, what the producer sends, codec id expected on disk). The rdkafka crate here
    // builds librdkafka without zstd, so zstd is covered by the unit tests only.
    let cases = [
        ("gzip", "none", 1u8),
        ("snappy", "lz4", 2),
        ("lz4", "gzip", 3),
        ("uncompressed", "lz4", 0),
        ("producer", "snappy", 2),
    ];
    for (topic_codec, sent, stored) in cases {
        let topic = format!("c-{topic_codec}");
        b.create_topic(&topic, 1, &[("compression.type", topic_codec)]);
        let mut p = b.producer_with(&[("compression.type", sent), ("linger.ms", "5")]);
        for i in 0..200 {
            p.send(
                &topic,
                Some(0),
                Some(format!("k{i}").as_bytes()),
                format!("value {i} {}", "x".repeat(i % 50)).as_bytes(),
                None,
            );
        }
        let d = p.flush(Duration::from_secs(20));
        assert!(
            d.iter().all(|x| x.error.is_none()),
            "{topic}: {:?}",
            d.iter().find(|x| x.error.is_some())
        );
        let codecs = stored_codecs(&b, &topic);
        assert!(!codecs.is_empty());
        assert!(
            codecs.iter().all(|c| *c == stored),
            "{topic} sent {sent}: {codecs:?}"
        );
        let c = b.consumer();
        let r = consume(&c, &topic, &[(0, 0)], 200, Duration::from_secs(20));
        assert!(r.errors.is_empty(), "{topic}: {:?}", r.errors);
        for (i, m) in r.messages.iter().enumerate() {
            assert_eq!(m.offset, i as i64);
            assert_eq!(m.key.as_deref(), Some(format!("k{i}").as_bytes()));
            assert_eq!(
                m.payload.as_deref(),
                Some(format!("value {i} {}", "x".repeat(i % 50)).as_bytes())
            );
        }
    }
}

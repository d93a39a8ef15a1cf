//! DeleteRecords through librdkafka's admin API: the low watermark moves up (durably, across a
//! restart), consumers no longer see what was deleted, whole segments below it are removed, and
//! Kafka's refusals (beyond the high watermark, internal topics, unknown partitions) hold.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

fn delete_before(
    b: &Broker,
    topic: &str,
    partition: i32,
    offset: Offset,
) -> Result<i64, RDKafkaErrorCode> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, offset).unwrap();
    let out = block_on(b.admin().delete_records(&tpl, &admin_opts())).expect("delete_records call");
    let e = out.elements_for_topic(topic);
    let p = e.first().expect("a result");
    match p.error() {
        Err(rdkafka::error::KafkaError::OffsetFetch(code)) => Err(code),
        Err(other) => panic!("{other:?}"),
        Ok(()) => match p.offset() {
            Offset::Offset(o) => Ok(o),
            other => panic!("{other:?}"),
        },
    }
}

#[test]
fn records_below_an_offset_are_deleted_for_good() {
    let mut b = Broker::start(BrokerOpts::default());
    // Small segments, so deleting reaches whole segments.
    b.create_topic("trim", 2, &[("segment.bytes", "1048576")]);
    let mut p = b.producer_with(&[
        ("linger.ms", "0"),
        ("batch.num.messages", "1"),
        ("compression.type", "none"),
    ]);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..40 {
        let value = incompressible(&mut x, 100_000);
        p.send("trim", Some(0), None, &value, None);
    }
    p.send("trim", Some(1), None, b"one", None);
    assert!(p
        .flush(Duration::from_secs(30))
        .iter()
        .all(|d| d.error.is_none()));
    let dir = b.data_dir().join("trim-0");
    let segments = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "log")
            })
            .count()
    };
    let before = segments();
    assert!(before >= 3, "{before} segments");

    assert_eq!(delete_before(&b, "trim", 0, Offset::Offset(30)), Ok(30));
    assert!(segments() < before, "whole segments below 30 are removed");
    assert_eq!(watermarks(&b.consumer(), "trim", 2), vec![(30, 40), (0, 1)]);
    // Not past the start: unchanged. Beyond the high watermark: refused.
    assert_eq!(delete_before(&b, "trim", 0, Offset::Offset(10)), Ok(30));
    assert_eq!(
        delete_before(&b, "trim", 0, Offset::Offset(41)),
        Err(RDKafkaErrorCode::OffsetOutOfRange)
    );
    // Below the low watermark is out of range (this consumer has no reset policy) ...
    let gone = consume_all(&b.bootstrap(), "trim", 1, 1, Duration::from_secs(5));
    assert!(gone.messages.is_empty(), "{:?}", gone.messages.len());
    assert!(
        gone.errors
            .iter()
            .any(|e| format!("{e:?}").contains("AutoOffsetReset")),
        "{:?}",
        gone.errors
    );
    // ... and from it on, everything is there.
    let got = consume(
        &b.consumer(),
        "trim",
        &[(0, 30)],
        10,
        Duration::from_secs(20),
    );
    assert_eq!(got.messages.len(), 10, "{:?}", got.errors);
    assert!(got.messages.iter().all(|m| m.offset >= 30));

    b.restart();
    assert_eq!(watermarks(&b.consumer(), "trim", 2), vec![(30, 40), (0, 1)]);
    // "Everything" (librdkafka's Offset::End is -1: the high watermark).
    assert_eq!(delete_before(&b, "trim", 1, Offset::End), Ok(1));
    assert_eq!(watermarks(&b.consumer(), "trim", 2), vec![(30, 40), (1, 1)]);

    assert_eq!(
        delete_before(&b, "__consumer_offsets", 0, Offset::Offset(0)),
        Err(RDKafkaErrorCode::InvalidTopic)
    );
    // librdkafka checks partitions against its metadata first; ask the broker directly.
    {
        use kafka_protocol::messages::delete_records_request::{
            DeleteRecordsPartition, DeleteRecordsTopic,
        };
        use kafka_protocol::messages::{
            ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, TopicName,
        };
        use kafka_protocol::protocol::StrBytes;
        let mut p = DeleteRecordsPartition::default();
        p.partition_index = 7;
        let mut t = DeleteRecordsTopic::default();
        t.name = TopicName(StrBytes::from_static_str("trim"));
        t.partitions = vec![p];
        let mut req = DeleteRecordsRequest::default();
        req.topics = vec![t];
        req.timeout_ms = 5000;
        let r: DeleteRecordsResponse = raw_call(b.addr(), ApiKey::DeleteRecords, 2, &req);
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code()
        );
    }
}

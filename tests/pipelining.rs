//! One connection, many requests sent back to back without waiting (as librdkafka and the Java
//! client do with up to 5 in flight): acks=-1 produces are appended while earlier ones wait for
//! their sync, yet every response comes back in request order with its own correlation id, and
//! the offsets follow the order the requests were sent in. A request that fails (bad CRC) in
//! the middle of the pipeline fails alone.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ProduceRequest, ProduceResponse,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const TOPIC: &str = "pipe";
const PRODUCE_VERSION: i16 = 9;

fn batch(tag: usize, corrupt: bool) -> Bytes {
    let records: Vec<(Option<Vec<u8>>, Vec<u8>)> = (0..4)
        .map(|i| (None, format!("request {tag} record {i}").into_bytes()))
        .collect();
    let mut buf = record_batch(&records);
    if corrupt {
        let i = buf.len() - 3;
        buf[i] ^= 0x55; // inside the records: only the CRC notices
    }
    buf.freeze()
}

fn produce_frame(correlation_id: i32, acks: i16, partition: i32, records: Bytes) -> Vec<u8> {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let mut body = BytesMut::new();
    req.encode(&mut body, PRODUCE_VERSION).expect("encode");
    raw_frame(
        ApiKey::Produce as i16,
        PRODUCE_VERSION,
        correlation_id,
        &body,
    )
}

fn read_response(s: &mut TcpStream, api_key: ApiKey, version: i16) -> (i32, Bytes) {
    let mut frame = raw_read_frame(s).expect("response");
    let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))
        .expect("header");
    (header.correlation_id, frame)
}

#[test]
fn pipelined_requests_are_answered_in_order_with_offsets_in_send_order() {
    let mut broker = Broker::start(BrokerOpts::default().cores(2));
    broker.create_topic(TOPIC, 2, &[]);
    let mut s = TcpStream::connect(broker.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();

    // 40 produces (acks -1 and 1 mixed, both partitions, one corrupt) and an ApiVersions in the
    // middle, all written before reading anything.
    let mut wire = Vec::new();
    let mut expect = Vec::new(); // (correlation id, partition or None for ApiVersions, corrupt)
    for i in 0..40usize {
        let id = 1000 + i as i32;
        if i == 20 {
            let mut body = BytesMut::new();
            ApiVersionsRequest::default().encode(&mut body, 0).unwrap();
            wire.extend(raw_frame(ApiKey::ApiVersions as i16, 0, id, &body));
            expect.push((id, None, false));
            continue;
        }
        let partition = (i % 2) as i32;
        let acks = if i % 3 == 0 { 1 } else { -1 };
        let corrupt = i == 13;
        wire.extend(produce_frame(id, acks, partition, batch(i, corrupt)));
        expect.push((id, Some(partition), corrupt));
    }
    s.write_all(&wire).expect("write pipeline");

    let mut next_offset = [0i64; 2];
    for (id, partition, corrupt) in expect {
        match partition {
            None => {
                let (got, mut body) = read_response(&mut s, ApiKey::ApiVersions, 0);
                assert_eq!(got, id, "responses in request order");
                let r = ApiVersionsResponse::decode(&mut body, 0).expect("api versions");
                assert_eq!(r.error_code, 0);
            }
            Some(p) => {
                let (got, mut body) = read_response(&mut s, ApiKey::Produce, PRODUCE_VERSION);
                assert_eq!(got, id, "responses in request order");
                let r = ProduceResponse::decode(&mut body, PRODUCE_VERSION).expect("produce");
                let pr = &r.responses[0].partition_responses[0];
                assert_eq!(pr.index, p);
                if corrupt {
                    assert_eq!(pr.error_code, 2, "CORRUPT_MESSAGE for the bad batch only");
                    continue;
                }
                assert_eq!(pr.error_code, 0, "request {id}");
                assert_eq!(
                    pr.base_offset, next_offset[p as usize],
                    "offsets follow the send order"
                );
                next_offset[p as usize] += 4;
            }
        }
    }
    // 39 produces, one refused: 38 x 4 records, split over the two partitions.
    assert_eq!(next_offset[0] + next_offset[1], 38 * 4);
    broker.assert_running();
}

#[test]
fn nothing_after_a_request_that_closes_the_connection_is_executed() {
    let mut broker = Broker::start(BrokerOpts::default().cores(2));
    broker.create_topic(TOPIC, 1, &[]);
    let mut s = TcpStream::connect(broker.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();

    // acks=-1 produce (waits for its sync), then a Produce with an unsupported version (the
    // broker closes the connection, as Kafka does), then another produce that must never run.
    let mut wire = produce_frame(1, -1, 0, batch(1, false));
    wire.extend(raw_frame(ApiKey::Produce as i16, 999, 2, &[0u8; 16]));
    wire.extend(produce_frame(3, -1, 0, batch(3, false)));
    s.write_all(&wire).expect("write pipeline");

    let (id, mut body) = read_response(&mut s, ApiKey::Produce, PRODUCE_VERSION);
    assert_eq!(id, 1);
    let r = ProduceResponse::decode(&mut body, PRODUCE_VERSION).expect("produce");
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    assert!(
        raw_read_frame(&mut s).is_err(),
        "the connection closes at the bad request"
    );
    let c = broker.consumer();
    let marks = watermarks(&c, TOPIC, 1);
    assert_eq!(
        marks[0],
        (0, 4),
        "only the first produce was appended (4 records)"
    );
    broker.assert_running();
}

//! The main end-to-end scenario: 100,000 keyed messages into 8 partitions with acks=all and lz4,
//! read back, checked (keys → partitions, dense offsets, per-key order, watermarks, timestamps
//! lookups), an oversized message refused, the topic deleted, and all of it surviving a restart.
//! Runs once with one shard and once with two (partitions spread over both shards).

mod common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 8;
const MESSAGES: u64 = 100_000;
const KEYS: u64 = 1_000;
const TOPIC: &str = "events";

fn key_of(id: u64) -> String {
    format!("key-{:04}", id % KEYS)
}
fn value_of(id: u64) -> String {
    format!("{}:{}", key_of(id), id / KEYS)
}

struct Produced {
    t0: i64,
    /// (partition, offset) of message id i.
    placed: Vec<(i32, i64)>,
    /// Messages per partition.
    counts: Vec<i64>,
}

fn produce_all(broker: &Broker) -> Produced {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t0 = now - 3_600_000;
    let mut p = broker.producer();
    for id in 0..MESSAGES {
        let sent = p.send(
            TOPIC,
            None,
            Some(key_of(id).as_bytes()),
            value_of(id).as_bytes(),
            Some(t0 + id as i64),
        );
        assert_eq!(sent, id);
    }
    let reports = p.flush(Duration::from_secs(60));
    assert_eq!(
        reports.len() as u64,
        MESSAGES,
        "one delivery report per message"
    );

    let mut placed = vec![(-1, -1); MESSAGES as usize];
    let mut key_partition: HashMap<u64, i32> = HashMap::new();
    for d in &reports {
        assert!(d.error.is_none(), "message {} failed: {:?}", d.id, d.error);
        assert!((0..PARTITIONS).contains(&d.partition));
        let k = d.id % KEYS;
        let first = *key_partition.entry(k).or_insert(d.partition);
        assert_eq!(first, d.partition, "key {k} went to two partitions");
        placed[d.id as usize] = (d.partition, d.offset);
    }
    // Offsets dense per partition: exactly 0..n-1, each once.
    let mut per: Vec<Vec<i64>> = vec![Vec::new(); PARTITIONS as usize];
    for (p, o) in &placed {
        per[*p as usize].push(*o);
    }
    let mut counts = Vec::new();
    for (p, offs) in per.iter_mut().enumerate() {
        offs.sort_unstable();
        let n = offs.len() as i64;
        assert!(
            offs.iter().copied().eq(0..n),
            "partition {p}: delivered offsets are not 0..{n}"
        );
        counts.push(n);
    }
    // 1000 keys over 8 partitions: every partition gets some.
    assert!(counts.iter().all(|c| *c > 0), "counts {counts:?}");
    Produced { t0, placed, counts }
}

/// Reads everything back and checks contents against what was produced.
fn verify_all(broker: &Broker, prod: &Produced, extra_in_p0: &[Vec<u8>]) {
    let total = MESSAGES as usize + extra_in_p0.len();
    let r = consume_all(
        &broker.bootstrap(),
        TOPIC,
        PARTITIONS,
        total,
        Duration::from_secs(60),
    );
    assert!(r.errors.is_empty(), "consumer errors: {:?}", r.errors);
    assert_eq!(r.messages.len(), total, "consumed count");

    let mut expected: HashMap<(i32, i64), u64> = HashMap::new();
    for (id, po) in prod.placed.iter().enumerate() {
        expected.insert(*po, id as u64);
    }
    let parts = by_partition(&r.messages);
    let mut last_seq: HashMap<Vec<u8>, u64> = HashMap::new();
    for p in 0..PARTITIONS {
        let msgs = &parts[&p];
        let want = prod.counts[p as usize] + if p == 0 { extra_in_p0.len() as i64 } else { 0 };
        assert_eq!(msgs.len() as i64, want, "partition {p} count");
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(m.offset, i as i64, "partition {p}: offsets not dense");
            if let Some(id) = expected.get(&(p, m.offset)) {
                assert_eq!(m.key.as_deref(), Some(key_of(*id).as_bytes()));
                assert_eq!(m.payload.as_deref(), Some(value_of(*id).as_bytes()));
                assert_eq!(
                    m.timestamp,
                    Some(prod.t0 + *id as i64),
                    "timestamp of id {id}"
                );
                // Per-key order: seq strictly increasing along the partition.
                let seq = id / KEYS;
                if let Some(prev) = last_seq.insert(m.key.clone().unwrap(), seq) {
                    assert!(prev < seq, "key {:?}: seq {seq} after {prev}", m.key);
                }
            } else {
                let extra = (m.offset - prod.counts[p as usize]) as usize;
                assert_eq!(p, 0);
                assert_eq!(m.payload.as_deref(), Some(&extra_in_p0[extra][..]));
            }
        }
    }
    assert_eq!(last_seq.len() as u64, KEYS);
    assert!(last_seq.values().all(|s| *s == MESSAGES / KEYS - 1));
}

fn check_watermarks(broker: &Broker, want: &[i64]) {
    let c = broker.consumer();
    let wm = watermarks(&c, TOPIC, PARTITIONS);
    let want: Vec<(i64, i64)> = want.iter().map(|n| (0, *n)).collect();
    assert_eq!(wm, want, "watermarks");
}

fn check_offsets_for_times(broker: &Broker, prod: &Produced) {
    let c = broker.consumer();
    // A timestamp in the middle: for each partition the answer is the first offset whose
    // timestamp is >= target (Kafka's ListOffsets semantics), exact even inside lz4 batches.
    let target = prod.t0 + (MESSAGES / 2) as i64 + 7;
    let mut want: HashMap<i32, i64> = HashMap::new();
    for (id, (p, o)) in prod.placed.iter().enumerate() {
        if prod.t0 + id as i64 >= target {
            let e = want.entry(*p).or_insert(*o);
            *e = (*e).min(*o);
        }
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Offset(target))
            .unwrap();
    }
    let got = c
        .offsets_for_times(tpl, Duration::from_secs(10))
        .expect("offsets_for_times");
    for p in 0..PARTITIONS {
        let e = got.find_partition(TOPIC, p).unwrap();
        assert!(e.error().is_ok(), "partition {p}: {:?}", e.error());
        assert_eq!(
            e.offset(),
            Offset::Offset(want[&p]),
            "partition {p}: offset for timestamp {target}"
        );
    }

    // A timestamp after every message: -1 (librdkafka shows it as End).
    let future = prod.t0 + 10 * MESSAGES as i64 + 86_400_000;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Offset(future))
            .unwrap();
    }
    let got = c
        .offsets_for_times(tpl, Duration::from_secs(10))
        .expect("offsets_for_times (future)");
    for p in 0..PARTITIONS {
        let e = got.find_partition(TOPIC, p).unwrap();
        assert!(e.error().is_ok(), "partition {p}: {:?}", e.error());
        assert!(
            matches!(e.offset(), Offset::End | Offset::Offset(-1)),
            "partition {p}: future timestamp gave {:?}",
            e.offset()
        );
    }
}

/// A 15 MB (incompressible) message is refused with MESSAGE_TOO_LARGE; the broker keeps going.
/// Returns the small message produced afterwards to partition 0.
fn oversized_message_refused(broker: &mut Broker, counts: &[i64]) -> Vec<u8> {
    let mut p = broker.producer_with(&[("message.max.bytes", "20000000")]);
    let big = Rng::new(42).bytes(15 * 1024 * 1024);
    p.send(TOPIC, Some(0), Some(b"big"), &big, None);
    let d = p.flush(Duration::from_secs(60));
    assert_eq!(d.len(), 1);
    match &d[0].error {
        Some(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {}
        other => panic!("15 MB message: expected MessageSizeTooLarge, got {other:?}"),
    }
    broker.assert_running();

    // Still serving: produce and consume on the same partition.
    let small = b"after-the-big-one".to_vec();
    p.send(TOPIC, Some(0), Some(b"small"), &small, None);
    let d = p.flush(Duration::from_secs(30));
    assert_eq!(d.len(), 1);
    assert!(d[0].error.is_none(), "{:?}", d[0].error);
    assert_eq!(d[0].offset, counts[0], "the refused message took no offset");
    let c = broker.consumer();
    let r = consume(&c, TOPIC, &[(0, counts[0])], 1, Duration::from_secs(20));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.messages.len(), 1);
    assert_eq!(r.messages[0].payload.as_deref(), Some(&small[..]));
    small
}

fn topic_dirs(broker: &Broker, topic: &str) -> Vec<String> {
    let prefix = format!("{topic}-");
    std::fs::read_dir(broker.data_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.starts_with(&prefix).then_some(name)
        })
        .collect()
}

fn scenario(cores: usize) {
    let mut broker = Broker::start(BrokerOpts::default().cores(cores));
    broker.create_topic(TOPIC, PARTITIONS, &[("retention.ms", "-1")]);

    let prod = produce_all(&broker);
    eprintln!("cores {cores}: per-partition counts {:?}", prod.counts);
    check_watermarks(&broker, &prod.counts);
    verify_all(&broker, &prod, &[]);
    check_offsets_for_times(&broker, &prod);

    let small = oversized_message_refused(&mut broker, &prod.counts);
    let mut after = prod.counts.clone();
    after[0] += 1;
    check_watermarks(&broker, &after);

    // Clean restart on the same data dir: everything is still there, identically.
    broker.restart();
    check_watermarks(&broker, &after);
    verify_all(&broker, &prod, &[small]);
    check_offsets_for_times(&broker, &prod);

    // Delete: gone from metadata and from disk, and still gone after another restart.
    assert_eq!(topic_dirs(&broker, TOPIC).len(), PARTITIONS as usize);
    delete_topic(&broker.admin(), TOPIC);
    let c = broker.consumer();
    assert!(
        wait_until(Duration::from_secs(10), || !topic_names(&c)
            .contains(&TOPIC.to_string())),
        "deleted topic still listed in metadata"
    );
    assert!(
        wait_until(Duration::from_secs(10), || topic_dirs(&broker, TOPIC)
            .is_empty()),
        "partition directories left after delete: {:?}",
        topic_dirs(&broker, TOPIC)
    );
    drop(c);
    broker.restart();
    let c = broker.consumer();
    assert!(
        !topic_names(&c).contains(&TOPIC.to_string()),
        "deleted topic came back after restart"
    );
    assert!(topic_dirs(&broker, TOPIC).is_empty());
    broker.stop();
}

#[test]
fn produce_consume_one_shard() {
    scenario(1);
}

#[test]
fn produce_consume_two_shards() {
    scenario(2);
}

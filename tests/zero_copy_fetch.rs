//! `fetch.zero.copy=true`: fetched record data goes from the page cache to the socket with
//! sendfile, as Kafka's FileRecords do, including a possibly partial last batch when a limit cuts
//! through it. A real client must read everything back exactly, in order, with small and large
//! fetch limits (small segments, so reads also cross segment rolls).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{consume, consumer_with, Broker, BrokerOpts};

const TOPIC: &str = "zc";
const PARTITIONS: i32 = 4;
const MESSAGES: usize = 12_000;

fn value(i: usize) -> Vec<u8> {
    // Sizes from 1 byte to ~6 KB, so batches end at every alignment, content unique per message.
    let len = 1 + (i * 7919) % 6000;
    let mut v = format!("{i}:").into_bytes();
    v.resize(len.max(v.len()), b'a' + (i % 26) as u8);
    v
}

#[test]
fn sendfile_fetches_return_every_message_exactly_and_in_order() {
    let mut broker = Broker::start(
        BrokerOpts::default()
            .cores(2)
            .set("fetch.zero.copy", "true"),
    );
    broker.create_topic(TOPIC, PARTITIONS, &[("segment.bytes", "4000000")]);
    let mut p = broker.producer_with(&[("compression.type", "none"), ("acks", "1")]);
    let mut expected: HashMap<i32, Vec<Vec<u8>>> = HashMap::new();
    for i in 0..MESSAGES {
        let part = (i % PARTITIONS as usize) as i32;
        p.send(TOPIC, Some(part), None, &value(i), None);
        expected.entry(part).or_default().push(value(i));
    }
    let reports = p.flush(Duration::from_secs(60));
    assert!(reports.iter().all(|d| d.error.is_none()), "produce failed");

    // Small limits: most fetches end inside a batch (the client drops the partial tail and
    // fetches it again); large limits: multi-MiB sendfiles that fill the socket buffer.
    for (fetch_max, partition_max) in [("50000", "20000"), ("52428800", "10485760")] {
        let c = consumer_with(
            &broker.bootstrap(),
            &[
                ("fetch.max.bytes", fetch_max),
                ("message.max.bytes", fetch_max),
                ("max.partition.fetch.bytes", partition_max),
            ],
        );
        let starts: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 0)).collect();
        let got = consume(&c, TOPIC, &starts, MESSAGES, Duration::from_secs(120));
        assert!(got.errors.is_empty(), "{:?}", got.errors);
        assert_eq!(
            got.messages.len(),
            MESSAGES,
            "limits {fetch_max}/{partition_max}"
        );
        let mut per_partition: HashMap<i32, Vec<(i64, Vec<u8>)>> = HashMap::new();
        for m in got.messages {
            per_partition
                .entry(m.partition)
                .or_default()
                .push((m.offset, m.payload.unwrap_or_default()));
        }
        for (part, want) in &expected {
            let have = &per_partition[part];
            let offsets: Vec<i64> = have.iter().map(|(o, _)| *o).collect();
            assert_eq!(
                offsets,
                (0..want.len() as i64).collect::<Vec<_>>(),
                "partition {part}"
            );
            assert!(
                have.iter().map(|(_, v)| v).eq(want.iter()),
                "partition {part}: payloads differ"
            );
        }
    }
    broker.assert_running();
    assert!(broker.panics_in_log().is_empty());
}

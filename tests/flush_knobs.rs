//! Kafka's flush knobs: `flush.messages` and `flush.ms` force fdatasyncs for producers that do
//! not ask for durability (acks=1). Observed through the per-shard sync counters the broker logs
//! at shutdown (`sync stats: shard=N syncs=X ...`).

mod common;

use std::time::Duration;

use common::{Broker, BrokerOpts};

/// Sum of `syncs=` over every shard's shutdown line.
fn syncs_logged(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("sync stats:"))
        .filter_map(|l| l.split("syncs=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

fn produce_acks1(broker: &Broker, topic: &str, n: usize) {
    let mut p = broker.producer_with(&[("acks", "1"), ("linger.ms", "0")]);
    for i in 0..n {
        p.send(
            topic,
            Some(0),
            Some(format!("k{i}").as_bytes()),
            format!("v{i}").as_bytes(),
            None,
        );
        // One message per request, so each append is its own batch.
        let d = p.flush(Duration::from_secs(10));
        assert!(d.iter().all(|d| d.error.is_none()), "{d:?}");
    }
}

#[test]
fn acks1_without_flush_knobs_never_syncs() {
    let mut broker = Broker::start(BrokerOpts::default().cores(1));
    broker.create_topic("plain", 1, &[]);
    produce_acks1(&broker, "plain", 20);
    broker.stop();
    assert_eq!(syncs_logged(&broker.log()), 0, "log:\n{}", broker.log());
}

#[test]
fn flush_messages_forces_a_sync_every_n_messages() {
    let mut broker = Broker::start(BrokerOpts::default().cores(1));
    broker.create_topic("every5", 1, &[("flush.messages", "5")]);
    produce_acks1(&broker, "every5", 20);
    broker.stop();
    // 20 single-message appends, a sync whenever 5 are unsynced: 4 syncs.
    assert_eq!(syncs_logged(&broker.log()), 4, "log:\n{}", broker.log());
}

#[test]
fn flush_ms_syncs_idle_unsynced_data() {
    let mut broker = Broker::start(
        BrokerOpts::default()
            .cores(1)
            .set("log.flush.scheduler.interval.ms", "50"),
    );
    broker.create_topic("timed", 1, &[("flush.ms", "200")]);
    produce_acks1(&broker, "timed", 3);
    // The scheduler first sees the partition (starting its clock), then syncs 200 ms later.
    std::thread::sleep(Duration::from_millis(1000));
    broker.stop();
    assert!(syncs_logged(&broker.log()) >= 1, "log:\n{}", broker.log());
}

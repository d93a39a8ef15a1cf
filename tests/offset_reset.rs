//! Consumer-side semantics clients rely on: `auto.offset.reset` earliest / latest / none for a
//! group with no committed offset (ListOffsets), and the reset after OFFSET_OUT_OF_RANGE.

mod common;

use std::time::{Duration, Instant};

use common::{consume, consumer_with, Broker, BrokerOpts};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::Message;

const TOPIC: &str = "reset";

fn produce(broker: &Broker, from: usize, n: usize) {
    let mut p = broker.producer();
    for i in from..from + n {
        p.send(TOPIC, Some(0), None, format!("m{i}").as_bytes(), None);
    }
    let d = p.flush(Duration::from_secs(10));
    assert!(d.iter().all(|d| d.error.is_none()), "{d:?}");
}

fn group_consumer(broker: &Broker, group: &str, reset: &str) -> BaseConsumer {
    let c = consumer_with(
        &broker.bootstrap(),
        &[
            ("group.id", group),
            ("auto.offset.reset", reset),
            ("session.timeout.ms", "6000"),
        ],
    );
    c.subscribe(&[TOPIC]).expect("subscribe");
    c
}

/// Polls until `n` messages arrived or `timeout`; returns payloads and errors.
fn poll_n(c: &BaseConsumer, n: usize, timeout: Duration) -> (Vec<String>, Vec<KafkaError>) {
    let deadline = Instant::now() + timeout;
    let (mut got, mut errs) = (Vec::new(), Vec::new());
    while got.len() < n && Instant::now() < deadline {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
            }
            Some(Err(e)) => errs.push(e),
            None => {}
        }
    }
    (got, errs)
}

#[test]
fn auto_offset_reset_earliest_latest_none_and_out_of_range() {
    let broker = Broker::start(
        BrokerOpts::default()
            .cores(2)
            .set("group.initial.rebalance.delay.ms", "0"),
    );
    broker.create_topic(TOPIC, 1, &[]);
    produce(&broker, 0, 10);

    // earliest: everything from offset 0.
    let earliest = group_consumer(&broker, "g-earliest", "earliest");
    let (got, errs) = poll_n(&earliest, 10, Duration::from_secs(20));
    assert_eq!(
        got,
        (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "errors: {errs:?}"
    );

    // latest: nothing old; the next message only.
    let latest = group_consumer(&broker, "g-latest", "latest");
    // Wait until the consumer owns the partition and has resolved its position to the end.
    let deadline = Instant::now() + Duration::from_secs(20);
    while latest.assignment().map(|a| a.count()).unwrap_or(0) == 0 && Instant::now() < deadline {
        let _ = latest.poll(Duration::from_millis(100));
    }
    let (old, _) = poll_n(&latest, 1, Duration::from_secs(2));
    assert!(old.is_empty(), "latest consumer saw old messages: {old:?}");
    produce(&broker, 10, 1);
    let (got, errs) = poll_n(&latest, 1, Duration::from_secs(20));
    assert_eq!(got, vec!["m10".to_string()], "errors: {errs:?}");

    // none (librdkafka: "error"): no committed offset -> the client reports an error, no data.
    let none = group_consumer(&broker, "g-none", "error");
    let (got, errs) = poll_n(&none, 1, Duration::from_secs(8));
    assert!(got.is_empty(), "consumer with reset=none read {got:?}");
    assert!(!errs.is_empty(), "expected an auto.offset.reset error");

    // Out of range: a fetch far past the end gets OFFSET_OUT_OF_RANGE and the client resets.
    let manual = consumer_with(&broker.bootstrap(), &[("auto.offset.reset", "earliest")]);
    let r = consume(&manual, TOPIC, &[(0, 1_000)], 11, Duration::from_secs(20));
    assert_eq!(r.messages.len(), 11, "errors: {:?}", r.errors);
    assert_eq!(r.messages[0].offset, 0);
}

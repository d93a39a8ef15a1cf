//! Idempotent producers (acks=all) across repeated kill -9 of the broker.
//!
//! Three producers, each in its own thread with `enable.idempotence=true`, send numbered messages
//! `producerX-<seq>` to two partitions of their own (fixed partition per message, key = producer).
//! While they run, the broker is killed with SIGKILL 4 times, each after a random number of new
//! acknowledgements, and restarted on the same port and data directory; the producers keep
//! retrying across the outage (librdkafka reconnects, `message.timeout.ms` is far longer than the
//! outage). At the end every partition is read from offset 0 and checked:
//! - every acknowledged message is at the offset its delivery report named, exactly once;
//! - per producer and partition, sequence numbers only increase (no duplicate, no reordering);
//! - nothing from another producer is in a producer's partitions;
//! - no producer hit a fatal error (librdkafka's idempotence state machine gives up with e.g.
//!   OUT_OF_ORDER_SEQUENCE_NUMBER when the broker's producer state is wrong after recovery).
//!
//! The kill schedule is random; the seed is printed and can be fixed with
//! `SHARDLOG_TEST_SEED=<n>`.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use rdkafka::producer::Producer;

const TOPIC: &str = "idem-crash";
const PRODUCERS: usize = 3;
/// Partitions per producer: producer X owns partitions 2X and 2X+1.
const PARTS_PER_PRODUCER: i32 = 2;
const PARTITIONS: i32 = PRODUCERS as i32 * PARTS_PER_PRODUCER;
const KILLS: usize = 4;
/// Unacknowledged messages a producer keeps queued/in flight at most.
const MAX_IN_FLIGHT: i32 = 400;

fn partition_of(producer: usize, seq: u64) -> i32 {
    producer as i32 * PARTS_PER_PRODUCER + (seq % PARTS_PER_PRODUCER as u64) as i32
}

fn payload(producer: usize, seq: u64) -> String {
    format!("producer{producer}-{seq}")
}

fn parse_payload(v: &[u8]) -> Option<(usize, u64)> {
    let s = std::str::from_utf8(v).ok()?;
    let rest = s.strip_prefix("producer")?;
    let (p, seq) = rest.split_once('-')?;
    Some((p.parse().ok()?, seq.parse().ok()?))
}

/// What one producer thread saw.
#[derive(Default)]
struct ProducerOutcome {
    /// Messages handed to librdkafka (seqs 0..sent).
    sent: u64,
    /// (seq, partition, offset) of every successful delivery report.
    acked: Vec<(u64, i32, i64)>,
    /// (seq, error) of every failed delivery report.
    failed: Vec<(u64, String)>,
    /// librdkafka's fatal error, if it raised one.
    fatal: Option<String>,
    /// Whether the final flush completed.
    flushed: bool,
}

fn producer_thread(
    bootstrap: String,
    me: usize,
    acks: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    fatal_seen: Arc<AtomicBool>,
) -> ProducerOutcome {
    let mut p = TestProducer::new(
        &bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("retries", "2147483647"),
            ("max.in.flight.requests.per.connection", "5"),
            ("message.timeout.ms", "60000"),
            ("request.timeout.ms", "10000"),
            ("linger.ms", "2"),
            ("batch.num.messages", "100"),
            ("compression.type", "none"),
            ("retry.backoff.ms", "50"),
        ],
    );
    let mut out = ProducerOutcome::default();
    let key = format!("producer{me}");
    let collect = |reports: Vec<Delivery>, out: &mut ProducerOutcome| {
        for d in reports {
            match d.error {
                None => {
                    out.acked.push((d.id, d.partition, d.offset));
                    acks.fetch_add(1, Ordering::SeqCst);
                }
                Some(e) => out.failed.push((d.id, e.to_string())),
            }
        }
    };
    let check_fatal = |p: &TestProducer, out: &mut ProducerOutcome| {
        if out.fatal.is_none() {
            if let Some((code, msg)) = p.inner.client().fatal_error() {
                out.fatal = Some(format!("{code:?}: {msg}"));
                fatal_seen.store(true, Ordering::SeqCst);
            }
        }
    };
    while !stop.load(Ordering::SeqCst) && out.fatal.is_none() {
        if p.in_flight() >= MAX_IN_FLIGHT {
            p.poll(Duration::from_millis(10));
        } else {
            let seq = out.sent;
            let id = p.send(
                TOPIC,
                Some(partition_of(me, seq)),
                Some(key.as_bytes()),
                payload(me, seq).as_bytes(),
                None,
            );
            assert_eq!(id, seq);
            out.sent += 1;
        }
        let r = p.take();
        collect(r, &mut out);
        check_fatal(&p, &mut out);
    }
    if out.fatal.is_none() {
        // Stop producing, wait for every outstanding report.
        out.flushed = p.inner.flush(Duration::from_secs(90)).is_ok();
        check_fatal(&p, &mut out);
    }
    let r = if out.flushed { p.take() } else { p.abandon() };
    collect(r, &mut out);
    out
}

#[test]
fn idempotent_producers_survive_kill9_without_loss_or_duplicates() {
    let seed = std::env::var("SHARDLOG_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("seed {seed} (set SHARDLOG_TEST_SEED to repeat)");
    let mut rng = Rng::new(seed);
    let t0 = Instant::now();

    let mut broker = Broker::start(BrokerOpts::default().cores(2));
    broker.create_topic(TOPIC, PARTITIONS, &[]);

    let acks = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let fatal_seen = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|me| {
            let (b, a, s, f) = (
                broker.bootstrap(),
                acks.clone(),
                stop.clone(),
                fatal_seen.clone(),
            );
            thread::Builder::new()
                .name(format!("producer{me}"))
                .spawn(move || producer_thread(b, me, a, s, f))
                .unwrap()
        })
        .collect();

    let kill_log = Mutex::new(Vec::new());
    for kill in 0..KILLS {
        let target = acks.load(Ordering::SeqCst) + 300 + rng.below(2_500);
        let reached = wait_until(Duration::from_secs(30), || {
            acks.load(Ordering::SeqCst) >= target || fatal_seen.load(Ordering::SeqCst)
        });
        if fatal_seen.load(Ordering::SeqCst) {
            eprintln!("kill {kill}: a producer raised a fatal error, stopping the kills");
            break;
        }
        assert!(
            reached,
            "kill {kill}: acks stuck at {} (waiting for {target}) after 30 s",
            acks.load(Ordering::SeqCst)
        );
        // A random moment within the stream: up to 30 ms after reaching the ack count.
        let extra = rng.below(30);
        thread::sleep(Duration::from_millis(extra));
        broker.assert_running();
        let at = acks.load(Ordering::SeqCst);
        broker.kill9();
        kill_log.lock().unwrap().push(at);
        eprintln!(
            "kill {kill}: SIGKILL at {at} acks ({:.1} s)",
            t0.elapsed().as_secs_f64()
        );
        let r0 = Instant::now();
        broker.restart();
        eprintln!("kill {kill}: restarted in {} ms", r0.elapsed().as_millis());
        let panics = broker.panics_in_log();
        assert!(panics.is_empty(), "panic after restart {kill}: {panics:?}");
    }

    // Some progress after the last restart, so the last recovery is exercised by new appends.
    let target = acks.load(Ordering::SeqCst) + 500;
    wait_until(Duration::from_secs(30), || {
        acks.load(Ordering::SeqCst) >= target || fatal_seen.load(Ordering::SeqCst)
    });
    stop.store(true, Ordering::SeqCst);
    let outcomes: Vec<ProducerOutcome> = handles
        .into_iter()
        .map(|h| h.join().expect("producer thread"))
        .collect();
    eprintln!(
        "produced for {:.1} s; kills at acks {:?}",
        t0.elapsed().as_secs_f64(),
        kill_log.lock().unwrap()
    );

    // Report every fatal error with the broker log before asserting anything else.
    let fatals: Vec<String> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.fatal.as_ref().map(|f| format!("producer{i}: {f}")))
        .collect();
    for (i, o) in outcomes.iter().enumerate() {
        eprintln!(
            "producer{i}: sent {}, acked {}, failed {}, flushed {}, fatal {:?}",
            o.sent,
            o.acked.len(),
            o.failed.len(),
            o.flushed,
            o.fatal
        );
        if !o.failed.is_empty() {
            eprintln!(
                "producer{i}: first failures {:?}",
                &o.failed[..o.failed.len().min(5)]
            );
        }
    }
    if !fatals.is_empty() {
        let logs = broker.all_logs();
        let lines: Vec<&str> = logs.lines().collect();
        let tail = lines[lines.len().saturating_sub(80)..].join("\n");
        eprintln!("---- broker log tail ----\n{tail}\n----");
    }

    // Read everything back (the broker keeps running).
    broker.assert_running();
    let c = broker.consumer();
    let wm = watermarks(&c, TOPIC, PARTITIONS);
    let total: i64 = wm.iter().map(|(_, h)| h).sum();
    let starts: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let r = consume(&c, TOPIC, &starts, total as usize, Duration::from_secs(30));
    assert!(r.errors.is_empty(), "consumer errors: {:?}", r.errors);
    assert_eq!(
        r.messages.len() as i64,
        total,
        "messages below the high watermarks"
    );
    let parts = by_partition(&r.messages);

    // (producer, seq) → offsets it is stored at; per partition checks.
    let mut stored: HashMap<(usize, u64), Vec<(i32, i64)>> = HashMap::new();
    let mut problems: Vec<String> = Vec::new();
    for p in 0..PARTITIONS {
        let msgs = parts.get(&p).map(|v| v.as_slice()).unwrap_or(&[]);
        let mut last_seq: Option<u64> = None;
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(m.offset, i as i64, "partition {p}: offsets not dense");
            let v = m.payload.as_deref().unwrap_or_default();
            let Some((prod, seq)) = parse_payload(v) else {
                problems.push(format!("{p}/{}: undecodable payload {v:?}", m.offset));
                continue;
            };
            if partition_of(prod, seq) != p {
                problems.push(format!(
                    "{p}/{}: producer{prod}-{seq} belongs to partition {}",
                    m.offset,
                    partition_of(prod, seq)
                ));
            }
            if let Some(l) = last_seq {
                if seq <= l {
                    problems.push(format!(
                        "{p}/{}: producer{prod}-{seq} after seq {l} ({})",
                        m.offset,
                        if seq == l {
                            "duplicate"
                        } else {
                            "out of order"
                        }
                    ));
                }
            }
            last_seq = Some(last_seq.map_or(seq, |l| l.max(seq)));
            stored.entry((prod, seq)).or_default().push((p, m.offset));
        }
    }
    for ((prod, seq), at) in &stored {
        if at.len() > 1 {
            problems.push(format!(
                "producer{prod}-{seq} stored {} times: {at:?}",
                at.len()
            ));
        }
    }
    let mut acked_total = 0usize;
    for (prod, o) in outcomes.iter().enumerate() {
        for &(seq, part, off) in &o.acked {
            acked_total += 1;
            match stored.get(&(prod, seq)).map(|v| v.as_slice()) {
                Some([(sp, so)]) if *sp == part && *so == off => {}
                Some(at) => problems.push(format!(
                    "producer{prod}-{seq} acknowledged at {part}/{off} but stored at {at:?}"
                )),
                None => problems.push(format!(
                    "producer{prod}-{seq} acknowledged at {part}/{off} but missing"
                )),
            }
        }
        // Nothing in the log the producer never sent.
        if let Some(max) = stored
            .keys()
            .filter(|(p, _)| *p == prod)
            .map(|(_, s)| *s)
            .max()
        {
            if max >= o.sent {
                problems.push(format!(
                    "producer{prod}: seq {max} stored but only {} sent",
                    o.sent
                ));
            }
        }
    }
    eprintln!(
        "{} messages in the log, {} acknowledged, {} problems",
        total,
        acked_total,
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "{} problems, first 20:\n{}",
        problems.len(),
        problems[..problems.len().min(20)].join("\n")
    );
    assert!(fatals.is_empty(), "fatal producer errors: {fatals:?}");
    for (i, o) in outcomes.iter().enumerate() {
        assert!(o.flushed, "producer{i}: final flush did not complete");
        // With unlimited retries and a 60 s message timeout, nothing should fail at all, so
        // after the flush every message was acknowledged and is in the log exactly once.
        assert!(
            o.failed.is_empty(),
            "producer{i}: {} failed deliveries, first {:?}",
            o.failed.len(),
            &o.failed[..o.failed.len().min(5)]
        );
        assert_eq!(
            o.acked.len() as u64,
            o.sent,
            "producer{i}: every message acknowledged"
        );
    }
    assert_eq!(
        acked_total as i64, total,
        "log holds exactly the acknowledged messages"
    );
    broker.stop();
}

//! kill -9 in the middle of an acks=all produce stream, three times over: after each restart
//! every offset below the high watermark is readable and decodes, offsets are dense, and every
//! message acknowledged before the kill is there (acks=all fdatasyncs before answering).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;

const TOPIC: &str = "crash";
const PARTITIONS: i32 = 4;
const ROUNDS: usize = 3;
/// Acknowledged messages to wait for before each kill.
const ACKS_BEFORE_KILL: u64 = 3_000;

fn payload(round: usize, id: u64) -> Vec<u8> {
    // ~300 bytes with a varying body, so batches are not trivially small.
    let mut v = format!("r{round}-{id:08}-").into_bytes();
    let mut rng = Rng::new(id * 31 + round as u64 + 1);
    while v.len() < 300 {
        v.push(b'a' + (rng.below(26) as u8));
    }
    v
}

/// Produces continuously until `stop`; returns (partition, offset, payload) of every success.
fn producer_thread(
    bootstrap: String,
    round: usize,
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Vec<(i32, i64, Vec<u8>)> {
    let mut p = TestProducer::new(
        &bootstrap,
        &[("linger.ms", "2"), ("batch.num.messages", "500")],
    );
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut ok = Vec::new();
    let mut collect = |reports: Vec<Delivery>, sent: &Vec<Vec<u8>>| {
        for d in reports {
            if d.error.is_none() {
                ok.push((d.partition, d.offset, sent[d.id as usize].clone()));
                acked.fetch_add(1, Ordering::SeqCst);
            }
        }
    };
    let mut id = 0u64;
    while !stop.load(Ordering::SeqCst) {
        if p.in_flight() > 5_000 {
            p.poll(Duration::from_millis(5));
        } else {
            let v = payload(round, id);
            let key = format!("k{}", id % 97);
            sent.push(v);
            p.send(TOPIC, None, Some(key.as_bytes()), &sent[id as usize], None);
            id += 1;
        }
        let r = p.take();
        collect(r, &sent);
    }
    let r = p.abandon();
    collect(r, &sent);
    ok
}

/// Reads every partition from 0 to its high watermark and checks it against `acked`.
fn verify(broker: &mut Broker, acked: &BTreeMap<(i32, i64), Vec<u8>>, round: usize) {
    let panics = broker.panics_in_log();
    assert!(
        panics.is_empty(),
        "round {round}: panic in broker log after restart: {panics:?}"
    );
    broker.assert_metadata_ok();

    let c = broker.consumer();
    let wm = watermarks(&c, TOPIC, PARTITIONS);
    let total: i64 = wm.iter().map(|(_, h)| h).sum();
    for (p, (lo, hi)) in wm.iter().enumerate() {
        assert_eq!(*lo, 0, "round {round}: partition {p} low watermark");
        // Every acknowledged offset is below the high watermark.
        if let Some(((_, max_acked), _)) =
            acked.range((p as i32, 0)..(p as i32, i64::MAX)).next_back()
        {
            assert!(
                *max_acked < *hi,
                "round {round}: partition {p}: acknowledged offset {max_acked} but high watermark {hi}"
            );
        }
    }
    let starts: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    eprintln!(
        "round {round}: {} acknowledged so far, high watermarks {:?}",
        acked.len(),
        wm.iter().map(|(_, h)| h).collect::<Vec<_>>()
    );
    let r = consume(&c, TOPIC, &starts, total as usize, Duration::from_secs(60));
    assert!(
        r.errors.is_empty(),
        "round {round}: consumer errors: {:?}",
        r.errors
    );
    assert_eq!(
        r.messages.len() as i64,
        total,
        "round {round}: messages below the high watermarks"
    );
    let parts = by_partition(&r.messages);
    for p in 0..PARTITIONS {
        let msgs = parts.get(&p).map(|v| v.as_slice()).unwrap_or(&[]);
        assert_eq!(
            msgs.len() as i64,
            wm[p as usize].1,
            "round {round}: partition {p} count"
        );
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(
                m.offset, i as i64,
                "round {round}: partition {p}: offsets not dense"
            );
            let v = m.payload.as_deref().unwrap_or_default();
            assert!(
                v.starts_with(b"r") && v.len() == 300,
                "round {round}: partition {p} offset {}: undecodable payload",
                m.offset
            );
        }
    }
    let mut missing = Vec::new();
    for ((p, o), v) in acked {
        let got = parts
            .get(p)
            .and_then(|msgs| msgs.get(*o as usize))
            .and_then(|m| m.payload.clone());
        if got.as_deref() != Some(&v[..]) {
            missing.push((*p, *o));
        }
    }
    assert!(
        missing.is_empty(),
        "round {round}: {} acknowledged messages lost or changed, first: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

#[test]
fn kill9_mid_produce_loses_no_acknowledged_message() {
    let mut broker = Broker::start(BrokerOpts::default().cores(2));
    broker.create_topic(TOPIC, PARTITIONS, &[]);
    let mut acked: BTreeMap<(i32, i64), Vec<u8>> = BTreeMap::new();

    for round in 0..ROUNDS {
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (b, c, s) = (broker.bootstrap(), count.clone(), stop.clone());
            thread::spawn(move || producer_thread(b, round, c, s))
        };
        let reached = wait_until(Duration::from_secs(60), || {
            count.load(Ordering::SeqCst) >= ACKS_BEFORE_KILL || handle.is_finished()
        });
        assert!(
            reached,
            "round {round}: only {} acks in 60 s",
            count.load(Ordering::SeqCst)
        );
        broker.assert_running();
        broker.kill9();
        stop.store(true, Ordering::SeqCst);
        let ok = handle.join().expect("producer thread");
        assert!(ok.len() as u64 >= ACKS_BEFORE_KILL);
        for (p, o, v) in ok {
            if let Some(prev) = acked.insert((p, o), v) {
                panic!(
                    "round {round}: offset {p}/{o} acknowledged twice (first {:?})",
                    String::from_utf8_lossy(&prev[..12])
                );
            }
        }

        broker.restart();
        verify(&mut broker, &acked, round);
    }

    // A clean stop and start after the crashes changes nothing.
    broker.restart();
    verify(&mut broker, &acked, ROUNDS);
    broker.stop();
}

//! Fetch long-poll: a consumer waiting on an empty partition costs the broker (almost) no CPU,
//! and a message appended during the wait reaches it quickly (the waiting fetch is woken by the
//! append, not by its 5 s deadline or a polling loop).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::Consumer;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const TOPIC: &str = "long-poll";
/// The consumer's fetch.wait.max.ms: far longer than any latency we accept, so a message that
/// arrives by the deadline instead of by a wake-up fails the latency bound.
const MAX_WAIT_MS: &str = "5000";
/// How long the broker's CPU time is measured while the consumer waits.
const CPU_WINDOW: Duration = Duration::from_secs(2);
/// Allowed broker CPU over the window, as a fraction of one core. An idle broker with one
/// long-polling consumer has almost nothing to do: one Fetch per 5 s, plus the clients' metadata
/// refreshes (every 1 s in the test config). What must fail is a broker that spins (an idle shard
/// busy-polling its reactor burns 100% of a core) or that implements the wait as a
/// sleep-and-retry loop (a 1 ms re-read loop costs several % of a core in a debug build, and
/// adds up per waiting consumer). 5% leaves room for the 10 ms granularity of utime/stime (one
/// tick is 0.5% of 2 s), for the metadata traffic and for the debug build's slower code.
const MAX_CPU_FRACTION: f64 = 0.05;
/// The bound: a message produced during the wait is delivered in under 50 ms.
const MAX_LATENCY: Duration = Duration::from_millis(50);
const ROUNDS: usize = 6;

/// Records when the delivery report of the last message arrived (or its error).
#[derive(Default)]
struct AckClock(Mutex<Option<Result<Instant, String>>>);

impl ClientContext for AckClock {}

impl ProducerContext for AckClock {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        let at = Instant::now();
        *self.0.lock().unwrap() = Some(match r {
            Ok(_) => Ok(at),
            Err((e, _)) => Err(e.to_string()),
        });
    }
}

/// utime + stime of `pid` (all threads), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/pid/stat");
    // Fields after the command name (which is in parentheses and may contain spaces):
    // state(3) ... utime(14) stime(15); after ')' the first field is #3.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f[14 - 3].parse().unwrap();
    let stime: u64 = f[15 - 3].parse().unwrap();
    (utime + stime) as f64 / clock_ticks() as f64
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Total CPU time of all threads of `pid` from /proc/<pid>/task/*/schedstat (nanosecond
/// resolution; diagnostics only).
fn sched_seconds(pid: u32) -> Option<f64> {
    let mut total = 0u64;
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let s = std::fs::read_to_string(e.ok()?.path().join("schedstat")).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total as f64 / 1e9)
}

#[test]
fn long_poll_is_idle_and_wakes_on_append() {
    let mut broker = Broker::start(BrokerOpts::default().cores(2));
    broker.create_topic(TOPIC, 1, &[]);
    let pid = broker.pid();

    // The consumer runs in its own thread and stamps each message when poll returns it.
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let consumer = {
        let (bootstrap, stop) = (broker.bootstrap(), stop.clone());
        thread::spawn(move || {
            let c = consumer_with(
                &bootstrap,
                &[("fetch.wait.max.ms", MAX_WAIT_MS), ("fetch.min.bytes", "1")],
            );
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(TOPIC, 0, Offset::Offset(0))
                .unwrap();
            c.assign(&tpl).expect("assign");
            let mut errors = Vec::new();
            let started = Instant::now();
            let mut signalled = false;
            while !stop.load(Ordering::SeqCst) {
                match c.poll(Duration::from_millis(50)) {
                    None => {}
                    Some(Ok(m)) => {
                        let at = Instant::now();
                        let _ = tx.send((at, m.payload().unwrap_or_default().to_vec()));
                    }
                    Some(Err(e)) => errors.push(e.to_string()),
                }
                // Settled: connected, first (empty) fetches answered, a fetch parked.
                if !signalled && started.elapsed() > Duration::from_millis(1500) {
                    signalled = true;
                    let _ = ready_tx.send(());
                }
            }
            errors
        })
    };
    ready_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("consumer thread started");

    // 1. CPU while the consumer long-polls an empty partition.
    let (cpu0, sched0, t0) = (cpu_seconds(pid), sched_seconds(pid), Instant::now());
    thread::sleep(CPU_WINDOW);
    let (cpu1, sched1, t1) = (cpu_seconds(pid), sched_seconds(pid), Instant::now());
    let wall = (t1 - t0).as_secs_f64();
    let fraction = (cpu1 - cpu0) / wall;
    let sched_fraction = sched0.zip(sched1).map(|(a, b)| (b - a) / wall);
    eprintln!(
        "broker CPU while long-polling: {:.3} s over {wall:.2} s = {:.2}% of a core \
         (schedstat: {:?}%)",
        cpu1 - cpu0,
        fraction * 100.0,
        sched_fraction.map(|f| (f * 10_000.0).round() / 100.0)
    );
    assert!(
        rx.try_recv().is_err(),
        "the consumer got a message from an empty partition"
    );
    broker.assert_running();
    assert!(
        fraction < MAX_CPU_FRACTION,
        "broker used {:.1}% of a core while a consumer long-polled an empty partition (limit {:.0}%)",
        fraction * 100.0,
        MAX_CPU_FRACTION * 100.0
    );

    // 2. Produce during the wait; the waiting fetch must be woken by the append.
    // Nagle off on both clients: with it on, a small request sent while another small segment
    // of the same connection is unacknowledged (e.g. the periodic metadata refresh) can wait for
    // the delayed ACK; we saw 100-150 ms send→ack outliers from that, which say nothing about
    // the broker.
    let producer: BaseProducer<AckClock> = {
        let mut c = base_config(&broker.bootstrap());
        c.set("acks", "1")
            .set("linger.ms", "0")
            .set("socket.nagle.disable", "true")
            .set("enable.idempotence", "false");
        c.create_with_context(AckClock::default())
            .expect("producer")
    };
    producer
        .client()
        .fetch_metadata(Some(TOPIC), Duration::from_secs(10))
        .expect("producer metadata");
    let mut rng = Rng::new(0x5eed);
    let mut ack_to_recv = Vec::new();
    let mut send_to_recv = Vec::new();
    for round in 0..ROUNDS {
        // Let the consumer's next fetch (sent right after the previous answer) reach the broker
        // and park there. Any moment in the 5 s wait is a valid test; a gap of 200-500 ms makes
        // it all but certain the fetch is parked and well away from its deadline.
        thread::sleep(Duration::from_millis(200 + rng.below(300)));
        let payload = format!("lp-{round}");
        let sent_at = Instant::now();
        producer
            .send(BaseRecord::<(), _>::to(TOPIC).payload(payload.as_bytes()))
            .map_err(|(e, _)| e)
            .expect("send");
        // The delivery report is the ack; its callback stamps the time (flush() would add
        // rdkafka's own 100 ms polling granularity).
        let ack_deadline = Instant::now() + Duration::from_secs(10);
        let acked_at = loop {
            producer.poll(Duration::from_millis(1));
            if let Some(r) = producer.context().0.lock().unwrap().take() {
                break r.unwrap_or_else(|e| panic!("round {round}: produce failed: {e}"));
            }
            assert!(
                Instant::now() < ack_deadline,
                "round {round}: no ack within 10 s"
            );
        };
        let (recv_at, got) = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("round {round}: message not delivered within 10 s"));
        assert_eq!(got, payload.as_bytes(), "round {round}: payload");
        let a = recv_at.saturating_duration_since(acked_at);
        let s = recv_at.saturating_duration_since(sent_at);
        eprintln!(
            "round {round}: send→ack {:?}, ack→receive {a:?}, send→receive {s:?}",
            acked_at - sent_at
        );
        ack_to_recv.push(a);
        send_to_recv.push(s);
    }
    stop.store(true, Ordering::SeqCst);
    let errors = consumer.join().expect("consumer thread");
    assert!(errors.is_empty(), "consumer errors: {errors:?}");

    let max_ack = *ack_to_recv.iter().max().unwrap();
    let max_send = *send_to_recv.iter().max().unwrap();
    eprintln!("max ack→receive {max_ack:?}, max send→receive {max_send:?}");
    // ack→receive is the measure, but the consumer usually has the message before the
    // producer has its ack (0 here), so also bound send→receive, which includes the produce
    // round trip and is never shorter.
    assert!(
        max_send < MAX_LATENCY,
        "a message appended during a long poll reached the consumer {max_send:?} after it was \
         sent (limit {MAX_LATENCY:?}); all: {send_to_recv:?}"
    );
    assert!(
        max_ack < MAX_LATENCY,
        "a message appended during a long poll reached the consumer {max_ack:?} after its ack \
         (limit {MAX_LATENCY:?}); all: {ack_to_recv:?}"
    );
    broker.stop();
}

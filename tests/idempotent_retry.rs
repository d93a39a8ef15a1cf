//! Retries after a dropped connection do not create duplicates when the producer is idempotent.
//!
//! A small TCP proxy sits between rdkafka and the broker (the broker advertises the proxy's
//! address, so every client connection goes through it). It forwards frames both ways, and for
//! every `DROP_EVERY`-th Produce request (up to `MAX_DROPS` times) it lets the request reach the
//! broker, waits for the broker's response and then, instead of forwarding that response, closes
//! both sockets. The batch is in the log, but the client never hears so: it reconnects and sends
//! the batch again (with the requests that were in flight behind it).
//! - `enable.idempotence=true`: the broker recognizes the retried batches by producer id and
//!   sequence, answers them with their original offsets and writes nothing twice: every message
//!   is in the log exactly once, in order.
//! - `enable.idempotence=false` (same scenario, `retries` > 0): the retried batches are appended
//!   again, so duplicates appear. This proves the scenario really makes the client resend batches
//!   the broker had already written, i.e. that the first test could fail.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use rdkafka::producer::Producer;

const PARTITIONS: i32 = 3;
const MESSAGES: u64 = 3_000;
/// Drop the connection instead of answering every DROP_EVERY-th Produce request.
const DROP_EVERY: u64 = 7;
const MAX_DROPS: u64 = 6;
const API_PRODUCE: i16 = 0;

// ---------------------------------------------------------------------------------------------
// The proxy

struct ProxyShared {
    target: Mutex<Option<SocketAddr>>,
    /// Produce requests seen (client → broker).
    produce_requests: AtomicU64,
    /// Produce requests whose response will be swallowed (connection closed instead).
    doomed: AtomicU64,
    /// Connections actually closed in place of a Produce response.
    drops: AtomicU64,
    stop: AtomicBool,
}

struct Proxy {
    port: u16,
    shared: Arc<ProxyShared>,
}

impl Proxy {
    /// Listens on a free port; forwards to the target set with `set_target`.
    fn start() -> Proxy {
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("proxy bind");
        let shared = Arc::new(ProxyShared {
            target: Mutex::new(None),
            produce_requests: AtomicU64::new(0),
            doomed: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || {
                for client in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Some(target) = *s.target.lock().unwrap() else {
                        continue; // not ready: drop the connection, the client retries
                    };
                    let Ok(broker) = TcpStream::connect(target) else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = broker.set_nodelay(true);
                    proxy_connection(client, broker, s.clone());
                }
            })
            .unwrap();
        Proxy { port, shared }
    }

    fn set_target(&self, addr: SocketAddr) {
        *self.shared.target.lock().unwrap() = Some(addr);
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn drops(&self) -> u64 {
        self.shared.drops.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads one length-prefixed frame; returns the whole frame including its size prefix.
fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size)?;
    let n = i32::from_be_bytes(size);
    if !(0..=256 << 20).contains(&n) {
        return Err(std::io::Error::other(format!("frame size {n}")));
    }
    let mut frame = vec![0u8; 4 + n as usize];
    frame[..4].copy_from_slice(&size);
    s.read_exact(&mut frame[4..])?;
    Ok(frame)
}

fn close_both(a: &TcpStream, b: &TcpStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}

/// Two threads per connection, frame by frame. A request frame is `size, api_key (i16),
/// api_version (i16), correlation_id (i32), ...`; a response frame `size, correlation_id, ...`.
fn proxy_connection(client: TcpStream, broker: TcpStream, s: Arc<ProxyShared>) {
    let doomed_ids: Arc<Mutex<HashSet<i32>>> = Arc::default();
    // client → broker
    {
        let (mut from, mut to) = (client.try_clone().unwrap(), broker.try_clone().unwrap());
        let (s, doomed_ids) = (s.clone(), doomed_ids.clone());
        thread::spawn(move || loop {
            let Ok(frame) = read_frame(&mut from) else {
                close_both(&from, &to);
                return;
            };
            if frame.len() >= 12 {
                let api_key = i16::from_be_bytes([frame[4], frame[5]]);
                let corr = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
                if api_key == API_PRODUCE {
                    let n = s.produce_requests.fetch_add(1, Ordering::SeqCst) + 1;
                    if n % DROP_EVERY == 0 && s.doomed.load(Ordering::SeqCst) < MAX_DROPS {
                        s.doomed.fetch_add(1, Ordering::SeqCst);
                        // Marked before the request is forwarded, so the response cannot
                        // overtake the mark.
                        doomed_ids.lock().unwrap().insert(corr);
                    }
                }
            }
            if to.write_all(&frame).is_err() {
                close_both(&from, &to);
                return;
            }
        });
    }
    // broker → client
    {
        let (mut from, mut to) = (broker, client);
        thread::spawn(move || loop {
            let Ok(frame) = read_frame(&mut from) else {
                close_both(&from, &to);
                return;
            };
            if frame.len() >= 8 {
                let corr = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                if doomed_ids.lock().unwrap().remove(&corr) {
                    // The broker has processed the Produce request; the client never hears.
                    s.drops.fetch_add(1, Ordering::SeqCst);
                    close_both(&from, &to);
                    return;
                }
            }
            if to.write_all(&frame).is_err() {
                close_both(&from, &to);
                return;
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario

fn payload(i: u64) -> String {
    format!("m-{i:06}")
}

struct Outcome {
    /// Per partition, the message numbers in offset order.
    log: HashMap<i32, Vec<u64>>,
    drops: u64,
    produce_requests: u64,
}

/// Starts a broker behind a proxy, produces MESSAGES messages (message i to partition i % 3)
/// with the given producer settings while the proxy drops connections, checks every delivery
/// succeeded, and reads the log back.
fn run(topic: &str, producer_settings: &[(&str, &str)]) -> Outcome {
    let proxy = Proxy::start();
    let broker = Broker::start(
        BrokerOpts::default()
            .cores(2)
            .set("advertise", &proxy.addr()),
    );
    proxy.set_target(broker.addr());
    broker.create_topic(topic, PARTITIONS, &[]);

    let mut settings = vec![
        ("acks", "all"),
        ("linger.ms", "1"),
        ("batch.num.messages", "20"),
        ("compression.type", "none"),
        ("message.timeout.ms", "60000"),
        ("request.timeout.ms", "10000"),
        ("retry.backoff.ms", "20"),
    ];
    settings.extend_from_slice(producer_settings);
    let mut p = TestProducer::new(&proxy.addr(), &settings);
    for i in 0..MESSAGES {
        let id = p.send(
            topic,
            Some((i % PARTITIONS as u64) as i32),
            None,
            payload(i).as_bytes(),
            None,
        );
        assert_eq!(id, i);
        // Small bursts, so there are many Produce requests and several in flight at once.
        if i % 50 == 49 {
            p.poll(Duration::from_millis(2));
        }
    }
    let reports = p.flush(Duration::from_secs(90));
    assert_eq!(
        reports.len() as u64,
        MESSAGES,
        "one delivery report per message"
    );
    let failed: Vec<_> = reports.iter().filter(|d| d.error.is_some()).collect();
    assert!(
        failed.is_empty(),
        "{} deliveries failed, first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    if let Some(f) = p.inner.client().fatal_error() {
        panic!("producer fatal error: {f:?}");
    }

    // Read back through the proxy (the broker advertises it, so clients end up there anyway);
    // it only ever drops Produce responses, and all MAX_DROPS drops have happened by now.
    let c = consumer(&proxy.addr());
    let wm = watermarks(&c, topic, PARTITIONS);
    let total: i64 = wm.iter().map(|(_, h)| h).sum();
    let starts: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let r = consume(&c, topic, &starts, total as usize, Duration::from_secs(30));
    assert!(r.errors.is_empty(), "consumer errors: {:?}", r.errors);
    assert_eq!(
        r.messages.len() as i64,
        total,
        "messages below the high watermarks"
    );
    let mut log: HashMap<i32, Vec<u64>> = HashMap::new();
    for (part, msgs) in by_partition(&r.messages) {
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(m.offset, i as i64, "partition {part}: offsets not dense");
            let v = std::str::from_utf8(m.payload.as_deref().unwrap_or_default()).unwrap();
            let n: u64 = v
                .strip_prefix("m-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| {
                    panic!("partition {part} offset {}: bad payload {v:?}", m.offset)
                });
            log.entry(part).or_default().push(n);
        }
    }
    let out = Outcome {
        log,
        drops: proxy.drops(),
        produce_requests: proxy.shared.produce_requests.load(Ordering::SeqCst),
    };
    eprintln!(
        "{topic}: {} produce requests through the proxy, {} connections dropped instead of a \
         produce response, {total} messages in the log for {MESSAGES} sent",
        out.produce_requests, out.drops
    );
    drop(broker);
    out
}

#[test]
fn idempotent_retries_after_dropped_responses_write_each_message_once() {
    let out = run(
        "idem-retry",
        &[
            ("enable.idempotence", "true"),
            ("retries", "2147483647"),
            ("max.in.flight.requests.per.connection", "5"),
        ],
    );
    assert_eq!(
        out.drops, MAX_DROPS,
        "the proxy dropped {} connections after a produce reached the broker, expected {MAX_DROPS}",
        out.drops
    );
    for part in 0..PARTITIONS {
        let got = out.log.get(&part).cloned().unwrap_or_default();
        let want: Vec<u64> = (0..MESSAGES)
            .filter(|i| i % PARTITIONS as u64 == part as u64)
            .collect();
        if got != want {
            let mut seen = HashSet::new();
            let dups: Vec<u64> = got.iter().copied().filter(|n| !seen.insert(*n)).collect();
            let missing: Vec<u64> = want.iter().copied().filter(|n| !seen.contains(n)).collect();
            panic!(
                "partition {part}: {} messages, expected {}; duplicates {:?}, missing {:?}",
                got.len(),
                want.len(),
                &dups[..dups.len().min(20)],
                &missing[..missing.len().min(20)]
            );
        }
    }
}

#[test]
fn non_idempotent_retries_after_dropped_responses_duplicate_messages() {
    let out = run(
        "plain-retry",
        &[
            ("enable.idempotence", "false"),
            ("retries", "10"),
            // One request in flight: the duplicates come from the retries alone, not reordering.
            ("max.in.flight.requests.per.connection", "1"),
        ],
    );
    assert_eq!(out.drops, MAX_DROPS, "connections dropped");
    let mut duplicates = 0usize;
    for part in 0..PARTITIONS {
        let got = out.log.get(&part).cloned().unwrap_or_default();
        let mut seen = HashSet::new();
        for n in &got {
            if !seen.insert(*n) {
                duplicates += 1;
            }
        }
        // Nothing lost: every message acknowledged, all of them in the log at least once.
        for i in (0..MESSAGES).filter(|i| i % PARTITIONS as u64 == part as u64) {
            assert!(seen.contains(&i), "partition {part}: message {i} missing");
        }
    }
    eprintln!("{duplicates} duplicate messages without idempotence");
    // Each dropped response belonged to a batch the broker had written; the client resent it.
    assert!(
        duplicates as u64 >= out.drops,
        "expected at least one duplicate per dropped response ({}), found {duplicates}",
        out.drops
    );
}

//! Kafka's connection and request-memory limits against a real broker: a flood of connections
//! past `max.connections` is refused while an existing producer carries on, a client pipelining
//! 100 MB frames is held to `queued.max.request.bytes` instead of growing the broker's memory,
//! and a long-poll fetch whose client goes away is dropped at once.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};

fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// Whether the broker closed `s` (EOF or reset) rather than keeping it open.
fn closed_by_broker(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

fn metric(addr: SocketAddr, name: &str) -> f64 {
    let text = scrape(addr);
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("connect metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn connections_past_max_connections_are_refused_while_a_producer_carries_on() {
    raise_fd_limit();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut b = Broker::start(
        BrokerOpts::default()
            .cores(1)
            .set("max.connections", "1000")
            .set("metrics.listen", &metrics.to_string()),
    );
    b.create_topic("busy", 1, &[]);
    let mut producer = b.producer();
    let send = |p: &mut TestProducer, n: usize| {
        for i in 0..n {
            p.send("busy", Some(0), None, format!("v{i}").as_bytes(), None);
        }
        let d = p.flush(Duration::from_secs(30));
        assert_eq!(d.len(), n);
        assert!(
            d.iter().all(|x| x.error.is_none()),
            "{:?}",
            d.iter().find(|x| x.error.is_some())
        );
    };
    send(&mut producer, 50);

    let start = Instant::now();
    let mut flood = Vec::with_capacity(5_000);
    for _ in 0..5_000 {
        if start.elapsed() > Duration::from_secs(60) {
            break;
        }
        match TcpStream::connect_timeout(&b.addr(), Duration::from_secs(5)) {
            Ok(s) => flood.push(s),
            Err(e) => panic!("connect {}: {e}", flood.len()),
        }
    }
    assert_eq!(flood.len(), 5_000);
    // The producer keeps producing while the flood holds every slot.
    send(&mut producer, 50);
    std::thread::sleep(Duration::from_millis(500));
    let refused = flood
        .iter_mut()
        .map(closed_by_broker)
        .filter(|c| *c)
        .count();
    let open = flood.len() - refused;
    assert!(open <= 1_000, "{open} flood connections stayed open");
    assert!(open >= 900, "only {open} flood connections were admitted");
    assert!(refused >= 4_000, "{refused} refused");
    assert!(metric(metrics, "shardlog_connections_refused_total") >= 4_000.0);
    send(&mut producer, 50);
    // Places come back once connections close.
    drop(flood);
    assert!(wait_until(Duration::from_secs(10), || {
        TcpStream::connect(b.addr())
            .map(|mut s| {
                std::thread::sleep(Duration::from_millis(50));
                !closed_by_broker(&mut s)
            })
            .unwrap_or(false)
    }));
    b.assert_metadata_ok();
    let c = b.consumer();
    assert_eq!(watermarks(&c, "busy", 1), vec![(0, 150)]);
}

fn vm_hwm_kb(pid: u32) -> u64 {
    proc_status_kb(pid, "VmHWM")
}

#[test]
fn clients_sending_100_mb_frames_are_held_to_queued_max_request_bytes() {
    let b = Broker::start(
        BrokerOpts::default()
            .cores(1)
            .set("queued.max.request.bytes", "209715200"),
    );
    b.create_topic("huge", 1, &[]);
    // One Produce request of 100 MB of zeros (answered CORRUPT_MESSAGE once read).
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("huge")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(vec![0u8; 100_000_000])))])]);
    let mut body = BytesMut::new();
    req.encode(&mut body, 9).unwrap();
    let frame = Arc::new(raw_frame(0, 9, 1, &body));
    drop(body);
    let base_kb = vm_hwm_kb(b.pid());
    let clients: Vec<_> = (0..12)
        .map(|_| {
            let frame = frame.clone();
            let addr = b.addr();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                // Two pipelined 100 MB requests per connection.
                s.write_all(&frame).expect("send first");
                s.write_all(&frame).expect("send second");
                for _ in 0..2 {
                    raw_read_frame(&mut s).expect("an answer");
                }
            })
        })
        .collect();
    // Meanwhile another client is answered.
    let mut b = b;
    b.assert_metadata_ok();
    for c in clients {
        c.join().expect("client thread");
    }
    let grown_mb = vm_hwm_kb(b.pid()).saturating_sub(base_kb) / 1024;
    eprintln!("peak RSS grew {grown_mb} MB (without the budget: ~1.6 GB here)");
    // 24 requests of 100 MB went through; at most ~200 MB of them were held at once (plus
    // what the allocator has freed but not yet returned to the system).
    assert!(grown_mb < 700, "peak RSS grew {grown_mb} MB");
    b.assert_metadata_ok();
}

#[test]
fn a_long_poll_fetch_is_dropped_when_its_client_goes_away() {
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let b = Broker::start(
        BrokerOpts::default()
            .cores(1)
            .set("metrics.listen", &metrics.to_string()),
    );
    b.create_topic("quiet", 1, &[]);
    let req = FetchRequest::default()
        .with_max_wait_ms(30_000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("quiet")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let mut body = BytesMut::new();
    req.encode(&mut body, 12).unwrap();
    let mut s = TcpStream::connect(b.addr()).unwrap();
    s.write_all(&raw_frame(1, 12, 5, &body)).unwrap();
    assert!(wait_until(Duration::from_secs(10), || metric(
        metrics,
        "shardlog_fetch_waiters{"
    ) >= 1.0));
    drop(s);
    // Long before the 30 s max wait, the fetch and its waiter are gone.
    assert!(wait_until(Duration::from_secs(5), || metric(
        metrics,
        "shardlog_fetches_cancelled_total"
    ) >= 1.0));
    assert!(wait_until(Duration::from_secs(5), || metric(
        metrics,
        "shardlog_fetch_waiters{"
    ) == 0.0));
}

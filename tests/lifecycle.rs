//! Start, stop and restart: SIGTERM exits 0 promptly, and a restart on the same port works even
//! when clients were connected at shutdown (the server side of those connections then sits in
//! TIME_WAIT for a minute, which must not block the next bind).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use kafka_protocol::messages::{ApiKey, DescribeClusterRequest, DescribeClusterResponse};

/// Opens a connection and completes one ApiVersions exchange on it, then keeps it open.
fn idle_client(b: &Broker) -> TcpStream {
    let mut s = TcpStream::connect(b.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff])
        .unwrap();
    let mut size = [0u8; 4];
    s.read_exact(&mut size).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).unwrap();
    s
}

/// Waits for the peer to close `s` (the broker going away), so the broker side closed first.
fn wait_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let _ = s.read(&mut buf);
}

#[test]
fn sigterm_exits_zero_and_restart_keeps_data() {
    let mut b = Broker::start_default();
    b.create_topic("keep", 1, &[]);
    let mut p = b.producer();
    for i in 0..10u32 {
        p.send("keep", Some(0), None, format!("m{i}").as_bytes(), None);
    }
    assert!(p
        .flush(Duration::from_secs(20))
        .iter()
        .all(|d| d.error.is_none()));
    drop(p);
    let cluster_id = || {
        let r: DescribeClusterResponse = raw_call(
            b.addr(),
            ApiKey::DescribeCluster,
            0,
            &DescribeClusterRequest::default(),
        );
        r.cluster_id.to_string()
    };
    let id_before = cluster_id();
    let t = Instant::now();
    b.stop();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "SIGTERM took {:?}",
        t.elapsed()
    );
    b.restart();
    let c = b.consumer();
    assert_eq!(watermarks(&c, "keep", 1), vec![(0, 10)]);
    let r: DescribeClusterResponse = raw_call(
        b.addr(),
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    );
    assert_eq!(
        r.cluster_id.to_string(),
        id_before,
        "cluster id changed across a restart"
    );
    b.stop();
}

/// Restart on the same port right after a clean stop that had a client connected.
#[test]
fn restart_same_port_after_stop_with_client_connected() {
    let mut b = Broker::start_default();
    let mut s = idle_client(&b);
    b.stop();
    wait_closed(&mut s);
    drop(s);
    b.restart();
    b.assert_metadata_ok();
}

/// Restart on the same port right after kill -9 with clients connected.
#[test]
fn restart_same_port_after_kill9_with_client_connected() {
    let mut b = Broker::start(BrokerOpts::default().cores(2));
    let mut clients: Vec<TcpStream> = (0..4).map(|_| idle_client(&b)).collect();
    b.kill9();
    for s in clients.iter_mut() {
        wait_closed(s);
    }
    drop(clients);
    b.restart();
    b.assert_metadata_ok();
}

/// Many starts of a two-shard broker under CPU pressure (what a loaded CI machine looks like).
/// Every start must come up: shard 0's bootstrap broadcast must not reach shard 1 before shard 1
/// has installed its state.
#[test]
fn two_shard_startup_is_reliable_under_cpu_pressure() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let mut b = Broker::start(BrokerOpts::default().cores(2));
    b.create_topic("t", 4, &[]);
    b.kill9();

    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
        })
        .collect();
    let mut failures = Vec::new();
    const STARTS: usize = 20;
    for i in 0..STARTS {
        match b.try_restart() {
            Ok(()) => b.kill9(),
            Err(e) => failures.push((i, e)),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        s.join().unwrap();
    }
    if let Some((i, e)) = failures.first() {
        panic!(
            "{} of {STARTS} two-shard starts failed; first (start {i}):\n{e}",
            failures.len()
        );
    }
}

/// A broker whose log pipe was closed (its log reader died) must still stop on SIGTERM: a failed
/// log write used to panic the signal thread before it could request shutdown.
#[test]
fn sigterm_stops_a_broker_whose_stderr_pipe_is_closed() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["start", "--cores", "1", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(20);
    while api_versions_probe(addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The log reader goes away: every later write to stderr fails with EPIPE.
    drop(child.stdout.take());
    drop(child.stderr.take());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // Generous: a clean stop syncs every log, which can take seconds on a loaded CI box; the
    // bug this guards against hung forever.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("broker ignored SIGTERM with a closed stderr");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A partition whose files cannot be opened goes offline (KAFKA_STORAGE_ERROR) instead of
/// stopping the broker from starting; the other partitions keep working.
#[test]
fn unopenable_partition_goes_offline_and_the_broker_still_starts() {
    let mut broker = Broker::start(BrokerOpts::default().cores(2));
    broker.create_topic("damaged", 2, &[]);
    let mut p = broker.producer();
    for part in 0..2 {
        p.send("damaged", Some(part), None, b"before", None);
    }
    assert!(p
        .flush(Duration::from_secs(30))
        .iter()
        .all(|d| d.error.is_none()));
    drop(p);
    broker.stop();
    // Replace partition 1's log file with a directory: opening it fails (EISDIR), even as root.
    let log = broker
        .data_dir()
        .join("damaged-1")
        .join("00000000000000000000.log");
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    broker.restart();
    broker.assert_running();

    let mut p = broker.producer();
    p.send("damaged", Some(0), None, b"after", None);
    p.send("damaged", Some(1), None, b"after", None);
    let reports = p.flush(Duration::from_secs(30));
    let by_partition = |part| {
        reports
            .iter()
            .find(|d| d.partition == part)
            .map(|d| d.error.clone())
    };
    assert_eq!(
        by_partition(0),
        Some(None),
        "healthy partition: {reports:?}"
    );
    let err = by_partition(1)
        .flatten()
        .map(|e| format!("{e:?}"))
        .unwrap_or_default();
    assert!(
        err.contains("KafkaStorageError") || err.contains("Storage"),
        "offline partition answered {err:?}"
    );
    broker.assert_running();
    assert!(broker.log().contains("is offline"), "{}", broker.log());
}

/// connections.max.idle.ms: an idle connection and one stuck half-way through a size prefix are
/// both closed by the broker; a working client is unaffected.
#[test]
fn idle_and_half_open_connections_are_closed() {
    let mut broker = Broker::start(
        BrokerOpts::default()
            .cores(1)
            .set("connections.max.idle.ms", "500"),
    );
    let mut idle = TcpStream::connect(broker.addr()).unwrap();
    let mut half = TcpStream::connect(broker.addr()).unwrap();
    half.write_all(&[0, 0]).unwrap();
    for s in [&mut idle, &mut half] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 1];
        // EOF (Ok(0)) or a reset: either way the broker closed it, well before our 10 s timeout.
        let closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
        assert!(
            closed && started.elapsed() < Duration::from_secs(8),
            "connection not closed"
        );
    }
    broker.assert_metadata_ok();
}

/// A client that asks for a large fetch and then stops reading cannot pin its connection (and,
/// with zero-copy, the log file ranges being sent) forever: the response write is abandoned and
/// the connection closed after connections.max.idle.ms, and other clients keep working.
#[test]
fn a_client_that_stops_reading_is_disconnected() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    let mut broker = Broker::start(
        BrokerOpts::default()
            .cores(1)
            .set("connections.max.idle.ms", "1500"),
    );
    broker.create_topic("stuck", 1, &[]);
    // ~40 MB that does not compress: far more than loopback socket buffers hold.
    let mut p = broker.producer_with(&[("compression.type", "none"), ("acks", "1")]);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..4000 {
        let value = incompressible(&mut x, 10_000);
        p.send("stuck", Some(0), None, &value, None);
    }
    assert!(p
        .flush(Duration::from_secs(60))
        .iter()
        .all(|d| d.error.is_none()));

    let mut topic = FetchTopic::default();
    topic.topic = TopicName(StrBytes::from_static_str("stuck"));
    let mut fp = FetchPartition::default();
    fp.partition_max_bytes = 50_000_000;
    topic.partitions = vec![fp];
    let mut req = FetchRequest::default();
    req.max_bytes = 50_000_000;
    req.min_bytes = 1;
    req.topics = vec![topic];
    let mut body = bytes::BytesMut::new();
    req.encode(&mut body, 12).unwrap();
    let mut s = TcpStream::connect(broker.addr()).unwrap();
    s.write_all(&raw_frame(ApiKey::Fetch as i16, 12, 1, &body))
        .unwrap();
    // Do not read for longer than the idle limit.
    std::thread::sleep(Duration::from_secs(4));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut size = [0u8; 4];
    s.read_exact(&mut size).unwrap();
    let announced = i32::from_be_bytes(size) as usize;
    assert!(announced > 30_000_000, "a large response: {announced}");
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(
        got < announced,
        "the broker gave up on the stuck response ({got} of {announced} bytes arrived)"
    );
    assert!(
        broker
            .log()
            .contains("read nothing for connections.max.idle.ms"),
        "{}",
        broker.log()
    );
    broker.assert_metadata_ok();
}

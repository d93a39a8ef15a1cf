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

//! Hostile and broken clients on raw TCP: the broker answers or closes the one connection, and
//! keeps serving everyone else. After every case the process must still run and an rdkafka
//! metadata call must succeed.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::{ApiKey, ProduceResponse};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn connect(b: &Broker) -> TcpStream {
    let s = TcpStream::connect(b.addr()).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

fn frame(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    raw_frame(api_key, version, correlation_id, body)
}

/// Hand-rolled header for api keys the crate does not know: v1 layout (key, version, id, client).
fn raw_frame_v1_header(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&api_key.to_be_bytes());
    f.extend_from_slice(&version.to_be_bytes());
    f.extend_from_slice(&correlation_id.to_be_bytes());
    f.extend_from_slice(&(-1i16).to_be_bytes());
    f.extend_from_slice(body);
    let mut out = (f.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&f);
    out
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<Bytes> {
    raw_read_frame(s)
}

/// What the broker did with a connection.
#[derive(Debug, PartialEq)]
enum Fate {
    Closed,
    Answered(Bytes),
    /// Still open and silent after the timeout.
    Open,
}

fn fate(s: &mut TcpStream, timeout: Duration) -> Fate {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut size = [0u8; 4];
    let mut got = 0;
    loop {
        match s.read(&mut size[got..]) {
            Ok(0) => return Fate::Closed,
            Ok(n) => {
                got += n;
                if got == 4 {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Fate::Open
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Fate::Closed, // reset
        }
    }
    let n = i32::from_be_bytes(size) as usize;
    let mut body = vec![0u8; n];
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    match s.read_exact(&mut body) {
        Ok(()) => Fate::Answered(Bytes::from(body)),
        Err(_) => Fate::Closed,
    }
}

fn assert_closed(s: &mut TcpStream, what: &str) {
    match fate(s, IO_TIMEOUT) {
        Fate::Closed => {}
        other => panic!("{what}: expected the connection to be closed, got {other:?}"),
    }
}

/// Writes, tolerating the broker closing early (a reset while we still send is a valid answer).
fn send(s: &mut TcpStream, bytes: &[u8]) {
    let _ = s.write_all(bytes);
}

fn healthy(b: &mut Broker, case: &str) {
    if !b.is_running() {
        panic!("broker died after case `{case}`; log:\n{}", b.log());
    }
    b.assert_metadata_ok();
}

#[test]
fn framing_errors_close_only_that_connection() {
    let mut b = Broker::start_default();
    let mut rng = Rng::new(0x5eed);

    // Random bytes (the first four are a size prefix, whatever it says).
    for i in 0..50 {
        let mut s = connect(&b);
        let n = 1 + rng.below(8192) as usize;
        send(&mut s, &rng.bytes(n));
        if i % 2 == 0 {
            let _ = s.shutdown(Shutdown::Write);
        }
        // Either closed or waiting for the rest of a frame; both are fine. Don't wait long.
        let _ = fate(&mut s, Duration::from_millis(20));
    }
    healthy(&mut b, "random bytes");

    // A correct size prefix around random content: the header cannot be valid.
    for _ in 0..50 {
        let mut s = connect(&b);
        let n = 8 + rng.below(2048) as usize;
        let mut f = (n as i32).to_be_bytes().to_vec();
        f.extend(rng.bytes(n));
        send(&mut s, &f);
        let r = fate(&mut s, IO_TIMEOUT);
        assert_ne!(r, Fate::Open, "random framed request left hanging");
    }
    healthy(&mut b, "framed random bytes");

    let mut s = connect(&b);
    send(&mut s, &(-5i32).to_be_bytes());
    assert_closed(&mut s, "negative size prefix");
    healthy(&mut b, "negative size prefix");

    let mut s = connect(&b);
    send(&mut s, &[0x7f, 0xff, 0xff, 0xff]);
    assert_closed(&mut s, "2 GB size prefix");
    healthy(&mut b, "2 GB size prefix");

    // Size 4, then only 2 bytes, then EOF.
    let mut s = connect(&b);
    send(&mut s, &[0, 0, 0, 4, 0, 18]);
    s.shutdown(Shutdown::Write).unwrap();
    assert_closed(&mut s, "truncated header");
    healthy(&mut b, "truncated header");

    // A complete 4-byte frame: api key and version, no correlation id.
    let mut s = connect(&b);
    send(&mut s, &[0, 0, 0, 4, 0, 18, 0, 0]);
    assert_closed(&mut s, "header shorter than its fixed part");
    healthy(&mut b, "short header");

    // Size 0.
    let mut s = connect(&b);
    send(&mut s, &[0, 0, 0, 0]);
    assert_closed(&mut s, "empty frame");
    healthy(&mut b, "empty frame");
}

#[test]
fn unknown_apis_and_versions() {
    let mut b = Broker::start_default();

    let mut s = connect(&b);
    send(&mut s, &raw_frame_v1_header(1000, 0, 1, &[]));
    assert_closed(&mut s, "unknown api key 1000");
    healthy(&mut b, "unknown api key");

    // An API the crate knows but the broker does not offer (JoinGroup v0, empty body).
    let mut s = connect(&b);
    send(&mut s, &raw_frame_v1_header(11, 0, 1, &[]));
    assert_closed(&mut s, "JoinGroup (not offered)");
    healthy(&mut b, "unoffered api");

    let mut s = connect(&b);
    send(&mut s, &raw_frame_v1_header(3, 99, 1, &[0, 0, 0, 0]));
    assert_closed(&mut s, "Metadata v99");
    healthy(&mut b, "Metadata v99");

    // ApiVersions v99: a v0-format answer with UNSUPPORTED_VERSION and the supported list.
    let mut s = connect(&b);
    send(&mut s, &raw_frame_v1_header(18, 99, 4242, &[]));
    let resp = read_frame(&mut s).expect("ApiVersions v99 gets an answer");
    assert!(resp.len() >= 4 + 2 + 4, "short response {resp:?}");
    let corr = i32::from_be_bytes(resp[0..4].try_into().unwrap());
    let error = i16::from_be_bytes(resp[4..6].try_into().unwrap());
    let count = i32::from_be_bytes(resp[6..10].try_into().unwrap());
    assert_eq!(corr, 4242);
    assert_eq!(error, 35, "UNSUPPORTED_VERSION");
    assert!(count > 0, "api list is empty");
    assert!(resp.len() >= 10 + 6 * count as usize, "api list truncated");
    let keys: Vec<i16> = (0..count as usize)
        .map(|i| i16::from_be_bytes(resp[10 + 6 * i..12 + 6 * i].try_into().unwrap()))
        .collect();
    assert!(
        keys.contains(&18) && keys.contains(&0) && keys.contains(&3),
        "{keys:?}"
    );
    // The connection stays usable: a supported version now works.
    send(&mut s, &raw_frame_v1_header(18, 0, 4243, &[]));
    let resp = read_frame(&mut s).expect("ApiVersions v0 after v99");
    assert_eq!(i32::from_be_bytes(resp[0..4].try_into().unwrap()), 4243);
    assert_eq!(i16::from_be_bytes(resp[4..6].try_into().unwrap()), 0);
    healthy(&mut b, "ApiVersions v99");
}

#[test]
fn garbage_bodies_at_valid_versions() {
    let mut b = Broker::start_default();
    b.create_topic("garbage", 1, &[]);
    let mut rng = Rng::new(77);
    // (api key, versions): Produce, Fetch, Metadata, CreateTopics; flexible and not.
    let cases: &[(i16, &[i16])] = &[
        (0, &[3, 7, 9, 12]),
        (1, &[4, 11, 12, 17]),
        (3, &[0, 1, 8, 9, 12]),
        (19, &[2, 4, 5, 7]),
    ];
    let mut corr = 0;
    for (key, versions) in cases {
        for v in *versions {
            let mut bodies: Vec<Vec<u8>> = vec![
                vec![],
                vec![0xff; 64],
                vec![0x7f; 64],
                vec![0x3f, 0xff, 0xff, 0xff],
                vec![0x80; 16],
            ];
            for _ in 0..20 {
                let n = rng.below(512) as usize;
                bodies.push(rng.bytes(n));
            }
            for body in bodies {
                corr += 1;
                let mut s = connect(&b);
                send(&mut s, &frame(*key, *v, corr, &body));
                match fate(&mut s, IO_TIMEOUT) {
                    Fate::Closed => {}
                    Fate::Answered(r) => {
                        let got = i32::from_be_bytes(r[0..4].try_into().unwrap());
                        assert_eq!(got, corr, "api {key} v{v}: answer to another request");
                    }
                    Fate::Open => panic!("api {key} v{v} body {body:02x?}: no answer, not closed"),
                }
                if !b.is_running() {
                    panic!(
                        "broker died on api {key} v{v} body {body:02x?}; log:\n{}",
                        b.log()
                    );
                }
            }
            healthy(&mut b, &format!("garbage api {key} v{v}"));
        }
    }
}

/// The kafka-protocol allocation bug: an array length of 0x3fffffff in a 4-byte Metadata v0
/// body made the upstream decoder reserve gigabytes before noticing the body is short.
#[test]
fn huge_array_length_in_metadata_body() {
    let mut b = Broker::start_default();
    for _ in 0..3 {
        let mut s = connect(&b);
        send(&mut s, &frame(3, 0, 9, &[0x3f, 0xff, 0xff, 0xff]));
        assert_closed(&mut s, "Metadata v0 with array length 0x3fffffff");
        healthy(&mut b, "Metadata 3fffffff");
    }
    // The same trick in a flexible version (compact array length as a varint).
    let mut s = connect(&b);
    send(&mut s, &frame(3, 9, 10, &[0xff, 0xff, 0xff, 0xff, 0x03]));
    let _ = fate(&mut s, IO_TIMEOUT);
    healthy(&mut b, "Metadata v9 huge compact array");
}

fn batch(corrupt: bool) -> Bytes {
    let records: Vec<(Option<Vec<u8>>, Vec<u8>)> = (0..3)
        .map(|i| {
            let key = format!("k{i}").into_bytes();
            (
                Some(key),
                format!("value number {i} of the crc test").into_bytes(),
            )
        })
        .collect();
    let mut buf = record_batch(&records);
    if corrupt {
        // Past the 61-byte batch header, inside the records: covered by the CRC only.
        let i = buf.len() - 5;
        buf[i] ^= 0x55;
    }
    buf.freeze()
}

fn produce_raw(b: &Broker, topic: &str, records: Bytes, version: i16) -> ProduceResponse {
    raw_call(
        b.addr(),
        ApiKey::Produce,
        version,
        &produce_request(topic, records, -1),
    )
}

#[test]
fn produce_with_bad_crc_is_corrupt_message() {
    let mut b = Broker::start_default();
    b.create_topic("crc", 1, &[]);
    for version in [3i16, 7, 9] {
        let ok = produce_raw(&b, "crc", batch(false), version);
        let p = &ok.responses[0].partition_responses[0];
        assert_eq!(
            p.error_code, 0,
            "v{version}: a correct batch is accepted: {:?}",
            p.error_message
        );

        let bad = produce_raw(&b, "crc", batch(true), version);
        let p = &bad.responses[0].partition_responses[0];
        assert_eq!(
            p.error_code, 2,
            "v{version}: CORRUPT_MESSAGE for a wrong CRC"
        );
        healthy(&mut b, "bad crc");
    }
    // Only the good batches are in the log: 3 versions x 3 records.
    let c = b.consumer();
    assert_eq!(watermarks(&c, "crc", 1), vec![(0, 9)]);
    let r = consume(&c, "crc", &[(0, 0)], 9, Duration::from_secs(20));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.messages.len(), 9);
}

#[test]
fn half_open_connections_do_not_block_others() {
    let mut b = Broker::start(BrokerOpts::default().cores(2));
    b.create_topic("half-open", 2, &[]);
    let mut idle = Vec::new();
    for _ in 0..200 {
        let mut s = connect(&b);
        send(&mut s, &[0, 0]);
        idle.push(s);
    }
    // A normal client still works, on both shards' partitions.
    let start = Instant::now();
    let mut p = b.producer();
    for i in 0..200u32 {
        p.send(
            "half-open",
            Some((i % 2) as i32),
            None,
            format!("m{i}").as_bytes(),
            None,
        );
    }
    let d = p.flush(Duration::from_secs(30));
    assert_eq!(d.len(), 200);
    assert!(
        d.iter().all(|d| d.error.is_none()),
        "{:?}",
        d.iter().find(|d| d.error.is_some())
    );
    let c = b.consumer();
    let r = consume(
        &c,
        "half-open",
        &[(0, 0), (1, 0)],
        200,
        Duration::from_secs(30),
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.messages.len(), 200);
    assert!(start.elapsed() < Duration::from_secs(30));
    healthy(&mut b, "200 half-open connections");
    // The half-open connections are still open (not dropped to make room)...
    for s in idle.iter_mut().take(5) {
        assert_eq!(fate(s, Duration::from_millis(50)), Fate::Open);
    }
    // ...and finishing their frames now gets them closed (2 more prefix bytes: size 0).
    for s in idle.iter_mut() {
        send(s, &[0, 0]);
    }
    for s in idle.iter_mut().take(5) {
        assert_closed(s, "empty frame after half-open prefix");
    }
    drop(idle);
    healthy(&mut b, "after half-open connections closed");
    b.stop();
}

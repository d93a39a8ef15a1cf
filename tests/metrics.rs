//! The Prometheus endpoint against a real broker: counters move on the shards that did the work,
//! and the output parses line by line.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{free_port, Broker, BrokerOpts};

type Labels = BTreeMap<String, String>;

#[derive(Debug)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

/// One raw HTTP/1.1 request; returns (status line, headers, body). The server closes after it.
fn http_get(addr: SocketAddr, path: &str) -> (String, Vec<String>, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response until close");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("end of head");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_string();
    let headers: Vec<String> = lines.map(String::from).collect();
    let len: usize = headers
        .iter()
        .find_map(|h| h.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(len, body.len(), "Content-Length matches the body");
    (status, headers, body.to_string())
}

fn malformed<T>(line: &str) -> T {
    panic!("unparsable line {line:?}")
}

/// Parses the exposition text strictly: every line is a comment (`# HELP`/`# TYPE`) or
/// `name{k="v",...} value`.
fn parse(body: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in body.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| malformed(line));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| malformed(line)),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').unwrap_or_else(|| malformed(line))),
            None => (series, ""),
        };
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        let mut map = Labels::new();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            // Our label values never contain commas or escapes.
            let (k, v) = pair.split_once('=').unwrap_or_else(|| malformed(line));
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or_else(|| malformed(line));
            map.insert(k.to_string(), v.to_string());
        }
        assert!(map.contains_key("shard"), "no shard label: {line:?}");
        out.push(Sample {
            name: name.to_string(),
            labels: map,
            value,
        });
    }
    out
}

/// Sum of the samples of `name` whose labels include every pair of `with`.
fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

fn scrape(addr: SocketAddr) -> Vec<Sample> {
    let (status, headers, body) = http_get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(
        headers
            .iter()
            .any(|h| h == "Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{headers:?}"
    );
    parse(&body)
}

fn produce(broker: &Broker, topic: &str, partitions: &[i32], per_partition: usize) {
    let mut p = broker.producer_with(&[("acks", "all"), ("compression.type", "none")]);
    for &part in partitions {
        for i in 0..per_partition {
            p.send(
                topic,
                Some(part),
                None,
                format!("value-{i:04}").as_bytes(),
                None,
            );
        }
    }
    let d = p.flush(Duration::from_secs(20));
    assert_eq!(d.len(), partitions.len() * per_partition);
    assert!(d.iter().all(|d| d.error.is_none()), "{d:?}");
}

#[test]
fn metrics_endpoint_reports_per_shard_work() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let broker = Broker::start(
        BrokerOpts::default()
            .cores(2)
            .set("metrics.listen", &addr.to_string()),
    );
    broker.create_topic("metered", 4, &[]);

    // Before any produce: both shards report, nothing appended, partitions placed on both.
    let before = scrape(addr);
    for shard in ["0", "1"] {
        assert!(sum(&before, "shardlog_partitions", &[("shard", shard)]) >= 2.0);
        assert_eq!(
            sum(&before, "shardlog_produce_bytes_total", &[("shard", shard)]),
            0.0
        );
    }

    // acks=all to partition 0 only: exactly its owner appends and syncs.
    produce(&broker, "metered", &[0], 50);
    let after_one = scrape(addr);
    let owners: Vec<&str> = ["0", "1"]
        .into_iter()
        .filter(|s| sum(&after_one, "shardlog_produce_bytes_total", &[("shard", s)]) > 0.0)
        .collect();
    assert_eq!(owners.len(), 1, "one shard owns partition 0");
    let (owner, other) = (owners[0], if owners[0] == "0" { "1" } else { "0" });
    for (name, min) in [
        ("shardlog_produce_records_total", 50.0),
        ("shardlog_produce_appends_total", 1.0),
        ("shardlog_produce_batch_size_bytes_count", 1.0),
        ("shardlog_acks_all_appends_total", 1.0),
        ("shardlog_log_syncs_total", 1.0),
        ("shardlog_log_sync_duration_seconds_count", 1.0),
    ] {
        let v = sum(&after_one, name, &[("shard", owner)]);
        assert!(v >= min, "{name} on owner shard {owner} = {v}");
        assert_eq!(
            sum(&after_one, name, &[("shard", other)]),
            0.0,
            "{name} on shard {other}"
        );
    }
    assert_eq!(
        sum(&after_one, "shardlog_produce_records_total", &[]),
        50.0,
        "records counted once"
    );
    // Group commit can only merge syncs, never add them.
    assert!(
        sum(&after_one, "shardlog_log_syncs_total", &[])
            <= sum(&after_one, "shardlog_acks_all_appends_total", &[])
    );

    // Then every partition, and read everything back.
    produce(&broker, "metered", &[0, 1, 2, 3], 25);
    let got = common::consume_all(
        &broker.bootstrap(),
        "metered",
        4,
        150,
        Duration::from_secs(20),
    );
    assert_eq!(got.messages.len(), 150, "errors: {:?}", got.errors);

    let m = scrape(addr);
    for shard in ["0", "1"] {
        let s = &[("shard", shard)];
        assert!(
            sum(&m, "shardlog_produce_bytes_total", s) > 0.0,
            "bytes in, shard {shard}"
        );
        assert!(
            sum(&m, "shardlog_log_syncs_total", s) > 0.0,
            "syncs, shard {shard}"
        );
        assert!(
            sum(&m, "shardlog_log_read_bytes_total", s) > 0.0,
            "reads, shard {shard}"
        );
    }
    assert_eq!(sum(&m, "shardlog_produce_records_total", &[]), 150.0);
    let produce_reqs = sum(&m, "shardlog_requests_total", &[("api", "Produce")]);
    let fetch_reqs = sum(&m, "shardlog_requests_total", &[("api", "Fetch")]);
    assert!(
        produce_reqs > 0.0 && fetch_reqs > 0.0,
        "{produce_reqs} {fetch_reqs}"
    );
    assert!(sum(&m, "shardlog_requests_total", &[("api", "Metadata")]) > 0.0);
    assert!(
        sum(&m, "shardlog_fetch_bytes_total", &[]) > 0.0,
        "bytes out"
    );
    assert!(
        sum(&m, "shardlog_network_received_bytes_total", &[])
            > sum(&m, "shardlog_produce_bytes_total", &[]),
        "frames carry the appended batches"
    );
    assert_eq!(sum(&m, "shardlog_request_errors_total", &[]), 0.0);
    // Every request is in its API's latency histogram, per shard.
    for shard in ["0", "1"] {
        for api in ["Produce", "Fetch"] {
            let l = &[("shard", shard), ("api", api)];
            assert_eq!(
                sum(&m, "shardlog_requests_total", l),
                sum(&m, "shardlog_request_duration_seconds_count", l),
                "{api} on shard {shard}"
            );
            let inf = [("shard", shard), ("api", api), ("le", "+Inf")];
            assert_eq!(
                sum(&m, "shardlog_request_duration_seconds_bucket", &inf),
                sum(&m, "shardlog_request_duration_seconds_count", l)
            );
        }
    }
    assert!(sum(&m, "shardlog_connections_accepted_total", &[]) > 0.0);
    // The scrape of shard 1 crosses to it: shard 0 has sent calls.
    assert!(sum(&m, "shardlog_cross_shard_calls_total", &[("shard", "0")]) > 0.0);
    // One request at a time per connection (a closed consumer's last long-poll Fetch may still
    // be waiting out its max wait).
    for shard in ["0", "1"] {
        let s = &[("shard", shard)];
        assert!(
            sum(&m, "shardlog_requests_in_flight", s) <= sum(&m, "shardlog_connections_active", s)
        );
    }

    // The cluster's gauges (shard 0): one node is its own active controller, one active
    // broker, every partition led and in sync.
    for (name, value) in [
        ("shardlog_active_controller", 1.0),
        ("shardlog_active_brokers", 1.0),
        ("shardlog_fenced_brokers", 0.0),
        ("shardlog_offline_partitions", 0.0),
        ("shardlog_under_replicated_partitions", 0.0),
        ("shardlog_under_min_isr_partitions", 0.0),
    ] {
        assert_eq!(sum(&m, name, &[("shard", "0")]), value, "{name}");
        assert!(
            m.iter().all(|x| x.name != name || x.labels["shard"] == "0"),
            "{name}"
        );
    }

    // Anything but GET /metrics is 404.
    let (status, _, _) = http_get(addr, "/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[test]
fn empty_metrics_listen_disables_the_endpoint() {
    let mut broker = Broker::start(BrokerOpts::default().cores(1).set("metrics.listen", ""));
    broker.assert_metadata_ok();
    assert!(
        broker.log().contains("metrics endpoint disabled"),
        "{}",
        broker.log()
    );
}

#[test]
fn a_taken_metrics_port_is_logged_and_the_broker_serves_anyway() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap();
    let mut broker = Broker::start(
        BrokerOpts::default()
            .cores(1)
            .set("metrics.listen", &taken.to_string()),
    );
    broker.assert_metadata_ok();
    assert!(
        broker.log().contains("metrics endpoint not started"),
        "{}",
        broker.log()
    );
}

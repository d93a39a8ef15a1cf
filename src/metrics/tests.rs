//! Rendering and registry tests (no broker needed).

use super::registry::{LocalHistogram, ShardMetrics, DURATION_BUCKETS_US};
use super::snapshot::{markdown_reference, render, Kind, ShardSnapshot, Value, METRICS};

type Parsed = (String, Vec<(String, String)>, f64);

/// Parses one sample line `name{k="v",...} value` (labels optional); `None` if malformed.
fn parse_line(line: &str) -> Option<Parsed> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        Some((n, rest)) => (n, rest.strip_suffix('}')?),
        None => (series, ""),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return None;
    }
    let mut out = Vec::new();
    let mut rest = labels;
    while !rest.is_empty() {
        let (k, r) = rest.split_once("=\"")?;
        // Value up to the next unescaped quote.
        let mut v = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => {
                    let (_, e) = chars.next()?;
                    v.push(match e {
                        'n' => '\n',
                        e => e,
                    });
                }
                '"' => break i,
                c => v.push(c),
            }
        };
        out.push((k.to_string(), v));
        rest = &r[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Some((name.to_string(), out, value))
}

fn full_snapshot(shard: usize) -> ShardSnapshot {
    let m = ShardMetrics::new();
    m.record_request(Some(0), 120, false); // Produce
    m.record_request(Some(0), 4_000, true);
    m.record_request(Some(1), 800, false); // Fetch
    m.record_request(None, 5, true);
    m.record_request(Some(9999), 5, true);
    m.produce_batch_size.record(1000);
    m.sync_duration.record(170);
    m.produce_bytes.add(1000);
    let mut snap = m.snapshot(shard);
    // The shard-state series the endpoint adds.
    for name in [
        "shardlog_partitions",
        "shardlog_log_size_bytes",
        "shardlog_timer_tasks",
        "shardlog_fetch_waiters",
        "shardlog_log_open_files",
        "shardlog_log_open_files_max",
        "shardlog_cross_shard_calls_in_flight",
        "shardlog_cross_shard_jobs_running",
        "shardlog_active_controller",
        "shardlog_fenced_brokers",
        "shardlog_active_brokers",
        "shardlog_offline_partitions",
        "shardlog_under_replicated_partitions",
        "shardlog_under_min_isr_partitions",
    ] {
        snap.push(name, Value::Gauge(1.0));
    }
    for name in [
        "shardlog_log_syncs_total",
        "shardlog_acks_all_appends_total",
        "shardlog_log_file_opens_total",
        "shardlog_log_file_evictions_total",
        "shardlog_cross_shard_calls_total",
        "shardlog_cross_shard_jobs_total",
    ] {
        snap.push(name, Value::Counter(1));
    }
    snap
}

#[test]
fn every_line_parses_and_every_family_is_declared_once() {
    let text = render(&[full_snapshot(0), full_snapshot(1)]);
    let mut helps = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helps.push(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.starts_with("# TYPE ") {
            continue;
        }
        let (name, labels, _) =
            parse_line(line).unwrap_or_else(|| panic!("unparsable line: {line:?}"));
        assert_eq!(labels[0].0, "shard", "{line}");
        let family = METRICS
            .iter()
            .find(|d| {
                name == d.name
                    || (d.kind == Kind::Histogram
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| name == format!("{}{s}", d.name)))
            })
            .unwrap_or_else(|| panic!("undeclared series {name}"));
        let expected: Vec<&str> = std::iter::once("shard")
            .chain(family.labels.split(',').filter(|l| !l.is_empty()))
            .chain(name.ends_with("_bucket").then_some("le"))
            .collect();
        let got: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(got, expected, "{line}");
    }
    let mut sorted = helps.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), METRICS.len(), "one HELP per family");
    assert_eq!(helps.len(), METRICS.len());
}

#[test]
fn every_declared_metric_is_reported_by_a_shard_and_nothing_else_is() {
    let snap = full_snapshot(0);
    for d in METRICS {
        assert!(
            snap.samples.iter().any(|s| s.name == d.name),
            "{} is declared but no shard reports it",
            d.name
        );
    }
    for s in &snap.samples {
        assert!(
            METRICS.iter().any(|d| d.name == s.name),
            "{} is reported but not declared in METRICS (it would never be rendered)",
            s.name
        );
    }
}

#[test]
fn counters_and_per_api_series_carry_their_labels() {
    let text = render(&[full_snapshot(3)]);
    assert!(text.contains("shardlog_requests_total{shard=\"3\",api=\"Produce\"} 2\n"));
    assert!(text.contains("shardlog_request_errors_total{shard=\"3\",api=\"Produce\"} 1\n"));
    assert!(text.contains("shardlog_requests_total{shard=\"3\",api=\"Fetch\"} 1\n"));
    // Unparsable frames and unknown keys share one bounded series.
    assert!(text.contains("shardlog_requests_total{shard=\"3\",api=\"unknown\"} 2\n"));
    assert!(text.contains("shardlog_produce_bytes_total{shard=\"3\"} 1000\n"));
    assert!(text.contains("# TYPE shardlog_request_duration_seconds histogram\n"));
    assert!(text.contains("# TYPE shardlog_requests_total counter\n"));
    assert!(text.contains("# TYPE shardlog_connections_active gauge\n"));
}

#[test]
fn histograms_are_cumulative_in_seconds_with_inf_sum_and_count() {
    let h = LocalHistogram::duration();
    for us in [10, 30, 30, 700, 2_000, 20_000_000] {
        h.record(us);
    }
    let s = h.snapshot();
    assert_eq!(s.count, 6);
    assert_eq!(s.buckets.len(), DURATION_BUCKETS_US.len());
    let le = |bound: f64| s.buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
    assert_eq!(le(0.000025), 1);
    assert_eq!(le(0.00005), 3);
    assert_eq!(le(0.0005), 3);
    assert_eq!(le(0.001), 4);
    assert_eq!(le(0.0025), 5);
    assert_eq!(
        le(10.0),
        5,
        "20 s is above the last bound, counted only in +Inf"
    );
    assert!((s.sum - 20.00277).abs() < 1e-9, "{}", s.sum);
    let mut snap = ShardSnapshot {
        shard: 0,
        samples: Vec::new(),
    };
    snap.push("shardlog_log_sync_duration_seconds", Value::Histogram(s));
    let text = render(&[snap]);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("shardlog_log_sync_duration_seconds"))
        .collect();
    assert_eq!(
        lines[0],
        "shardlog_log_sync_duration_seconds_bucket{shard=\"0\",le=\"0.000025\"} 1"
    );
    let n = lines.len();
    assert_eq!(
        lines[n - 3],
        "shardlog_log_sync_duration_seconds_bucket{shard=\"0\",le=\"+Inf\"} 6"
    );
    assert_eq!(
        lines[n - 2],
        "shardlog_log_sync_duration_seconds_sum{shard=\"0\"} 20.00277"
    );
    assert_eq!(
        lines[n - 1],
        "shardlog_log_sync_duration_seconds_count{shard=\"0\"} 6"
    );
    // Cumulative: never decreasing.
    let counts: Vec<f64> = lines[..n - 2]
        .iter()
        .map(|l| parse_line(l).unwrap().2)
        .collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
}

#[test]
fn label_values_are_escaped() {
    let mut snap = ShardSnapshot {
        shard: 0,
        samples: Vec::new(),
    };
    snap.samples.push(super::snapshot::Sample {
        name: "shardlog_requests_total",
        labels: vec![("api", "a\"b\\c\nd".to_string())],
        value: Value::Counter(1),
    });
    let text = render(&[snap]);
    let line = text
        .lines()
        .find(|l| l.starts_with("shardlog_requests_total{"))
        .unwrap();
    assert_eq!(
        line,
        r#"shardlog_requests_total{shard="0",api="a\"b\\c\nd"} 1"#
    );
    let (_, labels, v) = parse_line(line).unwrap();
    assert_eq!(labels[1].1, "a\"b\\c\nd");
    assert_eq!(v, 1.0);
}

#[test]
fn guards_count_connections_and_requests_on_this_thread() {
    use super::registry::{read, ConnectionGuard, RequestTimer};
    std::thread::spawn(|| {
        let c = ConnectionGuard::new();
        assert_eq!(read(|m| m.connections_active.get()), Some(1));
        {
            // ApiVersions (18) frame: key, version, correlation id, client id.
            let frame = [0u8, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff];
            let t = RequestTimer::start(&frame);
            assert_eq!(read(|m| m.requests_in_flight.get()), Some(1));
            t.sent(20);
        }
        drop(c);
        let m = read(|m| {
            (
                m.connections_active.get(),
                m.connections_accepted.get(),
                m.requests_in_flight.get(),
                m.requests_of(18),
                m.network_received_bytes.get(),
                m.network_sent_bytes.get(),
            )
        });
        assert_eq!(m, Some((0, 1, 0, 1, 14, 20)));
    })
    .join()
    .unwrap();
}

#[test]
fn readme_metrics_reference_is_generated_from_the_catalogue() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = "<!-- metrics-reference:start -->\n";
    let end = "<!-- metrics-reference:end -->";
    let a = readme.find(start).expect("start marker") + start.len();
    let b = readme.find(end).expect("end marker");
    assert_eq!(
        &readme[a..b],
        markdown_reference(),
        "README.md metrics reference is stale: run `cargo test --lib metrics::tests::update_readme_metrics_reference -- --ignored`"
    );
}

/// Rewrites README.md's metrics reference from [`METRICS`] (run by hand, see the test above).
#[test]
#[ignore]
fn update_readme_metrics_reference() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let start = "<!-- metrics-reference:start -->\n";
    let end = "<!-- metrics-reference:end -->";
    let a = readme.find(start).expect("start marker") + start.len();
    let b = readme.find(end).expect("end marker");
    let updated = format!("{}{}{}", &readme[..a], markdown_reference(), &readme[b..]);
    std::fs::write(path, updated).unwrap();
}

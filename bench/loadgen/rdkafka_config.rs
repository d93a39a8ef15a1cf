//! librdkafka properties for `--client rdkafka`: this tool's knobs under their librdkafka names,
//! then the user's `--rdkafka-set KEY=VALUE` (applied last, so they win). Everything else stays
//! at librdkafka's defaults (linger.ms 5, batch.size 1 MB, batch.num.messages 10,000, the sticky
//! partitioner for null keys): the point of this mode is how a real client behaves.
//!
//! Plain key/value pairs, no librdkafka types: compiled and tested in every build, used only
//! with the rdkafka-client feature.
#![cfg_attr(not(feature = "rdkafka-client"), allow(dead_code))]

use std::time::Duration;

use crate::batch::Codec;
use crate::Args;

/// How often librdkafka reports its statistics (request and byte counters, see
/// rdkafka_stats.rs); the finer, the closer the window's share of them.
pub const STATS_INTERVAL_MS: u64 = 100;

pub type Props = Vec<(String, String)>;

/// Parses `--rdkafka-set` values.
pub fn parse_sets(sets: &[String]) -> Result<Props, String> {
    sets.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(format!("--rdkafka-set {kv}: expected KEY=VALUE")),
        })
        .collect()
}

/// Producer properties. The mapped knobs mean the same as for the native client: acks,
/// compression (done by librdkafka per batch), requests in flight per connection and the
/// Produce request timeout.
pub fn producer(a: &Args) -> Result<Props, String> {
    let acks = match a.acks {
        -1 => "all".to_string(),
        n => n.to_string(),
    };
    let compression = match a.compression {
        Codec::None => "none",
        Codec::Lz4 => "lz4",
        Codec::Zstd => "zstd",
    };
    let base = [
        ("bootstrap.servers", a.bootstrap.clone()),
        ("client.id", "shardlog-bench".into()),
        ("acks", acks),
        ("compression.type", compression.into()),
        (
            "max.in.flight.requests.per.connection",
            a.pipeline.to_string(),
        ),
        ("request.timeout.ms", a.timeout_ms.to_string()),
        ("statistics.interval.ms", STATS_INTERVAL_MS.to_string()),
    ];
    with_overrides(&base, &parse_sets(&a.rdkafka_set)?)
}

/// Consumer properties: the Fetch knobs map one to one. A group id is required by librdkafka
/// even for manually assigned partitions; nothing is committed to it.
pub fn consumer(a: &Args, group: &str) -> Result<Props, String> {
    let base = [
        ("bootstrap.servers", a.bootstrap.clone()),
        ("client.id", "shardlog-bench".into()),
        ("group.id", group.into()),
        ("enable.auto.commit", "false".into()),
        ("enable.auto.offset.store", "false".into()),
        ("fetch.max.bytes", a.fetch_max_bytes.to_string()),
        (
            "max.partition.fetch.bytes",
            a.partition_max_bytes.to_string(),
        ),
        ("fetch.wait.max.ms", a.fetch_max_wait_ms.to_string()),
        ("fetch.min.bytes", a.fetch_min_bytes.to_string()),
        ("statistics.interval.ms", STATS_INTERVAL_MS.to_string()),
    ];
    with_overrides(&base, &parse_sets(&a.rdkafka_set)?)
}

fn with_overrides(base: &[(&str, String)], overrides: &Props) -> Result<Props, String> {
    let mut props: Props = base
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    for (k, v) in overrides {
        match props.iter_mut().find(|(key, _)| key == k) {
            Some(p) => p.1 = v.clone(),
            None => props.push((k.clone(), v.clone())),
        }
    }
    Ok(props)
}

/// The statistics interval in effect (a user may change or disable it); None = disabled.
pub fn stats_interval(props: &Props) -> Option<Duration> {
    let ms = props
        .iter()
        .find(|(k, _)| k == "statistics.interval.ms")
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    (ms > 0).then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["shardlog-bench", "--client", "rdkafka"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).expect("valid arguments")
    }

    fn get<'a>(p: &'a Props, key: &str) -> Option<&'a str> {
        p.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn knobs_map_to_librdkafka_names() {
        let a = args(&[
            "--bootstrap",
            "127.0.0.1:29092",
            "--acks",
            "-1",
            "--compression",
            "lz4",
            "--pipeline",
            "16",
            "--timeout-ms",
            "5000",
        ]);
        let p = producer(&a).expect("producer props");
        assert_eq!(get(&p, "bootstrap.servers"), Some("127.0.0.1:29092"));
        assert_eq!(get(&p, "acks"), Some("all"));
        assert_eq!(get(&p, "compression.type"), Some("lz4"));
        assert_eq!(get(&p, "max.in.flight.requests.per.connection"), Some("16"));
        assert_eq!(get(&p, "request.timeout.ms"), Some("5000"));
        // Batching is librdkafka's own unless asked for.
        assert_eq!(get(&p, "linger.ms"), None);
        assert_eq!(get(&p, "batch.num.messages"), None);
        assert_eq!(stats_interval(&p), Some(Duration::from_millis(100)));

        let c = consumer(&args(&["--fetch-max-wait-ms", "50"]), "g").expect("consumer props");
        assert_eq!(get(&c, "group.id"), Some("g"));
        assert_eq!(get(&c, "fetch.wait.max.ms"), Some("50"));
        assert_eq!(get(&c, "max.partition.fetch.bytes"), Some("1048576"));
        assert_eq!(get(&c, "enable.auto.commit"), Some("false"));
    }

    #[test]
    fn rdkafka_set_wins_and_adds() {
        let a = args(&[
            "--acks",
            "1",
            "--rdkafka-set",
            "linger.ms=20",
            "--rdkafka-set",
            "acks=0",
            "--rdkafka-set",
            "statistics.interval.ms=0",
            "--rdkafka-set",
            "client.id=a=b",
        ]);
        let p = producer(&a).expect("producer props");
        assert_eq!(get(&p, "linger.ms"), Some("20"));
        assert_eq!(get(&p, "acks"), Some("0"));
        assert_eq!(p.iter().filter(|(k, _)| k == "acks").count(), 1);
        assert_eq!(get(&p, "client.id"), Some("a=b"));
        assert_eq!(stats_interval(&p), None);
    }

    #[test]
    fn malformed_set_is_rejected() {
        for bad in ["linger.ms", "=5", " =5"] {
            let a = args(&["--rdkafka-set", bad]);
            let err = producer(&a).expect_err(bad);
            assert!(err.contains("KEY=VALUE"), "{err}");
        }
    }
}

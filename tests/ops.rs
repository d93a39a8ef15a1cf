//! Operator features against a real broker process: topic configs changed at run time
//! (IncrementalAlterConfigs / AlterConfigs) and persisted, `shardlog cluster info`,
//! `shardlog produce` / `shardlog consume`, configuration from SHARDLOG_* variables, JSON logs,
//! and `scripts/install.sh --dry-run`.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shardlog"));
    c.env_remove("SHARDLOG_BOOTSTRAP").env("RUST_LOG", "warn");
    c
}

/// `shardlog ARGS --bootstrap B` with `stdin`; returns the output.
fn run(b: &Broker, args: &[&str], stdin: &str) -> Output {
    let mut child = bin()
        .args(args)
        .arg("--bootstrap")
        .arg(b.bootstrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shardlog");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(b: &Broker, args: &[&str], stdin: &str) -> String {
    let o = run(b, args, stdin);
    assert!(
        o.status.success(),
        "shardlog {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fails(b: &Broker, args: &[&str], stdin: &str, code: i32) -> String {
    let o = run(b, args, stdin);
    assert_eq!(
        o.status.code(),
        Some(code),
        "shardlog {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(b: &Broker, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["--format", "json"]);
    let out = ok(b, &a, "");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{out}"))
}

/// (value, source) of one config in `topic describe --format json`.
fn topic_config(b: &Broker, topic: &str, key: &str) -> (String, String) {
    let v = json(b, &["topic", "describe", topic]);
    let c = v["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == key)
        .unwrap_or_else(|| panic!("no {key} in {v}"));
    (
        c["value"].as_str().unwrap().to_string(),
        c["source"].as_str().unwrap().to_string(),
    )
}

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

fn incremental(
    b: &Broker,
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, String) {
    let req = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(
                ops.iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(*op)
                            .with_value(v.map(s))
                    })
                    .collect(),
            )]);
    let r: IncrementalAlterConfigsResponse =
        raw_call(b.addr(), ApiKey::IncrementalAlterConfigs, 1, &req);
    let x = &r.responses[0];
    (
        x.error_code,
        x.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

#[test]
fn topic_configs_change_at_run_time_and_persist() {
    let mut b = Broker::start_default();
    ok(&b, &["topic", "create", "cfg", "--partitions", "2"], "");
    assert_eq!(topic_config(&b, "cfg", "retention.ms").1, "DEFAULT_CONFIG");

    // CLI: --set and --delete through IncrementalAlterConfigs.
    let out = ok(
        &b,
        &[
            "topic",
            "alter-config",
            "cfg",
            "--set",
            "retention.ms=3600000",
            "--set",
            "max.message.bytes=200",
        ],
        "",
    );
    assert!(out.contains("Changed configuration of topic cfg"), "{out}");
    assert_eq!(
        topic_config(&b, "cfg", "retention.ms"),
        ("3600000".into(), "DYNAMIC_TOPIC_CONFIG".into())
    );

    // The open logs took the new max.message.bytes: a 300-byte line is refused now.
    let err = fails(
        &b,
        &["produce", "cfg", "--partition", "0"],
        &"x".repeat(300),
        1,
    );
    assert!(err.contains("MESSAGE_TOO_LARGE"), "{err}");
    ok(
        &b,
        &[
            "topic",
            "alter-config",
            "cfg",
            "--delete",
            "max.message.bytes",
        ],
        "",
    );
    assert_eq!(
        topic_config(&b, "cfg", "max.message.bytes").1,
        "DEFAULT_CONFIG"
    );
    ok(
        &b,
        &["produce", "cfg", "--partition", "0"],
        &"x".repeat(300),
    );

    // Bad values and unknown keys: INVALID_CONFIG, exit 1, nothing changed.
    let err = fails(
        &b,
        &["topic", "alter-config", "cfg", "--set", "retention.ms=soon"],
        "",
        1,
    );
    assert!(
        err.contains("INVALID_CONFIG") && err.contains("retention.ms"),
        "{err}"
    );
    let err = fails(
        &b,
        &["topic", "alter-config", "cfg", "--set", "retention.msec=1"],
        "",
        1,
    );
    assert!(err.contains("INVALID_CONFIG"), "{err}");
    let err = fails(
        &b,
        &["topic", "alter-config", "cfg", "--set", "segment.bytes=10"],
        "",
        1,
    );
    assert!(err.contains("INVALID_CONFIG"), "{err}");
    let err = fails(
        &b,
        &["topic", "alter-config", "nope", "--set", "retention.ms=1"],
        "",
        1,
    );
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
    // Bad arguments: exit 2.
    fails(&b, &["topic", "alter-config", "cfg"], "", 2);
    fails(
        &b,
        &["topic", "alter-config", "cfg", "--set", "novalue"],
        "",
        2,
    );

    // Dry run validates without changing.
    let v = json(
        &b,
        &[
            "topic",
            "alter-config",
            "cfg",
            "--set",
            "retention.ms=5",
            "--dry-run",
        ],
    );
    assert_eq!(v["dry_run"], true);
    assert_eq!(topic_config(&b, "cfg", "retention.ms").0, "3600000");

    // Raw protocol: APPEND on a non-list setting, SUBTRACT emptying cleanup.policy, null SET,
    // duplicate keys; BROKER resources are not dynamic (INVALID_REQUEST, as Kafka).
    let (code, msg) = incremental(&b, 2, "cfg", &[("retention.ms", 2, Some("1"))], false);
    assert_eq!(code, 40, "{msg}");
    let (code, _) = incremental(
        &b,
        2,
        "cfg",
        &[("cleanup.policy", 3, Some("delete"))],
        false,
    );
    assert_eq!(code, 40);
    let (code, _) = incremental(
        &b,
        2,
        "cfg",
        &[("cleanup.policy", 2, Some("delete"))],
        false,
    );
    assert_eq!(code, 0);
    let (code, _) = incremental(&b, 2, "cfg", &[("retention.ms", 0, None)], false);
    assert_eq!(code, 42);
    let (code, _) = incremental(
        &b,
        2,
        "cfg",
        &[("retention.ms", 0, Some("1")), ("retention.ms", 1, None)],
        false,
    );
    assert_eq!(code, 42);
    let (code, msg) = incremental(&b, 4, "1", &[("log.retention.ms", 0, Some("1"))], false);
    assert_eq!(code, 42);
    assert!(
        msg.contains("Cannot update these configs dynamically"),
        "{msg}"
    );
    assert_eq!(incremental(&b, 4, "1", &[], false).0, 0);
    assert_eq!(
        incremental(&b, 2, "cfg", &[("retention.ms", 0, Some("7"))], true).0,
        0
    );
    assert_eq!(topic_config(&b, "cfg", "retention.ms").0, "3600000");

    // AlterConfigs (legacy) replaces the whole set of overrides.
    let req = AlterConfigsRequest::default().with_resources(vec![
        kafka_protocol::messages::alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("cfg"))
            .with_configs(vec![
                kafka_protocol::messages::alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.bytes"))
                    .with_value(Some(s("1048576"))),
            ]),
    ]);
    let r: AlterConfigsResponse = raw_call(b.addr(), ApiKey::AlterConfigs, 1, &req);
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(topic_config(&b, "cfg", "retention.ms").1, "DEFAULT_CONFIG");
    assert_eq!(
        topic_config(&b, "cfg", "retention.bytes"),
        ("1048576".into(), "DYNAMIC_TOPIC_CONFIG".into())
    );

    // Persisted: a restart replays the metadata log.
    ok(
        &b,
        &["topic", "alter-config", "cfg", "--set", "segment.ms=60000"],
        "",
    );
    b.restart();
    assert_eq!(
        topic_config(&b, "cfg", "segment.ms"),
        ("60000".into(), "DYNAMIC_TOPIC_CONFIG".into())
    );
    assert_eq!(topic_config(&b, "cfg", "retention.bytes").0, "1048576");
}

#[test]
fn cluster_info_human_and_json() {
    let b = Broker::start_default();
    ok(&b, &["topic", "create", "one", "--partitions", "3"], "");
    let out = ok(&b, &["cluster", "info"], "");
    assert!(
        out.contains("Cluster id:") && out.contains("Controller:  1"),
        "{out}"
    );
    assert!(out.contains(&format!("127.0.0.1  {}", b.port())), "{out}");
    let v = json(&b, &["cluster", "info"]);
    assert_eq!(v["controller_id"], 1);
    assert_eq!(v["topics"], 1);
    assert_eq!(v["brokers"][0]["port"], b.port() as i64);
    assert!(!v["cluster_id"].as_str().unwrap().is_empty());
    // The metadata quorum: this node alone, leading, nothing lagging.
    assert!(out.contains("Metadata quorum: leader 1, epoch"), "{out}");
    assert_eq!(v["quorum"]["leader_id"], 1);
    assert_eq!(v["quorum"]["voters"].as_array().unwrap().len(), 1);
    assert_eq!(v["quorum"]["voters"][0]["lag"], 0);
    assert!(v["quorum"]["high_watermark"].as_i64().unwrap() >= 3, "{v}");
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn produce_and_consume_round_trip() {
    let b = Broker::start(BrokerOpts::default().set("group.initial.rebalance.delay.ms", "0"));
    ok(&b, &["topic", "create", "pc", "--partitions", "3"], "");
    let input: String = (0..50).map(|i| format!("k{}:value {i}\n", i % 5)).collect();
    let out = ok(
        &b,
        &[
            "produce",
            "pc",
            "--key-separator",
            ":",
            "--header",
            "source=test",
            "--header",
            "n=1",
            "--compression",
            "zstd",
            "--batch-size",
            "7",
        ],
        &input,
    );
    assert!(out.starts_with("Produced 50 records to pc"), "{out}");
    // Other codecs and acks.
    for (codec, acks) in [
        ("gzip", "1"),
        ("snappy", "all"),
        ("lz4", "-1"),
        ("none", "1"),
    ] {
        let v = json(
            &b,
            &[
                "produce",
                "pc",
                "--partition",
                "2",
                "--compression",
                codec,
                "--acks",
                acks,
            ],
        );
        assert_eq!(v["records"], 0, "empty stdin sends nothing");
        let o = ok(
            &b,
            &[
                "produce",
                "pc",
                "--partition",
                "2",
                "--compression",
                codec,
                "--acks",
                acks,
            ],
            &format!("{codec}\n"),
        );
        assert!(o.contains("Produced 1 records"), "{o}");
    }

    // JSON lines: every record, keys kept together per partition (murmur2), headers.
    let out = ok(
        &b,
        &[
            "consume",
            "pc",
            "--from-beginning",
            "--max-messages",
            "54",
            "--format",
            "json",
        ],
        "",
    );
    let recs = json_lines(&out);
    assert_eq!(recs.len(), 54);
    let mut key_partition = std::collections::HashMap::new();
    for r in recs.iter().filter(|r| r["key"].is_string()) {
        let k = r["key"].as_str().unwrap().to_string();
        let p = r["partition"].as_i64().unwrap();
        assert_eq!(*key_partition.entry(k).or_insert(p), p, "{r}");
        assert_eq!(r["headers"]["source"], "test");
        assert_eq!(r["headers"]["n"], "1");
        assert!(r["value"].as_str().unwrap().starts_with("value "));
        assert!(r["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    }
    assert_eq!(key_partition.len(), 5);

    // Raw values from one partition at an offset; human format.
    let out = ok(
        &b,
        &[
            "consume",
            "pc",
            "--partition",
            "2",
            "--offset",
            "0",
            "--timeout-ms",
            "1500",
            "--format",
            "raw",
        ],
        "",
    );
    for codec in ["gzip", "snappy", "lz4", "none"] {
        assert!(out.lines().any(|l| l == codec), "{out}");
    }
    // acks=0: no answer is awaited; the record still arrives.
    let o = ok(
        &b,
        &["produce", "pc", "--partition", "1", "--acks", "0"],
        "fire\n",
    );
    assert!(o.contains("acks=0"), "{o}");
    let out = ok(
        &b,
        &[
            "consume",
            "pc",
            "--partition",
            "1",
            "--from-beginning",
            "--timeout-ms",
            "1500",
            "--format",
            "raw",
        ],
        "",
    );
    assert!(out.lines().any(|l| l == "fire"), "{out}");
    let out = ok(
        &b,
        &[
            "consume",
            "pc",
            "--from-beginning",
            "--max-messages",
            "3",
            "--partition",
            "0",
        ],
        "",
    );
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.lines()
            .all(|l| l.starts_with('k') && l.contains("\tvalue ")),
        "{out}"
    );

    // --from-time in the future: nothing; only new records would come.
    let out = ok(
        &b,
        &[
            "consume",
            "pc",
            "--from-time",
            "2999-01-01T00:00:00Z",
            "--timeout-ms",
            "700",
        ],
        "",
    );
    assert!(out.is_empty(), "{out}");
    let out = ok(
        &b,
        &[
            "consume",
            "pc",
            "--from-time",
            "2000-01-01T00:00:00Z",
            "--max-messages",
            "54",
            "--format",
            "raw",
        ],
        "",
    );
    assert_eq!(out.lines().count(), 54);

    // A group as a simple consumer: commits where it stopped, the next run continues there.
    let out = ok(
        &b,
        &[
            "consume",
            "pc",
            "--group",
            "g1",
            "--from-beginning",
            "--timeout-ms",
            "1500",
            "--format",
            "raw",
        ],
        "",
    );
    assert_eq!(out.lines().count(), 55);
    ok(&b, &["produce", "pc"], "later\n");
    let out = ok(
        &b,
        &[
            "consume",
            "pc",
            "--group",
            "g1",
            "--timeout-ms",
            "1500",
            "--format",
            "raw",
        ],
        "",
    );
    assert_eq!(out, "later\n");
    let g = json(&b, &["group", "describe", "g1"]);
    assert!(g.to_string().contains("\"pc\""), "{g}");

    // Errors: unknown topic, missing partition (exit 1); conflicting flags (exit 2).
    let err = fails(&b, &["produce", "nope"], "x\n", 1);
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
    let err = fails(&b, &["produce", "pc", "--partition", "9"], "x\n", 1);
    assert!(err.contains("no partition 9"), "{err}");
    fails(&b, &["produce", "pc", "--compression", "brotli"], "", 2);
    fails(&b, &["produce", "pc", "--acks", "2"], "", 2);
    fails(
        &b,
        &["consume", "pc", "--offset", "1", "--from-beginning"],
        "",
        2,
    );
    fails(&b, &["consume", "pc", "--from-time", "yesterday"], "", 2);
    let err = fails(&b, &["consume", "nope", "--timeout-ms", "100"], "", 1);
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
}

#[test]
fn config_from_environment_and_its_sources() {
    let out = bin()
        .args(["config", "print", "--set", "num.partitions=4"])
        .env("SHARDLOG_LOG_RETENTION_MS", "1000")
        .env("SHARDLOG_NUM_PARTITIONS", "2")
        .env("SHARDLOG_BOOTSTRAP", "127.0.0.1:1")
        .env("SHARDLOG_TEST_SEED", "7")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("log.retention.ms = \"1000\"  # environment"),
        "{text}"
    );
    assert!(
        text.contains("num.partitions = \"4\"  # command line"),
        "{text}"
    );
    assert!(
        text.contains("listen = \"127.0.0.1:9092\"  # default"),
        "{text}"
    );

    let out = bin()
        .args(["start", "--data-dir", "/nonexistent/never"])
        .env("SHARDLOG_LOG_RETENTON_MS", "1000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SHARDLOG_LOG_RETENTON_MS"), "{err}");

    let out = bin()
        .args(["config", "print"])
        .env("SHARDLOG_NUM_PARTITIONS", "many")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHARDLOG_NUM_PARTITIONS"));

    let out = bin()
        .args(["start", "--log-level", "shardlog=nonsense=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("log.level"));
}

#[test]
fn json_logs_with_a_startup_banner() {
    let b = Broker::start(BrokerOpts::default().set("log.format", "json"));
    assert!(wait_until(Duration::from_secs(5), || b
        .log()
        .contains("ready")));
    let log = b.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let banner = lines
        .iter()
        .find(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("starting"))
        })
        .unwrap_or_else(|| panic!("no banner in {log}"));
    let m = banner["fields"]["message"].as_str().unwrap();
    assert!(m.contains(env!("CARGO_PKG_VERSION")), "{m}");
    assert!(m.contains("1 shard(s)") && m.contains("data dir"), "{m}");
    assert!(m.contains(&format!("127.0.0.1:{}", b.port())), "{m}");
    assert_eq!(banner["level"], "INFO");
}

#[test]
fn install_script_dry_run() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/install.sh"))
        .arg("--dry-run")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for want in [
        "cargo build --release",
        "/usr/local/bin/shardlog",
        "useradd --system",
        "/etc/shardlog/shardlog.toml",
        "/var/lib/shardlog",
        "/etc/systemd/system/shardlog.service",
        "systemctl enable --now shardlog.service",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The sample configuration it would write is one the broker accepts.
    let toml: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("    | "))
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shardlog.toml");
    std::fs::write(&path, &toml).unwrap();
    let out = bin()
        .args(["config", "print", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}\n{toml}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("data.dir = \"/var/lib/shardlog\"  # file")
    );

    let out = Command::new("bash")
        .arg(format!("{root}/scripts/install.sh"))
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // The unit has what a broker needs.
    let unit = std::fs::read_to_string(format!("{root}/scripts/shardlog.service")).unwrap();
    for want in [
        "LimitMEMLOCK=infinity",
        "LimitNOFILE=1048576",
        "CPUAffinity=",
        "Restart=on-failure",
        "User=shardlog",
        "--config /etc/shardlog/shardlog.toml",
        "TimeoutStopSec=",
    ] {
        assert!(unit.contains(want), "{want}");
    }
}

#[test]
fn offsets_topic_refuses_settings_that_would_delete_committed_offsets() {
    let b = Broker::start_default();
    for key in ["retention.ms", "retention.bytes"] {
        let (code, msg) = incremental(&b, 2, "__consumer_offsets", &[(key, 0, Some("1"))], false);
        assert_eq!(code, 40, "{key}: INVALID_CONFIG: {msg}");
        assert!(msg.contains("would delete them"), "{msg}");
    }
    // Other settings of the internal topic may still change.
    let (code, msg) = incremental(
        &b,
        2,
        "__consumer_offsets",
        &[("segment.bytes", 0, Some("104857600"))],
        false,
    );
    assert_eq!(code, 0, "{msg}");
}

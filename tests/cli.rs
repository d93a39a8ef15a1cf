//! The operator CLI (`shardlog topic ...`, `shardlog group ...`) run as a process against a
//! harness broker: every subcommand, JSON output, broker errors (exit 1) and bad arguments
//! (exit 2), and consumer groups made by a real librdkafka consumer.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

fn broker() -> Broker {
    Broker::start(BrokerOpts::default().set("group.initial.rebalance.delay.ms", "0"))
}

/// Runs `shardlog ARGS --bootstrap <broker>`.
fn cli(b: &Broker, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(args)
        .arg("--bootstrap")
        .arg(b.bootstrap())
        .env_remove("SHARDLOG_BOOTSTRAP")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run shardlog")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs and asserts exit 0; returns stdout.
fn ok(b: &Broker, args: &[&str]) -> String {
    let o = cli(b, args);
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "shardlog {args:?} failed with {}:\nstdout:\n{out}\nstderr:\n{err}",
        o.status
    );
    out
}

/// Runs with `--format json`, asserts exit 0, parses stdout.
fn json(b: &Broker, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["--format", "json"]);
    let out = ok(b, &a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{out}"))
}

/// Runs and asserts exit code `code`; returns stderr.
fn fails(b: &Broker, args: &[&str], code: i32) -> String {
    let o = cli(b, args);
    let (out, err) = text(&o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "shardlog {args:?}: expected exit {code}, got {}:\nstdout:\n{out}\nstderr:\n{err}",
        o.status
    );
    err
}

fn topic_names_json(b: &Broker) -> Vec<String> {
    json(b, &["topic", "list"])
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t["topic"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn topic_create_list_describe_add_partitions_delete() {
    let b = broker();
    let out = ok(
        &b,
        &[
            "topic",
            "create",
            "events",
            "--partitions",
            "3",
            "--config",
            "retention.ms=3600000",
        ],
    );
    assert!(out.contains("Created topic events"), "{out}");

    // Creating it again: broker error, Kafka's name for it, exit 1; --if-not-exists succeeds.
    let err = fails(&b, &["topic", "create", "events", "--partitions", "3"], 1);
    assert!(err.contains("TOPIC_ALREADY_EXISTS"), "{err}");
    let v = json(&b, &["topic", "create", "events", "--if-not-exists"]);
    assert_eq!(v["created"], false);

    // Human list and JSON list; internal topics only on request.
    let out = ok(&b, &["topic", "list"]);
    assert!(out.starts_with("TOPIC"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("events ") && l.contains(" 3 ")),
        "{out}"
    );
    assert_eq!(topic_names_json(&b), vec!["events".to_string()]);

    // Some records so the high watermark moves.
    let mut p = b.producer();
    for i in 0..7 {
        p.send("events", Some(1), None, format!("m{i}").as_bytes(), None);
    }
    assert!(p
        .flush(Duration::from_secs(15))
        .iter()
        .all(|d| d.error.is_none()));

    let v = json(&b, &["topic", "describe", "events"]);
    assert_eq!(v["topic"], "events");
    let parts = v["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(part["partition"], i as i64);
        assert_eq!(part["log_start_offset"], 0);
        assert_eq!(part["high_watermark"], if i == 1 { 7 } else { 0 });
        assert!(part["leader"].as_i64().unwrap() >= 0);
    }
    let retention = v["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "retention.ms")
        .expect("retention.ms in configs");
    assert_eq!(retention["value"], "3600000");
    assert_eq!(retention["source"], "DYNAMIC_TOPIC_CONFIG");
    let out = ok(&b, &["topic", "describe", "events"]);
    assert!(
        out.contains("HIGH-WATERMARK") && out.contains("retention.ms"),
        "{out}"
    );

    // add-partitions: to a total, or by a number; never down.
    let v = json(&b, &["topic", "add-partitions", "events", "--count", "5"]);
    assert_eq!(
        (v["previous_count"].as_i64(), v["count"].as_i64()),
        (Some(3), Some(5))
    );
    ok(&b, &["topic", "add-partitions", "events", "--add", "1"]);
    let v = json(&b, &["topic", "describe", "events"]);
    assert_eq!(v["partitions"].as_array().unwrap().len(), 6);
    let err = fails(
        &b,
        &["topic", "add-partitions", "events", "--count", "2"],
        1,
    );
    assert!(err.contains("already has 6 partitions"), "{err}");

    // Unknown topics are broker errors.
    let err = fails(&b, &["topic", "describe", "nope"], 1);
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");

    let out = ok(&b, &["topic", "delete", "events"]);
    assert!(out.contains("Deleted topic events"), "{out}");
    assert!(
        wait_until(Duration::from_secs(10), || topic_names_json(&b).is_empty()),
        "topic still listed after delete"
    );
    let err = fails(&b, &["topic", "delete", "events"], 1);
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
}

fn group_consumer(b: &Broker, group: &str) -> BaseConsumer {
    let mut c: ClientConfig = base_config(&b.bootstrap());
    c.set("group.id", group)
        .set("client.id", "cli-test-client")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("enable.partition.eof", "false");
    c.create().expect("consumer")
}

/// Committed offsets of `group` for `topic` partitions 0..n, read with librdkafka
/// (OffsetFetch without joining the group). -1 = none.
fn committed(b: &Broker, group: &str, topic: &str, n: i32) -> Vec<i64> {
    let c = group_consumer(b, group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed_offsets");
    (0..n)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}

fn group_state(b: &Broker, group: &str) -> String {
    json(b, &["group", "describe", group])["state"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn group_list_describe_reset_offsets_delete() {
    let b = broker();
    let topic = "orders";
    let group = "billing";
    ok(&b, &["topic", "create", topic, "--partitions", "2"]);

    // 10 records per partition: the first 5 stamped T0, the last 5 stamped T1 = T0 + 1 hour.
    let t0: i64 = 1_795_687_200_000; // 2026-11-26T10:00:00Z
    let t1 = t0 + 3_600_000;
    let mut p = b.producer();
    for part in 0..2 {
        for i in 0..10 {
            let ts = if i < 5 { t0 + i } else { t1 + i };
            p.send(topic, Some(part), None, b"x", Some(ts));
        }
    }
    assert!(p
        .flush(Duration::from_secs(15))
        .iter()
        .all(|d| d.error.is_none()));

    // A real consumer group member: subscribe, consume everything, commit.
    let c = group_consumer(&b, group);
    c.subscribe(&[topic]).expect("subscribe");
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen < 20 && Instant::now() < deadline {
        if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
            seen += 1;
        }
    }
    assert_eq!(seen, 20, "consumed");
    c.commit_consumer_state(CommitMode::Sync).expect("commit");
    assert_eq!(committed(&b, group, topic, 2), vec![10, 10]);

    // 3 more records on partition 0: lag 3 there.
    for _ in 0..3 {
        p.send(topic, Some(0), None, b"y", None);
    }
    assert!(p
        .flush(Duration::from_secs(15))
        .iter()
        .all(|d| d.error.is_none()));

    // While the member is active: describe shows it and its assignment; resets and deletes are
    // refused.
    let v = json(&b, &["group", "describe", group]);
    assert_eq!(v["state"], "Stable", "{v}");
    assert_eq!(v["protocol_type"], "consumer");
    let members = v["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{v}");
    assert_eq!(members[0]["client_id"], "cli-test-client");
    assert_eq!(
        members[0]["assignment"][topic],
        serde_json::json!([0, 1]),
        "{v}"
    );
    let out = ok(&b, &["group", "describe", group]);
    assert!(
        out.contains("cli-test-client") && out.contains("LAG"),
        "{out}"
    );
    let err = fails(
        &b,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-earliest",
        ],
        1,
    );
    assert!(err.contains("can only be reset if the group"), "{err}");
    assert!(err.contains("inactive"), "{err}");
    let err = fails(&b, &["group", "delete", group], 1);
    assert!(err.contains("NON_EMPTY_GROUP"), "{err}");
    assert_eq!(committed(&b, group, topic, 2), vec![10, 10]);

    // Close the member (LeaveGroup): the group becomes Empty.
    drop(c);
    assert!(
        wait_until(Duration::from_secs(15), || group_state(&b, group)
            == "Empty"),
        "group did not become Empty"
    );

    let listed = json(&b, &["group", "list"]);
    let g = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group)
        .unwrap_or_else(|| panic!("{group} not listed: {listed}"));
    assert_eq!(g["protocol_type"], "consumer");
    let out = ok(&b, &["group", "list"]);
    assert!(out.lines().any(|l| l.starts_with(group)), "{out}");

    // Committed offsets, log end offsets and lag per partition.
    let v = json(&b, &["group", "describe", group]);
    let offsets = v["offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), 2, "{v}");
    let row = |p: i64| offsets.iter().find(|o| o["partition"] == p).unwrap();
    assert_eq!(
        (
            row(0)["committed_offset"].as_i64(),
            row(0)["log_end_offset"].as_i64(),
            row(0)["lag"].as_i64()
        ),
        (Some(10), Some(13), Some(3))
    );
    assert_eq!(
        (
            row(1)["committed_offset"].as_i64(),
            row(1)["log_end_offset"].as_i64(),
            row(1)["lag"].as_i64()
        ),
        (Some(10), Some(10), Some(0))
    );

    // --dry-run changes nothing.
    let v = json(
        &b,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-earliest",
            "--dry-run",
        ],
    );
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["offsets"][0]["new_offset"], 0);
    assert_eq!(committed(&b, group, topic, 2), vec![10, 10]);

    // --to-earliest
    let out = ok(
        &b,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-earliest",
        ],
    );
    assert!(out.contains("NEW-OFFSET"), "{out}");
    assert_eq!(committed(&b, group, topic, 2), vec![0, 0]);

    // --to-offset on one partition; out-of-range offsets are clamped to the log end.
    ok(
        &b,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--partition",
            "1",
            "--to-offset",
            "7",
        ],
    );
    assert_eq!(committed(&b, group, topic, 2), vec![0, 7]);
    let v = json(
        &b,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-offset",
            "1000",
        ],
    );
    assert_eq!(v["offsets"][0]["previous_offset"], 0);
    assert_eq!(committed(&b, group, topic, 2), vec![13, 10]);

    // --to-datetime: the first record at or after T1 is offset 5 on both partitions; a time
    // after every record gives the log end.
    ok(
        &b,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-datetime",
            "2026-11-26T10:30:00Z",
        ],
    );
    assert_eq!(committed(&b, group, topic, 2), vec![5, 5]);
    ok(
        &b,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-datetime",
            "2026-11-26T11:30:00+01:00",
        ],
    );
    assert_eq!(committed(&b, group, topic, 2), vec![5, 5]);
    ok(
        &b,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-latest",
        ],
    );
    assert_eq!(committed(&b, group, topic, 2), vec![13, 10]);
    ok(
        &b,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-datetime",
            "2026-11-26T09:00:00Z",
        ],
    );
    assert_eq!(committed(&b, group, topic, 2), vec![0, 0]);

    // Bad partition: a clear error.
    let err = fails(
        &b,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--partition",
            "9",
            "--to-earliest",
        ],
        1,
    );
    assert!(err.contains("no partition 9"), "{err}");

    // Delete the group: gone from the list, describe says it does not exist.
    let out = ok(&b, &["group", "delete", group]);
    assert!(out.contains("Deleted group"), "{out}");
    let listed = json(&b, &["group", "list"]);
    assert!(
        !listed
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == group),
        "{listed}"
    );
    let err = fails(&b, &["group", "describe", group], 1);
    assert!(err.contains("GROUP_ID_NOT_FOUND"), "{err}");
    let err = fails(&b, &["group", "delete", group], 1);
    assert!(err.contains("GROUP_ID_NOT_FOUND"), "{err}");
}

#[test]
fn a_reset_creates_the_offsets_of_a_new_group() {
    let b = broker();
    ok(&b, &["topic", "create", "t", "--partitions", "1"]);
    let mut p = b.producer();
    for _ in 0..4 {
        p.send("t", Some(0), None, b"x", None);
    }
    assert!(p
        .flush(Duration::from_secs(15))
        .iter()
        .all(|d| d.error.is_none()));
    // A group that never existed is Dead: resetting is allowed and creates a simple group.
    let v = json(
        &b,
        &[
            "group",
            "reset-offsets",
            "fresh",
            "--topic",
            "t",
            "--to-offset",
            "2",
        ],
    );
    assert_eq!(v["offsets"][0]["previous_offset"], Value::Null);
    assert_eq!(committed(&b, "fresh", "t", 1), vec![2]);
    let v = json(&b, &["group", "describe", "fresh"]);
    assert_eq!(v["offsets"][0]["lag"], 2, "{v}");
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    let b = broker();
    let cases: &[(&[&str], &str)] = &[
        (&["topic", "create"], "<TOPIC>"),
        (
            &["topic", "create", "t", "--partitions", "0"],
            "--partitions",
        ),
        (
            &["topic", "create", "t", "--partitions", "many"],
            "invalid value 'many'",
        ),
        (
            &["topic", "create", "t", "--config", "novalue"],
            "expected KEY=VALUE",
        ),
        (&["topic", "add-partitions", "t"], "--count"),
        (&["topic", "frobnicate"], "unrecognized subcommand"),
        (
            &["topic", "list", "--format", "yaml"],
            "possible values: human, json",
        ),
        (
            &["group", "reset-offsets", "g", "--topic", "t"],
            "--to-earliest",
        ),
        (
            &[
                "group",
                "reset-offsets",
                "g",
                "--topic",
                "t",
                "--to-earliest",
                "--to-latest",
            ],
            "cannot be used with",
        ),
        (
            &[
                "group",
                "reset-offsets",
                "g",
                "--topic",
                "t",
                "--to-datetime",
                "yesterday",
            ],
            "bad date-time",
        ),
        (&["group", "reset-offsets", "g", "--to-earliest"], "--topic"),
        (&["group", "describe"], "<GROUP>"),
    ];
    for (args, needle) in cases {
        let err = fails(&b, args, 2);
        assert!(
            err.contains(needle),
            "shardlog {args:?}: stderr lacks {needle:?}:\n{err}"
        );
    }
}

#[test]
fn unreachable_broker_fails_fast_with_exit_1() {
    // A port nothing listens on.
    let port = free_port();
    let started = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["topic", "list", "--connect-timeout", "3"])
        .env("SHARDLOG_BOOTSTRAP", format!("127.0.0.1:{port}"))
        .output()
        .expect("run shardlog");
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot connect to broker at 127.0.0.1"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn bootstrap_from_environment() {
    let b = broker();
    let o = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["group", "list", "--format", "json"])
        .env("SHARDLOG_BOOTSTRAP", b.bootstrap())
        .output()
        .expect("run shardlog");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert!(v.is_array());
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::process::Stdio;
    // `shardlog config list | head -1` once head has exited: the pipe's read end is closed
    // before the command writes anything.
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    drop(read_end);
    let out = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["config", "list"])
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.status.success(), "{:?}", out.status);
}

//! Topic administration through rdkafka's AdminClient (and raw requests where librdkafka
//! validates locally and never sends the request): error codes, partition growth, configs,
//! and what Metadata says about the broker.

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AdminClient, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;

type Admin = AdminClient<DefaultClientContext>;

/// Creates one topic and returns the per-topic result code.
fn try_create(
    admin: &Admin,
    name: &str,
    partitions: i32,
    rf: i32,
    configs: &[(&str, &str)],
) -> Result<(), RDKafkaErrorCode> {
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(rf));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = block_on(admin.create_topics([&t], &admin_opts())).expect("create_topics call");
    assert_eq!(res.len(), 1);
    res[0].clone().map(|_| ()).map_err(|(_, e)| e)
}

fn partition_count(b: &Broker, topic: &str) -> usize {
    let c = b.consumer();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .expect("topic listed");
    assert!(t.error().is_none(), "{topic}: {:?}", t.error());
    t.partitions().len()
}

#[test]
fn create_topic_errors() {
    let b = Broker::start_default();
    let admin = b.admin();

    assert_eq!(try_create(&admin, "dup", 1, 1, &[]), Ok(()));
    assert_eq!(
        try_create(&admin, "dup", 1, 1, &[]),
        Err(RDKafkaErrorCode::TopicAlreadyExists)
    );
    assert_eq!(
        try_create(&admin, "rf3", 1, 3, &[]),
        Err(RDKafkaErrorCode::InvalidReplicationFactor)
    );
    assert_eq!(
        try_create(&admin, "bad/name", 1, 1, &[]),
        Err(RDKafkaErrorCode::InvalidTopic)
    );
    assert_eq!(
        try_create(&admin, "unknown-config", 1, 1, &[("no.such.setting", "1")]),
        Err(RDKafkaErrorCode::InvalidConfig)
    );
    assert_eq!(
        try_create(
            &admin,
            "bad-config-value",
            1,
            1,
            &[("retention.ms", "soon")]
        ),
        Err(RDKafkaErrorCode::InvalidConfig)
    );
    // None of the refused topics exist afterwards.
    let names = topic_names(&b.consumer());
    for n in ["rf3", "bad/name", "unknown-config", "bad-config-value"] {
        assert!(
            !names.contains(&n.to_string()),
            "{n} was created: {names:?}"
        );
    }

    // 0 partitions: librdkafka refuses it locally (num_partitions must be -1 or 1..100000),
    // so send CreateTopics ourselves.
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("zero-partitions")))
            .with_num_partitions(0)
            .with_replication_factor(1)]);
    let resp: CreateTopicsResponse = raw_call(b.addr(), ApiKey::CreateTopics, 5, &req);
    assert_eq!(resp.topics.len(), 1);
    assert_eq!(
        resp.topics[0].error_code, 37,
        "INVALID_PARTITIONS for 0 partitions: {:?}",
        resp.topics[0].error_message
    );

    // Deleting a topic that does not exist.
    let res = block_on(admin.delete_topics(&["never-created"], &admin_opts())).unwrap();
    assert_eq!(
        res[0].clone().map_err(|(_, e)| e),
        Err(RDKafkaErrorCode::UnknownTopicOrPartition)
    );
}

#[test]
fn create_partitions_grows_and_never_shrinks() {
    let b = Broker::start(BrokerOpts::default().cores(2));
    let admin = b.admin();
    b.create_topic("grow", 2, &[]);
    assert_eq!(partition_count(&b, "grow"), 2);

    let res = block_on(admin.create_partitions([&NewPartitions::new("grow", 5)], &admin_opts()))
        .expect("create_partitions call");
    assert_eq!(res[0].clone().map_err(|(_, e)| e), Ok("grow".to_string()));
    assert!(
        wait_until(Duration::from_secs(10), || partition_count(&b, "grow") == 5),
        "metadata does not show 5 partitions"
    );

    // The new partitions work.
    let mut p = b.producer();
    for part in 0..5 {
        p.send(
            "grow",
            Some(part),
            None,
            format!("p{part}").as_bytes(),
            None,
        );
    }
    let d = p.flush(Duration::from_secs(30));
    assert!(d.iter().all(|d| d.error.is_none()), "{d:?}");
    let c = b.consumer();
    assert_eq!(watermarks(&c, "grow", 5), vec![(0, 1); 5]);

    for n in [3, 5] {
        let res =
            block_on(admin.create_partitions([&NewPartitions::new("grow", n)], &admin_opts()))
                .expect("create_partitions call");
        assert_eq!(
            res[0].clone().map_err(|(_, e)| e),
            Err(RDKafkaErrorCode::InvalidPartitions),
            "going to {n} partitions"
        );
    }
    assert_eq!(partition_count(&b, "grow"), 5);

    let res = block_on(admin.create_partitions([&NewPartitions::new("nope", 3)], &admin_opts()))
        .expect("create_partitions call");
    assert_eq!(
        res[0].clone().map_err(|(_, e)| e),
        Err(RDKafkaErrorCode::UnknownTopicOrPartition)
    );
}

#[test]
fn describe_configs_reports_overrides() {
    let b = Broker::start_default();
    let admin = b.admin();
    b.create_topic(
        "configured",
        1,
        &[("retention.ms", "1234567"), ("segment.bytes", "1048576")],
    );
    b.create_topic("plain", 1, &[]);

    let res = block_on(admin.describe_configs(
        [
            &ResourceSpecifier::Topic("configured"),
            &ResourceSpecifier::Topic("plain"),
        ],
        &admin_opts(),
    ))
    .expect("describe_configs call");
    assert_eq!(res.len(), 2);
    let configured = res[0].as_ref().expect("configured topic");
    let plain = res[1].as_ref().expect("plain topic");

    let r = configured.get("retention.ms").expect("retention.ms listed");
    assert_eq!(r.value.as_deref(), Some("1234567"));
    assert_eq!(r.source, ConfigSource::DynamicTopic);
    assert!(!r.is_default);
    let s = configured
        .get("segment.bytes")
        .expect("segment.bytes listed");
    assert_eq!(s.value.as_deref(), Some("1048576"));
    assert_eq!(s.source, ConfigSource::DynamicTopic);
    // Not overridden: the broker default.
    let m = configured
        .get("max.message.bytes")
        .expect("max.message.bytes listed");
    assert_eq!(m.value.as_deref(), Some("1048588"));
    assert_eq!(m.source, ConfigSource::Default);
    assert!(m.is_default);

    let r = plain.get("retention.ms").expect("retention.ms listed");
    assert_eq!(r.value.as_deref(), Some("604800000"));
    assert_eq!(r.source, ConfigSource::Default);
    for key in [
        "cleanup.policy",
        "segment.bytes",
        "retention.bytes",
        "message.timestamp.type",
    ] {
        assert!(
            plain.get(key).is_some(),
            "{key} missing from {:?}",
            plain.entries
        );
    }

    // Unknown topic: no entries (rdkafka 0.39 drops the per-resource error code, so check the
    // code itself with a raw request).
    let res =
        block_on(admin.describe_configs([&ResourceSpecifier::Topic("missing")], &admin_opts()))
            .expect("describe_configs call");
    assert!(
        res[0].as_ref().map_or(true, |r| r.entries.is_empty()),
        "{:?}",
        res[0]
    );
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("missing"))]);
    let resp: DescribeConfigsResponse = raw_call(b.addr(), ApiKey::DescribeConfigs, 4, &req);
    assert_eq!(resp.results[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

#[test]
fn describe_configs_sees_broker_level_defaults() {
    // A broker-wide setting given on the command line becomes the topic's value, reported as a
    // static broker config rather than a topic override.
    let b = Broker::start(BrokerOpts::default().set("log.retention.ms", "7200000"));
    let admin = b.admin();
    b.create_topic("inherits", 1, &[]);
    let res =
        block_on(admin.describe_configs([&ResourceSpecifier::Topic("inherits")], &admin_opts()))
            .expect("describe_configs call");
    let t = res[0].as_ref().expect("topic");
    let r = t.get("retention.ms").expect("retention.ms");
    assert_eq!(r.value.as_deref(), Some("7200000"));
    assert_eq!(r.source, ConfigSource::StaticBroker);
}

#[test]
fn metadata_describes_this_broker() {
    let b = Broker::start_default();
    let c = b.consumer();
    let md = c
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(md.brokers().len(), 1);
    let br = &md.brokers()[0];
    assert_eq!(br.id(), 1);
    assert_eq!(br.host(), "127.0.0.1");
    assert_eq!(br.port() as u16, b.port());

    // DescribeCluster (raw: rdkafka 0.39 has no binding for it) agrees.
    let resp: DescribeClusterResponse = raw_call(
        b.addr(),
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    );
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.controller_id.0, 1);
    assert!(!resp.cluster_id.is_empty());
    assert_eq!(resp.brokers.len(), 1);
    assert_eq!(resp.brokers[0].broker_id.0, 1);
    assert_eq!(resp.brokers[0].host.as_str(), "127.0.0.1");
    assert_eq!(resp.brokers[0].port as u16, b.port());

    // A topic's partitions are all led by this broker.
    b.create_topic("led", 3, &[]);
    let md = c
        .fetch_metadata(Some("led"), Duration::from_secs(10))
        .expect("metadata");
    let t = &md.topics()[0];
    assert_eq!(t.partitions().len(), 3);
    for p in t.partitions() {
        assert_eq!(p.leader(), 1);
        assert_eq!(p.replicas(), &[1]);
        assert_eq!(p.isr(), &[1]);
    }
}

#[test]
fn node_id_and_advertised_address_are_configurable() {
    let port = free_port();
    let b = Broker::start(
        BrokerOpts::default()
            .set("node.id", "7")
            .set("advertise", &format!("localhost:{port}")),
    );
    // Bootstrap via the real port; the broker tells clients to use the advertised one.
    let c = b.consumer();
    let md = c
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    let br = &md.brokers()[0];
    assert_eq!(br.id(), 7);
    assert_eq!(br.host(), "localhost");
    assert_eq!(br.port() as u16, port);
}

#[test]
fn a_topic_deleted_and_created_again_at_once_keeps_its_new_data() {
    let mut b = Broker::start(BrokerOpts::default().cores(2));
    let admin = b.admin();
    let produce = |b: &Broker, n: usize| {
        let mut p = b.producer();
        for i in 0..n {
            p.send("again", Some(i as i32 % 3), None, b"v", None);
        }
        let d = p.flush(Duration::from_secs(20));
        assert!(d.iter().all(|x| x.error.is_none()), "{d:?}");
    };
    for round in 0..3 {
        create_topic(&admin, "again", 3, &[]);
        produce(&b, 30 + round);
        // Delete and create again back to back: the old directories are removed in the
        // background while the new topic already writes to fresh ones.
        delete_topic(&admin, "again");
        create_topic(&admin, "again", 3, &[]);
        produce(&b, 9);
        let c = b.consumer();
        assert_eq!(watermarks(&c, "again", 3), vec![(0, 3); 3], "round {round}");
        delete_topic(&admin, "again");
    }
    create_topic(&admin, "again", 3, &[]);
    produce(&b, 6);
    // A removal a crash interrupted, and a partition directory of a deleted topic.
    let d = b.data_dir().to_path_buf();
    std::fs::create_dir_all(d.join("again-0.0123abc-delete")).unwrap();
    b.kill9();
    b.restart();
    assert!(!d.join("again-0.0123abc-delete").exists());
    let c = b.consumer();
    assert_eq!(watermarks(&c, "again", 3), vec![(0, 2); 3]);
    let leftovers: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-delete") || n.ends_with("-stray"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn min_insync_replicas_above_one_refuses_acks_all_as_kafka_does() {
    let b = Broker::start_default();
    b.create_topic("isr", 1, &[("min.insync.replicas", "2")]);
    let mut all = b.producer_with(&[
        ("acks", "all"),
        ("enable.idempotence", "false"),
        ("retries", "0"),
    ]);
    all.send("isr", Some(0), None, b"v", None);
    let d = all.flush(Duration::from_secs(20));
    let e = d[0].error.as_ref().expect("acks=all refused").to_string();
    assert!(e.contains("NotEnoughReplicas"), "{e}");
    let mut one = b.producer_with(&[("acks", "1"), ("enable.idempotence", "false")]);
    one.send("isr", Some(0), None, b"v", None);
    let d = one.flush(Duration::from_secs(20));
    assert!(d[0].error.is_none(), "{:?}", d[0].error);
}

/// Raft log entries in a metadata quorum log file (frames: kind u8, len u32, crc u32, payload;
/// kind 1 is an entry).
fn quorum_entries(path: &std::path::Path) -> usize {
    let bytes = std::fs::read(path).unwrap_or_default();
    let (mut pos, mut n) = (0, 0);
    while pos + 9 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos + 1..pos + 5].try_into().unwrap()) as usize;
        n += usize::from(bytes[pos] == 1);
        pos += 9 + len;
    }
    n
}

#[test]
fn the_metadata_log_is_compacted_into_a_snapshot_and_keeps_every_topic() {
    let mut b = Broker::start_default();
    let admin = b.admin();
    // 700 topics created and deleted, 5 kept, one with a config change: ~1,400 records.
    for chunk in 0..70 {
        let names: Vec<String> = (0..10).map(|i| format!("churn-{chunk}-{i}")).collect();
        let topics: Vec<NewTopic> = names
            .iter()
            .map(|n| NewTopic::new(n, 1, TopicReplication::Fixed(1)))
            .collect();
        block_on(admin.create_topics(&topics, &admin_opts())).expect("create");
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        block_on(admin.delete_topics(&refs, &admin_opts())).expect("delete");
    }
    for i in 0..5 {
        create_topic(
            &admin,
            &format!("kept-{i}"),
            2,
            &[("retention.ms", "3600000")],
        );
    }
    drop(admin);
    let quorum = b.data_dir().join("__metadata/quorum");
    // Compacted once the log outgrew twice the snapshot plus 1,000 entries.
    assert!(quorum.join("snapshot").exists());
    let left = quorum_entries(&quorum.join("raft.log"));
    assert!(left < 1_100, "{left} entries after compaction");
    b.restart();
    let c = b.consumer();
    let mut names: Vec<String> = topic_names(&c)
        .into_iter()
        .filter(|n| !n.starts_with("__"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        (0..5).map(|i| format!("kept-{i}")).collect::<Vec<_>>()
    );
    // And it still restarts (snapshot plus the entries after it), with the topics' configs.
    b.restart();
    assert_eq!(watermarks(&b.consumer(), "kept-3", 2), vec![(0, 0); 2]);
}

#[test]
fn partitions_past_what_the_broker_can_serve_are_refused() {
    // 50 partitions of __consumer_offsets are there from the start.
    let b = Broker::start(BrokerOpts::default().set("max.partitions", "100"));
    let admin = b.admin();
    assert_eq!(
        try_create(&admin, "too-many", 60, 1, &[]),
        Err(RDKafkaErrorCode::InvalidPartitions)
    );
    assert_eq!(try_create(&admin, "fits", 40, 1, &[]), Ok(()));
    let grow = NewPartitions::new("fits", 51);
    let res = block_on(admin.create_partitions([&grow], &admin_opts())).expect("call");
    assert!(
        matches!(&res[0], Err((_, RDKafkaErrorCode::InvalidPartitions))),
        "{res:?}"
    );
    assert_eq!(partition_count(&b, "fits"), 40);
    assert_eq!(try_create(&admin, "last", 10, 1, &[]), Ok(()));
}

#[test]
fn concurrent_metadata_changes_are_serialized_and_producer_ids_never_repeat() {
    // The metadata log is written on the blocking pool now; the controller lock keeps what the
    // no-await rule used to: one of eight racing creates of a name wins, and producer ids
    // handed out across a block boundary (1,000 per block) stay unique.
    use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
    let mut b = Broker::start(BrokerOpts::default().cores(2));
    let addr = b.addr();
    let wins: Vec<i16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(move || {
                    let req = CreateTopicsRequest::default()
                        .with_timeout_ms(10_000)
                        .with_topics(vec![CreatableTopic::default()
                            .with_name(TopicName(StrBytes::from_static_str("raced")))
                            .with_num_partitions(4)
                            .with_replication_factor(1)]);
                    let r: CreateTopicsResponse = raw_call(addr, ApiKey::CreateTopics, 5, &req);
                    r.topics[0].error_code
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(wins.iter().filter(|c| **c == 0).count(), 1, "{wins:?}");
    assert!(wins.iter().all(|c| *c == 0 || *c == 36), "{wins:?}"); // TOPIC_ALREADY_EXISTS
    let ids: Vec<i64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(move || {
                    (0..400)
                        .map(|_| {
                            let r: InitProducerIdResponse = raw_call(
                                addr,
                                ApiKey::InitProducerId,
                                4,
                                &InitProducerIdRequest::default()
                                    .with_transactional_id(None)
                                    .with_transaction_timeout_ms(60_000)
                                    .with_producer_id((-1).into())
                                    .with_producer_epoch(-1),
                            );
                            assert_eq!(r.error_code, 0);
                            r.producer_id.0
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let unique: std::collections::HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "a producer id was handed out twice"
    );
    b.assert_metadata_ok();
    b.assert_running();
}

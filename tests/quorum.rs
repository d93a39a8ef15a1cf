//! The metadata quorum on one node (a quorum of one, the same path a cluster's nodes take):
//! an acknowledged metadata change survives kill -9, and a node whose quorum log cannot be
//! written stops instead of acknowledging what is not durable.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rdkafka::admin::{NewTopic, TopicReplication};

#[test]
fn every_acknowledged_topic_survives_kill_9_in_the_middle_of_metadata_changes() {
    let mut b = Broker::start(BrokerOpts::default().cores(2));
    let admin = b.admin();
    let mut acknowledged = Vec::new();
    // Creates acknowledged one by one while a background client keeps changing metadata
    // (create + delete) until the kill.
    let churn_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = churn_stop.clone();
        let bootstrap = b.bootstrap();
        std::thread::spawn(move || {
            let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
                common::base_config(&bootstrap)
                    .create()
                    .expect("admin client");
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 500 {
                let name = format!("churn-{i}");
                let t = NewTopic::new(&name, 1, TopicReplication::Fixed(1));
                let _ = block_on(admin.create_topics([&t], &admin_opts()));
                let _ = block_on(admin.delete_topics(&[name.as_str()], &admin_opts()));
                i += 1;
            }
        })
    };
    for i in 0..40 {
        let name = format!("kept-{i}");
        let t = NewTopic::new(&name, 2, TopicReplication::Fixed(1));
        let r = block_on(admin.create_topics([&t], &admin_opts())).expect("create call");
        if r.iter().all(|x| x.is_ok()) {
            acknowledged.push(name);
        }
    }
    b.kill9();
    churn_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = churn.join();
    drop(admin);
    assert_eq!(acknowledged.len(), 40);
    b.restart();
    let names = topic_names(&b.consumer());
    for t in &acknowledged {
        assert!(
            names.contains(t),
            "{t} was acknowledged and is gone: {names:?}"
        );
    }
    assert_eq!(watermarks(&b.consumer(), "kept-39", 2), vec![(0, 0); 2]);
}

#[test]
fn a_node_whose_quorum_log_cannot_be_written_stops_instead_of_acknowledging() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut b = Broker::start(BrokerOpts::default().data_dir(&data));
    b.create_topic("before", 1, &[]);
    b.stop();
    // The quorum's directory moves to a filesystem with no room left.
    let unmount = Tmpfs::mount(&dir.path().join("full"), "256k");
    let full = unmount.0.clone();
    let quorum = data.join("__metadata/quorum");
    let moved = full.join("quorum");
    std::fs::create_dir_all(&moved).unwrap();
    for f in std::fs::read_dir(&quorum).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), moved.join(f.file_name())).unwrap();
    }
    std::fs::remove_dir_all(&quorum).unwrap();
    std::os::unix::fs::symlink(&moved, &quorum).unwrap();
    unmount.fill();

    b.restart();
    // Enough metadata that the quorum log needs a page the filesystem does not have.
    let admin = b.admin();
    let names: Vec<String> = (0..50).map(|i| format!("after-{i}")).collect();
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, 1, TopicReplication::Fixed(1)))
        .collect();
    let answer = block_on(admin.create_topics(&topics, &admin_opts()));
    let acknowledged: Vec<String> = match answer {
        Ok(rs) => rs.into_iter().filter_map(|r| r.ok()).collect(),
        Err(_) => Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = b.try_wait() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the broker kept running: {}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "{status}");
    assert!(
        b.log().contains("the metadata quorum stopped"),
        "{}",
        b.log()
    );
    drop(admin);
    // The disk is repaired: what reached it comes back, and so does every acknowledged topic.
    std::fs::remove_file(&quorum).unwrap();
    std::fs::create_dir_all(&quorum).unwrap();
    for f in std::fs::read_dir(&moved).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), quorum.join(f.file_name())).unwrap();
    }
    drop(unmount);
    b.restart();
    let names = topic_names(&b.consumer());
    assert!(names.contains(&"before".to_string()), "{names:?}");
    for t in &acknowledged {
        assert!(
            names.contains(t),
            "{t} was acknowledged and is gone: {names:?}"
        );
    }
}

#[test]
fn describe_quorum_names_this_node_leader_and_its_high_watermark_grows_with_changes() {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    use kafka_protocol::messages::{
        ApiKey, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    let b = Broker::start(BrokerOpts::default().set("node.id", "3"));
    let ask = |topic: &'static str| {
        let mut t = TopicData::default();
        t.topic_name = TopicName(StrBytes::from_static_str(topic));
        t.partitions = vec![PartitionData::default()];
        let mut req = DescribeQuorumRequest::default();
        req.topics = vec![t];
        raw_call::<_, DescribeQuorumResponse>(b.addr(), ApiKey::DescribeQuorum, 2, &req)
    };
    let before = ask("__cluster_metadata");
    assert_eq!(before.error_code, 0);
    let p = &before.topics[0].partitions[0];
    assert_eq!((p.error_code, p.leader_id.0), (0, 3));
    assert!(p.leader_epoch >= 1 && p.high_watermark >= 1, "{p:?}");
    assert_eq!(p.current_voters.len(), 1);
    assert_eq!(p.current_voters[0].replica_id.0, 3);
    assert_eq!(p.current_voters[0].log_end_offset, p.high_watermark);
    b.create_topic("more", 1, &[]);
    let after = ask("__cluster_metadata");
    assert!(after.topics[0].partitions[0].high_watermark > p.high_watermark);
    // Any other log is unknown here, as in Kafka.
    assert_eq!(
        ask("orders").error_code,
        kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code()
    );
}

#[test]
fn the_broker_log_records_every_metadata_change() {
    let b = Broker::start_default();
    b.create_topic("logged", 2, &[("retention.ms", "60000")]);
    let admin = b.admin();
    let grow = rdkafka::admin::NewPartitions::new("logged", 3);
    block_on(admin.create_partitions([&grow], &admin_opts())).expect("grow");
    block_on(admin.delete_topics(&["logged"], &admin_opts())).expect("delete");
    let log = b.log();
    for line in [
        "created topic logged with topic id",
        "and 2 partition(s), replicas [1], configs {\"retention.ms\": \"60000\"}",
        "added 1 partition(s) to topic logged: 3 now",
        "deleted topic logged with topic id",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
}

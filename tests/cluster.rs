//! Several shardlog processes as one cluster: the metadata quorum (raft-rs over
//! `controller.listener`) formed by three combined broker/controller nodes, every broker in
//! every node's Metadata, partitions spread over the brokers and served where they live, the
//! quorum working on with one node down and that node catching up, and the configurations that
//! cannot form one quorum refused at start.
//!
//! Partition replication is not here yet: every partition has one replica (tests below check
//! that more is refused rather than pretended).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Metadata as node `b` alone answers it.
fn metadata_of(b: &Broker, topic: Option<&str>) -> rdkafka::metadata::Metadata {
    consumer(&b.bootstrap())
        .fetch_metadata(topic, TIMEOUT)
        .expect("metadata")
}

/// (broker ids, leader of each partition of `topic`) as node `b` sees them.
fn view(b: &Broker, topic: &str) -> (Vec<i32>, Vec<i32>) {
    let md = metadata_of(b, Some(topic));
    let brokers = md.brokers().iter().map(|x| x.id()).collect();
    let leaders = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.leader()))
        .collect();
    (brokers, leaders)
}

/// Creates `name` through `b`, retrying while the quorum elects a leader.
fn create_via(b: &Broker, name: &str, partitions: i32, within: Duration) -> Result<(), String> {
    let admin = b.admin();
    let deadline = Instant::now() + within;
    let mut retry = false;
    loop {
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let opts = admin_opts().operation_timeout(Some(Duration::from_secs(5)));
        let r = block_on(admin.create_topics([&topic], &opts));
        let last = match r {
            Ok(v) => match &v[..] {
                [Ok(_)] => return Ok(()),
                // An earlier attempt timed out at the client but was committed.
                [Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))] if retry => {
                    return Ok(())
                }
                other => format!("{other:?}"),
            },
            Err(e) => e.to_string(),
        };
        retry = true;
        if Instant::now() > deadline {
            return Err(last);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn three_nodes_form_one_cluster_and_serve_partitions_where_they_live() {
    let c = Cluster::start(3, &[]);
    // Every node lists every broker, under one cluster id.
    let mut cluster_ids = BTreeSet::new();
    for b in &c.nodes {
        let md = metadata_of(b, None);
        let mut ids: Vec<(i32, i32)> = md.brokers().iter().map(|x| (x.id(), x.port())).collect();
        ids.sort();
        let want: Vec<(i32, i32)> = c
            .nodes
            .iter()
            .map(|n| (n.node_id(), n.port() as i32))
            .collect();
        assert_eq!(ids, want, "brokers as node {} lists them", b.node_id());
        let props = std::fs::read_to_string(b.data_dir().join("meta.properties")).unwrap();
        let id = props
            .lines()
            .find_map(|l| l.strip_prefix("cluster.id="))
            .unwrap()
            .to_string();
        cluster_ids.insert(id);
    }
    assert_eq!(cluster_ids.len(), 1, "{cluster_ids:?}");

    // A topic created through node 2 is on every node, its leaders spread over all three.
    create_via(&c.nodes[1], "spread", 6, TIMEOUT).unwrap();
    for b in &c.nodes {
        assert!(
            wait_until(TIMEOUT, || view(b, "spread").1.len() == 6),
            "node {} never saw the topic",
            b.node_id()
        );
    }
    let leaders = view(&c.nodes[2], "spread").1;
    assert_eq!(
        leaders.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([1, 2, 3]),
        "{leaders:?}"
    );
    for b in &c.nodes {
        assert_eq!(view(b, "spread").1, leaders, "node {}", b.node_id());
    }

    // Clients produce to each partition's broker and read it back through any node.
    let mut p = TestProducer::new(&c.bootstrap(), &[("acks", "all")]);
    for i in 0..600 {
        p.send(
            "spread",
            None,
            Some(format!("k{i}").as_bytes()),
            format!("v{i}").as_bytes(),
            None,
        );
    }
    let delivered = p.flush(Duration::from_secs(30));
    assert_eq!(delivered.len(), 600);
    assert!(delivered.iter().all(|d| d.error.is_none()), "{delivered:?}");
    let per_partition: HashMap<i32, usize> = delivered.iter().fold(HashMap::new(), |mut m, d| {
        *m.entry(d.partition).or_default() += 1;
        m
    });
    assert!(per_partition.len() >= 3, "{per_partition:?}");
    let consumed = consume_all(
        &c.nodes[2].bootstrap(),
        "spread",
        6,
        600,
        Duration::from_secs(30),
    );
    let values: BTreeSet<Vec<u8>> = consumed
        .messages
        .iter()
        .filter_map(|m| m.payload.clone())
        .collect();
    assert_eq!(values.len(), 600);

    // A broker answers for a partition it does not host with NOT_LEADER_OR_FOLLOWER (the
    // client goes to the leader), never by storing it.
    let elsewhere = leaders.iter().position(|l| *l != 1).unwrap() as i32;
    let batch = record_batch(&[(None, b"stray".to_vec())]);
    let mut req = produce_request("spread", batch.freeze(), 1);
    req.topic_data[0].partition_data[0].index = elsewhere;
    let resp: kafka_protocol::messages::ProduceResponse = raw_call(
        c.nodes[0].addr(),
        kafka_protocol::messages::ApiKey::Produce,
        9,
        &req,
    );
    let code = resp.responses[0].partition_responses[0].error_code;
    assert_eq!(
        code,
        kafka_protocol::error::ResponseError::NotLeaderOrFollower.code()
    );

    // More than one replica is refused until replication exists.
    let admin = c.nodes[0].admin();
    let rf3 = NewTopic::new("rf3", 1, TopicReplication::Fixed(3));
    let r = block_on(admin.create_topics([&rf3], &admin_opts())).unwrap();
    assert!(
        matches!(
            &r[0],
            Err((
                _,
                rdkafka::types::RDKafkaErrorCode::InvalidReplicationFactor
            ))
        ),
        "{r:?}"
    );
}

#[test]
fn the_quorum_works_on_with_one_node_down_and_the_node_catches_up() {
    let mut c = Cluster::start(3, &[]);
    c.node(1).kill9();
    // Two of three still commit (after an election if node 1 led).
    create_via(&c.nodes[1], "while-1-was-down", 2, Duration::from_secs(20)).unwrap();
    // Back, node 1 has what was committed without it before it accepts clients.
    c.node(1).restart();
    let md = metadata_of(&c.nodes[0], Some("while-1-was-down"));
    assert_eq!(
        md.topics()[0].partitions().len(),
        2,
        "{:?}",
        md.topics()[0].error()
    );
    assert_eq!(view(&c.nodes[0], "while-1-was-down").0, vec![1, 2, 3]);

    // With two of three down nothing commits: the change times out instead of being made on
    // one node alone.
    c.node(2).kill9();
    c.node(3).kill9();
    let alone = create_via(&c.nodes[0], "alone", 1, Duration::from_secs(1));
    assert!(alone.is_err(), "a lone voter committed a change");
    c.node(2).relaunch();
    c.node(3).relaunch();
    for id in [2, 3] {
        c.node(id).await_ready().unwrap();
    }
    create_via(&c.nodes[2], "together-again", 1, Duration::from_secs(20)).unwrap();
    let names = topic_names(&consumer(&c.nodes[0].bootstrap()));
    assert!(names.contains(&"together-again".to_string()), "{names:?}");
}

#[test]
fn configurations_that_cannot_form_one_quorum_stop_the_start() {
    // node.id not among the voters.
    let c1 = free_port();
    let mut b = Broker::launch(
        BrokerOpts::default()
            .set("node.id", "1")
            .set("controller.listener", &format!("127.0.0.1:{c1}"))
            .set("controller.quorum.voters", &format!("2@127.0.0.1:{c1}")),
    );
    let e = b.await_ready().unwrap_err();
    assert!(e.contains("node.id 1 is not among the voters"), "{e}");

    // Two nodes that disagree on the voters: both stop, each naming the disagreement.
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let two = format!("1@127.0.0.1:{p1},2@127.0.0.1:{p2}");
    let three = format!("{two},3@127.0.0.1:{p3}");
    let node = |id: u16, port: u16, voters: &str| {
        Broker::launch(
            BrokerOpts::default()
                .set("node.id", &id.to_string())
                .set("controller.listener", &format!("127.0.0.1:{port}"))
                .set("controller.quorum.voters", voters),
        )
    };
    let mut a = node(1, p1, &two);
    let mut b = node(2, p2, &three);
    for n in [&mut a, &mut b] {
        let e = n.await_ready().unwrap_err();
        assert!(e.contains("controller.quorum.voters disagree"), "{e}");
    }
}

#[test]
fn a_data_directory_of_another_cluster_is_refused() {
    let mut a = Cluster::start(3, &[]);
    a.node(3).stop();
    let foreign = a.node(3).data_dir().to_path_buf();
    let mut b = Cluster::start(3, &[]);
    b.node(3).stop();
    let dir = b.node(3).data_dir().to_path_buf();
    std::fs::remove_dir_all(&dir).unwrap();
    copy_dir(&foreign, &dir);
    let e = b.node(3).try_restart().unwrap_err();
    assert!(e.contains("belongs to cluster"), "{e}");
    // The others kept running, and logged why node 3 and they cannot form one quorum.
    let mut logs = String::new();
    for id in [1, 2] {
        b.node(id).assert_running();
        logs.push_str(&b.node(id).log());
    }
    assert!(logs.contains("belongs to cluster"), "{logs}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn every_node_describes_the_quorum_as_its_leader_sees_it() {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    use kafka_protocol::messages::{
        ApiKey, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    let c = Cluster::start(3, &[]);
    let ask = |b: &Broker| {
        let mut t = TopicData::default();
        t.topic_name = TopicName(StrBytes::from_static_str("__cluster_metadata"));
        t.partitions = vec![PartitionData::default()];
        let mut req = DescribeQuorumRequest::default();
        req.topics = vec![t];
        raw_call::<_, DescribeQuorumResponse>(b.addr(), ApiKey::DescribeQuorum, 2, &req)
    };
    let mut leaders = BTreeSet::new();
    for b in &c.nodes {
        // Followers forward to the leader, which alone knows every voter's progress.
        let r = ask(b);
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (r.error_code, p.error_code),
            (0, 0),
            "node {}: {r:?}",
            b.node_id()
        );
        let voters: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
        assert_eq!(voters, vec![1, 2, 3], "node {}", b.node_id());
        assert!(p.high_watermark >= 4, "{p:?}");
        leaders.insert(p.leader_id.0);
    }
    assert_eq!(leaders.len(), 1, "{leaders:?}");

    // The operator's view through any node: three brokers, the controller, three voters.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["cluster", "info", "--format", "json", "--bootstrap"])
        .arg(c.nodes[2].bootstrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["brokers"].as_array().unwrap().len(), 3, "{v}");
    let leader = *leaders.iter().next().unwrap();
    assert_eq!(v["controller_id"], leader);
    assert_eq!(v["quorum"]["leader_id"], leader);
    let voters: Vec<i64> = v["quorum"]["voters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["node_id"].as_i64().unwrap())
        .collect();
    assert_eq!(voters, vec![1, 2, 3]);
}

/// The leader epoch of each partition of `topic`, as node `b` answers Metadata v12.
fn leader_epochs(b: &Broker, topic: &str) -> Vec<(i32, i32)> {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let mut t = MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![t]);
    let r: MetadataResponse = raw_call(b.addr(), ApiKey::Metadata, 12, &req);
    r.topics[0]
        .partitions
        .iter()
        .map(|p| (p.leader_id.0, p.leader_epoch))
        .collect()
}

#[test]
fn a_silent_broker_is_fenced_and_leads_its_partitions_again_when_it_returns() {
    let sets = [
        ("broker.session.timeout.ms", "2000"),
        ("broker.heartbeat.interval.ms", "200"),
    ];
    let mut c = Cluster::start(3, &sets);
    create_via(&c.nodes[0], "fenced", 6, TIMEOUT).unwrap();
    assert!(wait_until(TIMEOUT, || view(&c.nodes[0], "fenced").1.len() == 6));
    let before = leader_epochs(&c.nodes[0], "fenced");
    let on_3: Vec<usize> = (0..6).filter(|p| before[*p].0 == 3).collect();
    assert!(!on_3.is_empty(), "{before:?}");
    // One record under the first epoch on each of node 3's partitions.
    let mut p = TestProducer::new(&c.bootstrap(), &[("acks", "all")]);
    for part in &on_3 {
        p.send("fenced", Some(*part as i32), None, b"first", None);
    }
    assert!(p
        .flush(Duration::from_secs(30))
        .iter()
        .all(|d| d.error.is_none()));

    // Paused past the session: fenced, out of Metadata, its partitions leaderless (their only
    // replica is on it), the others untouched.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.node(3).pid() as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let fenced = wait_until(Duration::from_secs(20), || {
        let (brokers, leaders) = view(&c.nodes[0], "fenced");
        brokers == vec![1, 2] && on_3.iter().all(|p| leaders.get(*p) == Some(&-1))
    });
    let during = leader_epochs(&c.nodes[1], "fenced");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.node(3).pid() as i32),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
    assert!(fenced, "never fenced: {during:?}");
    for p in 0..6 {
        match on_3.contains(&p) {
            true => assert_eq!(during[p], (-1, before[p].1 + 1), "partition {p}"),
            false => assert_eq!(during[p], before[p], "partition {p}"),
        }
    }
    let logs: String = c.nodes[..2].iter().map(Broker::log).collect();
    assert!(logs.contains("fenced broker 3"), "{logs}");

    // Heard again: unfenced, leading its partitions at a new epoch.
    assert!(
        wait_until(Duration::from_secs(20), || view(&c.nodes[0], "fenced").0
            == vec![1, 2, 3]),
        "never unfenced"
    );
    assert!(wait_until(TIMEOUT, || {
        let after = leader_epochs(&c.nodes[0], "fenced");
        on_3.iter().all(|p| after[*p] == (3, before[*p].1 + 2))
    }));
    // It serves them again.
    let mut p = TestProducer::new(&c.bootstrap(), &[("acks", "all")]);
    for part in &on_3 {
        p.send("fenced", Some(*part as i32), None, b"back", None);
    }
    let delivered = p.flush(Duration::from_secs(30));
    assert!(delivered.iter().all(|d| d.error.is_none()), "{delivered:?}");

    // Leader epochs as clients see them (KIP-320): where each epoch ends, and a client with an
    // older or newer epoch than the leader's is told so.
    let part = on_3[0] as i32;
    let (e0, e2) = (before[on_3[0]].1, before[on_3[0]].1 + 2);
    let node3 = c.node(3).addr();
    assert_eq!(
        epoch_end(node3, part, -1, e0),
        (0, e0, 1),
        "epoch {e0} ended at the first record"
    );
    assert_eq!(
        epoch_end(node3, part, -1, e0 + 1),
        (0, e0, 1),
        "an epoch that appended nothing"
    );
    assert_eq!(
        epoch_end(node3, part, e2, e2),
        (0, e2, 2),
        "the current epoch: the log end"
    );
    let fenced_code = kafka_protocol::error::ResponseError::FencedLeaderEpoch.code();
    let unknown_code = kafka_protocol::error::ResponseError::UnknownLeaderEpoch.code();
    assert_eq!(epoch_end(node3, part, e0, e0).0, fenced_code);
    assert_eq!(list_latest(node3, part, e0), (fenced_code, -1, -1));
    assert_eq!(list_latest(node3, part, e2 + 5), (unknown_code, -1, -1));
    assert_eq!(list_latest(node3, part, -1), (0, 2, e2));
    // Another broker does not lead it.
    let not_leader = kafka_protocol::error::ResponseError::NotLeaderOrFollower.code();
    assert_eq!(epoch_end(c.nodes[0].addr(), part, -1, e0).0, not_leader);

    // Killed and restarted: the same, through its new registration.
    c.node(3).kill9();
    assert!(wait_until(Duration::from_secs(20), || view(
        &c.nodes[0],
        "fenced"
    )
    .0 == vec![1, 2]));
    c.node(3).restart();
    assert!(wait_until(TIMEOUT, || {
        let now = leader_epochs(&c.nodes[0], "fenced");
        on_3.iter().all(|p| now[*p].0 == 3)
    }));
}

#[test]
fn consumer_groups_are_coordinated_by_the_broker_holding_their_offsets_partition() {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, CommitMode};
    use rdkafka::message::Message;

    let c = Cluster::start(
        3,
        &[
            ("group.initial.rebalance.delay.ms", "0"),
            ("offsets.topic.num.partitions", "6"),
        ],
    );
    // The offsets partitions, and so the coordinators, are spread over the brokers.
    let coordinators: BTreeSet<i32> = view(&c.nodes[0], "__consumer_offsets")
        .1
        .into_iter()
        .collect();
    assert_eq!(coordinators, BTreeSet::from([1, 2, 3]));

    create_via(&c.nodes[0], "grouped", 6, TIMEOUT).unwrap();
    let mut p = TestProducer::new(&c.bootstrap(), &[("acks", "all")]);
    for i in 0..300 {
        p.send(
            "grouped",
            Some(i % 6),
            None,
            format!("m{i}").as_bytes(),
            None,
        );
    }
    assert!(p
        .flush(Duration::from_secs(30))
        .iter()
        .all(|d| d.error.is_none()));

    // Bootstrapped from one node only, each consumer finds its coordinator wherever it is.
    let consume = |group: &str, via: &Broker, stop_after: usize| -> usize {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", via.bootstrap())
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .create()
            .unwrap();
        consumer.subscribe(&["grouped"]).unwrap();
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(40);
        while seen < stop_after && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                assert!(m.payload().is_some());
                seen += 1;
            }
        }
        if seen > 0 {
            consumer.commit_consumer_state(CommitMode::Sync).unwrap();
        }
        seen
    };
    for (i, group) in ["g-one", "g-two", "g-three", "g-four"].iter().enumerate() {
        let via = &c.nodes[i % 3];
        assert_eq!(consume(group, via, 300), 300, "group {group}");
        // Committed: the same group through another node reads nothing more.
        let other = &c.nodes[(i + 1) % 3];
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", other.bootstrap())
            .set("group.id", *group)
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for part in 0..6 {
            tpl.add_partition("grouped", part);
        }
        let committed = consumer.committed_offsets(tpl, TIMEOUT).unwrap();
        let total: i64 = committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                rdkafka::Offset::Offset(o) => o,
                other => panic!("group {group}: {other:?}"),
            })
            .sum();
        assert_eq!(total, 300, "group {group}");
    }
}

/// OffsetForLeaderEpoch v4 for partition `p` of "fenced": (error, epoch, end offset).
fn epoch_end(addr: std::net::SocketAddr, p: i32, current: i32, epoch: i32) -> (i16, i32, i64) {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::{
        ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    let mut part = OffsetForLeaderPartition::default();
    part.partition = p;
    part.current_leader_epoch = current;
    part.leader_epoch = epoch;
    let mut t = OffsetForLeaderTopic::default();
    t.topic = TopicName(StrBytes::from_static_str("fenced"));
    t.partitions = vec![part];
    let mut req = OffsetForLeaderEpochRequest::default();
    req.replica_id = (-1).into();
    req.topics = vec![t];
    let r: OffsetForLeaderEpochResponse = raw_call(addr, ApiKey::OffsetForLeaderEpoch, 4, &req);
    let e = &r.topics[0].partitions[0];
    (e.error_code, e.leader_epoch, e.end_offset)
}

/// ListOffsets v7 latest for partition `p` of "fenced": (error, offset, leader epoch).
fn list_latest(addr: std::net::SocketAddr, p: i32, current: i32) -> (i16, i64, i32) {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let mut part = ListOffsetsPartition::default();
    part.partition_index = p;
    part.current_leader_epoch = current;
    part.timestamp = -1;
    let mut t = ListOffsetsTopic::default();
    t.name = TopicName(StrBytes::from_static_str("fenced"));
    t.partitions = vec![part];
    let mut req = ListOffsetsRequest::default();
    req.replica_id = (-1).into();
    req.topics = vec![t];
    let r: ListOffsetsResponse = raw_call(addr, ApiKey::ListOffsets, 7, &req);
    let e = &r.topics[0].partitions[0];
    (e.error_code, e.offset, e.leader_epoch)
}

#[test]
fn a_broker_stopped_with_sigterm_hands_its_partitions_over_before_it_exits() {
    // Default session (9 s): the handover must not wait for it.
    let mut c = Cluster::start(3, &[]);
    create_via(&c.nodes[0], "handover", 6, TIMEOUT).unwrap();
    assert!(wait_until(TIMEOUT, || view(&c.nodes[0], "handover")
        .1
        .len()
        == 6));
    let before = view(&c.nodes[0], "handover").1;
    let on_2: Vec<usize> = (0..6).filter(|p| before[*p] == 2).collect();
    assert!(!on_2.is_empty(), "{before:?}");
    let stopped = Instant::now();
    let status = c.node(2).terminate();
    assert!(status.success(), "{status:?}");
    // Already fenced when it exited: out of Metadata, its partitions offline (one replica).
    let (brokers, leaders) = view(&c.nodes[0], "handover");
    assert!(
        stopped.elapsed() < Duration::from_secs(8),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(brokers, vec![1, 3]);
    assert!(on_2.iter().all(|p| leaders[*p] == -1), "{leaders:?}");
    assert!(
        c.node(2).log().contains("controlled shutdown"),
        "{}",
        c.node(2).log()
    );
    // Back: it leads them again.
    c.node(2).restart();
    assert!(wait_until(TIMEOUT, || {
        let (brokers, leaders) = view(&c.nodes[0], "handover");
        brokers == vec![1, 2, 3] && on_2.iter().all(|p| leaders[*p] == 2)
    }));
}

/// Frames and hellos on the controller listener as a hostile client would send them: each is
/// refused or ends its connection, and the quorum goes on.
#[test]
fn hostile_bytes_on_the_controller_listener_never_hurt_the_quorum() {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    let c = Cluster::start(3, &[]);
    let target = format!("127.0.0.1:{}", c.controller_ports[0]);
    let frame = |body: &[u8]| {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    };
    // Reads until the peer closes (or 10 s pass): whether it closed, and what it sent.
    let until_closed = |s: &mut TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (true, got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                // Closed with our bytes unread: a reset.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (true, got),
                Err(_) => return (false, got),
            }
        }
    };
    let voters = format!(
        "[[1,\"127.0.0.1:{}\"],[2,\"127.0.0.1:{}\"],[3,\"127.0.0.1:{}\"]]",
        c.controller_ports[0], c.controller_ports[1], c.controller_ports[2]
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a 4 GiB length", vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3]),
        ("a hello that is not JSON", frame(b"\x00garbage{{{")),
        (
            "a non-voter",
            frame(format!("{{\"node\":9,\"voters\":{voters},\"cluster_id\":null}}").as_bytes()),
        ),
        (
            "a voter with garbage after its hello",
            [
                frame(format!("{{\"node\":2,\"voters\":{voters},\"cluster_id\":null}}").as_bytes()),
                frame(&[0xff; 64]),
            ]
            .concat(),
        ),
        (
            "a message larger than the limit",
            [
                frame(format!("{{\"node\":3,\"voters\":{voters},\"cluster_id\":null}}").as_bytes()),
                (64u32 << 20).to_be_bytes().to_vec(),
            ]
            .concat(),
        ),
    ];
    for (what, bytes) in cases {
        let mut s = TcpStream::connect(&target).unwrap();
        s.write_all(&bytes).unwrap();
        let (closed, answer) = until_closed(&mut s);
        assert!(closed, "{what}: the connection stayed open");
        if what.contains("non-voter") {
            assert!(
                String::from_utf8_lossy(&answer).contains("not another voter"),
                "{what}: {answer:?}"
            );
        }
    }
    // The quorum still commits, through the node that took all that.
    create_via(
        &c.nodes[0],
        "after-hostile-peers",
        1,
        Duration::from_secs(20),
    )
    .unwrap();
    for b in &c.nodes {
        assert!(b.panics_in_log().is_empty());
    }
}

/// A node that is loading its partitions keeps taking part in the quorum, and what the quorum
/// commits meanwhile reaches its shards once they are loaded.
#[test]
fn changes_committed_while_a_node_loads_its_partitions_reach_it() {
    let mut c = Cluster::start(3, &[]);
    // Enough partitions on each node that loading them takes a while.
    create_via(&c.nodes[0], "bulk", 1500, Duration::from_secs(60)).unwrap();
    // Restart a node that does not lead the quorum, so commits go on without an election
    // while it starts, and create topics through the leader meanwhile.
    let leader = quorum_leader(c.nodes[0].addr());
    let victim = (1..=3).find(|n| *n != leader).unwrap();
    let via = leader as usize - 1;
    c.node(victim).kill9();
    c.node(victim).relaunch();
    let mut created = Vec::new();
    let started = Instant::now();
    let mut ready = false;
    while !ready && started.elapsed() < Duration::from_secs(60) {
        let name = format!("during-{}", created.len());
        create_via(&c.nodes[via], &name, 3, Duration::from_secs(20)).unwrap();
        created.push(name);
        ready = matches!(
            api_versions_probe(c.node(victim).addr(), Duration::from_millis(200)),
            Ok(0)
        );
    }
    c.node(victim).await_ready().unwrap();
    assert!(
        created.len() > 1,
        "node {victim} was ready before anything was created"
    );
    let restarted = victim as usize - 1;
    for name in &created {
        assert!(
            wait_until(TIMEOUT, || view(&c.nodes[restarted], name).1.len() == 3),
            "node {victim} never saw {name}"
        );
    }
    // And it serves the new partitions it leads.
    let mut p = TestProducer::new(&c.bootstrap(), &[("acks", "all")]);
    for name in &created {
        for part in 0..3 {
            p.send(name, Some(part), None, b"x", None);
        }
    }
    let delivered = p.flush(Duration::from_secs(60));
    assert!(delivered.iter().all(|d| d.error.is_none()), "{delivered:?}");
}

/// The metadata quorum's leader as node `addr` reports it (DescribeQuorum).
fn quorum_leader(addr: std::net::SocketAddr) -> i32 {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    use kafka_protocol::messages::{
        ApiKey, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    let mut t = TopicData::default();
    t.topic_name = TopicName(StrBytes::from_static_str("__cluster_metadata"));
    t.partitions = vec![PartitionData::default()];
    let mut req = DescribeQuorumRequest::default();
    req.topics = vec![t];
    let r: DescribeQuorumResponse = raw_call(addr, ApiKey::DescribeQuorum, 2, &req);
    r.topics[0].partitions[0].leader_id.0
}

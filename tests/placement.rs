//! Which shard serves a partition is this node's own choice, kept in its placement log
//! (`__metadata/placement.log`) and never in the cluster metadata: it survives restarts, only
//! partitions whose shard is gone move when the core count shrinks, an old-format metadata log
//! (a shard per partition) is converted with its shards kept, and a data directory refuses to
//! start under another node id (`meta.properties`).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;

/// (topic id, partition) -> shard, replayed from the broker's placement log.
fn placement(data_dir: &Path) -> BTreeMap<(String, i64), u64> {
    let text =
        std::fs::read_to_string(data_dir.join("__metadata/placement.log")).expect("placement log");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("placement line");
        let topic = v["topic"].as_str().expect("topic id").to_string();
        match v["type"].as_str() {
            Some("Place") => {
                for pair in v["partitions"].as_array().expect("partitions") {
                    let p = pair[0].as_i64().expect("partition");
                    let s = pair[1].as_u64().expect("shard");
                    out.insert((topic.clone(), p), s);
                }
            }
            Some("Forget") => out.retain(|(t, _), _| *t != topic),
            other => panic!("unexpected placement record {other:?}"),
        }
    }
    out
}

/// The placement of one topic: shard per partition index.
fn shards_of(data_dir: &Path, topic_id: &str) -> Vec<u64> {
    placement(data_dir)
        .into_iter()
        .filter(|((t, _), _)| t == topic_id)
        .map(|(_, s)| s)
        .collect()
}

fn topic_id(b: &Broker, topic: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(["topic", "describe", topic, "--bootstrap", &b.bootstrap()])
        .output()
        .expect("run shardlog topic describe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Topic id:").map(|id| id.trim().to_string()))
        .unwrap_or_else(|| panic!("no topic id for {topic}: {out:?}"))
}

/// The metadata quorum's log and snapshot as text (their records are JSON inside the frames).
fn quorum_files(data_dir: &Path) -> String {
    let dir = data_dir.join("__metadata/quorum");
    ["snapshot", "raft.log"]
        .iter()
        .filter_map(|f| std::fs::read(dir.join(f)).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

fn produce_one_each(b: &Broker, topic: &str, partitions: i32) {
    let mut p = b.producer();
    for i in 0..partitions {
        p.send(topic, Some(i), None, b"v", None);
    }
    let d = p.flush(Duration::from_secs(20));
    assert!(d.iter().all(|d| d.error.is_none()), "{d:?}");
}

#[test]
fn partitions_keep_their_shard_across_restarts_and_move_only_when_it_is_gone() {
    let mut b = Broker::start(BrokerOpts::default().cores(2));
    b.create_topic("kept", 4, &[]);
    produce_one_each(&b, "kept", 4);
    let id = topic_id(&b, "kept");
    let by_id = |b: &Broker| shards_of(b.data_dir(), &id);
    let first = by_id(&b);
    assert_eq!(first.len(), 4);
    assert_eq!(first.iter().filter(|s| **s == 0).count(), 2, "{first:?}");
    // The cluster metadata names no shard at all.
    let meta = quorum_files(b.data_dir());
    assert!(
        meta.contains("\"replicas\":[1]") && !meta.contains("shard"),
        "{meta}"
    );

    b.restart();
    assert_eq!(
        by_id(&b),
        first,
        "a restart with the same cores moves nothing"
    );
    assert_eq!(watermarks(&b.consumer(), "kept", 4), vec![(0, 1); 4]);

    b.stop();
    b.set_cores(1);
    b.restart();
    assert_eq!(
        by_id(&b),
        vec![0; 4],
        "shard 1 is gone: its partitions moved to 0"
    );
    assert_eq!(watermarks(&b.consumer(), "kept", 4), vec![(0, 1); 4]);
    produce_one_each(&b, "kept", 4);

    b.stop();
    b.set_cores(2);
    b.restart();
    assert_eq!(
        by_id(&b),
        vec![0; 4],
        "more cores move nothing already placed"
    );
    assert_eq!(watermarks(&b.consumer(), "kept", 4), vec![(0, 2); 4]);
    // New partitions go to the emptier shard.
    b.create_topic("fresh", 2, &[]);
    let fresh = topic_id(&b, "fresh");
    assert_eq!(shards_of(b.data_dir(), &fresh), vec![1, 1]);
    produce_one_each(&b, "fresh", 2);
    assert_eq!(watermarks(&b.consumer(), "fresh", 2), vec![(0, 1); 2]);
}

#[test]
fn an_old_format_metadata_log_is_converted_and_each_partition_keeps_its_shard() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("__metadata")).unwrap();
    // What shardlog wrote before placement left the metadata: a shard per partition, and a
    // move after a restart with fewer cores.
    let id = "6f1c2a3b-0000-4000-8000-00000000abcd";
    std::fs::write(
        data.join("__metadata/metadata.log"),
        format!(
            "{{\"type\":\"ClusterId\",\"id\":\"oldcluster\"}}\n\
             {{\"type\":\"CreateTopic\",\"topic\":{{\"name\":\"legacy\",\"id\":\"{id}\",\"partitions\":[1,0,1],\"configs\":{{\"retention.ms\":\"3600000\"}}}}}}\n\
             {{\"type\":\"AddPartitions\",\"name\":\"legacy\",\"shards\":[0]}}\n\
             {{\"type\":\"MovePartition\",\"name\":\"legacy\",\"partition\":2,\"shard\":0}}\n"
        ),
    )
    .unwrap();
    let mut b = Broker::start(BrokerOpts::default().cores(2).data_dir(&data));
    assert_eq!(shards_of(&data, id), vec![1, 0, 0, 0]);
    // Converted into the metadata quorum's first snapshot; the old log is set aside.
    let meta = quorum_files(&data);
    assert!(
        !meta.contains("MovePartition") && !meta.contains("shards") && meta.contains("oldcluster"),
        "today's records: {meta}"
    );
    assert!(!data.join("__metadata/metadata.log").exists());
    assert!(data.join("__metadata/metadata.log.converted").exists());
    produce_one_each(&b, "legacy", 4);
    let got = consume_all(&b.bootstrap(), "legacy", 4, 4, Duration::from_secs(20));
    assert_eq!(got.messages.len(), 4, "{:?}", got.errors);
    b.restart();
    assert_eq!(shards_of(&data, id), vec![1, 0, 0, 0]);
    assert_eq!(watermarks(&b.consumer(), "legacy", 4), vec![(0, 1); 4]);
    let props = std::fs::read_to_string(data.join("meta.properties")).unwrap();
    assert!(
        props.contains("cluster.id=oldcluster") && props.contains("node.id=1"),
        "{props}"
    );
    // An older shardlog started here again would write a metadata log of its own; the next start
    // refuses rather than drop what it holds.
    b.stop();
    std::fs::write(
        data.join("__metadata/metadata.log"),
        "{\"type\":\"ClusterId\",\"id\":\"oldcluster\"}\n",
    )
    .unwrap();
    let err = b
        .try_restart()
        .expect_err("started beside a newer metadata.log");
    assert!(err.contains("written by an older shardlog"), "{err}");
    std::fs::remove_file(data.join("__metadata/metadata.log")).unwrap();
    b.restart();
    assert_eq!(watermarks(&b.consumer(), "legacy", 4), vec![(0, 1); 4]);
}

#[test]
fn a_data_directory_refuses_to_start_under_another_node_id() {
    let mut b = Broker::start(BrokerOpts::default().set("node.id", "4"));
    b.create_topic("mine", 1, &[]);
    b.stop();
    b.set_for_next_start("node.id", "5");
    let err = b.try_restart().expect_err("started under another node id");
    assert!(
        err.contains("stored node.id 4 does not match the configured node.id 5"),
        "{err}"
    );
    b.set_for_next_start("node.id", "4");
    b.restart();
    assert_eq!(watermarks(&b.consumer(), "mine", 1), vec![(0, 0)]);
}

#[test]
fn a_placement_log_that_cannot_be_written_never_undoes_a_committed_change() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut b = Broker::start(BrokerOpts::default().data_dir(&data));
    b.create_topic("doomed", 1, &[]);
    b.stop();
    // The placement log moves to a full filesystem; the metadata log stays where it was.
    let full = Tmpfs::mount(&dir.path().join("full"), "64k");
    let moved = full.0.join("placement.log");
    let link = data.join("__metadata/placement.log");
    std::fs::copy(&link, &moved).unwrap();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&moved, &link).unwrap();
    full.fill();

    b.restart();
    // Enough partitions that their placement line needs a page the filesystem does not have.
    b.create_topic("born", 600, &[]);
    produce_one_each(&b, "born", 2);
    let admin = b.admin();
    let gone = common::block_on(admin.delete_topics(&["doomed"], &common::admin_opts()))
        .expect("delete call");
    assert!(gone.iter().all(|r| r.is_ok()), "{gone:?}");
    drop(admin);
    assert!(b.log().contains("placement log"), "{}", b.log());
    b.restart();
    let names = topic_names(&b.consumer());
    assert!(names.contains(&"born".to_string()), "{names:?}");
    assert!(!names.contains(&"doomed".to_string()), "{names:?}");
    assert_eq!(watermarks(&b.consumer(), "born", 2), vec![(0, 1); 2]);
    b.stop();
    drop(full);
}

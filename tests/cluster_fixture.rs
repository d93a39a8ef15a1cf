//! The multi-broker fixture (`common::Cluster`) the replication work builds on: N processes with
//! distinct node ids, data directories and ports, each answering as itself, stopped and restarted
//! one at a time without touching the others.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::consumer::Consumer;

#[test]
fn three_brokers_start_with_their_own_node_id_port_and_data() {
    let mut c = Cluster::start(3, BrokerOpts::default(), |_, _| Vec::new());
    let dirs: std::collections::HashSet<_> = c
        .brokers
        .iter()
        .map(|b| b.data_dir().to_path_buf())
        .collect();
    assert_eq!(dirs.len(), 3);
    for b in &c.brokers {
        let md = b
            .consumer()
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata");
        let ids: Vec<(i32, i32)> = md.brokers().iter().map(|x| (x.id(), x.port())).collect();
        assert_eq!(
            ids,
            vec![(b.node_id(), b.port() as i32)],
            "{}",
            b.bootstrap()
        );
    }
    // Each broker keeps its own data: a topic made on node 2 is not on node 1.
    c.node(2).create_topic("only-on-2", 1, &[]);
    let md = c
        .node(1)
        .consumer()
        .fetch_metadata(Some("only-on-2"), Duration::from_secs(10))
        .expect("metadata");
    assert!(md.topics()[0].error().is_some() || md.topics()[0].partitions().is_empty());
    // One broker restarts on its port and keeps its node id; the others keep running.
    c.node(3).restart();
    assert_eq!(c.node(3).node_id(), 3);
    for b in &mut c.brokers {
        b.assert_running();
    }
    assert_eq!(c.bootstrap().split(',').count(), 3);
}

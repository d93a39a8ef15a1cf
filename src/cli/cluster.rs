//! `shardlog cluster info`: DescribeCluster (where the broker offers it) and Metadata, and the
//! metadata quorum (DescribeQuorum, where offered): its leader, epoch, high watermark and each
//! voter's log end and lag.

use clap::Subcommand;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeQuorumRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::client::{Client, Target};
use super::error::{CliError, Result};
use super::output::{opt, print_json, Format, Table};

#[derive(Subcommand, Debug, Clone)]
pub enum ClusterCommand {
    /// Cluster id, controller, brokers and topic count.
    Info,
}

#[derive(Serialize)]
struct BrokerView {
    node_id: i32,
    host: String,
    port: i32,
    rack: Option<String>,
    controller: bool,
}

#[derive(Serialize)]
struct VoterView {
    node_id: i32,
    log_end_offset: i64,
    lag: i64,
}

#[derive(Serialize)]
struct QuorumView {
    leader_id: i32,
    leader_epoch: i32,
    high_watermark: i64,
    voters: Vec<VoterView>,
}

#[derive(Serialize)]
struct ClusterView {
    cluster_id: Option<String>,
    controller_id: i32,
    brokers: Vec<BrokerView>,
    topics: usize,
    internal_topics: usize,
    partitions: usize,
    /// The metadata quorum, if the broker answers DescribeQuorum.
    quorum: Option<QuorumView>,
}

pub fn run(client: &mut Client, cmd: ClusterCommand, format: Format) -> Result<()> {
    match cmd {
        ClusterCommand::Info => info(client, format),
    }
}

fn info(client: &mut Client, format: Format) -> Result<()> {
    let md: MetadataResponse = client.metadata(None)?;
    let mut view = ClusterView {
        cluster_id: md.cluster_id.as_ref().map(|c| c.to_string()),
        controller_id: md.controller_id.0,
        brokers: md
            .brokers
            .iter()
            .map(|b| BrokerView {
                node_id: b.node_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
                controller: b.node_id.0 == md.controller_id.0,
            })
            .collect(),
        topics: md
            .topics
            .iter()
            .filter(|t| t.error_code == 0 && !t.is_internal)
            .count(),
        internal_topics: md
            .topics
            .iter()
            .filter(|t| t.error_code == 0 && t.is_internal)
            .count(),
        partitions: md
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .map(|t| t.partitions.len())
            .sum(),
        quorum: None,
    };
    // DescribeCluster is the authoritative answer where offered (Kafka 2.8+); Metadata suffices
    // for older brokers.
    if client
        .version::<DescribeClusterRequest>(Target::Bootstrap)
        .is_ok()
    {
        let (_, dc) = client.call(Target::Bootstrap, |_| DescribeClusterRequest::default())?;
        if dc.error_code != 0 {
            return Err(CliError::broker(
                dc.error_code,
                "DescribeCluster",
                dc.error_message.as_ref().map(|m| m.as_str()),
            ));
        }
        view.cluster_id = Some(dc.cluster_id.to_string());
        view.controller_id = dc.controller_id.0;
        view.brokers = dc
            .brokers
            .iter()
            .map(|b| BrokerView {
                node_id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
                controller: b.broker_id.0 == dc.controller_id.0,
            })
            .collect();
    }
    view.brokers.sort_by_key(|b| b.node_id);
    if client
        .version::<DescribeQuorumRequest>(Target::Bootstrap)
        .is_ok()
    {
        view.quorum = quorum(client)?;
    }
    match format {
        Format::Json => print_json(&view),
        Format::Human => {
            println!("Cluster id:  {}", opt(view.cluster_id.as_ref()));
            println!("Controller:  {}", view.controller_id);
            println!(
                "Topics:      {} (+{} internal), {} partitions",
                view.topics, view.internal_topics, view.partitions
            );
            println!();
            let mut t = Table::new(&["NODE", "HOST", "PORT", "RACK", "CONTROLLER"]);
            for b in &view.brokers {
                t.row(vec![
                    b.node_id.to_string(),
                    b.host.clone(),
                    b.port.to_string(),
                    opt(b.rack.as_ref()),
                    if b.controller { "yes" } else { "no" }.into(),
                ]);
            }
            t.print();
            if let Some(q) = &view.quorum {
                println!();
                println!(
                    "Metadata quorum: leader {}, epoch {}, high watermark {}",
                    q.leader_id, q.leader_epoch, q.high_watermark
                );
                let mut t = Table::new(&["VOTER", "LOG END", "LAG"]);
                for v in &q.voters {
                    t.row(vec![
                        v.node_id.to_string(),
                        v.log_end_offset.to_string(),
                        v.lag.to_string(),
                    ]);
                }
                t.print();
            }
            Ok(())
        }
    }
}

/// The metadata quorum as `kafka-metadata-quorum describe --status --replication` shows it;
/// `None` if the broker has no quorum to describe.
fn quorum(client: &mut Client) -> Result<Option<QuorumView>> {
    let (_, r) = client.call(Target::Bootstrap, |_| {
        let mut p = PartitionData::default();
        p.partition_index = 0;
        let mut t = TopicData::default();
        t.topic_name = TopicName(StrBytes::from_static_str("__cluster_metadata"));
        t.partitions = vec![p];
        let mut req = DescribeQuorumRequest::default();
        req.topics = vec![t];
        req
    })?;
    if r.error_code != 0 {
        return Ok(None);
    }
    let Some(p) = r.topics.first().and_then(|t| t.partitions.first()) else {
        return Ok(None);
    };
    if p.error_code != 0 {
        return Ok(None);
    }
    let mut voters: Vec<VoterView> = p
        .current_voters
        .iter()
        .map(|v| VoterView {
            node_id: v.replica_id.0,
            log_end_offset: v.log_end_offset,
            lag: (p.high_watermark - v.log_end_offset).max(0),
        })
        .collect();
    voters.sort_by_key(|v| v.node_id);
    Ok(Some(QuorumView {
        leader_id: p.leader_id.0,
        leader_epoch: p.leader_epoch,
        high_watermark: p.high_watermark,
        voters,
    }))
}

//! `shardlog cluster info`: DescribeCluster (where the broker offers it) and Metadata.

use clap::Subcommand;
use kafka_protocol::messages::{DescribeClusterRequest, MetadataResponse};
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
struct ClusterView {
    cluster_id: Option<String>,
    controller_id: i32,
    brokers: Vec<BrokerView>,
    topics: usize,
    internal_topics: usize,
    partitions: usize,
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
            Ok(())
        }
    }
}

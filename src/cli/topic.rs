//! `shardlog topic ...`: create, list, describe, delete, add-partitions, alter-config.

use std::collections::BTreeMap;

use clap::{ArgGroup, Args, Subcommand};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::client::{Client, Target};
use super::error::{CliError, Result};
use super::ops::{self, Tp};
use super::output::{opt, print_json, Format, Table};

#[derive(Subcommand, Debug, Clone)]
pub enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topics with their partition counts.
    List {
        /// Include internal topics (e.g. __consumer_offsets).
        #[arg(long)]
        internal: bool,
    },
    /// Partitions (leader, replicas, log start offset, high watermark) and configuration of a topic.
    Describe {
        /// Topic name.
        topic: String,
    },
    /// Delete one or more topics.
    Delete {
        /// Topic names.
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Increase a topic's partition count (Kafka cannot decrease it).
    AddPartitions(AddPartitionsArgs),
    /// Change a topic's settings at run time (IncrementalAlterConfigs): --set, --delete.
    AlterConfig(AlterConfigArgs),
}

#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("change").required(true).multiple(true).args(["set", "delete"])))]
pub struct AlterConfigArgs {
    /// Topic name.
    pub topic: String,
    /// Set a topic setting KEY=VALUE (repeatable), e.g. --set retention.ms=3600000.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
    /// Remove a topic override KEY, returning it to the broker default (repeatable).
    #[arg(long, value_name = "KEY")]
    pub delete: Vec<String>,
    /// Ask the broker to validate only; nothing changes.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Topic name.
    pub topic: String,
    /// Number of partitions (default: the broker's num.partitions).
    #[arg(long, short = 'p', value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: Option<i32>,
    /// Replication factor (default: the broker's default.replication.factor).
    #[arg(long, short = 'r', value_parser = clap::value_parser!(i16).range(1..))]
    pub replication_factor: Option<i16>,
    /// Topic setting KEY=VALUE (repeatable), e.g. --config retention.ms=86400000.
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub configs: Vec<(String, String)>,
    /// Succeed if the topic already exists.
    #[arg(long)]
    pub if_not_exists: bool,
}

#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("how").required(true).args(["count", "add"])))]
pub struct AddPartitionsArgs {
    /// Topic name.
    pub topic: String,
    /// The new total number of partitions (Kafka's CreatePartitions count).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub count: Option<i32>,
    /// How many partitions to add to the current count.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub add: Option<i32>,
}

/// `KEY=VALUE` with a non-empty key.
pub fn parse_key_value(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn run(client: &mut Client, cmd: TopicCommand, format: Format) -> Result<()> {
    match cmd {
        TopicCommand::Create(a) => create(client, a, format),
        TopicCommand::List { internal } => list(client, internal, format),
        TopicCommand::Describe { topic } => describe(client, &topic, format),
        TopicCommand::Delete { topics } => delete(client, &topics, format),
        TopicCommand::AddPartitions(a) => add_partitions(client, a, format),
        TopicCommand::AlterConfig(a) => alter_config(client, a, format),
    }
}

#[derive(Serialize)]
struct Created {
    topic: String,
    topic_id: Option<String>,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    created: bool,
}

fn create(client: &mut Client, a: CreateArgs, format: Format) -> Result<()> {
    let target = client.controller()?;
    let v = client.version::<CreateTopicsRequest>(target)?;
    if v < 4 && (a.partitions.is_none() || a.replication_factor.is_none()) {
        // CreateTopics before v4 cannot ask for the broker's defaults.
        return Err(CliError::other(format!(
            "this broker's CreateTopics v{v} needs explicit --partitions and --replication-factor"
        )));
    }
    let (v, resp) = client.call(target, |_| {
        CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(name(&a.topic))
                .with_num_partitions(a.partitions.unwrap_or(-1))
                .with_replication_factor(a.replication_factor.unwrap_or(-1))
                .with_configs(
                    a.configs
                        .iter()
                        .map(|(k, val)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.clone()))
                                .with_value(Some(StrBytes::from_string(val.clone())))
                        })
                        .collect(),
                )])
    })?;
    let r = resp
        .topics
        .into_iter()
        .next()
        .ok_or_else(|| CliError::other("CreateTopics answered without a topic result"))?;
    let mut created = true;
    match r.error_code {
        0 => {}
        36 if a.if_not_exists => created = false,
        code => {
            return Err(CliError::broker(
                code,
                &format!("create topic {}", a.topic),
                r.error_message.as_ref().map(|m| m.as_str()),
            ))
        }
    }
    let out = Created {
        topic: a.topic.clone(),
        topic_id: (v >= 7 && !r.topic_id.is_nil()).then(|| r.topic_id.to_string()),
        partitions: if v >= 5 && r.num_partitions > 0 {
            Some(r.num_partitions)
        } else {
            a.partitions
        },
        replication_factor: if v >= 5 && r.replication_factor > 0 {
            Some(r.replication_factor)
        } else {
            a.replication_factor
        },
        created,
    };
    match format {
        Format::Json => print_json(&out),
        Format::Human => {
            if created {
                println!(
                    "Created topic {} (partitions: {}, replication factor: {}).",
                    out.topic,
                    opt(out.partitions),
                    opt(out.replication_factor)
                );
            } else {
                println!("Topic {} already exists.", out.topic);
            }
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct ListedTopic {
    topic: String,
    partitions: usize,
    replication_factor: usize,
    internal: bool,
}

fn list(client: &mut Client, internal: bool, format: Format) -> Result<()> {
    let resp = client.metadata(None)?;
    let mut topics: Vec<ListedTopic> = resp
        .topics
        .iter()
        .filter(|t| t.error_code == 0 && (internal || !t.is_internal))
        .map(|t| ListedTopic {
            topic: t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
            partitions: t.partitions.len(),
            replication_factor: t
                .partitions
                .iter()
                .map(|p| p.replica_nodes.len())
                .max()
                .unwrap_or(0),
            internal: t.is_internal,
        })
        .collect();
    topics.sort_by(|a, b| a.topic.cmp(&b.topic));
    match format {
        Format::Json => print_json(&topics),
        Format::Human => {
            let mut t = Table::new(&["TOPIC", "PARTITIONS", "REPLICAS", "INTERNAL"]);
            for x in &topics {
                t.row(vec![
                    x.topic.clone(),
                    x.partitions.to_string(),
                    x.replication_factor.to_string(),
                    if x.internal { "yes" } else { "no" }.to_string(),
                ]);
            }
            t.print();
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct PartitionView {
    partition: i32,
    leader: i32,
    leader_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    log_start_offset: Option<i64>,
    high_watermark: Option<i64>,
    error: Option<String>,
}

#[derive(Serialize)]
struct ConfigView {
    name: String,
    value: Option<String>,
    source: &'static str,
    read_only: bool,
    sensitive: bool,
}

#[derive(Serialize)]
struct TopicView {
    topic: String,
    topic_id: Option<String>,
    internal: bool,
    partitions: Vec<PartitionView>,
    configs: Vec<ConfigView>,
}

fn config_source(s: i8) -> &'static str {
    match s {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

fn describe(client: &mut Client, topic: &str, format: Format) -> Result<()> {
    let infos = ops::topics(client, &[topic.to_string()], true)?;
    let info = infos
        .into_iter()
        .next()
        .ok_or_else(|| CliError::broker(3, &format!("describe topic {topic}"), None))?;
    let leaders: BTreeMap<Tp, i32> = info
        .leaders()
        .into_iter()
        .map(|(p, l)| ((topic.to_string(), p), l))
        .collect();
    let starts = ops::list_offsets(client, &leaders, ops::EARLIEST)?;
    let ends = ops::list_offsets(client, &leaders, ops::LATEST)?;
    let mut partitions: Vec<PartitionView> = info
        .topic
        .partitions
        .iter()
        .map(|p| {
            let tp = (topic.to_string(), p.partition_index);
            let start = starts.get(&tp).cloned();
            let end = ends.get(&tp).cloned();
            let error = [p.error_code]
                .into_iter()
                .chain(start.and_then(|a| a.err()))
                .chain(end.and_then(|a| a.err()))
                .find(|c| *c != 0)
                .map(super::error::error_name);
            PartitionView {
                partition: p.partition_index,
                leader: p.leader_id.0,
                leader_epoch: p.leader_epoch,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                log_start_offset: start.and_then(|a| a.ok()).map(|(o, _)| o),
                high_watermark: end.and_then(|a| a.ok()).map(|(o, _)| o),
                error,
            }
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);

    let (_, resp) = client.call(Target::Bootstrap, |_| {
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configuration_keys(None)])
    })?;
    let mut configs = Vec::new();
    for r in resp.results {
        if r.error_code != 0 {
            return Err(CliError::broker(
                r.error_code,
                &format!("DescribeConfigs for topic {topic}"),
                r.error_message.as_ref().map(|m| m.as_str()),
            ));
        }
        for c in r.configs {
            configs.push(ConfigView {
                name: c.name.to_string(),
                value: if c.is_sensitive {
                    None
                } else {
                    c.value.as_ref().map(|v| v.to_string())
                },
                source: config_source(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            });
        }
    }
    configs.sort_by(|a, b| a.name.cmp(&b.name));

    let view = TopicView {
        topic: topic.to_string(),
        topic_id: (!info.topic.topic_id.is_nil()).then(|| info.topic.topic_id.to_string()),
        internal: info.topic.is_internal,
        partitions,
        configs,
    };
    match format {
        Format::Json => print_json(&view),
        Format::Human => {
            println!("Topic:       {}", view.topic);
            println!("Topic id:    {}", opt(view.topic_id.as_ref()));
            println!("Partitions:  {}", view.partitions.len());
            println!("Internal:    {}", if view.internal { "yes" } else { "no" });
            println!();
            let mut t = Table::new(&[
                "PARTITION",
                "LEADER",
                "EPOCH",
                "REPLICAS",
                "ISR",
                "LOG-START-OFFSET",
                "HIGH-WATERMARK",
                "ERROR",
            ]);
            let ids = |v: &[i32]| {
                v.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            for p in &view.partitions {
                t.row(vec![
                    p.partition.to_string(),
                    p.leader.to_string(),
                    p.leader_epoch.to_string(),
                    ids(&p.replicas),
                    ids(&p.isr),
                    opt(p.log_start_offset),
                    opt(p.high_watermark),
                    opt(p.error.as_ref()),
                ]);
            }
            t.print();
            if !view.configs.is_empty() {
                println!();
                let mut c = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
                for x in &view.configs {
                    c.row(vec![
                        x.name.clone(),
                        if x.sensitive {
                            "(sensitive)".to_string()
                        } else {
                            opt(x.value.as_ref())
                        },
                        x.source.to_string(),
                    ]);
                }
                c.print();
            }
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct Deleted {
    topic: String,
    error: Option<String>,
}

fn delete(client: &mut Client, topics: &[String], format: Format) -> Result<()> {
    let target = client.controller()?;
    let (_, resp) = client.call(target, |v| {
        let req = DeleteTopicsRequest::default().with_timeout_ms(30_000);
        if v >= 6 {
            req.with_topics(
                topics
                    .iter()
                    .map(|t| DeleteTopicState::default().with_name(Some(name(t))))
                    .collect(),
            )
        } else {
            req.with_topic_names(topics.iter().map(|t| name(t)).collect())
        }
    })?;
    let mut results = Vec::new();
    let mut first_err = None;
    for r in resp.responses {
        let topic = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        if r.error_code != 0 && first_err.is_none() {
            first_err = Some(CliError::broker(
                r.error_code,
                &format!("delete topic {topic}"),
                r.error_message.as_ref().map(|m| m.as_str()),
            ));
        }
        results.push(Deleted {
            error: (r.error_code != 0).then(|| super::error::error_name(r.error_code)),
            topic,
        });
    }
    match format {
        Format::Json => print_json(&results)?,
        Format::Human => {
            for r in &results {
                if r.error.is_none() {
                    println!("Deleted topic {}.", r.topic);
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[derive(Serialize)]
struct PartitionsAdded {
    topic: String,
    previous_count: i32,
    count: i32,
}

fn add_partitions(client: &mut Client, a: AddPartitionsArgs, format: Format) -> Result<()> {
    let infos = ops::topics(client, std::slice::from_ref(&a.topic), true)?;
    let current = infos
        .first()
        .map(|i| i.topic.partitions.len() as i32)
        .ok_or_else(|| CliError::broker(3, &format!("add partitions to {}", a.topic), None))?;
    let count = match (a.count, a.add) {
        (Some(c), _) => c,
        (None, Some(n)) => current
            .checked_add(n)
            .ok_or_else(|| CliError::other(format!("{current} + {n} partitions is too many")))?,
        (None, None) => return Err(CliError::other("give --count or --add")),
    };
    if count <= current {
        return Err(CliError::other(format!(
            "topic {} already has {current} partitions; --count must be larger (Kafka cannot remove partitions)",
            a.topic
        )));
    }
    let target = client.controller()?;
    let (_, resp) = client.call(target, |_| {
        CreatePartitionsRequest::default()
            .with_timeout_ms(30_000)
            .with_validate_only(false)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name(&a.topic))
                .with_count(count)
                .with_assignments(None)])
    })?;
    for r in &resp.results {
        if r.error_code != 0 {
            return Err(CliError::broker(
                r.error_code,
                &format!("add partitions to {}", a.topic),
                r.error_message.as_ref().map(|m| m.as_str()),
            ));
        }
    }
    let out = PartitionsAdded {
        topic: a.topic,
        previous_count: current,
        count,
    };
    match format {
        Format::Json => print_json(&out),
        Format::Human => {
            println!(
                "Topic {} now has {} partitions (was {}).",
                out.topic, out.count, out.previous_count
            );
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct ConfigAltered {
    topic: String,
    set: BTreeMap<String, String>,
    deleted: Vec<String>,
    dry_run: bool,
}

fn alter_config(client: &mut Client, a: AlterConfigArgs, format: Format) -> Result<()> {
    let set: BTreeMap<String, String> = a.set.iter().cloned().collect();
    if set.len() != a.set.len() || a.delete.iter().any(|k| set.contains_key(k)) {
        return Err(CliError::other(
            "each setting may be named once across --set and --delete",
        ));
    }
    let mut ops: Vec<AlterableConfig> = a
        .set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_string(v.clone())))
        })
        .collect();
    ops.extend(a.delete.iter().map(|k| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(k.clone()))
            .with_config_operation(1)
            .with_value(None)
    }));
    let target = client.controller()?;
    let (_, resp) = client.call(target, |_| {
        IncrementalAlterConfigsRequest::default()
            .with_validate_only(a.dry_run)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(a.topic.clone()))
                .with_configs(ops)])
    })?;
    for r in &resp.responses {
        if r.error_code != 0 {
            return Err(CliError::broker(
                r.error_code,
                &format!("alter config of topic {}", a.topic),
                r.error_message.as_ref().map(|m| m.as_str()),
            ));
        }
    }
    let out = ConfigAltered {
        topic: a.topic,
        set,
        deleted: a.delete,
        dry_run: a.dry_run,
    };
    match format {
        Format::Json => print_json(&out),
        Format::Human => {
            let verb = if out.dry_run {
                "Would change"
            } else {
                "Changed"
            };
            println!("{verb} configuration of topic {}:", out.topic);
            let mut t = Table::new(&["CONFIG", "NEW-VALUE"]);
            for (k, v) in &out.set {
                t.row(vec![k.clone(), v.clone()]);
            }
            for k in &out.deleted {
                t.row(vec![k.clone(), "(default)".into()]);
            }
            t.print();
            Ok(())
        }
    }
}

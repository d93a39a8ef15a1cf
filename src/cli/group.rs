//! `shardlog group ...`: list, describe (members, assignment, lag), reset-offsets, delete.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, Bytes};
use clap::{ArgGroup, Args, Subcommand};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde::Serialize;

use super::client::{Client, Target};
use super::error::{CliError, Result};
use super::ops::{self, Tp};
use super::output::{opt, print_json, Format, Table};

#[derive(Subcommand, Debug, Clone)]
pub enum GroupCommand {
    /// List consumer groups (on every broker of the cluster).
    List,
    /// State, members, assignments, committed offsets and lag of a group.
    Describe {
        /// Group id.
        group: String,
    },
    /// Set a group's committed offsets for a topic (only while the group has no members).
    ResetOffsets(ResetArgs),
    /// Delete a group and its committed offsets (only while the group has no members).
    Delete {
        /// Group id.
        group: String,
    },
}

#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime"])))]
pub struct ResetArgs {
    /// Group id.
    pub group: String,
    /// Topic whose offsets to reset.
    #[arg(long)]
    pub topic: String,
    /// Only these partitions (repeatable; default: every partition of the topic).
    #[arg(long = "partition", value_name = "P", value_parser = clap::value_parser!(i32).range(0..))]
    pub partitions: Vec<i32>,
    /// The earliest offset still in the log.
    #[arg(long)]
    pub to_earliest: bool,
    /// The log end offset (skip everything).
    #[arg(long)]
    pub to_latest: bool,
    /// This offset (clamped into the partition's earliest..latest range, as Kafka does).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub to_offset: Option<i64>,
    /// The first offset whose timestamp is at or after this time, e.g. 2026-11-26T10:00:00Z
    /// (RFC 3339; no zone = UTC; or Unix milliseconds). The log end if there is none.
    #[arg(long, value_name = "DATETIME", value_parser = super::time::parse_datetime_ms)]
    pub to_datetime: Option<i64>,
    /// Show the new offsets without committing them.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(client: &mut Client, cmd: GroupCommand, format: Format) -> Result<()> {
    match cmd {
        GroupCommand::List => list(client, format),
        GroupCommand::Describe { group } => describe(client, &group, format),
        GroupCommand::ResetOffsets(a) => reset_offsets(client, a, format),
        GroupCommand::Delete { group } => delete(client, &group, format),
    }
}

/// An OffsetCommit outside any generation (generation -1, no member): how standalone consumers
/// and offset resets commit, as Kafka's tools do.
pub(crate) fn simple_commit_request(
    group: &str,
    topic: &str,
    offsets: &BTreeMap<Tp, i64>,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_group_instance_id(None)
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(tname(topic))
            .with_partitions(
                offsets
                    .iter()
                    .map(|((_, p), o)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(*o)
                            .with_committed_leader_epoch(-1)
                            .with_committed_metadata(Some(StrBytes::from_static_str("")))
                    })
                    .collect(),
            )])
}

fn gid(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_string()))
}

fn tname(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

#[derive(Serialize, Clone)]
struct ListedGroup {
    group: String,
    state: Option<String>,
    protocol_type: String,
    coordinator: i32,
}

fn list(client: &mut Client, format: Format) -> Result<()> {
    let nodes: Vec<i32> = client.cluster()?.brokers.keys().copied().collect();
    let targets: Vec<(i32, Target)> = if nodes.is_empty() {
        vec![(-1, Target::Bootstrap)]
    } else {
        nodes.into_iter().map(|n| (n, Target::Node(n))).collect()
    };
    let mut groups: BTreeMap<String, ListedGroup> = BTreeMap::new();
    for (node, target) in targets {
        let (v, resp) = client.call(target, |_| ListGroupsRequest::default())?;
        if resp.error_code != 0 {
            return Err(CliError::broker(resp.error_code, "ListGroups", None));
        }
        for g in resp.groups {
            let name = g.group_id.0.to_string();
            groups.insert(
                name.clone(),
                ListedGroup {
                    group: name,
                    state: (v >= 4).then(|| g.group_state.to_string()),
                    protocol_type: g.protocol_type.to_string(),
                    coordinator: node,
                },
            );
        }
    }
    let groups: Vec<ListedGroup> = groups.into_values().collect();
    match format {
        Format::Json => print_json(&groups),
        Format::Human => {
            let mut t = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE"]);
            for g in &groups {
                t.row(vec![
                    g.group.clone(),
                    opt(g.state.as_ref()),
                    if g.protocol_type.is_empty() {
                        "-".to_string()
                    } else {
                        g.protocol_type.clone()
                    },
                ]);
            }
            t.print();
            Ok(())
        }
    }
}

#[derive(Serialize, Clone)]
struct MemberView {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    /// topic → partitions (decoded consumer protocol assignment; empty if not decodable).
    assignment: BTreeMap<String, Vec<i32>>,
}

#[derive(Serialize)]
struct OffsetView {
    topic: String,
    partition: i32,
    committed_offset: Option<i64>,
    log_end_offset: Option<i64>,
    lag: Option<i64>,
    member_id: Option<String>,
    client_id: Option<String>,
    client_host: Option<String>,
}

#[derive(Serialize)]
struct GroupView {
    group: String,
    state: String,
    protocol_type: String,
    protocol: String,
    coordinator: i32,
    members: Vec<MemberView>,
    offsets: Vec<OffsetView>,
}

/// Kafka's consumer protocol assignment: i16 version, then the struct. Newer versions than we
/// know are read as the newest we know (their additions come last).
fn decode_assignment(bytes: &Bytes) -> Option<BTreeMap<String, Vec<i32>>> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16();
    if version < 0 {
        return None;
    }
    let a = ConsumerProtocolAssignment::decode(&mut buf, version.min(3)).ok()?;
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in a.assigned_partitions {
        out.entry(tp.topic.0.to_string())
            .or_default()
            .extend(tp.partitions);
    }
    for ps in out.values_mut() {
        ps.sort_unstable();
    }
    Some(out)
}

/// One group's DescribeGroups answer.
struct Described {
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<MemberView>,
}

fn describe_group(client: &mut Client, group: &str) -> Result<(Target, Described)> {
    client.with_coordinator(group, |client, target| {
        let (_, resp) = client.call(target, |_| {
            DescribeGroupsRequest::default().with_groups(vec![gid(group)])
        })?;
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| CliError::other("DescribeGroups answered without a group"))?;
        if g.error_code != 0 {
            return Err(CliError::broker(
                g.error_code,
                &format!("describe group {group}"),
                g.error_message.as_ref().map(|m| m.as_str()),
            ));
        }
        let consumer = g.protocol_type.as_str() == "consumer";
        let members = g
            .members
            .iter()
            .map(|m| MemberView {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: if consumer {
                    decode_assignment(&m.member_assignment).unwrap_or_default()
                } else {
                    BTreeMap::new()
                },
            })
            .collect();
        Ok((
            target,
            Described {
                state: g.group_state.to_string(),
                protocol_type: g.protocol_type.to_string(),
                protocol: g.protocol_data.to_string(),
                members,
            },
        ))
    })
}

/// Committed offsets of `group` (`topics` None = every topic the group committed for).
/// Partitions without a committed offset are left out.
pub(crate) fn fetch_offsets(
    client: &mut Client,
    group: &str,
    topics: Option<&BTreeMap<String, Vec<i32>>>,
) -> Result<BTreeMap<Tp, i64>> {
    client.with_coordinator(group, |client, target| {
        let (v, resp) = client.call(target, |v| {
            if v >= 8 {
                let list = topics.map(|ts| {
                    ts.iter()
                        .map(|(t, ps)| {
                            OffsetFetchRequestTopics::default()
                                .with_name(tname(t))
                                .with_partition_indexes(ps.clone())
                        })
                        .collect()
                });
                OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(gid(group))
                    .with_topics(list)])
            } else {
                let list: Option<Vec<OffsetFetchRequestTopic>> = topics.map(|ts| {
                    ts.iter()
                        .map(|(t, ps)| {
                            OffsetFetchRequestTopic::default()
                                .with_name(tname(t))
                                .with_partition_indexes(ps.clone())
                        })
                        .collect()
                });
                // "All topics" (null) exists from v2 on.
                let list = match list {
                    None if v < 2 => Some(Vec::new()),
                    other => other,
                };
                OffsetFetchRequest::default()
                    .with_group_id(gid(group))
                    .with_topics(list)
            }
        })?;
        let context = format!("fetch committed offsets of group {group}");
        let mut out = BTreeMap::new();
        let check = |code: i16| -> Result<()> {
            if code != 0 {
                Err(CliError::broker(code, &context, None))
            } else {
                Ok(())
            }
        };
        if v >= 8 {
            for g in resp.groups {
                check(g.error_code)?;
                for t in g.topics {
                    for p in t.partitions {
                        check(p.error_code)?;
                        if p.committed_offset >= 0 {
                            out.insert(
                                (t.name.0.to_string(), p.partition_index),
                                p.committed_offset,
                            );
                        }
                    }
                }
            }
        } else {
            if v >= 2 {
                check(resp.error_code)?;
            }
            for t in resp.topics {
                for p in t.partitions {
                    check(p.error_code)?;
                    if p.committed_offset >= 0 {
                        out.insert(
                            (t.name.0.to_string(), p.partition_index),
                            p.committed_offset,
                        );
                    }
                }
            }
        }
        Ok(out)
    })
}

/// Leaders of the partitions in `tps` (topics that no longer exist are left out).
fn leaders_for(client: &mut Client, tps: &BTreeSet<Tp>) -> Result<BTreeMap<Tp, i32>> {
    let names: Vec<String> = tps
        .iter()
        .map(|(t, _)| t.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let infos = ops::topics(client, &names, false)?;
    let mut out = BTreeMap::new();
    for info in infos {
        for (p, leader) in info.leaders() {
            let tp = (info.name.clone(), p);
            if tps.contains(&tp) {
                out.insert(tp, leader);
            }
        }
    }
    Ok(out)
}

fn group_does_not_exist(group: &str) -> CliError {
    CliError::broker(69, &format!("describe group {group}"), None)
}

fn describe(client: &mut Client, group: &str, format: Format) -> Result<()> {
    let (target, d) = describe_group(client, group)?;
    let committed = fetch_offsets(client, group, None)?;
    if d.state == "Dead" && committed.is_empty() {
        return Err(group_does_not_exist(group));
    }
    // Every partition with a committed offset or an owner.
    let mut owners: BTreeMap<Tp, &MemberView> = BTreeMap::new();
    for m in &d.members {
        for (t, ps) in &m.assignment {
            for p in ps {
                owners.insert((t.clone(), *p), m);
            }
        }
    }
    let all: BTreeSet<Tp> = committed.keys().chain(owners.keys()).cloned().collect();
    let leaders = leaders_for(client, &all)?;
    let ends = ops::list_offsets(client, &leaders, ops::LATEST)?;
    let offsets: Vec<OffsetView> = all
        .iter()
        .map(|tp| {
            let c = committed.get(tp).copied();
            let end = ends.get(tp).and_then(|a| a.ok()).map(|(o, _)| o);
            let owner = owners.get(tp);
            OffsetView {
                topic: tp.0.clone(),
                partition: tp.1,
                committed_offset: c,
                log_end_offset: end,
                lag: match (c, end) {
                    (Some(c), Some(e)) => Some((e - c).max(0)),
                    _ => None,
                },
                member_id: owner.map(|m| m.member_id.clone()),
                client_id: owner.map(|m| m.client_id.clone()),
                client_host: owner.map(|m| m.client_host.clone()),
            }
        })
        .collect();
    let view = GroupView {
        group: group.to_string(),
        state: d.state,
        protocol_type: d.protocol_type,
        protocol: d.protocol,
        coordinator: match target {
            Target::Node(n) => n,
            Target::Bootstrap => -1,
        },
        members: d.members,
        offsets,
    };
    match format {
        Format::Json => print_json(&view),
        Format::Human => {
            let dash = |s: &str| {
                if s.is_empty() {
                    "-".to_string()
                } else {
                    s.to_string()
                }
            };
            println!("Group:          {}", view.group);
            println!("State:          {}", view.state);
            println!("Protocol type:  {}", dash(&view.protocol_type));
            println!("Protocol:       {}", dash(&view.protocol));
            println!("Coordinator:    {}", view.coordinator);
            println!("Members:        {}", view.members.len());
            if !view.members.is_empty() {
                println!();
                let mut t = Table::new(&[
                    "MEMBER-ID",
                    "INSTANCE-ID",
                    "CLIENT-ID",
                    "HOST",
                    "ASSIGNMENT",
                ]);
                for m in &view.members {
                    let assignment = m
                        .assignment
                        .iter()
                        .map(|(t, ps)| {
                            format!(
                                "{t}:{}",
                                ps.iter()
                                    .map(|p| p.to_string())
                                    .collect::<Vec<_>>()
                                    .join(",")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    t.row(vec![
                        m.member_id.clone(),
                        opt(m.group_instance_id.as_ref()),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        dash(&assignment),
                    ]);
                }
                t.print();
            }
            println!();
            let mut t = Table::new(&[
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID",
            ]);
            for o in &view.offsets {
                t.row(vec![
                    o.topic.clone(),
                    o.partition.to_string(),
                    opt(o.committed_offset),
                    opt(o.log_end_offset),
                    opt(o.lag),
                    opt(o.member_id.as_ref()),
                    opt(o.client_host.as_ref()),
                    opt(o.client_id.as_ref()),
                ]);
            }
            t.print();
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct ResetRow {
    topic: String,
    partition: i32,
    previous_offset: Option<i64>,
    new_offset: i64,
}

#[derive(Serialize)]
struct ResetView {
    group: String,
    dry_run: bool,
    offsets: Vec<ResetRow>,
}

fn reset_offsets(client: &mut Client, a: ResetArgs, format: Format) -> Result<()> {
    let group = a.group.as_str();
    let (_, d) = describe_group(client, group)?;
    if d.state != "Empty" && d.state != "Dead" {
        return Err(CliError::other(format!(
            "Assignments can only be reset if the group '{group}' is inactive, but the current state is {} ({} member(s)). Stop its consumers first.",
            d.state,
            d.members.len()
        )));
    }
    let infos = ops::topics(client, std::slice::from_ref(&a.topic), true)?;
    let info = infos
        .into_iter()
        .next()
        .ok_or_else(|| CliError::broker(3, &format!("reset offsets of topic {}", a.topic), None))?;
    let all_leaders = info.leaders();
    let chosen: Vec<i32> = if a.partitions.is_empty() {
        all_leaders.keys().copied().collect()
    } else {
        for p in &a.partitions {
            if !all_leaders.contains_key(p) {
                return Err(CliError::other(format!(
                    "topic {} has no partition {p} (it has {})",
                    a.topic,
                    all_leaders.len()
                )));
            }
        }
        a.partitions
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let leaders: BTreeMap<Tp, i32> = chosen
        .iter()
        .map(|p| {
            (
                (a.topic.clone(), *p),
                all_leaders.get(p).copied().unwrap_or(-1),
            )
        })
        .collect();

    let new_offsets: BTreeMap<Tp, i64> = if a.to_earliest {
        ops::list_offsets_strict(client, &leaders, ops::EARLIEST, "earliest")?
            .into_iter()
            .map(|(tp, (o, _))| (tp, o))
            .collect()
    } else if a.to_latest {
        ops::list_offsets_strict(client, &leaders, ops::LATEST, "latest")?
            .into_iter()
            .map(|(tp, (o, _))| (tp, o))
            .collect()
    } else if let Some(n) = a.to_offset {
        let lo = ops::list_offsets_strict(client, &leaders, ops::EARLIEST, "earliest")?;
        let hi = ops::list_offsets_strict(client, &leaders, ops::LATEST, "latest")?;
        let mut out = BTreeMap::new();
        for (tp, (low, _)) in lo {
            let high = hi.get(&tp).map(|(o, _)| *o).unwrap_or(low);
            let o = if n < low {
                eprintln!(
                    "warning: offset {n} is below the earliest offset {low} of {}-{}; using {low}",
                    tp.0, tp.1
                );
                low
            } else if n > high {
                eprintln!(
                    "warning: offset {n} is above the log end offset {high} of {}-{}; using {high}",
                    tp.0, tp.1
                );
                high
            } else {
                n
            };
            out.insert(tp, o);
        }
        out
    } else if let Some(ts) = a.to_datetime {
        let by_time = ops::list_offsets_strict(client, &leaders, ts, "by timestamp")?;
        let needs_end = by_time.values().any(|(o, _)| *o < 0);
        let ends = if needs_end {
            ops::list_offsets_strict(client, &leaders, ops::LATEST, "latest")?
        } else {
            BTreeMap::new()
        };
        by_time
            .into_iter()
            .map(|(tp, (o, _))| {
                // No record at or after the time: the log end (Kafka does the same).
                let o = if o < 0 {
                    ends.get(&tp).map(|(e, _)| *e).unwrap_or(0)
                } else {
                    o
                };
                (tp, o)
            })
            .collect()
    } else {
        return Err(CliError::other(
            "give one of --to-earliest, --to-latest, --to-offset, --to-datetime",
        ));
    };

    let wanted: BTreeMap<String, Vec<i32>> = BTreeMap::from([(a.topic.clone(), chosen.clone())]);
    let previous = fetch_offsets(client, group, Some(&wanted))?;

    if !a.dry_run {
        let topic = a.topic.clone();
        let offsets = new_offsets.clone();
        client.with_coordinator(group, |client, target| {
            let (_, resp) = client.call(target, |_| {
                simple_commit_request(group, &topic, &offsets)
            })?;
            for t in &resp.topics {
                for p in &t.partitions {
                    if p.error_code != 0 {
                        let mut e = CliError::broker(
                            p.error_code,
                            &format!("commit offset for {}-{} of group {group}", t.name.0, p.partition_index),
                            None,
                        );
                        if matches!(p.error_code, 22 | 25 | 27) {
                            // ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID / REBALANCE_IN_PROGRESS:
                            // a member joined between our check and the commit.
                            e = CliError::other(format!(
                                "{e}. The group '{group}' became active; stop its consumers and retry."
                            ));
                        }
                        return Err(e);
                    }
                }
            }
            Ok(())
        })?;
    }

    let view = ResetView {
        group: group.to_string(),
        dry_run: a.dry_run,
        offsets: new_offsets
            .iter()
            .map(|(tp, o)| ResetRow {
                topic: tp.0.clone(),
                partition: tp.1,
                previous_offset: previous.get(tp).copied(),
                new_offset: *o,
            })
            .collect(),
    };
    match format {
        Format::Json => print_json(&view),
        Format::Human => {
            if view.dry_run {
                println!(
                    "Dry run: nothing committed. Group {} would get:",
                    view.group
                );
            } else {
                println!("Committed new offsets for group {}:", view.group);
            }
            println!();
            let mut t = Table::new(&["TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"]);
            for r in &view.offsets {
                t.row(vec![
                    r.topic.clone(),
                    r.partition.to_string(),
                    opt(r.previous_offset),
                    r.new_offset.to_string(),
                ]);
            }
            t.print();
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct DeletedGroup {
    group: String,
    deleted: bool,
}

fn delete(client: &mut Client, group: &str, format: Format) -> Result<()> {
    client.with_coordinator(group, |client, target| {
        let (_, resp) = client.call(target, |_| {
            DeleteGroupsRequest::default().with_groups_names(vec![gid(group)])
        })?;
        for r in &resp.results {
            if r.error_code != 0 {
                return Err(CliError::broker(
                    r.error_code,
                    &format!("delete group {group}"),
                    None,
                ));
            }
        }
        Ok(())
    })?;
    let out = DeletedGroup {
        group: group.to_string(),
        deleted: true,
    };
    match format {
        Format::Json => print_json(&out),
        Format::Human => {
            println!("Deleted group {group}.");
            Ok(())
        }
    }
}

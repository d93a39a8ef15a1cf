//! `shardlog consume TOPIC`: fetches records and prints them (human, json lines, raw values).
//!
//! Start position per partition: `--offset N`, `--from-time` (ListOffsets by timestamp),
//! `--from-beginning`, else the log end (only new records, as `kafka-console-consumer`). With
//! `--group G` this is a *simple consumer* of the group: it does not join the group protocol and
//! gets no partition assignment (it reads every chosen partition itself); it starts from the
//! group's committed offsets (OffsetFetch; partitions without one start as above) and commits
//! the next offsets once at the end (OffsetCommit with generation -1, as Kafka's tools do for a
//! group without active members). A group with active members refuses the commit.
//!
//! It stops after `--max-messages`, after `--timeout-ms` without a new record, or on Ctrl-C
//! (which still commits, with `--group`).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use clap::Args;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use serde::Serialize;

use super::client::{Client, Target};
use super::error::{CliError, Result};
use super::ops::{self, Tp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsumeFormat {
    /// `key<TAB>value` per record (`-` for no key).
    Human,
    /// One JSON object per line: partition, offset, timestamp, key, value, headers.
    Json,
    /// The value only, one per line.
    Raw,
}

#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("start").args(["from_beginning", "offset", "from_time"])))]
pub struct ConsumeArgs {
    /// Topic to read.
    pub topic: String,
    /// Only this partition (default: every partition).
    #[arg(long, short = 'p', value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,
    /// Start at each partition's log start (and where the group has no committed offset).
    #[arg(long)]
    pub from_beginning: bool,
    /// Start at this offset (in every chosen partition).
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
    pub offset: Option<i64>,
    /// Start at the first record at or after this time (RFC 3339, e.g. 2026-01-01T00:00:00Z, or
    /// Unix milliseconds).
    #[arg(long, value_name = "TIME", value_parser = super::time::parse_datetime_ms)]
    pub from_time: Option<i64>,
    /// Read as a simple consumer of group G: start from its committed offsets, commit at the end.
    #[arg(long, value_name = "G")]
    pub group: Option<String>,
    /// Stop after this many records.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_messages: Option<u64>,
    /// Stop when no record arrived for this long (default: run until Ctrl-C).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ConsumeFormat::Human)]
    pub format: ConsumeFormat,
}

/// One consumed record, as `--format json` prints it. Keys, values and header values are
/// UTF-8 text (invalid bytes replaced by U+FFFD); null stays null.
#[derive(Serialize)]
struct Out<'a> {
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<String>,
    value: Option<String>,
    headers: BTreeMap<&'a str, Option<String>>,
}

fn text(b: &Option<Bytes>) -> Option<String> {
    b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
}

/// Complete v2 batches at the front of `records`: (bytes of the batch, next offset after it).
/// A fetch may end with a partial batch, which is left for the next fetch.
fn complete_batches(mut records: Bytes) -> Vec<(Bytes, i64)> {
    let mut out = Vec::new();
    while records.len() >= 61 {
        let base = (&records[0..8]).get_i64();
        let len = (&records[8..12]).get_i32();
        if len < 49 || records.len() < 12 + len as usize {
            break;
        }
        let last_delta = (&records[23..27]).get_i32();
        let batch = records.split_to(12 + len as usize);
        out.push((batch, base + i64::from(last_delta) + 1));
    }
    out
}

fn resolve_starts(
    client: &mut Client,
    a: &ConsumeArgs,
    leaders: &BTreeMap<Tp, i32>,
) -> Result<BTreeMap<Tp, i64>> {
    let mut starts: BTreeMap<Tp, i64> = BTreeMap::new();
    if let Some(o) = a.offset {
        return Ok(leaders.keys().map(|tp| (tp.clone(), o)).collect());
    }
    if let Some(g) = &a.group {
        let wanted = BTreeMap::from([(
            a.topic.clone(),
            leaders.keys().map(|(_, p)| *p).collect::<Vec<_>>(),
        )]);
        starts = super::group::fetch_offsets(client, g, Some(&wanted))?
            .into_iter()
            .filter(|(tp, _)| leaders.contains_key(tp))
            .collect();
    }
    let missing: BTreeMap<Tp, i32> = leaders
        .iter()
        .filter(|(tp, _)| !starts.contains_key(*tp))
        .map(|(tp, l)| (tp.clone(), *l))
        .collect();
    if missing.is_empty() {
        return Ok(starts);
    }
    let ts = match (a.from_time, a.from_beginning) {
        (Some(t), _) => t,
        (None, true) => ops::EARLIEST,
        (None, false) => ops::LATEST,
    };
    let found = ops::list_offsets_strict(client, &missing, ts, "start position")?;
    let ends = if a.from_time.is_some() {
        ops::list_offsets_strict(client, &missing, ops::LATEST, "log end")?
    } else {
        BTreeMap::new()
    };
    for (tp, (o, _)) in found {
        // No record at or after the time: start at the log end.
        let o = if o < 0 {
            ends.get(&tp).map(|(e, _)| *e).unwrap_or(0)
        } else {
            o
        };
        starts.insert(tp, o);
    }
    Ok(starts)
}

fn commit(
    client: &mut Client,
    group: &str,
    topic: &str,
    positions: &BTreeMap<Tp, i64>,
) -> Result<()> {
    client.with_coordinator(group, |client, target| {
        let (_, resp) = client.call(target, |_| {
            super::group::simple_commit_request(group, topic, positions)
        })?;
        for t in &resp.topics {
            for p in &t.partitions {
                if p.error_code != 0 {
                    return Err(CliError::broker(
                        p.error_code,
                        &format!(
                            "commit offset of {topic}-{} for group {group}",
                            p.partition_index
                        ),
                        None,
                    ));
                }
            }
        }
        Ok(())
    })
}

/// Errors after which a metadata refresh and a retry may help.
const RETRIABLE: [i16; 4] = [3, 5, 6, 7];

pub fn run(client: &mut Client, a: ConsumeArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| CliError::other(format!("installing a signal handler: {e}")))?;
    }
    let refresh = |client: &mut Client| -> Result<BTreeMap<Tp, i32>> {
        let infos = ops::topics(client, std::slice::from_ref(&a.topic), true)?;
        let info = infos
            .into_iter()
            .next()
            .ok_or_else(|| CliError::broker(3, &format!("consume from {}", a.topic), None))?;
        let all = info.leaders();
        if let Some(p) = a.partition {
            let l = all.get(&p).copied().ok_or_else(|| {
                CliError::other(format!(
                    "topic {} has no partition {p} (it has {})",
                    a.topic,
                    all.len()
                ))
            })?;
            return Ok(BTreeMap::from([((a.topic.clone(), p), l)]));
        }
        Ok(all
            .into_iter()
            .map(|(p, l)| ((a.topic.clone(), p), l))
            .collect())
    };
    let mut leaders = refresh(client)?;
    let mut positions = resolve_starts(client, &a, &leaders)?;
    let mut count: u64 = 0;
    let mut last_record = Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let write_err = |e: std::io::Error| CliError::other(format!("writing stdout: {e}"));
    'outer: loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let idle_left = a
            .timeout_ms
            .map(|t| Duration::from_millis(t).saturating_sub(last_record.elapsed()));
        if idle_left == Some(Duration::ZERO) {
            break;
        }
        let wait = idle_left
            .unwrap_or(Duration::from_millis(500))
            .min(Duration::from_millis(500))
            .as_millis() as i32;
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for ((_, p), l) in &leaders {
            by_leader.entry(*l).or_default().push(*p);
        }
        let mut got_any = false;
        let mut need_refresh = false;
        for (leader, parts) in by_leader {
            let target = if leader >= 0 {
                Target::Node(leader)
            } else {
                Target::Bootstrap
            };
            let topic = TopicName(StrBytes::from_string(a.topic.clone()));
            let fetch_parts: Vec<FetchPartition> = parts
                .iter()
                .map(|p| {
                    FetchPartition::default()
                        .with_partition(*p)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(
                            positions.get(&(a.topic.clone(), *p)).copied().unwrap_or(0),
                        )
                        .with_last_fetched_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(1 << 20)
                })
                .collect();
            let (_, resp) = client.call(target, |_| {
                FetchRequest::default()
                    .with_replica_id((-1).into())
                    .with_max_wait_ms(wait)
                    .with_min_bytes(1)
                    .with_max_bytes(50 << 20)
                    .with_isolation_level(0)
                    .with_session_id(0)
                    .with_session_epoch(-1)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(topic)
                        .with_partitions(fetch_parts)])
            })?;
            if resp.error_code != 0 {
                return Err(CliError::broker(
                    resp.error_code,
                    &format!("fetch from {}", a.topic),
                    None,
                ));
            }
            for t in resp.responses {
                for pd in t.partitions {
                    let tp: Tp = (a.topic.clone(), pd.partition_index);
                    match pd.error_code {
                        0 => {}
                        1 => {
                            // OFFSET_OUT_OF_RANGE: start over from the log start.
                            let o = pd.log_start_offset.max(0);
                            eprintln!(
                                "warning: offset {} is out of range for {}-{}; continuing at {o}",
                                positions.get(&tp).copied().unwrap_or(0),
                                tp.0,
                                tp.1
                            );
                            positions.insert(tp, o);
                            continue;
                        }
                        c if RETRIABLE.contains(&c) => {
                            need_refresh = true;
                            continue;
                        }
                        c => {
                            return Err(CliError::broker(
                                c,
                                &format!("fetch from {}-{}", tp.0, tp.1),
                                None,
                            ))
                        }
                    }
                    let Some(records) = pd.records else { continue };
                    let mut pos = positions.get(&tp).copied().unwrap_or(0);
                    for (mut batch, next) in complete_batches(records) {
                        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| {
                            CliError::other(format!(
                                "decoding a record batch of {}-{}: {e}",
                                tp.0, tp.1
                            ))
                        })?;
                        for r in set.records {
                            if r.offset < pos || r.control {
                                continue;
                            }
                            got_any = true;
                            match a.format {
                                ConsumeFormat::Raw => {
                                    if let Some(v) = &r.value {
                                        out.write_all(v).map_err(write_err)?;
                                    }
                                    out.write_all(b"\n").map_err(write_err)?;
                                }
                                ConsumeFormat::Human => {
                                    let k = text(&r.key).unwrap_or_else(|| "-".into());
                                    let v = text(&r.value).unwrap_or_else(|| "null".into());
                                    writeln!(out, "{k}\t{v}").map_err(write_err)?;
                                }
                                ConsumeFormat::Json => {
                                    let o = Out {
                                        partition: tp.1,
                                        offset: r.offset,
                                        timestamp: r.timestamp,
                                        key: text(&r.key),
                                        value: text(&r.value),
                                        headers: r
                                            .headers
                                            .iter()
                                            .map(|(k, v)| (k.as_str(), text(v)))
                                            .collect(),
                                    };
                                    let line = serde_json::to_string(&o).map_err(|e| {
                                        CliError::other(format!("encoding JSON: {e}"))
                                    })?;
                                    writeln!(out, "{line}").map_err(write_err)?;
                                }
                            }
                            count += 1;
                            pos = r.offset + 1;
                            if a.max_messages.is_some_and(|m| count >= m) {
                                positions.insert(tp, pos);
                                break 'outer;
                            }
                        }
                        pos = pos.max(next);
                    }
                    positions.insert(tp, pos);
                }
            }
        }
        out.flush().map_err(write_err)?;
        if got_any {
            last_record = Instant::now();
        }
        if need_refresh {
            std::thread::sleep(Duration::from_millis(200));
            leaders = refresh(client)?;
        }
    }
    out.flush().map_err(write_err)?;
    drop(out);
    if let Some(g) = &a.group {
        commit(client, g, &a.topic, &positions)?;
        eprintln!("Consumed {count} records; committed offsets for group {g}.");
    } else {
        eprintln!("Consumed {count} records.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn batch(base: i64, n: i64) -> Bytes {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base + i,
                sequence: i as i32 - 1,
                timestamp: 1,
                key: None,
                value: Some(Bytes::from(format!("v{i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.freeze()
    }

    #[test]
    fn partial_trailing_batch_is_left_for_the_next_fetch() {
        let mut all = bytes::BytesMut::new();
        all.extend_from_slice(&batch(10, 3));
        let second = batch(13, 2);
        all.extend_from_slice(&second[..second.len() - 5]);
        let got = complete_batches(all.freeze());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, 13);
        let mut b = got[0].0.clone();
        assert_eq!(RecordBatchDecoder::decode(&mut b).unwrap().records.len(), 3);
    }
}

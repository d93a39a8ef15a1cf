//! `shardlog produce TOPIC`: one record per stdin line, batched per partition, encoded with
//! kafka-protocol's `RecordBatchEncoder` (optionally compressed) and sent to each partition's
//! leader.
//!
//! Partitioning follows Kafka's default partitioner for keyed records (murmur2 of the key,
//! positive, modulo the partition count) so keys land where Java clients put them; records
//! without a key go round-robin, one batch at a time. When stdin is a terminal every line is sent
//! at once; otherwise lines are batched (`--batch-size`, or 512 KiB).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Args;
use indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::Serialize;

use super::client::{Client, Target};
use super::error::{CliError, Result};
use super::ops;
use super::output::{print_json, Format};
use super::topic::parse_key_value;

/// Largest encoded batch the CLI builds (Kafka's default max.message.bytes is ~1 MiB).
const MAX_BATCH_BYTES: usize = 512 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionArg {
    fn codec(self) -> Compression {
        match self {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        }
    }
}

fn parse_acks(s: &str) -> std::result::Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        _ => Err(format!("expected all, -1, 0 or 1, got {s:?}")),
    }
}

#[derive(Args, Debug, Clone)]
pub struct ProduceArgs {
    /// Topic to produce to.
    pub topic: String,
    /// Split each line at the first SEP into key and value (lines without SEP get no key).
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// A header KEY=VALUE added to every record (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
    /// Send every record to this partition (default: murmur2 of the key, or round-robin).
    #[arg(long, short = 'p', value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,
    /// Acknowledgements: all (-1), 1 (leader) or 0 (none: no answer, no error reporting).
    #[arg(long, default_value = "all", allow_hyphen_values = true, value_parser = parse_acks)]
    pub acks: i16,
    /// Batch compression.
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
    /// Lines per batch when stdin is not a terminal.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_size: u32,
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's partition for a key: `toPositive(murmur2(key)) % partitions`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions.max(1)).max(0)
}

/// Splits one input line into (key, value).
fn split_line(line: &[u8], sep: Option<&[u8]>) -> (Option<Bytes>, Bytes) {
    if let Some(sep) = sep.filter(|s| !s.is_empty()) {
        if let Some(i) = line.windows(sep.len()).position(|w| w == sep) {
            return (
                Some(Bytes::copy_from_slice(&line[..i])),
                Bytes::copy_from_slice(&line[i + sep.len()..]),
            );
        }
    }
    (None, Bytes::copy_from_slice(line))
}

#[derive(Serialize, Default)]
struct Produced {
    topic: String,
    records: u64,
    bytes: u64,
    /// partition → records sent there.
    partitions: BTreeMap<i32, u64>,
    acks: i16,
    elapsed_ms: u128,
}

struct Producer<'a> {
    client: &'a mut Client,
    args: &'a ProduceArgs,
    /// partition → leader node id.
    leaders: BTreeMap<i32, i32>,
    pending: BTreeMap<i32, Vec<Record>>,
    pending_count: usize,
    pending_bytes: usize,
    round_robin: i32,
    headers: IndexMap<StrBytes, Option<Bytes>>,
    out: Produced,
}

/// Errors worth a metadata refresh and a retry: UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE,
/// NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS.
const RETRIABLE: [i16; 5] = [3, 5, 6, 7, 19];

impl Producer<'_> {
    fn refresh(&mut self) -> Result<()> {
        let infos = ops::topics(self.client, std::slice::from_ref(&self.args.topic), true)?;
        let info = infos
            .into_iter()
            .next()
            .ok_or_else(|| CliError::broker(3, &format!("produce to {}", self.args.topic), None))?;
        self.leaders = info.leaders();
        if let Some(p) = self.args.partition {
            if !self.leaders.contains_key(&p) {
                return Err(CliError::other(format!(
                    "topic {} has no partition {p} (it has {})",
                    self.args.topic,
                    self.leaders.len()
                )));
            }
        }
        Ok(())
    }

    fn add(&mut self, line: &[u8]) {
        let (key, value) = split_line(line, self.args.key_separator.as_deref().map(str::as_bytes));
        let n = self.leaders.len() as i32;
        let partition = match (self.args.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, n),
            (None, None) => self.round_robin % n.max(1),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.pending_bytes += value.len() + key.as_ref().map_or(0, |k| k.len()) + 16;
        self.pending_count += 1;
        let batch = self.pending.entry(partition).or_default();
        batch.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: batch.len() as i64,
            // The encoder starts a new batch wherever `offset - sequence` changes; this keeps
            // the whole list in one batch with base sequence -1 (no idempotence).
            sequence: batch.len() as i32 - 1,
            timestamp: now,
            key,
            value: Some(value),
            headers: self.headers.clone(),
        });
    }

    fn full(&self) -> bool {
        self.pending_count >= self.args.batch_size as usize || self.pending_bytes >= MAX_BATCH_BYTES
    }

    /// Sends every pending batch (retrying retriable errors for up to 10 s).
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.round_robin = self.round_robin.wrapping_add(1);
        let options = RecordEncodeOptions {
            version: 2,
            compression: self.args.compression.codec(),
        };
        let mut encoded: BTreeMap<i32, (Bytes, u64, u64)> = BTreeMap::new();
        for (p, records) in std::mem::take(&mut self.pending) {
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(&mut buf, &records, &options)
                .map_err(|e| CliError::other(format!("encoding a record batch: {e}")))?;
            let bytes: u64 = records
                .iter()
                .map(|r| r.value.as_ref().map_or(0, |v| v.len()) as u64)
                .sum();
            encoded.insert(p, (buf.freeze(), records.len() as u64, bytes));
        }
        self.pending_count = 0;
        self.pending_bytes = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !encoded.is_empty() {
            let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
            for p in encoded.keys() {
                let leader = self.leaders.get(p).copied().unwrap_or(-1);
                by_leader.entry(leader).or_default().push(*p);
            }
            let mut retry = None;
            for (leader, parts) in by_leader {
                let target = if leader >= 0 {
                    Target::Node(leader)
                } else {
                    Target::Bootstrap
                };
                let topic = TopicName(StrBytes::from_string(self.args.topic.clone()));
                let data: Vec<PartitionProduceData> = parts
                    .iter()
                    .filter_map(|p| {
                        encoded.get(p).map(|(b, _, _)| {
                            PartitionProduceData::default()
                                .with_index(*p)
                                .with_records(Some(b.clone()))
                        })
                    })
                    .collect();
                let acks = self.args.acks;
                let build = |_| {
                    ProduceRequest::default()
                        .with_acks(acks)
                        .with_timeout_ms(30_000)
                        .with_topic_data(vec![TopicProduceData::default()
                            .with_name(topic)
                            .with_partition_data(data)])
                };
                if acks == 0 {
                    self.client.send_only(target, build)?;
                    for p in &parts {
                        self.done(*p, &mut encoded);
                    }
                    continue;
                }
                let (_, resp) = self.client.call(target, build)?;
                for t in resp.responses {
                    for r in t.partition_responses {
                        match r.error_code {
                            0 => self.done(r.index, &mut encoded),
                            c if RETRIABLE.contains(&c) && Instant::now() < deadline => {
                                retry = Some(c)
                            }
                            c => {
                                return Err(CliError::broker(
                                    c,
                                    &format!("produce to {}-{}", self.args.topic, r.index),
                                    r.error_message.as_ref().map(|m| m.as_str()),
                                ))
                            }
                        }
                    }
                }
            }
            if retry.is_some() {
                std::thread::sleep(Duration::from_millis(200));
                self.refresh()?;
            }
        }
        Ok(())
    }

    fn done(&mut self, p: i32, encoded: &mut BTreeMap<i32, (Bytes, u64, u64)>) {
        if let Some((_, n, bytes)) = encoded.remove(&p) {
            self.out.records += n;
            self.out.bytes += bytes;
            *self.out.partitions.entry(p).or_default() += n;
        }
    }
}

pub fn run(client: &mut Client, args: ProduceArgs, format: Format) -> Result<()> {
    let started = Instant::now();
    let interactive = std::io::stdin().is_terminal();
    let show_rate = std::io::stderr().is_terminal() && !interactive;
    let headers = args
        .headers
        .iter()
        .map(|(k, v)| {
            (
                StrBytes::from_string(k.clone()),
                Some(Bytes::copy_from_slice(v.as_bytes())),
            )
        })
        .collect();
    let mut p = Producer {
        client,
        args: &args,
        leaders: BTreeMap::new(),
        pending: BTreeMap::new(),
        pending_count: 0,
        pending_bytes: 0,
        round_robin: 0,
        headers,
        out: Produced {
            topic: args.topic.clone(),
            acks: args.acks,
            ..Default::default()
        },
    };
    p.refresh()?;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    let mut last_rate = Instant::now();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| CliError::other(format!("reading stdin: {e}")))?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        p.add(&line);
        if interactive || p.full() {
            p.flush()?;
        }
        if show_rate && last_rate.elapsed() >= Duration::from_secs(1) {
            last_rate = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(0.001);
            let sent = p.out.records;
            eprint!(
                "\r{sent} records sent, {:.0} records/s   ",
                sent as f64 / secs
            );
            let _ = std::io::stderr().flush();
        }
    }
    p.flush()?;
    if show_rate && started.elapsed() >= Duration::from_secs(1) {
        eprintln!();
    }
    let mut out = p.out;
    out.elapsed_ms = started.elapsed().as_millis();
    match format {
        Format::Json => print_json(&out),
        Format::Human => {
            let per: Vec<String> = out
                .partitions
                .iter()
                .map(|(p, n)| format!("p{p}: {n}"))
                .collect();
            let unacked = if out.acks == 0 {
                " (acks=0: not confirmed)"
            } else {
                ""
            };
            println!(
                "Produced {} records to {}{}{unacked}.",
                out.records,
                out.topic,
                if per.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", per.join(", "))
                }
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn lines_split_at_the_first_separator() {
        let (k, v) = split_line(b"user1:a:b", Some(b":"));
        assert_eq!(k.as_deref(), Some(&b"user1"[..]));
        assert_eq!(&v[..], b"a:b");
        let (k, v) = split_line(b"nokey", Some(b":"));
        assert!(k.is_none());
        assert_eq!(&v[..], b"nokey");
        assert!(split_line(b"a:b", None).0.is_none());
    }
}

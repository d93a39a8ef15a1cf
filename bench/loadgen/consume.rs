//! Consume workload: one connection per consumer, one Fetch in flight, records counted from batch
//! headers. Catch-up consumers stop once they reach the end offsets captured at start; in
//! end-to-end mode each record value's first 8 bytes (send time, ns since the epoch) give latency.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::batch;
use crate::conn;
use crate::stats::{now_ns, Stats, Window};

pub struct ConsumeConfig {
    pub topic: String,
    pub version: i16,
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
    pub e2e: bool,
    pub read_timeout: Duration,
}

/// One consumer's assignment: partitions, where to start, and (catch-up) where to stop.
pub struct Assignment {
    pub partitions: Vec<i32>,
    pub offsets: Vec<i64>,
    pub stop_at: Option<Vec<i64>>,
}

pub struct ConsumeShared {
    pub window: Window,
    /// When to stop fetching (the window's end, plus a grace period in end-to-end mode).
    pub stop: Instant,
    /// The e2e window in ns since the epoch (records stamped inside it are measured).
    pub wall_window: (u64, u64),
    pub progress: Arc<AtomicU64>,
}

pub fn run_consumer(
    index: usize,
    addr: &str,
    mut a: Assignment,
    cfg: &ConsumeConfig,
    shared: &ConsumeShared,
) -> std::result::Result<Stats, (Stats, String)> {
    let mut stats = Stats::new();
    let mut stream = match conn::connect(addr, cfg.read_timeout) {
        Ok(s) => s,
        Err(e) => return Err((stats, format!("consumer {index}: {e}"))),
    };
    let topic = TopicName(StrBytes::from_string(cfg.topic.clone()));
    let mut out = BytesMut::new();
    let mut buf = BytesMut::new();
    let mut correlation: i32 = 1;
    let mut done: Vec<bool> = match &a.stop_at {
        Some(stop) => a.offsets.iter().zip(stop).map(|(o, s)| o >= s).collect(),
        None => vec![false; a.partitions.len()],
    };
    if a.stop_at.is_some() && done.iter().all(|d| *d) {
        stats.finished = Some(Instant::now());
        return Ok(stats);
    }
    while Instant::now() < shared.stop {
        let partitions = a
            .partitions
            .iter()
            .zip(&a.offsets)
            .zip(&done)
            .filter(|(_, d)| !**d)
            .map(|((&p, &o), _)| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(o)
                    .with_partition_max_bytes(cfg.partition_max_bytes)
            })
            .collect();
        let req = FetchRequest::default()
            .with_max_wait_ms(cfg.max_wait_ms)
            .with_min_bytes(cfg.min_bytes)
            .with_max_bytes(cfg.max_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic.clone())
                .with_partitions(partitions)]);
        out.clear();
        if let Err(e) = conn::encode_frame(&mut out, correlation, cfg.version, &req) {
            return Err((stats, e));
        }
        if let Err(e) = stream.write_all(&out) {
            return Err((stats, format!("consumer {index}: {addr}: write: {e}")));
        }
        if let Err(e) = conn::read_frame(&mut stream, &mut buf) {
            return Err((stats, format!("consumer {index}: {addr}: {e}")));
        }
        let now = Instant::now();
        let wall_now = now_ns();
        let resp = match conn::decode_response::<FetchRequest>(
            buf.split().freeze(),
            cfg.version,
            correlation,
        ) {
            Ok(r) => r,
            Err(e) => return Err((stats, format!("consumer {index}: {addr}: {e}"))),
        };
        correlation = correlation.wrapping_add(1).max(1);
        if resp.error_code != 0 {
            return Err((
                stats,
                format!("consumer {index}: fetch error code {}", resp.error_code),
            ));
        }
        let in_window = shared.window.contains(now);
        let mut fetched = 0u64;
        for t in &resp.responses {
            for p in &t.partitions {
                let Some(i) = a.partitions.iter().position(|&x| x == p.partition_index) else {
                    continue;
                };
                if p.error_code != 0 {
                    stats.error(format!(
                        "fetch {}-{}: error code {}",
                        cfg.topic, p.partition_index, p.error_code
                    ));
                    if p.error_code == 1 {
                        // OFFSET_OUT_OF_RANGE will not fix itself.
                        return Err((stats, format!("consumer {index}: offset out of range")));
                    }
                    continue;
                }
                let Some(records) = &p.records else { continue };
                let (lo, hi) = shared.wall_window;
                let mut hist_latency = |sent_ns: u64| {
                    if sent_ns >= lo && sent_ns < hi {
                        let d = Duration::from_nanos(wall_now.saturating_sub(sent_ns));
                        Stats::record_latency(&mut stats.latency, d);
                    }
                };
                let on_value: Option<&mut dyn FnMut(u64)> = if cfg.e2e {
                    Some(&mut hist_latency)
                } else {
                    None
                };
                let scan = match batch::scan(records, on_value) {
                    Ok(s) => s,
                    Err(e) => return Err((stats, format!("consumer {index}: {e}"))),
                };
                if let Some(next) = scan.next_offset {
                    a.offsets[i] = next;
                } else if !records.is_empty() && scan.batches == 0 {
                    // Not even one whole batch fits: the limits are smaller than a batch.
                    let need = records.len();
                    return Err((
                        stats,
                        format!(
                            "consumer {index}: a batch larger than the fetch size limits \
                             ({need} bytes returned, no complete batch); raise \
                             --partition-max-bytes/--fetch-max-bytes"
                        ),
                    ));
                }
                stats.total_records += scan.records;
                stats.total_requests += scan.batches;
                fetched += scan.records;
                if in_window {
                    stats.records += scan.records;
                    stats.bytes += scan.bytes;
                    stats.requests += scan.batches;
                }
                if let Some(stop) = &a.stop_at {
                    if a.offsets[i] >= stop[i] {
                        done[i] = true;
                    }
                }
            }
        }
        shared.progress.fetch_add(fetched, Ordering::Relaxed);
        if fetched > 0 && in_window {
            stats.finished = Some(now);
        }
        if a.stop_at.is_some() && done.iter().all(|d| *d) {
            stats.finished = Some(now);
            break;
        }
    }
    Ok(stats)
}

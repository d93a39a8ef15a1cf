//! Produce workload: one connection per producer, a writer (this thread) and a reader thread per
//! connection, up to `pipeline` requests in flight, open-loop (fixed schedule) or closed-loop.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::batch::{self, Batch};
use crate::conn::{self, Result, CORRELATION_ID_RANGE};
use crate::stats::{Clock, Stats, Window};

/// A complete Produce request for one partition, encoded once and reused for every send.
pub struct Frame {
    pub bytes: Vec<u8>,
    pub batch_start: usize,
    pub batch: Batch,
}

pub struct ProduceConfig {
    pub topic: String,
    pub version: i16,
    pub acks: i16,
    pub timeout_ms: i32,
    pub pipeline: usize,
    /// Interval between requests on one connection (open loop); None = closed loop.
    pub interval: Option<Duration>,
    pub e2e: bool,
    pub read_timeout: Duration,
}

/// Encodes one Produce request per partition around a pre-built batch.
pub fn build_frames(
    cfg: &ProduceConfig,
    partitions: &[i32],
    mut make_batch: impl FnMut() -> Result<Batch>,
) -> Result<BTreeMap<i32, Frame>> {
    let mut frames = BTreeMap::new();
    for &p in partitions {
        let batch = make_batch()?;
        let req = ProduceRequest::default()
            .with_acks(cfg.acks)
            .with_timeout_ms(cfg.timeout_ms)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(cfg.topic.clone())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(p)
                    .with_records(Some(Bytes::from(batch.bytes.clone())))])]);
        let mut out = BytesMut::new();
        conn::encode_frame(&mut out, 0, cfg.version, &req)?;
        let bytes = out.to_vec();
        let batch_start = locate(&bytes, &batch.bytes)
            .ok_or("cannot find the record batch inside the encoded Produce request")?;
        frames.insert(
            p,
            Frame {
                bytes,
                batch_start,
                batch,
            },
        );
    }
    Ok(frames)
}

/// The batch is the last field but for 0-3 bytes of empty tagged-field sections.
fn locate(frame: &[u8], batch: &[u8]) -> Option<usize> {
    (0..=3usize).find_map(|trailing| {
        let start = frame.len().checked_sub(trailing + batch.len())?;
        (&frame[start..start + batch.len()] == batch).then_some(start)
    })
}

struct InFlight {
    correlation_id: i32,
    intended: Instant,
    sent: Instant,
    records: u32,
    bytes: usize,
}

pub struct Shared {
    pub clock: Clock,
    pub progress: Arc<AtomicU64>,
}

/// Runs one producer connection until the window ends and its responses are in. Returns Err only
/// for failures that stopped it (connection errors); per-partition errors are counted in Stats.
pub fn run_producer(
    index: usize,
    producers: usize,
    addr: &str,
    partitions: &[i32],
    frames: &BTreeMap<i32, Frame>,
    cfg: &ProduceConfig,
    shared: &Shared,
) -> std::result::Result<Stats, (Stats, String)> {
    let mut stats = Stats::new();
    let mut stream = match conn::connect(addr, cfg.read_timeout) {
        Ok(s) => s,
        Err(e) => return Err((stats, format!("producer {index}: {e}"))),
    };
    let wants_response = cfg.acks != 0;
    let (inflight_tx, inflight_rx) = channel::<InFlight>();
    let (token_tx, token_rx) = sync_channel::<()>(cfg.pipeline);
    for _ in 0..cfg.pipeline {
        let _ = token_tx.send(());
    }
    let reader = if wants_response {
        let read_stream = match stream.try_clone() {
            Ok(s) => s,
            Err(e) => return Err((stats, format!("producer {index}: clone socket: {e}"))),
        };
        let window = shared.clock.window;
        let progress = shared.progress.clone();
        let version = cfg.version;
        let spawned = std::thread::Builder::new()
            .name(format!("prod-rd-{index}"))
            .spawn(move || {
                read_loop(
                    read_stream,
                    inflight_rx,
                    token_tx,
                    window,
                    version,
                    progress,
                )
            });
        match spawned {
            Ok(h) => Some(h),
            Err(e) => return Err((stats, format!("producer {index}: spawn reader: {e}"))),
        }
    } else {
        drop(token_tx);
        None
    };

    let mut fatal = None;
    let start = shared.clock.mono_start;
    // Spread connections evenly over one interval so they do not send in lockstep.
    let offset = cfg
        .interval
        .map(|iv| iv.mul_f64(index as f64 / producers.max(1) as f64))
        .unwrap_or_default();
    let mut scratch: Vec<u8> = Vec::new();
    let mut seq: u64 = 0;
    let mut correlation: i32 = 1;
    let mut next_partition = index % partitions.len().max(1);
    loop {
        let mut intended = match cfg.interval {
            Some(iv) => start + offset + iv.mul_f64(seq as f64),
            None => Instant::now(),
        };
        if intended >= shared.clock.window.end {
            break;
        }
        if cfg.interval.is_some() {
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
        }
        if wants_response && token_rx.recv().is_err() {
            break; // the reader stopped: it reports why
        }
        if cfg.interval.is_none() {
            intended = Instant::now();
        }
        let Some(&p) = partitions.get(next_partition) else {
            break;
        };
        next_partition = (next_partition + 1) % partitions.len();
        let Some(frame) = frames.get(&p) else {
            break;
        };
        scratch.clear();
        scratch.extend_from_slice(&frame.bytes);
        scratch[CORRELATION_ID_RANGE].copy_from_slice(&correlation.to_be_bytes());
        if cfg.e2e {
            batch::stamp(
                &mut scratch,
                frame.batch_start,
                &frame.batch,
                shared.clock.wall_ns(intended),
            );
        }
        let sent = Instant::now();
        let item = InFlight {
            correlation_id: correlation,
            intended,
            sent,
            records: frame.batch.records,
            bytes: frame.batch.bytes.len(),
        };
        if wants_response && inflight_tx.send(item).is_err() {
            break;
        }
        if let Err(e) = stream.write_all(&scratch) {
            fatal = Some(format!("producer {index}: {addr}: write: {e}"));
            break;
        }
        if !wants_response {
            // acks=0: nothing comes back; count what was written.
            stats.total_requests += 1;
            stats.total_records += frame.batch.records as u64;
            if shared.clock.window.contains(sent) {
                stats.requests += 1;
                stats.records += frame.batch.records as u64;
                stats.bytes += frame.batch.bytes.len() as u64;
            }
            shared
                .progress
                .fetch_add(frame.batch.records as u64, Ordering::Relaxed);
        }
        seq += 1;
        correlation = correlation.wrapping_add(1).max(1);
    }
    drop(inflight_tx);
    if let Some(h) = reader {
        match h.join() {
            Ok((s, err)) => {
                stats.merge(&s);
                if fatal.is_none() {
                    fatal = err.map(|e| format!("producer {index}: {addr}: {e}"));
                }
            }
            Err(_) => fatal = Some(format!("producer {index}: reader thread panicked")),
        }
    } else {
        let _ = stream.flush();
    }
    let _ = stream.shutdown(Shutdown::Both);
    match fatal {
        None => Ok(stats),
        Some(e) => Err((stats, e)),
    }
}

fn read_loop(
    mut stream: TcpStream,
    inflight: Receiver<InFlight>,
    tokens: SyncSender<()>,
    window: Window,
    version: i16,
    progress: Arc<AtomicU64>,
) -> (Stats, Option<String>) {
    let mut stats = Stats::new();
    let mut buf = BytesMut::new();
    while let Ok(item) = inflight.recv() {
        if let Err(e) = conn::read_frame(&mut stream, &mut buf) {
            let _ = stream_shutdown(&stream);
            return (stats, Some(e));
        }
        let now = Instant::now();
        let frame = buf.split().freeze();
        match check_response(frame, version, item.correlation_id) {
            Ok(None) => {
                stats.total_requests += 1;
                stats.total_records += item.records as u64;
                if window.contains(now) {
                    stats.requests += 1;
                    stats.records += item.records as u64;
                    stats.bytes += item.bytes as u64;
                }
                if window.contains(item.intended) {
                    Stats::record_latency(&mut stats.latency, now - item.intended);
                    Stats::record_latency(&mut stats.service, now - item.sent);
                }
                progress.fetch_add(item.records as u64, Ordering::Relaxed);
            }
            Ok(Some(partition_error)) => stats.error(partition_error),
            Err(e) => {
                let _ = stream_shutdown(&stream);
                return (stats, Some(e));
            }
        }
        stats.finished = Some(now);
        let _ = tokens.send(());
    }
    (stats, None)
}

fn stream_shutdown(s: &TcpStream) -> std::io::Result<()> {
    s.shutdown(Shutdown::Both)
}

/// Ok(None) = success; Ok(Some(msg)) = a partition-level error; Err = protocol failure.
fn check_response(frame: Bytes, version: i16, correlation: i32) -> Result<Option<String>> {
    let resp = conn::decode_response::<ProduceRequest>(frame, version, correlation)?;
    for t in &resp.responses {
        for p in &t.partition_responses {
            if p.error_code != 0 {
                return Ok(Some(format!(
                    "produce {}-{}: error code {}{}",
                    t.name.0.as_str(),
                    p.index,
                    p.error_code,
                    p.error_message
                        .as_ref()
                        .map(|m| format!(" ({})", m.as_str()))
                        .unwrap_or_default()
                )));
            }
        }
    }
    Ok(None)
}

//! `shardlog-bench`: a Kafka-protocol load generator (pre-encoded record batches, one blocking
//! thread per connection, pipelined requests, open-loop rates with coordinated-omission
//! correction, HdrHistogram latencies). Works against any Kafka-compatible broker.
//!
//! Modules: `conn` (framing), `setup` (ApiVersions/Metadata/CreateTopics/ListOffsets),
//! `batch` (RecordBatch v2 build/scan), `produce`, `consume`, `stats`, `report`.

// Workers return (Stats, error) once per thread at the end of a run; boxing buys nothing.
#![allow(clippy::result_large_err)]

mod batch;
mod conn;
mod consume;
mod produce;
mod report;
mod setup;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use batch::Codec;
use consume::{Assignment, ConsumeConfig, ConsumeShared};
use produce::{ProduceConfig, Shared};
use report::{Latency, Report, Side};
use stats::{Stats, Window};

#[derive(Parser, Debug, Clone, serde::Serialize)]
#[command(
    name = "shardlog-bench",
    version,
    about = "Kafka-protocol load generator: produce, consume (catch-up or tailing) and end-to-end \
             latency against any Kafka-compatible broker"
)]
struct Args {
    /// Broker to bootstrap from, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic to use.
    #[arg(long, default_value = "shardlog-bench")]
    topic: String,
    /// Create the topic first (an existing topic is used as it is).
    #[arg(long)]
    create: bool,
    /// Partitions for --create.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Replication factor for --create.
    #[arg(long, default_value_t = 1)]
    replication_factor: i16,
    /// Topic config for --create, KEY=VALUE (repeatable), e.g. flush.messages=1.
    #[arg(long = "topic-config", value_name = "KEY=VALUE")]
    topic_configs: Vec<String>,

    /// Producer connections (0 = consume only).
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Consumer connections (0 = produce only).
    #[arg(long, default_value_t = 0)]
    consumers: usize,

    /// Record value size in bytes (keys are null).
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records per batch (one batch per Produce request).
    #[arg(long, default_value_t = 10)]
    batch_records: u32,
    /// Batch compression (done once, up front).
    #[arg(long, value_enum, default_value_t = Codec::None)]
    compression: Codec,
    /// acks: 0, 1 or -1 (= all).
    #[arg(long, default_value = "1", value_parser = parse_acks, allow_negative_numbers = true)]
    acks: i16,
    /// Produce requests in flight per connection.
    #[arg(long, default_value_t = 5)]
    pipeline: usize,
    /// Target total rate in records/s (open loop, latency measured from each request's intended
    /// send time). Without it: closed loop, as fast as responses allow.
    #[arg(long)]
    rate: Option<f64>,
    /// Produce request timeout (ms) sent to the broker.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: i32,

    /// Where consumers start: earliest (catch-up; stops at the end offsets seen at start) or
    /// latest (tailing). Default: earliest without producers, latest with them.
    #[arg(long, value_parser = ["earliest", "latest"])]
    from: Option<String>,
    /// Fetch max_bytes.
    #[arg(long, default_value_t = 52_428_800)]
    fetch_max_bytes: i32,
    /// Fetch partition_max_bytes.
    #[arg(long, default_value_t = 1_048_576)]
    partition_max_bytes: i32,
    /// Fetch max_wait_ms.
    #[arg(long, default_value_t = 500)]
    fetch_max_wait_ms: i32,
    /// Fetch min_bytes.
    #[arg(long, default_value_t = 1)]
    fetch_min_bytes: i32,
    /// End-to-end latency: producers stamp their send time into each value, consumers tail and
    /// measure (needs --consumers, --compression none, --record-size >= 8).
    #[arg(long)]
    e2e: bool,

    /// Measured seconds (after warm-up).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Warm-up seconds (load is applied, nothing is measured).
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,

    /// Write results and parameters as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Append results and parameters as one CSV row (header written when the file is new).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write HdrHistogram percentile distributions to PREFIX-produce.hgrm / PREFIX-e2e.hgrm
    /// (plot with bench/loadgen/plot.py).
    #[arg(long, value_name = "PREFIX")]
    hgrm: Option<PathBuf>,
    /// Free-form label stored in JSON/CSV.
    #[arg(long, default_value = "")]
    label: String,
    /// No per-second progress on stderr.
    #[arg(long)]
    quiet: bool,
}

fn parse_acks(s: &str) -> Result<i16, String> {
    match s {
        "0" => Ok(0),
        "1" => Ok(1),
        "-1" | "all" => Ok(-1),
        _ => Err(format!("acks must be 0, 1, -1 or all, not {s}")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn validate(a: &Args) -> Result<(), String> {
    if a.producers == 0 && a.consumers == 0 {
        return Err("nothing to do: --producers 0 and --consumers 0".into());
    }
    if a.batch_records == 0 || a.pipeline == 0 {
        return Err("--batch-records and --pipeline must be at least 1".into());
    }
    if a.duration <= 0.0 || a.warmup < 0.0 || !a.duration.is_finite() || !a.warmup.is_finite() {
        return Err("--duration must be > 0 and --warmup >= 0".into());
    }
    if let Some(r) = a.rate {
        if !(r > 0.0 && r.is_finite()) {
            return Err("--rate must be a positive number of records/s".into());
        }
    }
    if a.e2e {
        if a.producers == 0 || a.consumers == 0 {
            return Err("--e2e needs --producers and --consumers".into());
        }
        if a.compression != Codec::None {
            return Err("--e2e needs --compression none (values are read back)".into());
        }
        if a.record_size < 8 {
            return Err("--e2e needs --record-size >= 8".into());
        }
    }
    Ok(())
}

fn run(a: &Args) -> Result<ExitCode, String> {
    validate(a)?;
    let mut boot = conn::Conn::open(&a.bootstrap)?;
    let apis = setup::api_versions(&mut boot)?;
    let versions = setup::negotiate(&apis)?;
    if a.create {
        let configs = a
            .topic_configs
            .iter()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| format!("--topic-config {kv}: expected KEY=VALUE"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        setup::create_topic(
            &mut boot,
            &versions,
            &a.topic,
            a.partitions,
            a.replication_factor,
            &configs,
        )?;
    }
    let layout = setup::metadata(&mut boot, &versions, &a.topic, Duration::from_secs(15))?;
    let groups = layout.by_leader();
    eprintln!(
        "shardlog-bench: {} partitions of {} on {} broker(s); versions: produce v{}, fetch v{}, metadata v{}",
        layout.partitions.len(),
        a.topic,
        groups.len(),
        versions.produce,
        versions.fetch,
        versions.metadata
    );

    // Readiness: every partition answers ListOffsets on its leader (a just-created topic may be
    // in Metadata before its partitions accept requests).
    for (addr, parts) in &groups {
        let mut leader = conn::Conn::open(addr)?;
        setup::list_offsets(&mut leader, &versions, &a.topic, parts, -1)?;
    }

    // Consumer assignments: consumer c reads from leader group c % G, partitions split among the
    // consumers of that group.
    let from_latest = match a.from.as_deref() {
        Some("latest") => true,
        Some(_) => false,
        None => a.producers > 0,
    };
    let mut assignments: Vec<(String, Assignment)> = Vec::new();
    for c in 0..a.consumers {
        let g = c % groups.len();
        let in_group = (0..a.consumers).filter(|x| x % groups.len() == g).count();
        let rank = c / groups.len();
        let (addr, parts) = &groups[g];
        let mine: Vec<i32> = parts
            .iter()
            .enumerate()
            .filter(|(i, _)| i % in_group == rank)
            .map(|(_, p)| *p)
            .collect();
        if mine.is_empty() {
            eprintln!("note: consumer {c} has no partition (more consumers than partitions)");
            continue;
        }
        let mut leader = conn::Conn::open(addr)?;
        let ts = if from_latest { -1 } else { -2 };
        let offsets = setup::list_offsets(&mut leader, &versions, &a.topic, &mine, ts)?;
        let stop_at = if from_latest {
            None
        } else {
            Some(setup::list_offsets(
                &mut leader,
                &versions,
                &a.topic,
                &mine,
                -1,
            )?)
        };
        assignments.push((
            addr.clone(),
            Assignment {
                partitions: mine,
                offsets,
                stop_at,
            },
        ));
    }
    if a.consumers > 0 && !from_latest {
        let backlog: i64 = assignments
            .iter()
            .map(|(_, asg)| {
                asg.stop_at
                    .as_ref()
                    .map(|s| s.iter().zip(&asg.offsets).map(|(e, o)| e - o).sum::<i64>())
                    .unwrap_or(0)
            })
            .sum();
        eprintln!("shardlog-bench: catch-up: {backlog} offsets to read");
    }

    // Pre-encoded Produce requests, one per partition.
    let pcfg = ProduceConfig {
        topic: a.topic.clone(),
        version: versions.produce,
        acks: a.acks,
        timeout_ms: a.timeout_ms,
        pipeline: a.pipeline,
        interval: a
            .rate
            .map(|r| Duration::from_secs_f64(a.producers as f64 * a.batch_records as f64 / r)),
        e2e: a.e2e,
        read_timeout: Duration::from_millis(a.timeout_ms.max(0) as u64 + 30_000),
    };
    let frames = if a.producers > 0 {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut rng = batch::Rng::new(now_ms as u64);
        let all: Vec<i32> = layout.partitions.iter().map(|(p, _)| *p).collect();
        produce::build_frames(&pcfg, &all, || {
            batch::build(
                a.batch_records,
                a.record_size,
                a.compression,
                now_ms,
                &mut rng,
            )
        })?
    } else {
        Default::default()
    };
    let ccfg = ConsumeConfig {
        topic: a.topic.clone(),
        version: versions.fetch,
        max_wait_ms: a.fetch_max_wait_ms,
        min_bytes: a.fetch_min_bytes,
        max_bytes: a.fetch_max_bytes,
        partition_max_bytes: a.partition_max_bytes,
        e2e: a.e2e,
        read_timeout: Duration::from_millis(a.fetch_max_wait_ms.max(0) as u64 + 30_000),
    };

    // Clocks: everything is scheduled from a start slightly in the future so threads are up.
    let lead = Duration::from_millis(200);
    let mono_start = Instant::now() + lead;
    let wall_start = SystemTime::now() + lead;
    let window = Window {
        start: mono_start + Duration::from_secs_f64(a.warmup),
        end: mono_start + Duration::from_secs_f64(a.warmup + a.duration),
    };
    let produced = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));
    let pshared = Shared {
        window,
        wall_start,
        mono_start,
        progress: produced.clone(),
    };
    let wall_ns = |t: Instant| pshared.wall_ns(t);
    let cshared = ConsumeShared {
        window,
        stop: window.end
            + if a.e2e {
                Duration::from_secs(2)
            } else {
                Duration::ZERO
            },
        wall_window: (wall_ns(window.start), wall_ns(window.end)),
        progress: consumed.clone(),
    };
    let stop_progress = AtomicBool::new(false);

    let mut pstats = Stats::new();
    let mut cstats = Stats::new();
    let mut fatal: Vec<String> = Vec::new();
    let mut consumers_finished = 0usize;
    std::thread::scope(|s| {
        let progress = s.spawn(|| {
            if !a.quiet {
                progress_loop(mono_start, &produced, &consumed, &stop_progress)
            }
        });
        let mut producers = Vec::new();
        for c in 0..a.producers {
            let (addr, parts) = &groups[c % groups.len()];
            let (frames, pcfg, pshared) = (&frames, &pcfg, &pshared);
            let h = std::thread::Builder::new()
                .name(format!("prod-{c}"))
                .spawn_scoped(s, move || {
                    let now = Instant::now();
                    if mono_start > now {
                        std::thread::sleep(mono_start - now);
                    }
                    produce::run_producer(c, a.producers, addr, parts, frames, pcfg, pshared)
                });
            match h {
                Ok(h) => producers.push(h),
                Err(e) => fatal.push(format!("spawning producer {c}: {e}")),
            }
        }
        let mut consumers = Vec::new();
        for (c, (addr, asg)) in assignments.into_iter().enumerate() {
            let (ccfg, cshared) = (&ccfg, &cshared);
            let h = std::thread::Builder::new()
                .name(format!("cons-{c}"))
                .spawn_scoped(s, move || {
                    consume::run_consumer(c, &addr, asg, ccfg, cshared)
                });
            match h {
                Ok(h) => consumers.push(h),
                Err(e) => fatal.push(format!("spawning consumer {c}: {e}")),
            }
        }
        for (hs, into, is_consumer) in [
            (producers, &mut pstats, false),
            (consumers, &mut cstats, true),
        ] {
            for h in hs {
                match h.join() {
                    Ok(Ok(st)) => {
                        if is_consumer && st.finished.is_some() {
                            consumers_finished += 1;
                        }
                        into.merge(&st);
                    }
                    Ok(Err((st, e))) => {
                        into.merge(&st);
                        fatal.push(e);
                    }
                    Err(_) => fatal.push("a worker thread panicked".into()),
                }
            }
        }
        stop_progress.store(true, Ordering::Relaxed);
        let _ = progress.join();
    });

    // A catch-up run that finished early is measured up to its last fetch.
    let mut consume_secs = window.secs();
    let catch_up = a.consumers > 0 && !from_latest;
    if catch_up && consumers_finished == a.consumers.min(layout.partitions.len()) {
        if let Some(f) = cstats.finished {
            if f < window.end {
                consume_secs = f.saturating_duration_since(window.start).as_secs_f64();
            }
        }
    }

    let params = serde_json::to_value(a).map_err(|e| format!("encoding params: {e}"))?;
    let report = Report {
        label: a.label.clone(),
        params,
        versions,
        produce: (a.producers > 0).then(|| Side::from(&pstats, window.secs(), a.acks != 0)),
        consume: (a.consumers > 0).then(|| Side::from(&cstats, consume_secs, false)),
        e2e: if a.e2e {
            Latency::from(&cstats.latency)
        } else {
            None
        },
    };
    report::print_table(&report);
    if let Some(p) = &a.json {
        report::write_json(p, &report)?;
    }
    if let Some(p) = &a.csv {
        report::append_csv(p, &report)?;
    }
    if let Some(prefix) = &a.hgrm {
        let name = |suffix: &str| {
            let mut s = prefix.clone().into_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        if a.producers > 0 && a.acks != 0 {
            report::write_hgrm(&name("-produce.hgrm"), &pstats.latency)?;
        }
        if a.e2e {
            report::write_hgrm(&name("-e2e.hgrm"), &cstats.latency)?;
        }
    }
    if catch_up && consume_secs == window.secs() && cstats.finished.is_none() {
        eprintln!("note: catch-up consumers read nothing inside the measured window");
    }
    for e in &fatal {
        eprintln!("error: {e}");
    }
    if !fatal.is_empty() {
        return Ok(ExitCode::from(2));
    }
    if pstats.errors + cstats.errors > 0 {
        eprintln!(
            "error: {} request(s) failed at partition level",
            pstats.errors + cstats.errors
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_loop(start: Instant, produced: &AtomicU64, consumed: &AtomicU64, stop: &AtomicBool) {
    let mut last = (0u64, 0u64);
    let mut tick = 1u64;
    while !stop.load(Ordering::Relaxed) {
        let next = start + Duration::from_secs(tick);
        let now = Instant::now();
        if next > now {
            // Short naps so the end of the run is noticed promptly.
            std::thread::sleep((next - now).min(Duration::from_millis(100)));
            continue;
        }
        let p = produced.load(Ordering::Relaxed);
        let c = consumed.load(Ordering::Relaxed);
        eprintln!(
            "[{tick:>4}s] produced {:>10} msg/s   consumed {:>10} msg/s",
            p - last.0,
            c - last.1
        );
        last = (p, c);
        tick += 1;
    }
}

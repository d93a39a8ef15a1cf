//! `shardlog-bench`: a Kafka-protocol load generator (pre-encoded record batches, one blocking
//! thread per connection, pipelined requests, open-loop rates with coordinated-omission
//! correction, HdrHistogram latencies). Works against any Kafka-compatible broker.
//!
//! Modules: `conn` (framing), `setup` (ApiVersions/Metadata/CreateTopics/ListOffsets),
//! `batch` (RecordBatch v2 build/scan), `native` (runs `produce` and `consume`, this tool's own
//! client), `rdkafka_mode` (runs `rdkafka_produce` and `rdkafka_consume`, librdkafka clients
//! configured by `rdkafka_config`, wire counters from `rdkafka_stats`), `stats`, `report`,
//! `curves` + `chart` (the PNG latency chart).

// Workers return (Stats, error) once per thread at the end of a run; boxing buys nothing.
#![allow(clippy::result_large_err)]

mod batch;
// Without the png-plot feature, a stub that says how to get it (plotters is not compiled).
#[cfg_attr(not(feature = "png-plot"), path = "chart_off.rs")]
mod chart;
mod conn;
mod consume;
mod curves;
mod native;
mod produce;
mod rdkafka_config;
#[cfg(feature = "rdkafka-client")]
mod rdkafka_consume;
// Without the rdkafka-client feature, a stub that says how to get it (librdkafka is not built).
#[cfg_attr(not(feature = "rdkafka-client"), path = "rdkafka_off.rs")]
mod rdkafka_mode;
#[cfg(feature = "rdkafka-client")]
mod rdkafka_produce;
mod rdkafka_stats;
mod report;
mod setup;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use batch::Codec;
use consume::Assignment;
use curves::Curve;
use report::{Latency, Report, Side};
use stats::{Clock, Outcome};

/// Which client drives the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// This tool's own pipelined protocol client (pre-encoded batches).
    Native,
    /// librdkafka producers and consumers (needs the rdkafka-client feature).
    Rdkafka,
}

const DEFAULT_BATCH_RECORDS: u32 = 10;

#[derive(Parser, Debug, Clone, serde::Serialize)]
#[command(
    name = "shardlog-bench",
    version,
    about = "Kafka-protocol load generator: produce, consume (catch-up or tailing) and end-to-end \
             latency against any Kafka-compatible broker"
)]
pub struct Args {
    /// Client: native (this tool's pipelined protocol client, pre-encoded batches) or rdkafka
    /// (librdkafka producers/consumers that batch, compress and pipeline as applications do;
    /// needs a build with --features rdkafka-client).
    #[arg(long, value_enum, default_value_t = ClientKind::Native)]
    client: ClientKind,
    /// librdkafka property for --client rdkafka, KEY=VALUE (repeatable), applied last to
    /// producers and consumers, e.g. linger.ms=5, batch.size=65536, batch.num.messages=16.
    #[arg(long = "rdkafka-set", value_name = "KEY=VALUE")]
    rdkafka_set: Vec<String>,

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
    /// Records per batch (one batch per Produce request). Native client only: with --client
    /// rdkafka, librdkafka forms batches (linger.ms, batch.size, batch.num.messages).
    #[arg(long, default_value_t = DEFAULT_BATCH_RECORDS)]
    batch_records: u32,
    /// Batch compression (done once, up front).
    #[arg(long, value_enum, default_value_t = Codec::None)]
    compression: Codec,
    /// acks: 0, 1 or -1 (= all).
    #[arg(long, default_value = "1", value_parser = parse_acks, allow_negative_numbers = true)]
    acks: i16,
    /// Produce requests in flight per connection (--client rdkafka:
    /// max.in.flight.requests.per.connection).
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
    /// measure (needs --consumers, --record-size >= 8, and with the native client
    /// --compression none).
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
    /// Write HdrHistogram percentile distributions to PREFIX-produce.hgrm,
    /// PREFIX-service.hgrm (produce service time) and PREFIX-e2e.hgrm.
    #[arg(long, value_name = "PREFIX")]
    hgrm: Option<PathBuf>,
    /// Write a latency-by-percentile chart of this run (produce latency, service time at a
    /// fixed rate, end-to-end) as PNG; with --plot-hgrm, of those files instead. Needs a build
    /// with --features png-plot.
    #[arg(long, value_name = "FILE.png")]
    png: Option<PathBuf>,
    /// Only plot: draw these .hgrm files (from --hgrm, repeatable) into --png, titled --label,
    /// legend from the file names, and exit without contacting a broker.
    #[arg(long = "plot-hgrm", value_name = "FILE")]
    plot_hgrm: Vec<PathBuf>,
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

const NO_RDKAFKA: &str = "--client rdkafka needs librdkafka, which this shardlog-bench was \
    built without: build it with `cargo build --release --bin shardlog-bench --features \
    rdkafka-client`";
const NO_PNG: &str = "--png needs the plotting code, which this shardlog-bench was built \
    without: build it with `cargo build --release --bin shardlog-bench --features png-plot`";

fn validate(a: &Args) -> Result<(), String> {
    if a.png.is_some() && !cfg!(feature = "png-plot") {
        return Err(NO_PNG.into());
    }
    if !a.plot_hgrm.is_empty() {
        return match a.png {
            Some(_) => Ok(()),
            None => Err("--plot-hgrm needs --png FILE.png".into()),
        };
    }
    if a.client == ClientKind::Rdkafka && !cfg!(feature = "rdkafka-client") {
        return Err(NO_RDKAFKA.into());
    }
    if a.client != ClientKind::Rdkafka && !a.rdkafka_set.is_empty() {
        return Err("--rdkafka-set only applies to --client rdkafka".into());
    }
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
        // The native client stamps values inside pre-encoded batches; librdkafka consumers
        // hand back decompressed values, so any codec works there.
        if a.client == ClientKind::Native && a.compression != Codec::None {
            return Err("--e2e needs --compression none (values are read back)".into());
        }
        if a.record_size < 8 {
            return Err("--e2e needs --record-size >= 8".into());
        }
    }
    if a.png.is_some() && !(a.e2e || (a.producers > 0 && a.acks != 0)) {
        return Err(
            "--png: this run measures no latency (needs producers with acks != 0, or --e2e)".into(),
        );
    }
    Ok(())
}

fn run(a: &Args) -> Result<ExitCode, String> {
    validate(a)?;
    if !a.plot_hgrm.is_empty() {
        return plot_files(a);
    }
    let mut boot = conn::open(&a.bootstrap)?;
    let versions = setup::negotiate(&boot)?;
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
        let mut leader = conn::open(addr)?;
        setup::list_offsets(&mut leader, &versions, &a.topic, parts, -1)?;
    }

    let from_latest = match a.from.as_deref() {
        Some("latest") => true,
        Some(_) => false,
        None => a.producers > 0,
    };
    // Both clients get the same assignments (partitions, start and catch-up end offsets).
    let assignments = assign_consumers(a, &groups, &versions, from_latest)?;
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
    let partitions: Vec<i32> = layout.partitions.iter().map(|(p, _)| *p).collect();

    // Each client prepares what should not be measured (encoding batches, creating librdkafka
    // instances and their connections) before the clock starts.
    let produced = Arc::new(AtomicU64::new(0));
    let consumed = Arc::new(AtomicU64::new(0));
    let (out, clock, notes) = match a.client {
        ClientKind::Native => {
            let prepared = native::prepare(a, &versions, &partitions)?;
            let clock = Clock::start(a.warmup, a.duration);
            let out = with_progress(a.quiet, clock.mono_start, &produced, &consumed, || {
                native::run(
                    a,
                    &prepared,
                    &groups,
                    assignments,
                    &clock,
                    &produced,
                    &consumed,
                )
            });
            (out, clock, Vec::new())
        }
        ClientKind::Rdkafka => {
            if a.batch_records != DEFAULT_BATCH_RECORDS {
                eprintln!(
                    "note: --batch-records is ignored with --client rdkafka: librdkafka forms \
                     batches (--rdkafka-set linger.ms=.. / batch.size=.. / batch.num.messages=..)"
                );
            }
            let clients = rdkafka_mode::connect(a, assignments, &produced)?;
            let clock = Clock::start(a.warmup, a.duration);
            let out = with_progress(a.quiet, clock.mono_start, &produced, &consumed, || {
                rdkafka_mode::run(clients, &clock, &consumed)
            });
            (out, clock, rdkafka_mode::notes(a))
        }
    };
    let window = clock.window;
    let Outcome {
        produce: pstats,
        consume: cstats,
        fatal,
        consumers_finished,
    } = out;

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
        notes,
    };
    report::print_table(&report);
    if let Some(p) = &a.json {
        report::write_json(p, &report)?;
    }
    if let Some(p) = &a.csv {
        report::append_csv(p, &report)?;
    }
    let produce_latency = a.producers > 0 && a.acks != 0;
    if let Some(prefix) = &a.hgrm {
        let name = |suffix: &str| {
            let mut s = prefix.clone().into_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        if produce_latency {
            report::write_hgrm(&name("-produce.hgrm"), &pstats.latency)?;
            report::write_hgrm(&name("-service.hgrm"), &pstats.service)?;
        }
        if a.e2e {
            report::write_hgrm(&name("-e2e.hgrm"), &cstats.latency)?;
        }
    }
    if let Some(png) = &a.png {
        let mut curves = Vec::new();
        if produce_latency {
            curves.push(Curve::from_histogram("produce latency", &pstats.latency));
            // In a closed loop, latency is the service time: one curve says it all.
            if a.rate.is_some() {
                curves.push(Curve::from_histogram(
                    "produce service time",
                    &pstats.service,
                ));
            }
        }
        if a.e2e {
            curves.push(Curve::from_histogram("end-to-end latency", &cstats.latency));
        }
        curves.retain(|c| !c.points.is_empty());
        chart::write_png(png, &run_title(a), &curves)?;
        eprintln!("shardlog-bench: wrote {}", png.display());
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

/// Consumer c reads from leader group c % G, the partitions of that group split among the
/// consumers assigned to it; start offsets from ListOffsets (latest or earliest) and, for a
/// catch-up, the end offsets at start as where to stop.
fn assign_consumers(
    a: &Args,
    groups: &[(String, Vec<i32>)],
    versions: &setup::Versions,
    from_latest: bool,
) -> Result<Vec<(String, Assignment)>, String> {
    let mut assignments = Vec::new();
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
        let mut leader = conn::open(addr)?;
        let ts = if from_latest { -1 } else { -2 };
        let offsets = setup::list_offsets(&mut leader, versions, &a.topic, &mine, ts)?;
        let stop_at = if from_latest {
            None
        } else {
            Some(setup::list_offsets(
                &mut leader,
                versions,
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
    Ok(assignments)
}

/// `--plot-hgrm`: a chart of existing distributions (e.g. shardlog's and Kafka's), no run.
fn plot_files(a: &Args) -> Result<ExitCode, String> {
    let Some(png) = &a.png else {
        return Err("--plot-hgrm needs --png FILE.png".into());
    };
    let curves = a
        .plot_hgrm
        .iter()
        .map(|p| Curve::read_hgrm(p))
        .collect::<Result<Vec<_>, _>>()?;
    let title = if a.label.is_empty() {
        "latency by percentile"
    } else {
        &a.label
    };
    chart::write_png(png, title, &curves)?;
    eprintln!("shardlog-bench: wrote {}", png.display());
    Ok(ExitCode::SUCCESS)
}

/// The chart title of a run: its label (or client) and the parameters that shape latency.
fn run_title(a: &Args) -> String {
    let who = if a.label.is_empty() {
        format!("shardlog-bench --client {:?}", a.client).to_lowercase()
    } else {
        a.label.clone()
    };
    let acks = if a.acks == -1 {
        "all".to_string()
    } else {
        a.acks.to_string()
    };
    let load = match a.rate {
        Some(r) => format!("{r} msg/s"),
        None => "closed loop".into(),
    };
    format!("{who}: {} B records, acks={acks}, {load}", a.record_size)
}

/// Runs `f` with the per-second progress line on stderr (unless quiet).
fn with_progress<T>(
    quiet: bool,
    start: Instant,
    produced: &AtomicU64,
    consumed: &AtomicU64,
    f: impl FnOnce() -> T,
) -> T {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let progress = s.spawn(|| {
            if !quiet {
                progress_loop(start, produced, consumed, &stop)
            }
        });
        let result = f();
        stop.store(true, Ordering::Relaxed);
        let _ = progress.join();
        result
    })
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

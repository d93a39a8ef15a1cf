//! `--client rdkafka`: librdkafka producers (rdkafka_produce.rs) and consumers
//! (rdkafka_consume.rs), one thread each, configured by rdkafka_config.rs. Their measurements go
//! into the same Stats as the native client's, so the table and the JSON/CSV/hgrm/PNG outputs
//! are the same.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;

use crate::consume::Assignment;
use crate::rdkafka_config;
use crate::rdkafka_consume::Consumer;
use crate::rdkafka_produce::Producer;
use crate::stats::{Clock, Outcome};
use crate::Args;

/// How long connecting (a client's first Metadata) may take before the run gives up.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(15);

/// Clients created and connected, before the clock starts.
pub struct Clients {
    producers: Vec<Producer>,
    consumers: Vec<Consumer>,
}

pub fn connect(
    a: &Args,
    assignments: Vec<(String, Assignment)>,
    produced: &Arc<AtomicU64>,
) -> Result<Clients, String> {
    let (_, version) = rdkafka::util::get_rdkafka_version();
    eprintln!(
        "shardlog-bench: client rdkafka (librdkafka {version}): {} producer(s), {} consumer(s)",
        a.producers,
        assignments.len()
    );
    let pprops = rdkafka_config::producer(a)?;
    let producers = (0..a.producers)
        .map(|i| Producer::connect(i, a, &pprops, produced.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    // A fresh group id per run: it is never joined or committed to (manual assignment), but
    // librdkafka requires one to assign partitions.
    let cprops = rdkafka_config::consumer(a, &format!("shardlog-bench-{}", std::process::id()))?;
    let consumers = assignments
        .into_iter()
        .enumerate()
        .map(|(i, (_, asg))| Consumer::connect(i, a, &cprops, asg))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Clients {
        producers,
        consumers,
    })
}

pub fn run(clients: Clients, clock: &Clock, consumed: &AtomicU64) -> Outcome {
    let mut out = Outcome::new();
    std::thread::scope(|s| {
        let mut producers = Vec::new();
        for (i, p) in clients.producers.into_iter().enumerate() {
            match std::thread::Builder::new()
                .name(format!("rdk-prod-{i}"))
                .spawn_scoped(s, move || p.run(clock))
            {
                Ok(h) => producers.push(h),
                Err(e) => out.fatal.push(format!("spawning producer {i}: {e}")),
            }
        }
        let mut consumers = Vec::new();
        for (i, c) in clients.consumers.into_iter().enumerate() {
            match std::thread::Builder::new()
                .name(format!("rdk-cons-{i}"))
                .spawn_scoped(s, move || c.run(clock, consumed))
            {
                Ok(h) => consumers.push(h),
                Err(e) => out.fatal.push(format!("spawning consumer {i}: {e}")),
            }
        }
        for h in producers {
            out.add(false, h.join());
        }
        for h in consumers {
            out.add(true, h.join());
        }
    });
    out
}

/// How to read rdkafka-mode numbers where they differ from the native client's (printed under
/// the table and kept in the JSON).
pub fn notes(a: &Args) -> Vec<String> {
    let (_, version) = rdkafka::util::get_rdkafka_version();
    let mut notes = vec![format!(
        "client rdkafka (librdkafka {version}): batches/s = Produce / Fetch requests per second \
         and MB/s = bytes sent / received on the wire, both from librdkafka's statistics \
         (interpolated to the window); msg/s and latencies from delivery reports and poll()"
    )];
    let stats_off = rdkafka_config::producer(a)
        .map(|p| rdkafka_config::stats_interval(&p).is_none())
        .unwrap_or(false);
    if stats_off {
        notes.push("statistics.interval.ms=0: batches/s and MB/s are not measured".into());
    }
    notes
}

/// Locks a mutex shared with librdkafka's callbacks; a panic elsewhere does not make the
/// measurements unreadable.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// librdkafka's own log lines, warnings and worse, on stderr.
pub fn log_line(role: &str, level: RDKafkaLogLevel, fac: &str, msg: &str) {
    // --rdkafka-set goes to producers and consumers alike; librdkafka's warnings that a
    // producer property is ignored by a consumer (and vice versa) are expected then.
    if fac == "CONFWARN" {
        return;
    }
    if matches!(
        level,
        RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning
    ) {
        eprintln!("librdkafka {role}: {fac}: {msg}");
    }
}

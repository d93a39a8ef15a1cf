//! `--client native`: this tool's own protocol client. Produce requests are encoded once per
//! partition (produce.rs) and replayed, one blocking thread per connection; consumers are
//! one-Fetch-at-a-time connections that count records from batch headers (consume.rs).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::batch;
use crate::consume::{self, Assignment, ConsumeConfig, ConsumeShared};
use crate::produce::{self, Frame, ProduceConfig, Shared};
use crate::setup::Versions;
use crate::stats::{Clock, Outcome};
use crate::Args;

/// Built before the clock starts: encoding (and compressing) the batches is not measured.
pub struct Prepared {
    frames: BTreeMap<i32, Frame>,
    pcfg: ProduceConfig,
    ccfg: ConsumeConfig,
}

pub fn prepare(a: &Args, versions: &Versions, partitions: &[i32]) -> Result<Prepared, String> {
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
        produce::build_frames(&pcfg, partitions, || {
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
    Ok(Prepared { frames, pcfg, ccfg })
}

/// Runs producer connections (producer c talks to leader group c % G) and the consumers'
/// assignments until the window ends, and merges what they measured.
#[allow(clippy::too_many_arguments)]
pub fn run(
    a: &Args,
    p: &Prepared,
    groups: &[(String, Vec<i32>)],
    assignments: Vec<(String, Assignment)>,
    clock: &Clock,
    produced: &Arc<AtomicU64>,
    consumed: &Arc<AtomicU64>,
) -> Outcome {
    let pshared = Shared {
        clock: *clock,
        progress: produced.clone(),
    };
    let cshared = ConsumeShared {
        window: clock.window,
        stop: clock.consume_until(a.e2e),
        wall_window: (
            clock.wall_ns(clock.window.start),
            clock.wall_ns(clock.window.end),
        ),
        progress: consumed.clone(),
    };
    let mono_start = clock.mono_start;
    let mut out = Outcome::new();
    std::thread::scope(|s| {
        let mut producers = Vec::new();
        for c in 0..a.producers {
            let (addr, parts) = &groups[c % groups.len()];
            let (frames, pcfg, pshared) = (&p.frames, &p.pcfg, &pshared);
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
                Err(e) => out.fatal.push(format!("spawning producer {c}: {e}")),
            }
        }
        let mut consumers = Vec::new();
        for (c, (addr, asg)) in assignments.into_iter().enumerate() {
            let (ccfg, cshared) = (&p.ccfg, &cshared);
            let h = std::thread::Builder::new()
                .name(format!("cons-{c}"))
                .spawn_scoped(s, move || {
                    consume::run_consumer(c, &addr, asg, ccfg, cshared)
                });
            match h {
                Ok(h) => consumers.push(h),
                Err(e) => out.fatal.push(format!("spawning consumer {c}: {e}")),
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

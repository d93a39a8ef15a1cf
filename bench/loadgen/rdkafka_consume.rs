//! `--client rdkafka`, consume side: one librdkafka BaseConsumer per assignment (the partitions,
//! start offsets and catch-up end offsets the native client would use), partitions assigned
//! manually (no group membership), messages taken one at a time from poll() as an application
//! reads them; librdkafka fetches ahead in the background (queued.max.messages.kbytes).
//!
//! Records count when poll() hands them over. In end-to-end mode each value's first 8 bytes
//! are the producer's intended send time (ns since the epoch, big-endian); latency = receive
//! wall time - that.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};

use crate::consume::Assignment;
use crate::rdkafka_config::{stats_interval, Props};
use crate::rdkafka_mode::{lock, log_line, METADATA_TIMEOUT};
use crate::rdkafka_stats::{self, Samples};
use crate::stats::{now_ns, Clock, Stats, Window, WorkerResult};
use crate::Args;

pub struct Ctx {
    /// Client-level errors reported by librdkafka (merged into the consumer's Stats).
    errors: Mutex<Stats>,
    samples: Mutex<Samples>,
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        log_line("consumer", level, fac, msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        lock(&self.errors).error(format!("rdkafka consumer: {error}: {reason}"));
    }

    fn stats_raw(&self, json: &[u8]) {
        if let Some(c) = rdkafka_stats::parse(json, rdkafka_stats::Side::Fetch) {
            lock(&self.samples).push(Instant::now(), c);
        }
    }
}

impl ConsumerContext for Ctx {}

pub struct Consumer {
    index: usize,
    topic: String,
    asg: Assignment,
    e2e: bool,
    stats_interval: Option<Duration>,
    client: BaseConsumer<Ctx>,
}

const POLL: Duration = Duration::from_millis(100);

impl Consumer {
    /// Creates the client and fetches the topic's metadata (connecting is not measured);
    /// partitions are assigned only when the clock starts, so nothing is fetched ahead of it.
    pub fn connect(
        index: usize,
        a: &Args,
        props: &Props,
        asg: Assignment,
    ) -> Result<Consumer, String> {
        let mut cfg = ClientConfig::new();
        for (k, v) in props {
            cfg.set(k, v);
        }
        let ctx = Ctx {
            errors: Mutex::new(Stats::new()),
            samples: Mutex::new(Samples::new(Instant::now())),
        };
        let client: BaseConsumer<Ctx> = cfg
            .create_with_context(ctx)
            .map_err(|e| format!("rdkafka consumer {index}: {e}"))?;
        client
            .fetch_metadata(Some(&a.topic), METADATA_TIMEOUT)
            .map_err(|e| format!("rdkafka consumer {index}: metadata for {}: {e}", a.topic))?;
        Ok(Consumer {
            index,
            topic: a.topic.clone(),
            asg,
            e2e: a.e2e,
            stats_interval: stats_interval(props),
            client,
        })
    }

    pub fn run(self, clock: &Clock, progress: &AtomicU64) -> WorkerResult {
        let mut stats = Stats::new();
        let window = clock.window;
        let now = Instant::now();
        if clock.mono_start > now {
            std::thread::sleep(clock.mono_start - now);
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in self.asg.partitions.iter().zip(&self.asg.offsets) {
            if let Err(e) = tpl.add_partition_offset(&self.topic, p, Offset::Offset(o)) {
                return Err((stats, format!("rdkafka consumer {}: {e}", self.index)));
            }
        }
        if let Err(e) = self.client.assign(&tpl) {
            return Err((
                stats,
                format!("rdkafka consumer {}: assign: {e}", self.index),
            ));
        }
        let mut done: Vec<bool> = match &self.asg.stop_at {
            Some(stop) => self
                .asg
                .offsets
                .iter()
                .zip(stop)
                .map(|(o, s)| o >= s)
                .collect(),
            None => vec![false; self.asg.partitions.len()],
        };
        let (lo, hi) = (clock.wall_ns(window.start), clock.wall_ns(window.end));
        let stop = clock.consume_until(self.e2e);
        let mut measured_until = None;
        let caught_up = |done: &[bool]| self.asg.stop_at.is_some() && done.iter().all(|d| *d);
        if caught_up(&done) {
            stats.finished = Some(Instant::now());
            return Ok(self.finish(stats, window, Some(window.start)));
        }
        while Instant::now() < stop {
            let m = match self.client.poll(POLL) {
                None => continue,
                Some(Err(e)) => {
                    // librdkafka retries by itself (reconnects, refetches): count and go on.
                    stats.error(format!("rdkafka consumer {}: {e}", self.index));
                    continue;
                }
                Some(Ok(m)) => m,
            };
            let now = Instant::now();
            stats.total_records += 1;
            if window.contains(now) {
                stats.records += 1;
                stats.finished = Some(now);
            }
            if self.e2e {
                if let Some(stamp) = m.payload().and_then(|v| v.get(..8)) {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(stamp);
                    let sent_ns = u64::from_be_bytes(be);
                    if sent_ns >= lo && sent_ns < hi {
                        let d = Duration::from_nanos(now_ns().saturating_sub(sent_ns));
                        Stats::record_latency(&mut stats.latency, d);
                    }
                }
            }
            progress.fetch_add(1, Ordering::Relaxed);
            if let Some(stop_at) = &self.asg.stop_at {
                if let Some(i) = self.asg.partitions.iter().position(|&p| p == m.partition()) {
                    if m.offset() + 1 >= stop_at[i] {
                        done[i] = true;
                    }
                }
                if caught_up(&done) {
                    stats.finished = Some(now);
                    measured_until = Some(now.min(window.end));
                    break;
                }
            }
        }
        Ok(self.finish(stats, window, measured_until))
    }

    /// Adds the client's errors and the Fetch requests / bytes received inside the window, or
    /// up to `caught_up` (from librdkafka's statistics).
    fn finish(&self, mut stats: Stats, window: Window, caught_up: Option<Instant>) -> Stats {
        self.await_sample_after(caught_up.unwrap_or(window.end));
        let ctx = self.client.context();
        stats.merge(&lock(&ctx.errors));
        let samples = lock(&ctx.samples);
        let w = match caught_up {
            Some(t) => samples.through(window.start, t),
            None => samples.between(window.start, window.end),
        };
        stats.requests = w.requests;
        stats.bytes = w.bytes;
        stats.total_requests = samples.last().requests;
        stats
    }

    /// Statistics are served by poll(): keep polling (messages now are past the measurement
    /// and dropped) for a few intervals at most, until a sample covers `t`.
    fn await_sample_after(&self, t: Instant) {
        let Some(iv) = self.stats_interval else {
            return;
        };
        let ctx = self.client.context();
        let deadline = Instant::now() + 3 * iv;
        while lock(&ctx.samples).last_at().is_none_or(|s| s < t) && Instant::now() < deadline {
            let _ = self.client.poll(Duration::from_millis(10));
        }
    }
}

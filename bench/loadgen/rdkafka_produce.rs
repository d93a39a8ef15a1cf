//! `--client rdkafka`, produce side: one librdkafka producer per `--producers`, fed one record
//! at a time, on a fixed schedule (open loop, `--rate`) or as fast as librdkafka's queue accepts
//! them (closed loop). librdkafka decides batching (linger.ms, batch.size), compression and
//! partitioning as it would for an application.
//!
//! Every record carries its intended send time to the delivery report. Latency = report time -
//! intended send time (a producer that falls behind its schedule is charged for it: the
//! coordinated-omission correction of the native client); service time = report time - the
//! moment librdkafka accepted the record. Reports are served by the ThreadedProducer's own
//! polling thread, which blocks in poll() and so sees each report as soon as librdkafka has it
//! (polling from the sending thread between sleeps would delay reports by up to a sleep).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientConfig, ClientContext};

use crate::batch::{random_value, Rng};
use crate::rdkafka_config::{stats_interval, Props};
use crate::rdkafka_mode::{lock, log_line, METADATA_TIMEOUT};
use crate::rdkafka_stats::{self, Samples};
use crate::stats::{Clock, Stats, Window, WorkerResult};
use crate::Args;

/// Rides with each record to its delivery report.
pub struct Sent {
    intended: Instant,
    enqueued: Instant,
}

/// Shared between the sending thread and librdkafka's callbacks (on the polling thread).
pub struct Ctx {
    /// Set when the clock starts; no record is sent before.
    window: OnceLock<Window>,
    /// acks=0 has no acknowledgement to time (librdkafka reports right after the send).
    measure_latency: bool,
    progress: Arc<AtomicU64>,
    stats: Mutex<Stats>,
    samples: Mutex<Samples>,
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        log_line("producer", level, fac, msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        lock(&self.stats).error(format!("rdkafka producer: {error}: {reason}"));
    }

    fn stats_raw(&self, json: &[u8]) {
        if let Some(c) = rdkafka_stats::parse(json, rdkafka_stats::Side::Produce) {
            lock(&self.samples).push(Instant::now(), c);
        }
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = Box<Sent>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Sent>) {
        let now = Instant::now();
        let Some(window) = self.window.get() else {
            return;
        };
        let mut st = lock(&self.stats);
        match result {
            Ok(_) => {
                st.total_records += 1;
                if window.contains(now) {
                    st.records += 1;
                }
                if self.measure_latency && window.contains(sent.intended) {
                    Stats::record_latency(&mut st.latency, now - sent.intended);
                    Stats::record_latency(&mut st.service, now - sent.enqueued);
                }
                st.finished = Some(now);
                self.progress.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => st.error(format!("produce: {e}")),
        }
    }
}

pub struct Producer {
    index: usize,
    producers: usize,
    topic: String,
    value: Vec<u8>,
    e2e: bool,
    /// Between one producer's records (open loop); None = closed loop.
    interval: Option<Duration>,
    flush_timeout: Duration,
    stats_interval: Option<Duration>,
    client: ThreadedProducer<Ctx>,
}

impl Producer {
    /// Creates the client and waits for the topic's metadata, so that connecting is not
    /// measured.
    pub fn connect(
        index: usize,
        a: &Args,
        props: &Props,
        progress: Arc<AtomicU64>,
    ) -> Result<Producer, String> {
        let mut cfg = ClientConfig::new();
        for (k, v) in props {
            cfg.set(k, v);
        }
        let ctx = Ctx {
            window: OnceLock::new(),
            measure_latency: a.acks != 0,
            progress,
            stats: Mutex::new(Stats::new()),
            samples: Mutex::new(Samples::new(Instant::now())),
        };
        let client: ThreadedProducer<Ctx> = cfg
            .create_with_context(ctx)
            .map_err(|e| format!("rdkafka producer {index}: {e}"))?;
        client
            .client()
            .fetch_metadata(Some(&a.topic), METADATA_TIMEOUT)
            .map_err(|e| format!("rdkafka producer {index}: metadata for {}: {e}", a.topic))?;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ index as u64;
        Ok(Producer {
            index,
            producers: a.producers,
            topic: a.topic.clone(),
            value: random_value(a.record_size, &mut Rng::new(seed)).collect(),
            e2e: a.e2e,
            interval: a
                .rate
                .map(|r| Duration::from_secs_f64(a.producers as f64 / r)),
            flush_timeout: Duration::from_millis(a.timeout_ms.max(0) as u64 + 30_000),
            stats_interval: stats_interval(props),
            client,
        })
    }

    /// Sends until the window ends, then waits for the outstanding delivery reports.
    pub fn run(mut self, clock: &Clock) -> WorkerResult {
        let window = clock.window;
        let ctx = self.client.context().clone();
        let _ = ctx.window.set(window);
        let now = Instant::now();
        if clock.mono_start > now {
            std::thread::sleep(clock.mono_start - now);
        }
        // Spread producers over one interval so they do not send in lockstep.
        let offset = self
            .interval
            .map(|iv| iv.mul_f64(self.index as f64 / self.producers.max(1) as f64))
            .unwrap_or_default();
        let mut fatal = None;
        let mut seq: u64 = 0;
        'records: loop {
            let scheduled = self
                .interval
                .map(|iv| clock.mono_start + offset + iv.mul_f64(seq as f64));
            if scheduled.unwrap_or_else(Instant::now) >= window.end {
                break;
            }
            if let Some(at) = scheduled {
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
            }
            loop {
                let now = Instant::now();
                // Closed loop: the window is over. Open loop: a queue that stays full long
                // after it (a stuck broker) must not keep the run alive.
                let give_up = match scheduled {
                    None => window.end,
                    Some(_) => window.end + self.flush_timeout,
                };
                if now >= give_up {
                    break 'records;
                }
                // Closed loop: a record is "intended" when librdkafka accepts it, as the
                // native client's closed loop starts the clock when a pipeline slot frees up.
                let intended = scheduled.unwrap_or(now);
                if self.e2e {
                    self.value[..8].copy_from_slice(&clock.wall_ns(intended).to_be_bytes());
                }
                let record = BaseRecord::<(), [u8], Box<Sent>>::with_opaque_to(
                    &self.topic,
                    Box::new(Sent {
                        intended,
                        enqueued: now,
                    }),
                )
                .payload(&self.value[..]);
                match self.client.send(record) {
                    Ok(()) => break,
                    // librdkafka's queue (queue.buffering.max.messages/kbytes) is full: this is
                    // the closed loop's back-pressure; the polling thread drains it.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => {
                        fatal = Some(format!("rdkafka producer {}: send: {e}", self.index));
                        break 'records;
                    }
                }
            }
            seq += 1;
        }
        if let Err(e) = self.client.flush(self.flush_timeout) {
            fatal.get_or_insert(format!("rdkafka producer {}: flush: {e}", self.index));
        }
        self.await_sample_after(window.end);
        let mut stats = std::mem::replace(&mut *lock(&ctx.stats), Stats::new());
        let samples = lock(&ctx.samples);
        let w = samples.between(window.start, window.end);
        stats.requests = w.requests;
        stats.bytes = w.bytes;
        stats.total_requests = samples.last().requests;
        match fatal {
            None => Ok(stats),
            Some(e) => Err((stats, e)),
        }
    }

    /// Waits (a few statistics intervals at most) for librdkafka's statistics to cover `t`, so
    /// that the window's end is interpolated rather than extrapolated.
    fn await_sample_after(&self, t: Instant) {
        let Some(iv) = self.stats_interval else {
            return;
        };
        let ctx = self.client.context();
        let deadline = Instant::now() + 3 * iv;
        while lock(&ctx.samples).last_at().is_none_or(|s| s < t) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

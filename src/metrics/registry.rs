//! The shard-local registry: plain `Cell` counters and `hdrhistogram` histograms.
//!
//! One [`ShardMetrics`] lives in a thread-local on every shard thread. Recording is a TLS lookup
//! plus a non-atomic add (or an HDR `record`, a few integer operations); nothing is shared between
//! shards, nothing is locked. A scrape asks each shard for a [`ShardSnapshot`] (a plain `Send`
//! struct) through `submit_to`, so reading also happens on the owning thread.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use hdrhistogram::Histogram;
use kafka_protocol::messages::ApiKey;

use super::snapshot::{HistogramSnapshot, Sample, ShardSnapshot, Value};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(Cell<u64>);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.set(self.0.get().wrapping_add(n));
    }
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(Cell<i64>);

impl Gauge {
    pub fn inc(&self) {
        self.0.set(self.0.get() + 1);
    }
    pub fn dec(&self) {
        self.0.set(self.0.get() - 1);
    }
    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

/// Fixed Prometheus bucket bounds for durations, in microseconds (rendered in seconds): 25 µs
/// to 10 s, 1-2.5-5 steps, fine around the 1 ms / 3 ms latency targets.
pub const DURATION_BUCKETS_US: &[u64] = &[
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Fixed bucket bounds for sizes in bytes: 256 B to 16 MiB in powers of 4.
pub const SIZE_BUCKETS: &[u64] = &[
    256,
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
    16 << 20,
];

/// An HDR histogram (2 significant digits: values are kept to within 1%) plus the exact sum.
///
/// The HDR histogram keeps the whole distribution at constant memory (~26 KiB); the Prometheus
/// buckets are computed from it at snapshot time, so bucket layouts can change without touching
/// the recording side, and exact quantiles stay available.
#[derive(Debug)]
pub struct LocalHistogram {
    hdr: RefCell<Histogram<u64>>,
    sum: Cell<u64>,
    buckets: &'static [u64],
    /// Rendering divisor: 1e6 for microseconds → seconds, 1 for bytes.
    scale: f64,
}

impl LocalHistogram {
    /// A histogram of values in `1..=highest` (larger values are clamped to `highest`).
    pub fn new(highest: u64, buckets: &'static [u64], scale: f64) -> LocalHistogram {
        let hdr = Histogram::new_with_bounds(1, highest.max(2), 2)
            .unwrap_or_else(|_| Histogram::new(2).unwrap_or_else(|_| unreachable!()));
        LocalHistogram {
            hdr: RefCell::new(hdr),
            sum: Cell::new(0),
            buckets,
            scale,
        }
    }

    /// A duration histogram (µs, up to one hour), rendered in seconds.
    pub fn duration() -> LocalHistogram {
        LocalHistogram::new(3_600_000_000, DURATION_BUCKETS_US, 1e6)
    }

    /// A size histogram (bytes, up to 2 GiB).
    pub fn size() -> LocalHistogram {
        LocalHistogram::new(1 << 31, SIZE_BUCKETS, 1.0)
    }

    pub fn record(&self, value: u64) {
        self.hdr.borrow_mut().saturating_record(value);
        self.sum.set(self.sum.get().wrapping_add(value));
    }

    pub fn record_since(&self, start: Instant) {
        self.record(start.elapsed().as_micros() as u64);
    }

    pub fn count(&self) -> u64 {
        self.hdr.borrow().len()
    }

    /// Cumulative bucket counts (Prometheus `le` semantics), in one pass over the HDR buckets
    /// that hold values (cost grows with distinct values, not with the histogram's range). Each
    /// HDR bucket is counted by its highest value, so a value less than 1% below a bound may be
    /// counted in the next bucket up.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let hdr = self.hdr.borrow();
        let mut counts = vec![0u64; self.buckets.len()];
        for v in hdr.iter_recorded() {
            let i = self.buckets.partition_point(|&b| b < v.value_iterated_to());
            if let Some(c) = counts.get_mut(i) {
                *c += v.count_at_value();
            }
        }
        let mut cumulative = 0;
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .zip(counts)
                .map(|(&b, c)| {
                    cumulative += c;
                    (b as f64 / self.scale, cumulative)
                })
                .collect(),
            sum: self.sum.get() as f64 / self.scale,
            count: hdr.len(),
        }
    }
}

/// Per-API request statistics, created on the first request of that API.
#[derive(Debug)]
struct ApiStats {
    requests: Counter,
    errors: Counter,
    latency: LocalHistogram,
}

/// Slot of API keys outside `0..API_SLOTS` or unknown to the protocol crate.
const API_SLOTS: usize = 128;
const UNKNOWN_API: usize = API_SLOTS;

/// Everything one shard records. Fields are public so call sites can record in one line.
#[derive(Debug)]
pub struct ShardMetrics {
    apis: RefCell<Vec<Option<Box<ApiStats>>>>,
    pub requests_in_flight: Gauge,
    pub connections_active: Gauge,
    pub connections_accepted: Counter,
    pub connections_refused: Counter,
    pub network_received_bytes: Counter,
    pub network_sent_bytes: Counter,
    pub produce_appends: Counter,
    pub produce_bytes: Counter,
    pub produce_records: Counter,
    pub produce_batch_size: LocalHistogram,
    pub append_errors: Counter,
    pub fetch_bytes: Counter,
    pub log_reads: Counter,
    pub log_read_bytes: Counter,
    pub read_errors: Counter,
    pub sync_duration: LocalHistogram,
    pub fetch_waiters_registered: Counter,
    pub fetches_cancelled: Counter,
}

impl Default for ShardMetrics {
    fn default() -> Self {
        ShardMetrics::new()
    }
}

impl ShardMetrics {
    pub fn new() -> ShardMetrics {
        ShardMetrics {
            apis: RefCell::new((0..=API_SLOTS).map(|_| None).collect()),
            requests_in_flight: Gauge::default(),
            connections_active: Gauge::default(),
            connections_accepted: Counter::default(),
            connections_refused: Counter::default(),
            network_received_bytes: Counter::default(),
            network_sent_bytes: Counter::default(),
            produce_appends: Counter::default(),
            produce_bytes: Counter::default(),
            produce_records: Counter::default(),
            produce_batch_size: LocalHistogram::size(),
            append_errors: Counter::default(),
            fetch_bytes: Counter::default(),
            log_reads: Counter::default(),
            log_read_bytes: Counter::default(),
            read_errors: Counter::default(),
            sync_duration: LocalHistogram::duration(),
            fetch_waiters_registered: Counter::default(),
            fetches_cancelled: Counter::default(),
        }
    }

    /// Records one finished request of API `api_key` (`None`: unparsable frame).
    pub fn record_request(&self, api_key: Option<i16>, micros: u64, error: bool) {
        let slot = api_slot(api_key);
        let mut apis = self.apis.borrow_mut();
        let Some(entry) = apis.get_mut(slot) else {
            return;
        };
        let stats = entry.get_or_insert_with(|| {
            Box::new(ApiStats {
                requests: Counter::default(),
                errors: Counter::default(),
                latency: LocalHistogram::duration(),
            })
        });
        stats.requests.inc();
        if error {
            stats.errors.inc();
        }
        stats.latency.record(micros);
    }

    /// Requests recorded for `api_key` so far (tests).
    pub fn requests_of(&self, api_key: i16) -> u64 {
        self.apis
            .borrow()
            .get(api_slot(Some(api_key)))
            .and_then(|s| s.as_ref())
            .map_or(0, |s| s.requests.get())
    }

    /// This registry's series, labelled with `shard`. Shard-state gauges (timer, partitions, ...)
    /// are added by the caller, which knows the shard.
    pub fn snapshot(&self, shard: usize) -> ShardSnapshot {
        let mut samples = Vec::new();
        let mut push = |name: &'static str, value: Value| {
            samples.push(Sample {
                name,
                labels: Vec::new(),
                value,
            })
        };
        let counter = |c: &Counter| Value::Counter(c.get());
        let gauge = |g: &Gauge| Value::Gauge(g.get() as f64);
        push(
            "shardlog_requests_in_flight",
            gauge(&self.requests_in_flight),
        );
        push(
            "shardlog_connections_active",
            gauge(&self.connections_active),
        );
        push(
            "shardlog_connections_accepted_total",
            counter(&self.connections_accepted),
        );
        push(
            "shardlog_connections_refused_total",
            counter(&self.connections_refused),
        );
        push(
            "shardlog_network_received_bytes_total",
            counter(&self.network_received_bytes),
        );
        push(
            "shardlog_network_sent_bytes_total",
            counter(&self.network_sent_bytes),
        );
        push(
            "shardlog_produce_appends_total",
            counter(&self.produce_appends),
        );
        push("shardlog_produce_bytes_total", counter(&self.produce_bytes));
        push(
            "shardlog_produce_records_total",
            counter(&self.produce_records),
        );
        push(
            "shardlog_produce_batch_size_bytes",
            Value::Histogram(self.produce_batch_size.snapshot()),
        );
        push("shardlog_append_errors_total", counter(&self.append_errors));
        push("shardlog_fetch_bytes_total", counter(&self.fetch_bytes));
        push("shardlog_log_reads_total", counter(&self.log_reads));
        push(
            "shardlog_log_read_bytes_total",
            counter(&self.log_read_bytes),
        );
        push("shardlog_read_errors_total", counter(&self.read_errors));
        push(
            "shardlog_log_sync_duration_seconds",
            Value::Histogram(self.sync_duration.snapshot()),
        );
        push(
            "shardlog_fetch_waiters_registered_total",
            counter(&self.fetch_waiters_registered),
        );
        push(
            "shardlog_fetches_cancelled_total",
            counter(&self.fetches_cancelled),
        );
        for (slot, stats) in self.apis.borrow().iter().enumerate() {
            let Some(stats) = stats else { continue };
            let api = api_name(slot);
            let labels = vec![("api", api.to_string())];
            samples.push(Sample {
                name: "shardlog_requests_total",
                labels: labels.clone(),
                value: counter(&stats.requests),
            });
            samples.push(Sample {
                name: "shardlog_request_errors_total",
                labels: labels.clone(),
                value: counter(&stats.errors),
            });
            samples.push(Sample {
                name: "shardlog_request_duration_seconds",
                labels,
                value: Value::Histogram(stats.latency.snapshot()),
            });
        }
        ShardSnapshot { shard, samples }
    }
}

fn api_slot(api_key: Option<i16>) -> usize {
    match api_key {
        Some(k) if (0..API_SLOTS as i16).contains(&k) && ApiKey::try_from(k).is_ok() => k as usize,
        _ => UNKNOWN_API,
    }
}

fn api_name(slot: usize) -> String {
    i16::try_from(slot)
        .ok()
        .and_then(|k| ApiKey::try_from(k).ok())
        .map_or_else(|| "unknown".to_string(), |k| format!("{k:?}"))
}

thread_local! {
    static LOCAL: ShardMetrics = ShardMetrics::new();
}

/// Runs `f` with this thread's registry. Does nothing once the thread is tearing down (a guard
/// dropped by a task destroyed at shard exit must not panic).
pub fn with<F: FnOnce(&ShardMetrics)>(f: F) {
    let _ = LOCAL.try_with(f);
}

/// Like [`with`], returning `f`'s result (`None` during thread teardown).
pub fn read<R>(f: impl FnOnce(&ShardMetrics) -> R) -> Option<R> {
    LOCAL.try_with(f).ok()
}

/// Counts one client connection while alive (`connections_active`), and its acceptance.
pub struct ConnectionGuard(());

impl ConnectionGuard {
    #[allow(clippy::new_without_default)]
    pub fn new() -> ConnectionGuard {
        with(|m| {
            m.connections_accepted.inc();
            m.connections_active.inc();
        });
        ConnectionGuard(())
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        with(|m| m.connections_active.dec());
    }
}

/// Times one request from its complete frame to the end of the response write; records when
/// dropped (so every exit path of the connection loop is counted), decrements in-flight.
pub struct RequestTimer {
    api_key: Option<i16>,
    start: Instant,
    error: bool,
}

impl RequestTimer {
    /// Starts timing a request frame (api key, version, ... without the size prefix).
    pub fn start(frame: &[u8]) -> RequestTimer {
        let api_key = frame.get(0..2).map(|b| i16::from_be_bytes([b[0], b[1]]));
        with(|m| {
            m.requests_in_flight.inc();
            m.network_received_bytes.add(frame.len() as u64 + 4);
        });
        RequestTimer {
            api_key,
            start: Instant::now(),
            error: false,
        }
    }

    /// The request was answered by closing the connection (malformed, unsupported, ...).
    pub fn failed(&mut self) {
        self.error = true;
    }

    /// `n` response bytes are being written.
    pub fn sent(&self, n: usize) {
        with(|m| m.network_sent_bytes.add(n as u64));
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        let micros = self.start.elapsed().as_micros() as u64;
        with(|m| {
            m.requests_in_flight.dec();
            m.record_request(self.api_key, micros, self.error);
        });
    }
}

//! Per-worker measurements (histograms in nanoseconds, counters) and their merge.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latencies up to an hour, 3 significant digits (1 µs resolution up to 1 ms, ~1 ms at 1 s).
pub fn new_histogram() -> Histogram<u64> {
    // 1 ns .. 1 h with 3 significant figures is always a valid configuration.
    match Histogram::new_with_bounds(1, 3_600_000_000_000, 3) {
        Ok(h) => h,
        Err(_) => unreachable_histogram(),
    }
}

#[cold]
fn unreachable_histogram() -> Histogram<u64> {
    eprintln!("error: cannot create histogram");
    std::process::exit(3)
}

/// The measurement window: only events inside [start, end) are counted.
#[derive(Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    pub fn contains(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }
    pub fn secs(&self) -> f64 {
        self.end.saturating_duration_since(self.start).as_secs_f64()
    }
}

#[derive(Clone)]
pub struct Stats {
    /// Latency measured from each request's intended send time (coordinated-omission corrected).
    pub latency: Histogram<u64>,
    /// Service time: from the moment the request was actually written.
    pub service: Histogram<u64>,
    /// Records / bytes (record batch bytes) / requests acknowledged (or fetched) in the window.
    pub records: u64,
    pub bytes: u64,
    pub requests: u64,
    /// Over the whole run, warm-up included (for syncs-per-batch ratios).
    pub total_requests: u64,
    pub total_records: u64,
    pub errors: u64,
    pub first_errors: Vec<String>,
    /// When the worker saw its last counted event (catch-up consumers stop early).
    pub finished: Option<Instant>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            latency: new_histogram(),
            service: new_histogram(),
            records: 0,
            bytes: 0,
            requests: 0,
            total_requests: 0,
            total_records: 0,
            errors: 0,
            first_errors: Vec::new(),
            finished: None,
        }
    }

    pub fn record_latency(hist: &mut Histogram<u64>, d: Duration) {
        let ns = (d.as_nanos() as u64).clamp(1, hist.high());
        // Clamped into range above, so this cannot fail.
        let _ = hist.record(ns);
    }

    pub fn error(&mut self, msg: String) {
        self.errors += 1;
        if self.first_errors.len() < 5 {
            self.first_errors.push(msg);
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        let _ = self.latency.add(&o.latency);
        let _ = self.service.add(&o.service);
        self.records += o.records;
        self.bytes += o.bytes;
        self.requests += o.requests;
        self.total_requests += o.total_requests;
        self.total_records += o.total_records;
        self.errors += o.errors;
        for e in &o.first_errors {
            if self.first_errors.len() < 5 {
                self.first_errors.push(e.clone());
            }
        }
        self.finished = match (self.finished, o.finished) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

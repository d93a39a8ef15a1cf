//! Per-worker measurements (histograms in nanoseconds, counters) and their merge.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// The run's clocks: a start slightly in the future (so workers are up before it), the measured
/// window after the warm-up, and the wall clock read together with the monotonic one so that
/// end-to-end timestamps (ns since the epoch, stamped by producers) can be derived from Instants.
#[derive(Clone, Copy)]
pub struct Clock {
    pub mono_start: Instant,
    pub wall_start: SystemTime,
    pub window: Window,
}

impl Clock {
    pub fn start(warmup_secs: f64, duration_secs: f64) -> Clock {
        let lead = Duration::from_millis(200);
        let mono_start = Instant::now() + lead;
        let wall_start = SystemTime::now() + lead;
        Clock {
            mono_start,
            wall_start,
            window: Window {
                start: mono_start + Duration::from_secs_f64(warmup_secs),
                end: mono_start + Duration::from_secs_f64(warmup_secs + duration_secs),
            },
        }
    }

    /// When consumers stop: the window's end, plus a grace period in end-to-end mode so that
    /// records stamped just before the end can still arrive and be measured.
    pub fn consume_until(&self, e2e: bool) -> Instant {
        self.window.end
            + if e2e {
                Duration::from_secs(2)
            } else {
                Duration::ZERO
            }
    }

    pub fn wall_ns(&self, t: Instant) -> u64 {
        let wall = self.wall_start + t.saturating_duration_since(self.mono_start);
        wall.duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }
}

/// Wall clock now, ns since the epoch (the consumer side of end-to-end latency).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
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

/// One worker's result: its measurements, plus the error that stopped it early, if any.
pub type WorkerResult = Result<Stats, (Stats, String)>;

/// Everything the workers of a run measured, merged.
pub struct Outcome {
    pub produce: Stats,
    pub consume: Stats,
    /// Errors that stopped a worker (the run still reports what was measured).
    pub fatal: Vec<String>,
    /// Consumers that reached their catch-up end offsets.
    pub consumers_finished: usize,
}

impl Outcome {
    pub fn new() -> Outcome {
        Outcome {
            produce: Stats::new(),
            consume: Stats::new(),
            fatal: Vec::new(),
            consumers_finished: 0,
        }
    }

    /// Merges what `JoinHandle::join` returned for a producer or consumer thread.
    pub fn add(&mut self, consumer: bool, joined: std::thread::Result<WorkerResult>) {
        let into = if consumer {
            &mut self.consume
        } else {
            &mut self.produce
        };
        match joined {
            Ok(Ok(st)) => {
                if consumer && st.finished.is_some() {
                    self.consumers_finished += 1;
                }
                into.merge(&st);
            }
            Ok(Err((st, e))) => {
                into.merge(&st);
                self.fatal.push(e);
            }
            Err(_) => self.fatal.push("a worker thread panicked".into()),
        }
    }
}

//! Results: the table on stdout, JSON, CSV (one row per run, appended), and HdrHistogram
//! percentile-distribution files for plotting.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stats::Stats;

pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
    ("p99.99", 99.99),
];

/// Latency summary in milliseconds (microsecond precision).
#[derive(Serialize, Clone, Default)]
pub struct Latency {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub p99_99_ms: f64,
    pub max_ms: f64,
}

fn ms(ns: u64) -> f64 {
    // Round to whole microseconds.
    (ns as f64 / 1000.0).round() / 1000.0
}

impl Latency {
    pub fn from(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let q = |p: f64| ms(h.value_at_percentile(p));
        Some(Latency {
            count: h.len(),
            mean_ms: (h.mean() / 1000.0).round() / 1000.0,
            p50_ms: q(50.0),
            p90_ms: q(90.0),
            p99_ms: q(99.0),
            p99_9_ms: q(99.9),
            p99_99_ms: q(99.99),
            max_ms: ms(h.max()),
        })
    }
    fn values(&self) -> [f64; 6] {
        [
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p99_9_ms,
            self.p99_99_ms,
            self.max_ms,
        ]
    }
}

#[derive(Serialize, Clone, Default)]
pub struct Side {
    pub msgs_per_sec: f64,
    /// Record-batch bytes (payload + record/batch headers, compressed size if compressed) / 10^6.
    pub mb_per_sec: f64,
    /// Produce requests (producer) or record batches (consumer) per second.
    pub batches_per_sec: f64,
    pub window_secs: f64,
    pub records: u64,
    pub bytes: u64,
    /// Whole run, warm-up included.
    pub total_batches: u64,
    pub total_records: u64,
    pub errors: u64,
    pub first_errors: Vec<String>,
    /// Produce: from each request's intended send time (coordinated-omission corrected).
    /// End-to-end (consumer side): consumer receive time minus the stamped send time.
    pub latency: Option<Latency>,
    /// Produce only: from the actual write of the request.
    pub service_time: Option<Latency>,
}

impl Side {
    pub fn from(s: &Stats, window_secs: f64, with_latency: bool) -> Side {
        let w = window_secs.max(1e-9);
        Side {
            msgs_per_sec: s.records as f64 / w,
            mb_per_sec: s.bytes as f64 / w / 1e6,
            batches_per_sec: s.requests as f64 / w,
            window_secs,
            records: s.records,
            bytes: s.bytes,
            total_batches: s.total_requests,
            total_records: s.total_records,
            errors: s.errors,
            first_errors: s.first_errors.clone(),
            latency: if with_latency {
                Latency::from(&s.latency)
            } else {
                None
            },
            service_time: if with_latency {
                Latency::from(&s.service)
            } else {
                None
            },
        }
    }
}

#[derive(Serialize)]
pub struct Report {
    pub label: String,
    pub params: serde_json::Value,
    pub versions: crate::setup::Versions,
    pub produce: Option<Side>,
    pub consume: Option<Side>,
    pub e2e: Option<Latency>,
    /// How to read this run's numbers where they differ from the defaults above (client mode).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn fmt_lat(name: &str, l: &Latency) -> String {
    let v = l.values();
    format!(
        "{name:<22} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}   (n={})",
        v[0], v[1], v[2], v[3], v[4], v[5], l.count
    )
}

pub fn print_table(r: &Report) {
    println!();
    println!(
        "{:<22} {:>12} {:>10} {:>12} {:>8}",
        "throughput", "msg/s", "MB/s", "batches/s", "errors"
    );
    for (name, side) in [("produce", &r.produce), ("consume", &r.consume)] {
        if let Some(s) = side {
            println!(
                "{name:<22} {:>12.0} {:>10.2} {:>12.0} {:>8}",
                s.msgs_per_sec, s.mb_per_sec, s.batches_per_sec, s.errors
            );
        }
    }
    let mut rows = Vec::new();
    if let Some(p) = &r.produce {
        if let Some(l) = &p.latency {
            rows.push(fmt_lat("produce latency", l));
        }
        if let Some(l) = &p.service_time {
            rows.push(fmt_lat("produce service time", l));
        }
    }
    if let Some(l) = &r.e2e {
        rows.push(fmt_lat("end-to-end latency", l));
    }
    if !rows.is_empty() {
        println!();
        print!("{:<22}", "latency (ms)");
        for (n, _) in PERCENTILES {
            print!(" {n:>9}");
        }
        println!(" {:>9}", "max");
        for row in rows {
            println!("{row}");
        }
    }
    for s in [&r.produce, &r.consume].into_iter().flatten() {
        for e in &s.first_errors {
            println!("error: {e}");
        }
    }
    if !r.notes.is_empty() {
        println!();
        for n in &r.notes {
            println!("note: {n}");
        }
    }
}

pub fn write_json(path: &Path, r: &Report) -> Result<(), String> {
    let text = serde_json::to_string_pretty(r).map_err(|e| format!("encoding JSON: {e}"))?;
    std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Appends one row; writes the header first if the file is new or empty.
pub fn append_csv(path: &Path, r: &Report) -> Result<(), String> {
    // Parameters first (they include the label), then the numbers.
    let mut cols: Vec<(String, String)> = Vec::new();
    if let serde_json::Value::Object(m) = &r.params {
        for (k, v) in m {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            cols.push((k.clone(), v));
        }
    }
    let lat_cols = |prefix: &str, l: &Option<Latency>, cols: &mut Vec<(String, String)>| {
        let names = [
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "p99_9_ms",
            "p99_99_ms",
            "max_ms",
        ];
        let vals = l.as_ref().map(|l| l.values());
        for (i, n) in names.iter().enumerate() {
            cols.push((
                format!("{prefix}_{n}"),
                vals.map(|v| format!("{:.3}", v[i])).unwrap_or_default(),
            ));
        }
    };
    for (prefix, side) in [("produce", &r.produce), ("consume", &r.consume)] {
        let s = side.clone().unwrap_or_default();
        let present = side.is_some();
        let f = |x: f64| {
            if present {
                format!("{x:.2}")
            } else {
                String::new()
            }
        };
        cols.push((format!("{prefix}_msgs_per_sec"), f(s.msgs_per_sec)));
        cols.push((format!("{prefix}_mb_per_sec"), f(s.mb_per_sec)));
        cols.push((format!("{prefix}_batches_per_sec"), f(s.batches_per_sec)));
        cols.push((
            format!("{prefix}_total_batches"),
            s.total_batches.to_string(),
        ));
        cols.push((format!("{prefix}_errors"), s.errors.to_string()));
        if prefix == "produce" {
            lat_cols("produce_latency", &s.latency, &mut cols);
            lat_cols("produce_service", &s.service_time, &mut cols);
        }
    }
    lat_cols("e2e_latency", &r.e2e, &mut cols);

    let fresh = std::fs::metadata(path)
        .map(|m| m.len() == 0)
        .unwrap_or(true);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    let esc = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut text = String::new();
    if fresh {
        text += &cols
            .iter()
            .map(|(k, _)| esc(k))
            .collect::<Vec<_>>()
            .join(",");
        text.push('\n');
    }
    text += &cols
        .iter()
        .map(|(_, v)| esc(v))
        .collect::<Vec<_>>()
        .join(",");
    text.push('\n');
    f.write_all(text.as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// HdrHistogram's classic percentile-distribution text (values in ms), the format
/// `shardlog-bench --plot-hgrm` and HdrHistogram's online plotter read. Rows: see
/// `curves::rows` (quantile steps plus the table's percentiles).
pub fn write_hgrm(path: &Path, h: &Histogram<u64>) -> Result<(), String> {
    let mut text = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    for r in crate::curves::rows(h) {
        let inv = if r.quantile < 1.0 {
            format!("{:>14.2}", 1.0 / (1.0 - r.quantile))
        } else {
            format!("{:>14}", "inf")
        };
        text += &format!(
            "{:>12.3} {:>14.12} {:>10} {inv}\n",
            r.value_ns as f64 / 1e6,
            r.quantile,
            r.count
        );
    }
    text += &format!(
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]\n#[Max     = {:>12.3}, Total count    = {:>12}]\n",
        h.mean() / 1e6,
        h.stdev() / 1e6,
        h.max() as f64 / 1e6,
        h.len()
    );
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

//! Latency curves for the percentile chart: (percentile, ms) points taken from a live histogram
//! or read back from an .hgrm file. Both come from the same rows (`rows`, which
//! `report::write_hgrm` writes), so a run's chart and one redrawn later from its files agree. Also the chart's "nines" x axis: x = 1 / (1 - quantile), so 90% is 10, 99% is 100.
//!
//! No plotting library here: compiled and tested in every build; drawn only with png-plot.
#![cfg_attr(not(feature = "png-plot"), allow(dead_code))]

use std::path::Path;

use hdrhistogram::Histogram;

/// Quantile steps per halving of the remaining distance to 100% (HdrHistogram's convention for
/// percentile distributions; also what `report::write_hgrm` uses).
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// 0 <= quantile < 1 (the 100% point has no place on a "nines" axis and is dropped).
    pub quantile: f64,
    pub ms: f64,
}

/// One row of a percentile distribution: `quantile` of the samples are <= `value_ns`
/// (`count` of them).
pub struct Row {
    pub value_ns: u64,
    pub quantile: f64,
    pub count: u64,
}

/// Percentiles that get a row of their own besides the quantile steps, so that an .hgrm file
/// (and a legend read from it) carries the table's exact values.
const EXACT: [f64; 5] = [50.0, 90.0, 99.0, 99.9, 99.99];

/// The rows of a histogram's percentile distribution: HdrHistogram's quantile steps (5 per
/// halving of the distance to 100%, the last one 100%), plus EXACT's percentiles up to the
/// last step below 100% (further ones would only repeat the maximum).
pub fn rows(h: &Histogram<u64>) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut total = 0;
    for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += v.count_since_last_iteration();
        rows.push(Row {
            value_ns: v.value_iterated_to(),
            quantile: v.quantile_iterated_to(),
            count: total,
        });
    }
    let last_step = rows
        .iter()
        .map(|r| r.quantile)
        .filter(|q| *q < 1.0)
        .fold(0.0, f64::max);
    for pct in EXACT {
        let quantile = pct / 100.0;
        if quantile <= last_step {
            let value_ns = h.value_at_percentile(pct);
            let count = h.count_between(0, value_ns);
            rows.push(Row {
                value_ns,
                quantile,
                count,
            });
        }
    }
    // Stable: a step that lands exactly on an EXACT percentile stays first and the copy goes.
    rows.sort_by(|a, b| a.quantile.total_cmp(&b.quantile));
    rows.dedup_by(|later, first| later.quantile == first.quantile);
    rows
}

/// The percentiles the legend names.
const MARKS: [(&str, f64); 3] = [("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9)];

#[derive(Clone, Debug)]
pub struct Curve {
    pub label: String,
    pub points: Vec<Point>,
    /// MARKS' values in ms, as in the table: from a histogram directly, from a file its rows
    /// for those percentiles (see `rows`).
    marks: [Option<f64>; 3],
}

impl Curve {
    pub fn from_histogram(label: &str, h: &Histogram<u64>) -> Curve {
        let points = rows(h)
            .iter()
            .map(|r| Point {
                quantile: r.quantile,
                ms: r.value_ns as f64 / 1e6,
            })
            .filter(|p| p.quantile < 1.0)
            .collect();
        let marks =
            MARKS.map(|(_, pct)| (!h.is_empty()).then(|| h.value_at_percentile(pct) as f64 / 1e6));
        Curve {
            label: label.to_string(),
            points,
            marks,
        }
    }

    /// A curve from points alone (legend values read off the points).
    pub fn from_points(label: &str, points: Vec<Point>) -> Curve {
        let at = |pct: f64| {
            points
                .iter()
                .find(|p| p.quantile >= pct / 100.0)
                .map(|p| p.ms)
        };
        let marks = MARKS.map(|(_, pct)| at(pct));
        Curve {
            label: label.to_string(),
            points,
            marks,
        }
    }

    /// Parses HdrHistogram's percentile-distribution text (`Value Percentile TotalCount
    /// 1/(1-Percentile)` rows, values in ms; headers and `#[...]` footers are skipped).
    pub fn from_hgrm_text(label: &str, text: &str) -> Result<Curve, String> {
        let mut points = Vec::new();
        for line in text.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() != 4 || line.starts_with('#') {
                continue;
            }
            let (Ok(ms), Ok(quantile)) = (cols[0].parse::<f64>(), cols[1].parse::<f64>()) else {
                continue; // the column header
            };
            if (0.0..1.0).contains(&quantile) && ms.is_finite() {
                points.push(Point { quantile, ms });
            }
        }
        if points.is_empty() {
            return Err(format!("{label}: no percentile rows (not an .hgrm file?)"));
        }
        Ok(Curve::from_points(label, points))
    }

    /// Reads an .hgrm file; the label is the file name without `.hgrm`.
    pub fn read_hgrm(path: &Path) -> Result<Curve, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let label = name.strip_suffix(".hgrm").unwrap_or(&name);
        Curve::from_hgrm_text(label, &text)
    }

    /// The legend text: the label plus the percentiles people look for first.
    pub fn legend(&self) -> String {
        let mut parts = Vec::new();
        for ((name, _), v) in MARKS.iter().zip(self.marks) {
            if let Some(v) = v {
                parts.push(format!("{name} {}", short_ms(v)));
            }
        }
        if parts.is_empty() {
            self.label.clone()
        } else {
            format!("{} ({} ms)", self.label, parts.join(", "))
        }
    }
}

/// Three significant digits, without trailing noise: 0.312, 12.4, 188.
pub fn short_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Position on the "nines" axis.
pub fn nines_x(quantile: f64) -> f64 {
    1.0 / (1.0 - quantile)
}

/// Axis label for a position on the "nines" axis: 1 -> "0%", 2 -> "50%", 10 -> "90%",
/// 1000 -> "99.9%".
pub fn nines_label(x: f64) -> String {
    if x <= 1.0 {
        return "0%".into();
    }
    let pct = 100.0 * (1.0 - 1.0 / x);
    // Digits after the point: as many as there are nines past 99 (99.9% -> 1).
    let decimals = (x.log10().round() as i32 - 2).max(0) as usize;
    format!("{pct:.decimals$}%")
}

/// The x range to draw: from 0% to the next power of ten past the curves' last point, at
/// least 99.9% so that short runs still show a tail.
pub fn x_max(curves: &[Curve]) -> f64 {
    let last = curves
        .iter()
        .filter_map(|c| c.points.last())
        .map(|p| nines_x(p.quantile))
        .fold(1.0, f64::max);
    // (A hair of tolerance: 1 / (1 - 0.999) is 1000.0000000000009 in floating point.)
    10f64.powi(((last.log10() - 1e-9).ceil() as i32).clamp(3, 9))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    fn histogram() -> Histogram<u64> {
        let mut h = new_histogram();
        // 1..=10_000 µs, uniform.
        for us in 1..=10_000u64 {
            let _ = h.record(us * 1000);
        }
        h
    }

    #[test]
    fn hgrm_file_gives_the_same_curve_as_the_histogram() {
        let h = histogram();
        let live = Curve::from_histogram("x", &h);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run-produce.hgrm");
        crate::report::write_hgrm(&path, &h).expect("write hgrm");
        let read = Curve::read_hgrm(&path).expect("read hgrm");
        assert_eq!(read.label, "run-produce");
        assert_eq!(read.points.len(), live.points.len());
        for (a, b) in live.points.iter().zip(&read.points) {
            assert!((a.quantile - b.quantile).abs() < 1e-9, "{a:?} vs {b:?}");
            // The file keeps ms with 3 decimals (µs).
            assert!((a.ms - b.ms).abs() <= 0.0005 + 1e-9, "{a:?} vs {b:?}");
        }
        // Exact percentiles slot in between the steps: still monotone.
        for w in live.points.windows(2) {
            assert!(w[0].quantile < w[1].quantile && w[0].ms <= w[1].ms, "{w:?}");
        }
        // The legend read back from the file gives the table's values.
        for ((_, pct), (exact, from_file)) in MARKS.iter().zip(live.marks.iter().zip(read.marks)) {
            let (exact, from_file) = (exact.expect("exact"), from_file.expect("from file"));
            assert!(
                (from_file - exact).abs() <= 0.0005 + 1e-9,
                "p{pct}: {exact} vs {from_file}"
            );
            assert!(
                live.points.iter().any(|p| p.quantile == pct / 100.0),
                "p{pct} row"
            );
        }
    }

    #[test]
    fn not_an_hgrm_file_is_an_error() {
        assert!(Curve::from_hgrm_text("x", "hello\nworld 1 2\n").is_err());
    }

    #[test]
    fn nines_axis() {
        assert_eq!(nines_x(0.0), 1.0);
        assert!((nines_x(0.99) - 100.0).abs() < 1e-9);
        assert_eq!(nines_label(1.0), "0%");
        assert_eq!(nines_label(2.0), "50%");
        assert_eq!(nines_label(10.0), "90%");
        assert_eq!(nines_label(100.0), "99%");
        assert_eq!(nines_label(1000.0), "99.9%");
        assert_eq!(nines_label(100_000.0), "99.999%");
        let c = Curve::from_histogram("x", &histogram());
        // 10,000 samples reach (just below) 99.99%: the axis ends there.
        let last = c.points.last().expect("points").quantile;
        assert!((0.999..0.9999 + 1e-12).contains(&last), "{last}");
        assert_eq!(x_max(&[c]), 10_000.0);
        let point = |quantile| Point { quantile, ms: 1.0 };
        let curve = |q| Curve::from_points("", vec![point(0.0), point(q)]);
        assert_eq!(x_max(&[curve(0.999)]), 1000.0);
        assert_eq!(x_max(&[curve(0.9991)]), 10_000.0);
        assert_eq!(x_max(&[]), 1000.0);
    }

    #[test]
    fn legend_has_the_main_percentiles() {
        let c = Curve::from_histogram("produce latency", &histogram());
        // The same values as the table (HdrHistogram's value_at_percentile), 3 digits.
        let l = c.legend();
        assert_eq!(l, "produce latency (p50 5.00, p99 9.90, p99.9 9.99 ms)");
        assert_eq!(short_ms(0.3124), "0.312");
        assert_eq!(short_ms(188.04), "188");
    }
}

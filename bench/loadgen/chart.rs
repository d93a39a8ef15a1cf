//! The latency-by-percentile chart as PNG: "nines" on a log x axis (0%, 90%, 99%, 99.9%, ...),
//! latency in ms on a log y axis (a run's median and its tail often differ by 100-1000x, and a
//! linear axis would flatten everything below p99 into the floor).
//!
//! Drawn with plotters into an RGB buffer and encoded with the png crate. Text uses a font
//! embedded in the binary (DejaVu Sans, ASCII subset, bench/loadgen/fonts/), so nothing is read
//! from the system at run time: no fontconfig, no font files.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use plotters::prelude::*;

use crate::curves::{nines_label, nines_x, x_max, Curve};

const FONT: &[u8] = include_bytes!("fonts/DejaVuSans-ASCII.ttf");
const FAMILY: &str = "sans-serif";
const SIZE: (u32, u32) = (1100, 640);
/// Distinct on white and for the common kinds of color blindness (Okabe-Ito).
const COLORS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// Writes `curves` as a PNG chart to `path`.
pub fn write_png(path: &Path, title: &str, curves: &[Curve]) -> Result<(), String> {
    let rgb = render(title, curves)?;
    let file = File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), SIZE.0, SIZE.1);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let err = |e: png::EncodingError| format!("writing {}: {e}", path.display());
    let mut writer = encoder.write_header().map_err(err)?;
    writer.write_image_data(&rgb).map_err(err)?;
    writer.finish().map_err(err)
}

/// Draws the chart into an RGB8 buffer of SIZE.
fn render(title: &str, curves: &[Curve]) -> Result<Vec<u8>, String> {
    if curves.iter().all(|c| c.points.is_empty()) {
        return Err("nothing to plot: no latency was measured".into());
    }
    plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
        .map_err(|_| "the embedded chart font cannot be parsed".to_string())?;
    let e = |e: DrawingAreaErrorKind<_>| format!("drawing the chart: {e}");

    let (x_hi, (y_lo, y_hi)) = (x_max(curves), y_range(curves));
    let mut x_keys = vec![1.0, 2.0];
    x_keys.extend(
        (1..)
            .map(|i| 10f64.powi(i))
            .take_while(|x| *x <= x_hi * 1.001),
    );
    let (y_keys, y_light) = y_ticks(y_lo, y_hi);

    let mut rgb = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 20))
            .margin(18)
            // Room for the last x label ("99.999%"), centred on the right edge.
            .margin_right(45)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (1f64..x_hi).log_scale().with_key_points(x_keys),
                (y_lo..y_hi)
                    .log_scale()
                    .with_key_points(y_keys)
                    .with_light_points(y_light),
            )
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms, log scale)")
            .x_label_formatter(&|x| nines_label(*x))
            .y_label_formatter(&|y| format!("{y}"))
            .label_style((FAMILY, 16))
            .axis_desc_style((FAMILY, 16))
            .draw()
            .map_err(e)?;
        for (i, c) in curves.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let style = color.stroke_width(2);
            let points = c
                .points
                .iter()
                .map(|p| (nines_x(p.quantile), p.ms.clamp(y_lo, y_hi)));
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(e)?
                .label(c.legend())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], style));
        }
        chart
            .configure_series_labels()
            // Latency curves rise to the right: the lower right is where they are least.
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FAMILY, 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    Ok(rgb)
}

/// The y range: the 1-2-5 steps just around all the points (1 µs at the least: the
/// histograms' resolution).
fn y_range(curves: &[Curve]) -> (f64, f64) {
    let values = curves.iter().flat_map(|c| c.points.iter().map(|p| p.ms));
    let (lo, hi) = values.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = (lo.max(0.001), hi.max(0.001));
    let all = steps(lo, hi);
    let below = all.iter().rev().find(|v| **v <= lo).copied().unwrap_or(lo);
    let above = all.iter().find(|v| **v >= hi).copied().unwrap_or(hi);
    if above > below {
        (below, above)
    } else {
        (below, below * 2.0)
    }
}

/// Labelled ticks (decades, or every 1-2-5 step when the range spans less than two decades)
/// and light grid lines (the other steps).
fn y_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let within: Vec<f64> = steps(lo, hi)
        .into_iter()
        .filter(|v| *v >= lo * 0.999 && *v <= hi * 1.001)
        .collect();
    let decades: Vec<f64> = within
        .iter()
        .copied()
        .filter(|v| (v.log10() - v.log10().round()).abs() < 1e-9)
        .collect();
    if decades.len() >= 3 {
        let light = within
            .into_iter()
            .filter(|v| !decades.contains(v))
            .collect();
        (decades, light)
    } else {
        (within, Vec::new())
    }
}

/// 1, 2, 5 x 10^k from the decade below `lo` to the decade above `hi`, parsed from text rather
/// than computed so that they print as "0.002", not "0.0020000000000000005".
fn steps(lo: f64, hi: f64) -> Vec<f64> {
    let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    (a..=b)
        .flat_map(|e| [1, 2, 5].map(|m| format!("{m}e{e}").parse().unwrap_or(0.0)))
        .filter(|v: &f64| *v > 0.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curves::Point;

    fn curve(label: &str, scale: f64) -> Curve {
        let points = (0..40)
            .map(|i| {
                let quantile = 1.0 - 0.5f64.powf(i as f64 / 3.0);
                Point {
                    quantile,
                    ms: scale * (1.0 + 30.0 * quantile.powi(8)),
                }
            })
            .collect();
        Curve::from_points(label, points)
    }

    #[test]
    fn writes_a_png_with_text_and_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chart.png");
        let curves = [curve("shardlog", 0.3), curve("kafka", 0.5)];
        write_png(&path, "produce latency, acks=1", &curves).expect("write");

        let decoder = png::Decoder::new(std::io::BufReader::new(
            File::open(&path).expect("open png"),
        ));
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("png data");
        assert_eq!((info.width, info.height), SIZE);
        let px = |x: u32, y: u32| {
            let i = (y * SIZE.0 + x) as usize * 3;
            (buf[i], buf[i + 1], buf[i + 2])
        };
        // The title (centred, top rows) was rendered: the embedded font works.
        let title_ink = (0..40)
            .flat_map(|y| (SIZE.0 / 3..2 * SIZE.0 / 3).map(move |x| (x, y)))
            .filter(|&(x, y)| px(x, y).0 < 128)
            .count();
        assert!(title_ink > 100, "no title text: {title_ink} dark pixels");
        // Both series colors appear.
        for c in &COLORS[..2] {
            let n = (0..SIZE.1)
                .flat_map(|y| (0..SIZE.0).map(move |x| (x, y)))
                .filter(|&(x, y)| px(x, y) == (c.0, c.1, c.2))
                .count();
            assert!(n > 200, "color {c:?} drawn on {n} pixels");
        }
    }

    #[test]
    fn nothing_to_plot_is_an_error() {
        let empty = Curve::from_points("x", vec![]);
        assert!(render("t", &[empty]).is_err());
    }

    #[test]
    fn y_axis_snaps_to_1_2_5_steps() {
        // curve("a", 0.3) spans 0.3 .. 9.3 ms.
        assert_eq!(y_range(&[curve("a", 0.3)]), (0.2, 10.0));
        assert_eq!(y_range(&[curve("a", 100.0)]), (100.0, 5000.0));
        // Two decades or more: decades labelled, the rest light.
        let (keys, light) = y_ticks(0.2, 10.0);
        assert_eq!(keys, vec![0.2, 0.5, 1.0, 2.0, 5.0, 10.0]);
        assert!(light.is_empty());
        let (keys, light) = y_ticks(0.002, 50.0);
        assert_eq!(keys, vec![0.01, 0.1, 1.0, 10.0]);
        assert_eq!(light.first().map(|v| format!("{v}")), Some("0.002".into()));
        assert_eq!(light.last().copied(), Some(50.0));
    }
}

//! Stand-in for chart.rs in builds without the png-plot feature (plotters is not compiled).
//! `validate` already refuses `--png` there; this keeps main.rs free of cfg attributes.

use std::path::Path;

use crate::curves::Curve;

pub fn write_png(_path: &Path, _title: &str, _curves: &[Curve]) -> Result<(), String> {
    Err(crate::NO_PNG.into())
}

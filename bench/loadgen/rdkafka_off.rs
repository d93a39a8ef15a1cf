//! Stand-in for rdkafka_mode.rs in builds without the rdkafka-client feature (librdkafka is not
//! compiled). `validate` already refuses `--client rdkafka` there; this keeps main.rs free of
//! cfg attributes.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::consume::Assignment;
use crate::stats::{Clock, Outcome};
use crate::Args;

/// Uninhabited: without librdkafka there are never clients to run.
pub enum Clients {}

pub fn connect(
    _a: &Args,
    _assignments: Vec<(String, Assignment)>,
    _produced: &Arc<AtomicU64>,
) -> Result<Clients, String> {
    Err(crate::NO_RDKAFKA.into())
}

pub fn run(clients: Clients, _clock: &Clock, _consumed: &AtomicU64) -> Outcome {
    match clients {}
}

pub fn notes(_a: &Args) -> Vec<String> {
    Vec::new()
}

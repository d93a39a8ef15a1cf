//! Per-shard metrics, exposed as Prometheus text on `metrics.listen` (`--metrics-listen`).
//!
//! - [`registry`]: one [`ShardMetrics`] per shard thread, `Cell` counters and `hdrhistogram`
//!   histograms; recording never touches an atomic or another shard's memory.
//! - [`snapshot`]: the metric catalogue ([`METRICS`], from which README's reference is generated),
//!   the `Send` snapshot a shard hands to the scraper, and the text rendering.
//! - [`endpoint`]: the HTTP responder on shard 0, which gathers every shard's snapshot with
//!   `submit_to` at scrape time.
//!
//! Histograms are exported as Prometheus *histograms* with fixed buckets, not summaries: bucket
//! counts add up across shards and brokers (`sum by (le)`) and `rate()` over them gives quantiles
//! of a recent window (`histogram_quantile(0.99, rate(..[1m]))`), whereas a summary's quantiles
//! can be neither aggregated across shards nor windowed unless the broker keeps decaying
//! windows. The HDR histogram underneath keeps the full distribution, so the bucket layout can
//! change without touching the recording side.
//!
//! Recording happens whether or not the endpoint is enabled: per request it is two clock reads,
//! one HDR record and a few `Cell` adds (~60 ns per request; README, Metrics, has the numbers).

pub mod endpoint;
pub mod registry;
pub mod snapshot;

pub use registry::{read, with, ConnectionGuard, RequestTimer, ShardMetrics};
pub use snapshot::{markdown_reference, render, ShardSnapshot, METRICS};

#[cfg(test)]
mod tests;

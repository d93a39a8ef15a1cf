//! This shard's part of a metrics scrape: its registry (`crate::metrics`) plus gauges read from
//! the shard's own state. Handed to `metrics::endpoint` as a function, so metrics never calls up
//! into the shard layer.

use crate::metrics::registry;
use crate::metrics::snapshot::{ShardSnapshot, Value};
use crate::runtime;

/// This shard's snapshot: its registry plus gauges read from the shard's state.
pub fn local_snapshot() -> ShardSnapshot {
    let id = runtime::shard_id();
    let mut snap = registry::read(|m| m.snapshot(id)).unwrap_or(ShardSnapshot {
        shard: id,
        samples: Vec::new(),
    });
    let shard = super::current();
    let partitions = shard.partitions();
    snap.push("shardlog_partitions", Value::Gauge(partitions.len() as f64));
    snap.push(
        "shardlog_log_size_bytes",
        Value::Gauge(partitions.iter().map(|p| p.log().size_bytes()).sum::<u64>() as f64),
    );
    let files = runtime::file_cache::stats();
    snap.push("shardlog_log_open_files", Value::Gauge(files.open as f64));
    snap.push(
        "shardlog_log_open_files_max",
        Value::Gauge(files.budget as f64),
    );
    snap.push(
        "shardlog_log_file_opens_total",
        Value::Counter(files.opened),
    );
    snap.push(
        "shardlog_log_file_evictions_total",
        Value::Counter(files.evicted),
    );
    snap.push(
        "shardlog_timer_tasks",
        Value::Gauge(shard.timer.len() as f64),
    );
    snap.push(
        "shardlog_fetch_waiters",
        Value::Gauge(shard.waiters.pending_waiters() as f64),
    );
    snap.push(
        "shardlog_log_syncs_total",
        Value::Counter(shard.waiters.syncs.get()),
    );
    snap.push(
        "shardlog_acks_all_appends_total",
        Value::Counter(shard.waiters.acks_all_appends.get()),
    );
    let mesh = runtime::mesh_stats();
    snap.push(
        "shardlog_cross_shard_calls_total",
        Value::Counter(mesh.calls_sent),
    );
    snap.push(
        "shardlog_cross_shard_calls_in_flight",
        Value::Gauge(mesh.calls_in_flight as f64),
    );
    snap.push(
        "shardlog_cross_shard_jobs_total",
        Value::Counter(mesh.jobs_received),
    );
    snap.push(
        "shardlog_cross_shard_jobs_running",
        Value::Gauge(mesh.jobs_running as f64),
    );
    snap
}

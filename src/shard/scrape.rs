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
    if id == 0 {
        cluster_gauges(&shard, &mut snap);
    }
    snap
}

/// The cluster's gauges, from this node's metadata image: the controller's view (counted on the
/// active controller only, as Kafka does, so a sum over the cluster counts each once) and the
/// partitions this node leads.
fn cluster_gauges(shard: &super::Shard, snap: &mut ShardSnapshot) {
    let me = shard.config.node_id();
    let active = shard.quorum_leader() == Some(me);
    let default_min_isr = shard.config.int("min.insync.replicas");
    let (fenced, brokers, offline, under_replicated, under_min_isr) = shard.with_image(|i| {
        let fenced = i.brokers().filter(|b| b.fenced).count();
        let brokers = i.brokers().count() - fenced;
        let mut offline = 0;
        let mut under_replicated = 0;
        let mut under_min_isr = 0;
        for t in i.topics() {
            let min_isr = t
                .configs
                .get("min.insync.replicas")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(default_min_isr);
            for p in &t.partitions {
                offline += usize::from(p.leader < 0);
                if p.leader == me {
                    under_replicated += usize::from(p.isr.len() < p.replicas.len());
                    under_min_isr += usize::from((p.isr.len() as i64) < min_isr);
                }
            }
        }
        (fenced, brokers, offline, under_replicated, under_min_isr)
    });
    let controller_only = |n: usize| Value::Gauge(if active { n as f64 } else { 0.0 });
    snap.push(
        "shardlog_active_controller",
        Value::Gauge(f64::from(u8::from(active))),
    );
    snap.push("shardlog_fenced_brokers", controller_only(fenced));
    snap.push("shardlog_active_brokers", controller_only(brokers));
    snap.push("shardlog_offline_partitions", controller_only(offline));
    snap.push(
        "shardlog_under_replicated_partitions",
        Value::Gauge(under_replicated as f64),
    );
    snap.push(
        "shardlog_under_min_isr_partitions",
        Value::Gauge(under_min_isr as f64),
    );
}

//! What a shard sends to the scraper, the metric catalogue, and the Prometheus text rendering.
//!
//! Rendering follows the text exposition format 0.0.4: each family once, `# HELP` and `# TYPE`
//! first, then every shard's samples of that family with a `shard="N"` label. Families come from
//! [`METRICS`] (which README's metrics reference is generated from), so a sample whose name is
//! not declared there is never rendered — a unit test checks that none is dropped.

use std::fmt::Write as _;

/// A Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One declared metric family.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: Kind,
    /// Labels besides `shard`.
    pub labels: &'static str,
    pub help: &'static str,
}

const fn m(name: &'static str, kind: Kind, labels: &'static str, help: &'static str) -> MetricDef {
    MetricDef {
        name,
        kind,
        labels,
        help,
    }
}

use Kind::{Counter as C, Gauge as G, Histogram as H};

/// Every metric the broker exports, in rendering order. Each has a `shard` label.
pub const METRICS: &[MetricDef] = &[
    m("shardlog_requests_total", C, "api", "Kafka requests received on connections this shard accepted, by API (`unknown`: unparsable frame or unknown API key)."),
    m("shardlog_request_errors_total", C, "api", "Requests answered by closing the connection: malformed body, unsupported API or version, response encoding failure. (Per-partition errors inside a valid response are counted by `shardlog_append_errors_total` / `shardlog_read_errors_total`.)"),
    m("shardlog_request_duration_seconds", H, "api", "Time from a complete request frame to its response written to the socket (acks=0 produce: to the end of the append), by API."),
    m("shardlog_requests_in_flight", G, "", "Requests being handled on this shard's connections (at most one per connection: responses keep request order)."),
    m("shardlog_connections_active", G, "", "Open Kafka client connections on this shard."),
    m("shardlog_connections_accepted_total", C, "", "Kafka client connections this shard has accepted."),
    m("shardlog_connections_refused_total", C, "", "Connections this shard accepted and closed at once: over max.connections, max.connections or max.connections.per.ip (or its override)."),
    m("shardlog_network_received_bytes_total", C, "", "Request bytes read from clients, size prefixes included."),
    m("shardlog_network_sent_bytes_total", C, "", "Response bytes written to clients."),
    m("shardlog_produce_appends_total", C, "", "Partition appends run on this shard, the partition's owner (one per partition per Produce request)."),
    m("shardlog_produce_bytes_total", C, "", "Record-batch bytes appended to partitions this shard owns (bytes in; idempotent retries of batches already in the log excluded)."),
    m("shardlog_produce_records_total", C, "", "Records appended to partitions this shard owns."),
    m("shardlog_produce_batch_size_bytes", H, "", "Size of the records of one partition in one Produce request, as appended by the owning shard."),
    m("shardlog_append_errors_total", C, "", "Partition appends on this shard that failed (corrupt or oversized batch, sequence error, storage error, unknown partition)."),
    m("shardlog_acks_all_appends_total", C, "", "acks=-1 partition appends on this shard that waited for fdatasync."),
    m("shardlog_log_syncs_total", C, "", "fdatasync rounds on this shard's partitions (group commit: compare with `shardlog_acks_all_appends_total`; includes flush.ms / flush.messages syncs)."),
    m("shardlog_log_sync_duration_seconds", H, "", "Duration of one fdatasync round of a partition (all its dirty segments, plus the directory after a roll)."),
    m("shardlog_fetch_bytes_total", C, "", "Record bytes returned in Fetch responses on this shard's connections (bytes out)."),
    m("shardlog_log_reads_total", C, "", "Partition reads on this shard, the owner (a long-poll Fetch reads again on every wake-up)."),
    m("shardlog_log_read_bytes_total", C, "", "Record bytes read from partitions this shard owns (before the Fetch response size limit is applied)."),
    m("shardlog_read_errors_total", C, "", "Partition reads on this shard that failed (offset out of range, storage error, unknown partition)."),
    m("shardlog_fetch_waiters_registered_total", C, "", "Long-poll Fetch waiters registered on this shard's partitions (fetches that found too little data and waited for an append)."),
    m("shardlog_fetches_cancelled_total", C, "", "Fetches dropped while they waited (long poll) because their client closed the connection."),
    m("shardlog_fetch_waiters", G, "", "Long-poll Fetch waiters currently registered on this shard's partitions."),
    m("shardlog_log_open_files", G, "", "Segment log files this shard holds open (opened on demand, least recently used closed past `shardlog_log_open_files_max`)."),
    m("shardlog_log_open_files_max", G, "", "This shard's share of `log.open.files.max`."),
    m("shardlog_log_file_opens_total", C, "", "Segment log files this shard opened (created, or reopened after the descriptor cache closed them)."),
    m("shardlog_log_file_evictions_total", C, "", "Segment log files this shard closed to stay within `shardlog_log_open_files_max`; a high rate means partitions in use do not fit and reopen often."),
    m("shardlog_timer_tasks", G, "", "Pending tasks on this shard's timing wheel (fetch deadlines, group session and rebalance timeouts)."),
    m("shardlog_partitions", G, "", "Partitions this shard owns (including those of `__consumer_offsets`)."),
    m("shardlog_log_size_bytes", G, "", "Total segment bytes of the partitions this shard owns."),
    m("shardlog_cross_shard_calls_total", C, "", "Calls this shard sent to other shards (`submit_to`: partition operations on their owners, metadata broadcasts, scrapes)."),
    m("shardlog_cross_shard_calls_in_flight", G, "", "Calls this shard sent to other shards and is still awaiting (queued on a link or running there)."),
    m("shardlog_cross_shard_jobs_total", C, "", "Calls other shards sent to this shard."),
    m("shardlog_active_controller", G, "", "1 on the node leading the metadata quorum (the active controller), else 0 (Kafka's ActiveControllerCount). Shard 0 only."),
    m("shardlog_fenced_brokers", G, "", "Registered brokers the controller has fenced (Kafka's FencedBrokerCount); reported by the active controller, 0 elsewhere. Shard 0 only."),
    m("shardlog_active_brokers", G, "", "Registered, unfenced brokers (Kafka's ActiveBrokerCount); reported by the active controller, 0 elsewhere. Shard 0 only."),
    m("shardlog_offline_partitions", G, "", "Partitions without a leader (Kafka's OfflinePartitionsCount); reported by the active controller, 0 elsewhere. Shard 0 only."),
    m("shardlog_under_replicated_partitions", G, "", "Partitions this node leads whose ISR is smaller than their replica set (Kafka's UnderReplicatedPartitions). Shard 0 only."),
    m("shardlog_under_min_isr_partitions", G, "", "Partitions this node leads whose ISR is smaller than their min.insync.replicas (Kafka's UnderMinIsrPartitionCount). Shard 0 only."),
    m("shardlog_cross_shard_jobs_running", G, "", "Calls from other shards running on this shard now (including ones waiting on I/O such as an acks=-1 sync): this shard's cross-shard queue depth. A scrape's own call shows here on shards other than 0."),
];

/// A histogram's cumulative buckets `(le, count of values <= le)`, sum and count.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(HistogramSnapshot),
}

/// One series of one shard (without the `shard` label, which the renderer adds).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: Value,
}

/// Everything one shard reports; plain data, `Send`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardSnapshot {
    pub shard: usize,
    pub samples: Vec<Sample>,
}

impl ShardSnapshot {
    pub fn push(&mut self, name: &'static str, value: Value) {
        self.samples.push(Sample {
            name,
            labels: Vec::new(),
            value,
        });
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes HELP text (backslash, newline).
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as Prometheus writes it (`+Inf`, `NaN`; integers without a fraction).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn label_set(shard: usize, labels: &[(&str, String)], extra: Option<(&str, &str)>) -> String {
    let mut out = format!("{{shard=\"{shard}\"");
    for (k, v) in labels {
        let _ = write!(out, ",{k}=\"{}\"", escape(v));
    }
    if let Some((k, v)) = extra {
        let _ = write!(out, ",{k}=\"{}\"", escape(v));
    }
    out.push('}');
    out
}

/// Renders shard snapshots as Prometheus text (exposition format 0.0.4).
pub fn render(snapshots: &[ShardSnapshot]) -> String {
    let mut out = String::with_capacity(16 * 1024);
    for def in METRICS {
        let _ = writeln!(out, "# HELP {} {}", def.name, escape_help(def.help));
        let _ = writeln!(out, "# TYPE {} {}", def.name, def.kind.as_str());
        for snap in snapshots {
            for s in snap.samples.iter().filter(|s| s.name == def.name) {
                render_sample(&mut out, snap.shard, s);
            }
        }
    }
    out
}

fn render_sample(out: &mut String, shard: usize, s: &Sample) {
    match &s.value {
        Value::Counter(v) => {
            let _ = writeln!(out, "{}{} {v}", s.name, label_set(shard, &s.labels, None));
        }
        Value::Gauge(v) => {
            let _ = writeln!(
                out,
                "{}{} {}",
                s.name,
                label_set(shard, &s.labels, None),
                number(*v)
            );
        }
        Value::Histogram(h) => {
            for (le, count) in &h.buckets {
                let le = number(*le);
                let _ = writeln!(
                    out,
                    "{}_bucket{} {count}",
                    s.name,
                    label_set(shard, &s.labels, Some(("le", &le)))
                );
            }
            let _ = writeln!(
                out,
                "{}_bucket{} {}",
                s.name,
                label_set(shard, &s.labels, Some(("le", "+Inf"))),
                h.count
            );
            let labels = label_set(shard, &s.labels, None);
            let _ = writeln!(out, "{}_sum{labels} {}", s.name, number(h.sum));
            let _ = writeln!(out, "{}_count{labels} {}", s.name, h.count);
        }
    }
}

/// The metrics reference as a Markdown table. README.md embeds it between
/// `<!-- metrics-reference:start/end -->` markers; a test keeps the two identical.
pub fn markdown_reference() -> String {
    let mut out = String::from("| metric | type | labels | meaning |\n| --- | --- | --- | --- |\n");
    for d in METRICS {
        let labels = match d.labels {
            "" => "`shard`".to_string(),
            l => format!("`shard`, `{l}`"),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {labels} | {} |",
            d.name,
            d.kind.as_str(),
            d.help
        );
    }
    out
}

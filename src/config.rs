//! Broker and topic configuration, keyed by Apache Kafka's own setting names.
//!
//! Every setting is declared once in [`BROKER_SETTINGS`] or [`TOPIC_SETTINGS`] (name, type, default,
//! documentation). Values come, lowest precedence first, from the defaults, a TOML file
//! (`--config`), `SHARDLOG_*` environment variables ([`env_var_name`]), and `--set key=value`
//! (and the dedicated CLI flags, which are shorthands for `--set`). Unknown keys and unparsable values are rejected at start with a message naming the key,
//! because a typo silently ignored is a production incident later.
//!
//! Topic settings (`segment.bytes`, `retention.ms`, ...) take their defaults from the matching
//! broker setting (`log.segment.bytes`, `log.retention.ms`, ...) as in Kafka, and a topic may
//! override them at creation (CreateTopics configs).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::log::record_walk::Codec;
use crate::log::{LogConfig, TimestampType};

/// The value type of a setting; used to validate before accepting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Long,
    Bool,
    Str,
    /// One of a fixed set of words (e.g. `CreateTime` / `LogAppendTime`).
    Choice(&'static [&'static str]),
}

/// One declared setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub doc: &'static str,
}

const WEEK_MS: &str = "604800000";

/// Broker-wide settings. Names follow Kafka's `server.properties` where Kafka has the setting.
pub const BROKER_SETTINGS: &[Setting] = &[
    Setting { name: "node.id", kind: Kind::Int, default: "1", doc: "This broker's node id, reported in Metadata and DescribeCluster." },
    Setting { name: "data.dir", kind: Kind::Str, default: "./data", doc: "Directory holding partition logs and the metadata log (Kafka: log.dirs, one directory)." },
    Setting { name: "listen", kind: Kind::Str, default: "127.0.0.1:9092", doc: "HOST:PORT the Kafka listener binds on every shard (SO_REUSEPORT)." },
    Setting { name: "advertise", kind: Kind::Str, default: "", doc: "HOST:PORT clients are told to connect to; empty means the listen address." },
    Setting { name: "metrics.listen", kind: Kind::Str, default: "127.0.0.1:9644", doc: "HOST:PORT of the Prometheus endpoint (`GET /metrics`, served by shard 0; see README, Metrics); empty disables it. A taken port is logged and the broker runs without it. Flag: `--metrics-listen`." },
    Setting { name: "cores", kind: Kind::Int, default: "0", doc: "Number of shards (one pinned executor per core); 0 means every usable core, or every CPU of `cpuset` when set." },
    Setting { name: "cpuset", kind: Kind::Str, default: "", doc: "CPUs for the shards as a Linux CPU list, e.g. `0,2-3`: shard i is pinned to the i-th listed CPU. Each must be in the process's affinity mask (else the start fails naming it). Empty: the usable CPUs in order." },
    Setting { name: "pin.shards", kind: Kind::Bool, default: "true", doc: "Pin each shard's thread to its CPU. `false` leaves placement to the kernel scheduler (for comparison runs, see tuning/README.md)." },
    Setting { name: "numa.membind", kind: Kind::Bool, default: "true", doc: "Each pinned shard prefers memory from its CPU's NUMA node (`set_mempolicy(MPOL_PREFERRED)` on the shard thread, best effort, logged). A no-op on one-node machines." },
    Setting { name: "spin.before.park.us", kind: Kind::Long, default: "0", doc: "Microseconds an idle shard spins before sleeping. Lowers wake-up latency, burns the core while idle." },
    Setting { name: "cluster.id", kind: Kind::Str, default: "", doc: "Cluster id reported to clients; generated and persisted in the data dir when empty." },
    Setting { name: "process.roles", kind: Kind::Str, default: "broker,controller", doc: "Roles of this node. Only combined mode (`broker,controller`, Kafka's combined KRaft node) is supported: every node serves clients and is a voter of the metadata quorum." },
    Setting { name: "controller.quorum.voters", kind: Kind::Str, default: "", doc: "The metadata quorum's voters as `ID@HOST:PORT,...` (Kafka's format; HOST:PORT is each voter's controller.listener). Empty: this node is a quorum of one. Every voter must list the same set, and node.id must be among them. Changing the set of an existing cluster is not supported." },
    Setting { name: "controller.listener", kind: Kind::Str, default: "", doc: "HOST:PORT (numeric host) the metadata quorum listens on for the other voters, served by shard 0; never the Kafka listener. Needed when controller.quorum.voters lists other nodes." },
    Setting { name: "broker.session.timeout.ms", kind: Kind::Int, default: "9000", doc: "The quorum's leader fences a broker it has not heard from for this long: it leaves the Metadata answers, the partitions it led get a new leader from their ISR (or go offline), and it leaves every ISR it was not the last member of. Heard again, it is unfenced. Every node is a quorum voter here, so its Raft messages are its heartbeats." },
    Setting { name: "broker.heartbeat.interval.ms", kind: Kind::Int, default: "2000", doc: "How often the quorum's leader checks every broker's last heartbeat (broker.session.timeout.ms)." },
    Setting { name: "num.partitions", kind: Kind::Int, default: "1", doc: "Partitions of an auto-created topic, or of CreateTopics with num_partitions = -1." },
    Setting { name: "auto.create.topics.enable", kind: Kind::Bool, default: "true", doc: "Create a topic when a Metadata request names one that does not exist and allows auto-creation." },
    Setting { name: "default.replication.factor", kind: Kind::Int, default: "1", doc: "Replication factor of auto-created topics. Partitions are not replicated yet, so only 1 is accepted (more answers INVALID_REPLICATION_FACTOR)." },
    Setting { name: "message.max.bytes", kind: Kind::Int, default: "1048588", doc: "Largest record batch the broker accepts (topic override: max.message.bytes)." },
    Setting { name: "connections.max.idle.ms", kind: Kind::Long, default: "600000", doc: "Close a connection that sent no request (or did not finish sending one) for this long." },
    Setting { name: "max.connections", kind: Kind::Int, default: "2147483647", doc: "Client connections the broker keeps open at once (all shards); one more is accepted and closed at once." },
    Setting { name: "max.connections.per.ip", kind: Kind::Int, default: "2147483647", doc: "Connections one client IP address may keep open; one more is accepted and closed at once." },
    Setting { name: "max.connections.per.ip.overrides", kind: Kind::Str, default: "", doc: "Per-address exceptions to max.connections.per.ip: `IP:COUNT` pairs separated by commas, e.g. `127.0.0.1:200,[::1]:50` (`localhost` for both loopbacks)." },
    Setting { name: "max.connection.creation.rate", kind: Kind::Int, default: "2147483647", doc: "New connections accepted per second (all shards); beyond it the accept loops wait and the kernel's backlog holds the rest." },
    Setting { name: "queued.max.request.bytes", kind: Kind::Long, default: "-1", doc: "Bytes of requests each shard holds at once, read but not yet answered (-1: no limit). Past it, connections are not read until earlier requests finish (back-pressure through TCP). Must be at least socket.request.max.bytes." },
    Setting { name: "socket.request.max.bytes", kind: Kind::Int, default: "104857600", doc: "Largest request frame; a larger size prefix closes the connection before the body is read." },
    Setting { name: "log.segment.bytes", kind: Kind::Int, default: "1073741824", doc: "Roll to a new segment when the active one reaches this size (topic: segment.bytes)." },
    Setting { name: "log.roll.ms", kind: Kind::Long, default: WEEK_MS, doc: "Roll to a new segment when the active one is this old (topic: segment.ms)." },
    Setting { name: "log.retention.ms", kind: Kind::Long, default: WEEK_MS, doc: "Delete whole segments whose newest record is older than this; -1 keeps forever (topic: retention.ms)." },
    Setting { name: "log.retention.bytes", kind: Kind::Long, default: "-1", doc: "Delete oldest whole segments while a partition is larger than this; -1 means no limit (topic: retention.bytes)." },
    Setting { name: "log.retention.check.interval.ms", kind: Kind::Long, default: "300000", doc: "How often each shard applies retention to its partitions." },
    Setting { name: "log.roll.jitter.ms", kind: Kind::Long, default: "0", doc: "Up to this much is taken off segment.ms for each segment (a fixed amount per segment), so partitions created together do not all roll at once (topic: segment.jitter.ms)." },
    Setting { name: "log.index.size.max.bytes", kind: Kind::Int, default: "10485760", doc: "Offset-index bytes (8 per entry) a segment may have; it rolls when they are full (topic: segment.index.bytes)." },
    Setting { name: "log.segment.delete.delay.ms", kind: Kind::Long, default: "60000", doc: "Kafka waits this long before deleting a segment retention removed, so reads in flight finish. Here the files are unlinked at once and every read in flight holds its own descriptor, which gives the same guarantee without the wait (topic: file.delete.delay.ms)." },
    Setting { name: "log.preallocate", kind: Kind::Bool, default: "false", doc: "Only false: preallocating segment files is not implemented (topic: preallocate)." },
    Setting { name: "min.insync.replicas", kind: Kind::Int, default: "1", doc: "Replicas that must have an acks=-1 batch before it is acknowledged. One node is one replica, so a topic asking for more answers acks=-1 produce with NOT_ENOUGH_REPLICAS, as Kafka does (topic: min.insync.replicas)." },
    Setting { name: "unclean.leader.election.enable", kind: Kind::Bool, default: "false", doc: "Accepted for Kafka's tools; a single node has no other replica to elect (topic: unclean.leader.election.enable)." },
    Setting { name: "log.cleaner.delete.retention.ms", kind: Kind::Long, default: "86400000", doc: "Compaction setting, accepted and validated; without compaction it has no effect (topic: delete.retention.ms)." },
    Setting { name: "log.cleaner.min.compaction.lag.ms", kind: Kind::Long, default: "0", doc: "Compaction setting, accepted and validated; without compaction it has no effect (topic: min.compaction.lag.ms)." },
    Setting { name: "log.cleaner.max.compaction.lag.ms", kind: Kind::Long, default: "9223372036854775807", doc: "Compaction setting, accepted and validated; without compaction it has no effect (topic: max.compaction.lag.ms)." },
    Setting { name: "log.cleaner.min.cleanable.ratio", kind: Kind::Str, default: "0.5", doc: "Compaction setting (0 to 1), accepted and validated; without compaction it has no effect (topic: min.cleanable.dirty.ratio)." },
    Setting { name: "log.index.interval.bytes", kind: Kind::Int, default: "4096", doc: "Bytes of log between two sparse offset-index entries (topic: index.interval.bytes)." },
    Setting { name: "log.message.timestamp.type", kind: Kind::Choice(&["CreateTime", "LogAppendTime"]), default: "CreateTime", doc: "Keep the producer's timestamps or stamp the broker's append time (topic: message.timestamp.type)." },
    Setting { name: "log.message.timestamp.before.max.ms", kind: Kind::Long, default: "9223372036854775807", doc: "Refuse (INVALID_TIMESTAMP) a CreateTime record whose timestamp is older than this many ms before the broker's clock (topic: message.timestamp.before.max.ms)." },
    Setting { name: "log.message.timestamp.after.max.ms", kind: Kind::Long, default: "3600000", doc: "Refuse (INVALID_TIMESTAMP) a CreateTime record whose timestamp is more than this many ms after the broker's clock (topic: message.timestamp.after.max.ms)." },
    Setting { name: "compression.type", kind: Kind::Choice(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]), default: "producer", doc: "Codec batches are stored with: `producer` keeps each batch as sent; any other value re-encodes batches that use another codec, as Kafka does (topic: compression.type)." },
    Setting { name: "compression.gzip.level", kind: Kind::Int, default: "-1", doc: "gzip level (1-9, -1 = 6) when compression.type re-encodes to gzip (topic: compression.gzip.level)." },
    Setting { name: "compression.lz4.level", kind: Kind::Int, default: "9", doc: "lz4 level (1-17) when compression.type re-encodes to lz4 (topic: compression.lz4.level)." },
    Setting { name: "compression.zstd.level", kind: Kind::Int, default: "3", doc: "zstd level (-131072 to 22) when compression.type re-encodes to zstd (topic: compression.zstd.level)." },
    Setting { name: "log.cleanup.policy", kind: Kind::Choice(&["delete"]), default: "delete", doc: "Only `delete` (time/size retention) is implemented; compaction is not yet (topic: cleanup.policy)." },
    Setting { name: "log.flush.interval.messages", kind: Kind::Long, default: "9223372036854775807", doc: "Sync a partition once this many messages are unsynced (topic: flush.messages). Default: never; durability comes from acks=-1." },
    Setting { name: "log.flush.interval.ms", kind: Kind::Long, default: "9223372036854775807", doc: "Sync a partition whose last sync is this old and has unsynced data (topic: flush.ms). Default: never." },
    Setting { name: "log.append.io", kind: Kind::Choice(&["pwrite", "uring"]), default: "pwrite", doc: "How appends reach the page cache: `pwrite` (a plain positional write on the shard's thread: a memcpy into cached pages) or `uring` (an io_uring write, which the kernel hands to an io-wq worker thread for buffered ext4 files). See docs/PERFORMANCE.md for the measurement behind the default." },
    Setting { name: "log.open.files.max", kind: Kind::Int, default: "-1", doc: "Segment log files the broker keeps open at once, split evenly among its shards (-1: half the open-file limit). Past it the least recently used are closed and reopened on their next read or write, so partitions are not bounded by descriptors: 50,000 partitions fit a 20,000-descriptor limit. See bench/README.md (\"partitions at scale\")." },
    Setting { name: "log.writeback.bytes", kind: Kind::Long, default: "1048576", doc: "Start the kernel's writeback of each segment every this many appended bytes (`sync_file_range` without waiting), so dirty pages never pile up to the kernel's flush-and-throttle threshold (latency spikes for every client of a shard). Not a durability setting: acknowledgement rules are unchanged. 0 leaves writeback to the kernel. See docs/PERFORMANCE.md (\"write-behind\")." },
    Setting { name: "log.drop.behind.bytes", kind: Kind::Long, default: "0", doc: "Appended bytes each active segment keeps in the page cache behind its end once they were written back (needs log.writeback.bytes > 0); older pages are dropped (`posix_fadvise(DONTNEED)`), so page-cache memory is recycled instead of growing. Fetches of dropped data read the disk (through io_uring, never on the shard's thread). Rounded up to two write-behind chunks; off when log.writeback.bytes is 0. 0 keeps everything cached, as Kafka does. See docs/PERFORMANCE.md (\"drop-behind\")." },
    Setting { name: "fetch.zero.copy", kind: Kind::Bool, default: "true", doc: "Send fetched record data from the page cache to the socket with sendfile (Kafka's FileRecords: the last batch of a partition may be cut short, clients re-fetch it) instead of reading it into memory and writing it (`false`). Data not in the page cache is copied through io_uring either way, so the shard never waits on the disk. Default chosen by measurement, see docs/PERFORMANCE.md (\"fetch path\")." },
    Setting { name: "log.flush.scheduler.interval.ms", kind: Kind::Long, default: "1000", doc: "How often each shard checks flush.ms." },
    Setting { name: "producer.id.expiration.ms", kind: Kind::Long, default: "86400000", doc: "Idempotent-producer state of a producer id silent this long is dropped (checked with retention)." },
    Setting { name: "max.partitions", kind: Kind::Int, default: "2147483647", doc: "Partitions (all topics, __consumer_offsets included) this broker accepts; CreateTopics and CreatePartitions past it get INVALID_PARTITIONS. Never more than one partition per 64 KiB of physical memory (a partition's measured cost is ~5 KiB idle; the rest is room for its active segment's indexes and producers)." },
    Setting { name: "max.producer.ids.per.partition", kind: Kind::Int, default: "100000", doc: "Idempotent producers a partition keeps state for (not a Kafka setting; Redpanda has max_concurrent_producer_ids). Past it, those whose last batch is oldest are forgotten, as producer.id.expiration.ms would; a client inventing producer ids then cannot grow memory without bound." },
    Setting { name: "group.initial.rebalance.delay.ms", kind: Kind::Int, default: "3000", doc: "How long the first rebalance of an empty group waits for more members to join (each new member extends it, up to the rebalance timeout)." },
    Setting { name: "group.min.session.timeout.ms", kind: Kind::Int, default: "6000", doc: "Smallest session.timeout.ms a group member may ask for (JoinGroup fails with INVALID_SESSION_TIMEOUT)." },
    Setting { name: "group.max.session.timeout.ms", kind: Kind::Int, default: "1800000", doc: "Largest session.timeout.ms a group member may ask for (JoinGroup fails with INVALID_SESSION_TIMEOUT)." },
    Setting { name: "group.max.size", kind: Kind::Int, default: "2147483647", doc: "Members a consumer group may have; a new member beyond it gets GROUP_MAX_SIZE_REACHED." },
    Setting { name: "offsets.retention.minutes", kind: Kind::Int, default: "10080", doc: "Committed offsets of a group that has been empty this long are deleted." },
    Setting { name: "offsets.retention.check.interval.ms", kind: Kind::Long, default: "600000", doc: "How often each shard looks for expired committed offsets." },
    Setting { name: "offsets.topic.num.partitions", kind: Kind::Int, default: "50", doc: "Partitions of the internal __consumer_offsets topic when it is created (fixed afterwards: group placement hashes over it)." },
    Setting { name: "offset.metadata.max.bytes", kind: Kind::Int, default: "4096", doc: "Largest metadata string an OffsetCommit may attach to an offset (OFFSET_METADATA_TOO_LARGE)." },
    Setting { name: "log.format", kind: Kind::Choice(&["text", "json"]), default: "text", doc: "Broker log lines on stderr: `text` (human) or `json` (one object per line). Flag: `--log-format`." },
    Setting { name: "log.level", kind: Kind::Str, default: "info", doc: "Log filter in RUST_LOG syntax, e.g. `info` or `shardlog::server=debug,info`. RUST_LOG wins unless this is given on the command line (`--log-level` / `--set`)." },
];

/// Per-topic settings and the broker setting each one defaults to.
pub const TOPIC_SETTINGS: &[(Setting, &str)] = &[
    (
        Setting {
            name: "segment.bytes",
            kind: Kind::Int,
            default: "",
            doc: "Segment size before rolling.",
        },
        "log.segment.bytes",
    ),
    (
        Setting {
            name: "segment.ms",
            kind: Kind::Long,
            default: "",
            doc: "Segment age before rolling.",
        },
        "log.roll.ms",
    ),
    (
        Setting {
            name: "retention.ms",
            kind: Kind::Long,
            default: "",
            doc: "Time retention; -1 forever.",
        },
        "log.retention.ms",
    ),
    (
        Setting {
            name: "retention.bytes",
            kind: Kind::Long,
            default: "",
            doc: "Size retention per partition; -1 unlimited.",
        },
        "log.retention.bytes",
    ),
    (
        Setting {
            name: "index.interval.bytes",
            kind: Kind::Int,
            default: "",
            doc: "Sparse index spacing.",
        },
        "log.index.interval.bytes",
    ),
    (
        Setting {
            name: "message.timestamp.type",
            kind: Kind::Choice(&["CreateTime", "LogAppendTime"]),
            default: "",
            doc: "CreateTime or LogAppendTime.",
        },
        "log.message.timestamp.type",
    ),
    (
        Setting {
            name: "message.timestamp.before.max.ms",
            kind: Kind::Long,
            default: "",
            doc: "Oldest accepted CreateTime timestamp, in ms before now.",
        },
        "log.message.timestamp.before.max.ms",
    ),
    (
        Setting {
            name: "message.timestamp.after.max.ms",
            kind: Kind::Long,
            default: "",
            doc: "Newest accepted CreateTime timestamp, in ms after now.",
        },
        "log.message.timestamp.after.max.ms",
    ),
    (
        Setting {
            name: "compression.type",
            kind: Kind::Choice(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
            default: "",
            doc: "Codec batches are stored with; producer = as sent.",
        },
        "compression.type",
    ),
    (
        Setting {
            name: "compression.gzip.level",
            kind: Kind::Int,
            default: "",
            doc: "gzip level when re-encoding (1-9, -1 = default).",
        },
        "compression.gzip.level",
    ),
    (
        Setting {
            name: "compression.lz4.level",
            kind: Kind::Int,
            default: "",
            doc: "lz4 level when re-encoding (1-17).",
        },
        "compression.lz4.level",
    ),
    (
        Setting {
            name: "compression.zstd.level",
            kind: Kind::Int,
            default: "",
            doc: "zstd level when re-encoding (-131072 to 22).",
        },
        "compression.zstd.level",
    ),
    (
        Setting {
            name: "max.message.bytes",
            kind: Kind::Int,
            default: "",
            doc: "Largest record batch.",
        },
        "message.max.bytes",
    ),
    (
        Setting {
            name: "cleanup.policy",
            kind: Kind::Choice(&["delete"]),
            default: "",
            doc: "delete (compaction not yet implemented).",
        },
        "log.cleanup.policy",
    ),
    (
        Setting {
            name: "segment.jitter.ms",
            kind: Kind::Long,
            default: "",
            doc: "Random-looking roll spread, subtracted from segment.ms.",
        },
        "log.roll.jitter.ms",
    ),
    (
        Setting {
            name: "segment.index.bytes",
            kind: Kind::Int,
            default: "",
            doc: "Offset-index size at which the segment rolls.",
        },
        "log.index.size.max.bytes",
    ),
    (
        Setting {
            name: "file.delete.delay.ms",
            kind: Kind::Long,
            default: "",
            doc: "Delay before deleting retained-out segments (files unlinked at once; reads in flight keep them).",
        },
        "log.segment.delete.delay.ms",
    ),
    (
        Setting {
            name: "preallocate",
            kind: Kind::Bool,
            default: "",
            doc: "Only false (not implemented).",
        },
        "log.preallocate",
    ),
    (
        Setting {
            name: "min.insync.replicas",
            kind: Kind::Int,
            default: "",
            doc: "acks=-1 needs this many replicas (NOT_ENOUGH_REPLICAS above 1).",
        },
        "min.insync.replicas",
    ),
    (
        Setting {
            name: "unclean.leader.election.enable",
            kind: Kind::Bool,
            default: "",
            doc: "Accepted; one node has no other replica.",
        },
        "unclean.leader.election.enable",
    ),
    (
        Setting {
            name: "delete.retention.ms",
            kind: Kind::Long,
            default: "",
            doc: "Compaction: no effect without it.",
        },
        "log.cleaner.delete.retention.ms",
    ),
    (
        Setting {
            name: "min.compaction.lag.ms",
            kind: Kind::Long,
            default: "",
            doc: "Compaction: no effect without it.",
        },
        "log.cleaner.min.compaction.lag.ms",
    ),
    (
        Setting {
            name: "max.compaction.lag.ms",
            kind: Kind::Long,
            default: "",
            doc: "Compaction: no effect without it.",
        },
        "log.cleaner.max.compaction.lag.ms",
    ),
    (
        Setting {
            name: "min.cleanable.dirty.ratio",
            kind: Kind::Str,
            default: "",
            doc: "Compaction (0 to 1): no effect without it.",
        },
        "log.cleaner.min.cleanable.ratio",
    ),
    (
        Setting {
            name: "flush.messages",
            kind: Kind::Long,
            default: "",
            doc: "fdatasync once this many messages are unsynced, whatever the producers' acks.",
        },
        "log.flush.interval.messages",
    ),
    (
        Setting {
            name: "flush.ms",
            kind: Kind::Long,
            default: "",
            doc: "fdatasync when the last sync of a partition with unsynced data is this old.",
        },
        "log.flush.interval.ms",
    ),
];

/// Where a configured value came from (reported by DescribeConfigs and `config print`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    /// A `SHARDLOG_*` environment variable (see [`env_var_name`]).
    Environment,
    CommandLine,
}

impl Source {
    /// How `shardlog config print` names the source.
    pub fn label(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File => "file",
            Source::Environment => "environment",
            Source::CommandLine => "command line",
        }
    }
}

/// Prefix of environment variables that set broker settings.
pub const ENV_PREFIX: &str = "SHARDLOG_";

/// `SHARDLOG_*` variables that are not settings: read by the CLI, tests and tooling, ignored by
/// the settings loader. Every other `SHARDLOG_*` variable must name a setting, or the start fails
/// naming the variable (a typo in a unit file must not be silently ignored).
pub const ENV_NOT_SETTINGS: &[&str] = &[
    // The CLI's default broker address (`shardlog topic ...`).
    "SHARDLOG_BOOTSTRAP",
    // Test harness and soak tests.
    "SHARDLOG_TEST_SEED",
    "SHARDLOG_TEST_CHILD_CONSUMER",
    "SHARDLOG_SOAK_SECS",
];

/// The environment variable of a setting: `SHARDLOG_` + the name upper-cased with dots as
/// underscores (`log.retention.ms` → `SHARDLOG_LOG_RETENTION_MS`).
pub fn env_var_name(setting: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        setting.to_ascii_uppercase().replace('.', "_")
    )
}

/// A configuration error, always naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config `{}`: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Checks `value` against `kind`, returning the normalised text.
pub fn validate(key: &str, kind: Kind, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    match kind {
        Kind::Int => v
            .parse::<i32>()
            .map(|n| n.to_string())
            .map_err(|_| err(key, format!("`{v}` is not a 32-bit integer"))),
        Kind::Long => v
            .parse::<i64>()
            .map(|n| n.to_string())
            .map_err(|_| err(key, format!("`{v}` is not a 64-bit integer"))),
        Kind::Bool => match v.to_ascii_lowercase().as_str() {
            "true" => Ok("true".into()),
            "false" => Ok("false".into()),
            _ => Err(err(key, format!("`{v}` is not true or false"))),
        },
        Kind::Str => Ok(v.to_string()),
        Kind::Choice(words) => words
            .iter()
            .find(|w| w.eq_ignore_ascii_case(v))
            .map(|w| w.to_string())
            .ok_or_else(|| err(key, format!("`{v}` is not one of {}", words.join(", ")))),
    }
}

/// The broker's effective configuration: every declared setting with its value and source.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    values: BTreeMap<&'static str, (String, Source)>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let values = BROKER_SETTINGS
            .iter()
            .map(|s| (s.name, (s.default.to_string(), Source::Default)))
            .collect();
        BrokerConfig { values }
    }
}

impl BrokerConfig {
    /// Sets one broker setting, validating the key and the value.
    pub fn set(&mut self, key: &str, value: &str, source: Source) -> Result<(), ConfigError> {
        let setting = BROKER_SETTINGS
            .iter()
            .find(|s| s.name == key)
            .ok_or_else(|| err(key, "unknown setting (see `shardlog config list`)"))?;
        let v = validate(key, setting.kind, value)?;
        self.values.insert(setting.name, (v, source));
        Ok(())
    }

    /// Applies a TOML document: a flat table of `"kafka.style.key" = value`.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e| err("--config", format!("not valid TOML: {e}")))?;
        for (key, value) in table {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => return Err(err(&key, format!("unsupported TOML value {other}"))),
            };
            self.set(&key, &text, Source::File)?;
        }
        Ok(())
    }

    /// Applies `SHARDLOG_*` variables from `vars` (normally `std::env::vars()`): each must be a
    /// setting's [`env_var_name`] or be listed in [`ENV_NOT_SETTINGS`]; others are an error naming
    /// the variable. Variables without the prefix are ignored.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !ENV_NOT_SETTINGS.contains(&k.as_str()))
            .collect();
        vars.sort();
        for (var, value) in vars {
            let setting = BROKER_SETTINGS
                .iter()
                .find(|s| env_var_name(s.name) == var)
                .ok_or_else(|| {
                    err(
                        &var,
                        format!(
                            "environment variable names no setting (settings map to SHARDLOG_ + the name upper-cased, dots as underscores; not settings: {})",
                            ENV_NOT_SETTINGS.join(", ")
                        ),
                    )
                })?;
            let v = validate(&var, setting.kind, &value)?;
            self.values.insert(setting.name, (v, Source::Environment));
        }
        Ok(())
    }

    /// Applies `key=value` pairs from the command line.
    pub fn apply_sets(&mut self, pairs: &[String]) -> Result<(), ConfigError> {
        for pair in pairs {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| err(pair, "expected key=value"))?;
            self.set(k.trim(), v, Source::CommandLine)?;
        }
        self.check()
    }

    /// Cross-field checks, run once everything is applied.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.bool("log.preallocate") {
            return Err(err(
                "log.preallocate",
                "preallocating segment files is not implemented",
            ));
        }
        // Port 0 would give every shard's SO_REUSEPORT listener a different random port.
        if self.listen()?.port() == 0 {
            return Err(err(
                "listen",
                "needs an explicit port (0 would bind each shard to a different port)",
            ));
        }
        self.advertised()?;
        self.metrics_listen()?;
        self.check_quorum()?;
        crate::runtime::numa::parse_cpuset(self.get("cpuset")).map_err(|e| err("cpuset", e))?;
        if self.int("message.max.bytes") <= 0 {
            return Err(err("message.max.bytes", "must be positive"));
        }
        if self.int("log.segment.bytes") < 1024 {
            return Err(err("log.segment.bytes", "must be at least 1024"));
        }
        if self.int("socket.request.max.bytes") <= 0 {
            return Err(err("socket.request.max.bytes", "must be positive"));
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> &str {
        self.values.get(key).map(|(v, _)| v.as_str()).unwrap_or("")
    }

    pub fn source(&self, key: &str) -> Source {
        self.values
            .get(key)
            .map(|(_, s)| *s)
            .unwrap_or(Source::Default)
    }

    /// All settings with their values and sources, in name order.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, &str, Source)> {
        self.values.iter().map(|(k, (v, s))| (*k, v.as_str(), *s))
    }

    // Values were validated when set, so parse failures cannot happen here; fall back to 0/false
    // rather than panicking all the same.
    pub fn int(&self, key: &str) -> i64 {
        self.get(key).parse().unwrap_or(0)
    }

    pub fn bool(&self, key: &str) -> bool {
        self.get(key) == "true"
    }

    pub fn node_id(&self) -> i32 {
        self.int("node.id") as i32
    }

    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(self.get("data.dir"))
    }

    pub fn listen(&self) -> Result<SocketAddr, ConfigError> {
        self.get("listen").parse().map_err(|_| {
            err(
                "listen",
                format!(
                    "`{}` is not HOST:PORT with a numeric host",
                    self.get("listen")
                ),
            )
        })
    }

    /// The metadata quorum's voters (`controller.quorum.voters`) in id order; empty when this
    /// node is a quorum of one.
    pub fn quorum_voters(&self) -> Result<Vec<(u64, String)>, ConfigError> {
        let key = "controller.quorum.voters";
        let mut voters: Vec<(u64, String)> = Vec::new();
        for entry in self
            .get(key)
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (id, addr) = entry
                .split_once('@')
                .ok_or_else(|| err(key, format!("`{entry}` is not ID@HOST:PORT")))?;
            let id: u64 = id
                .trim()
                .parse()
                .map_err(|_| err(key, format!("`{id}` in `{entry}` is not a node id")))?;
            let addr = addr.trim();
            match addr.rsplit_once(':') {
                Some((host, port))
                    if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
                _ => return Err(err(key, format!("`{addr}` in `{entry}` is not HOST:PORT"))),
            }
            if voters.iter().any(|(v, _)| *v == id) {
                return Err(err(key, format!("node {id} is listed twice")));
            }
            voters.push((id, addr.to_string()));
        }
        voters.sort();
        Ok(voters)
    }

    /// Where the metadata quorum listens for its peers, if it does.
    pub fn controller_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        match self.get("controller.listener") {
            "" => Ok(None),
            text => text.parse().map(Some).map_err(|_| {
                err(
                    "controller.listener",
                    format!("`{text}` is not HOST:PORT with a numeric host"),
                )
            }),
        }
    }

    /// The quorum settings agree with each other and with this node.
    fn check_quorum(&self) -> Result<(), ConfigError> {
        let mut roles: Vec<&str> = self
            .get("process.roles")
            .split(',')
            .map(str::trim)
            .collect();
        roles.sort();
        if roles != ["broker", "controller"] {
            return Err(err(
                "process.roles",
                format!(
                    "`{}`: only combined mode (broker,controller) is supported",
                    self.get("process.roles")
                ),
            ));
        }
        let voters = self.quorum_voters()?;
        let listen = self.controller_listen()?;
        if voters.is_empty() {
            return Ok(());
        }
        let node = self.node_id();
        let Some((_, own)) = voters
            .iter()
            .find(|(id, _)| i64::try_from(*id).ok() == Some(i64::from(node)))
        else {
            return Err(err(
                "controller.quorum.voters",
                format!(
                    "node.id {node} is not among the voters `{}`",
                    self.get("controller.quorum.voters")
                ),
            ));
        };
        let Some(listen) = listen else {
            return Err(err(
                "controller.listener",
                format!(
                    "must be set when controller.quorum.voters is (this node is listed as {own})"
                ),
            ));
        };
        if listen.port() == 0 {
            return Err(err("controller.listener", "needs an explicit port"));
        }
        if own.rsplit_once(':').map(|(_, p)| p) != Some(listen.port().to_string().as_str()) {
            return Err(err(
                "controller.listener",
                format!("{listen} is not on the port the voters list for node {node} ({own})"),
            ));
        }
        if self.listen()? == listen {
            return Err(err(
                "controller.listener",
                "must differ from the Kafka listener",
            ));
        }
        Ok(())
    }

    /// The Prometheus endpoint's address; `None` when `metrics.listen` is empty (disabled).
    pub fn metrics_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        match self.get("metrics.listen") {
            "" => Ok(None),
            text => text.parse().map(Some).map_err(|_| {
                err(
                    "metrics.listen",
                    format!("`{text}` is not HOST:PORT with a numeric host (or empty to disable)"),
                )
            }),
        }
    }

    /// The (host, port) advertised to clients.
    pub fn advertised(&self) -> Result<(String, i32), ConfigError> {
        let text = match self.get("advertise") {
            "" => self.get("listen"),
            a => a,
        };
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| err("advertise", format!("`{text}` is not HOST:PORT")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| err("advertise", format!("`{port}` is not a port")))?;
        Ok((
            host.trim_matches(|c| c == '[' || c == ']').to_string(),
            i32::from(port),
        ))
    }

    /// The broker-level defaults of every topic setting, as topic-setting names.
    pub fn topic_defaults(&self) -> BTreeMap<String, String> {
        TOPIC_SETTINGS
            .iter()
            .map(|(s, broker_key)| (s.name.to_string(), self.get(broker_key).to_string()))
            .collect()
    }

    /// One numeric topic setting's effective value: the topic's override, else the broker
    /// default it maps to; `i64::MAX` if unset or unparsable (the "never" of Kafka's flush knobs).
    pub fn topic_value(&self, overrides: &BTreeMap<String, String>, topic_key: &str) -> i64 {
        let text = overrides.get(topic_key).cloned().or_else(|| {
            TOPIC_SETTINGS
                .iter()
                .find(|(s, _)| s.name == topic_key)
                .map(|(_, broker_key)| self.get(broker_key).to_string())
        });
        text.and_then(|v| v.parse().ok()).unwrap_or(i64::MAX)
    }

    /// Resolves a topic's effective log configuration from broker defaults plus its overrides.
    pub fn log_config(&self, overrides: &BTreeMap<String, String>) -> LogConfig {
        let mut merged = self.topic_defaults();
        for (k, v) in overrides {
            merged.insert(k.clone(), v.clone());
        }
        let num = |k: &str| {
            merged
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        LogConfig {
            segment_bytes: num("segment.bytes").max(1024) as u64,
            segment_ms: num("segment.ms"),
            retention_ms: num("retention.ms"),
            retention_bytes: num("retention.bytes"),
            index_interval_bytes: num("index.interval.bytes").clamp(1, i64::from(u32::MAX)) as u32,
            timestamp_type: if merged.get("message.timestamp.type").map(String::as_str)
                == Some("LogAppendTime")
            {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            max_message_bytes: num("max.message.bytes").max(0) as usize,
            timestamp_before_max_ms: num("message.timestamp.before.max.ms").max(0),
            timestamp_after_max_ms: num("message.timestamp.after.max.ms").max(0),
            max_producer_ids: self.int("max.producer.ids.per.partition").max(1) as usize,
            segment_jitter_ms: num("segment.jitter.ms").max(0),
            index_max_entries: (num("segment.index.bytes").max(8) / 8) as usize,
            compression: {
                let level = |k: &str| Some(num(k) as i32);
                match merged.get("compression.type").map(String::as_str) {
                    Some("uncompressed") => Some((Codec::None, None)),
                    Some("gzip") => Some((
                        Codec::Gzip,
                        level("compression.gzip.level").filter(|l| *l > 0),
                    )),
                    Some("snappy") => Some((Codec::Snappy, None)),
                    Some("lz4") => Some((Codec::Lz4, level("compression.lz4.level"))),
                    Some("zstd") => Some((Codec::Zstd, level("compression.zstd.level"))),
                    _ => None,
                }
            },
        }
    }
}

/// Validates topic overrides given to CreateTopics; returns them normalised.
pub fn validate_topic_configs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (key, value) in pairs {
        let (setting, _) = TOPIC_SETTINGS
            .iter()
            .find(|(s, _)| s.name == key)
            .ok_or_else(|| match later_feature(key) {
                Some(feature) => err(
                    key,
                    format!(
                        "a Kafka setting for {feature}, which this broker does not implement yet"
                    ),
                ),
                None => err(key, "unknown or unsupported topic setting"),
            })?;
        let Some(value) = value else { continue };
        let v = validate(key, setting.kind, value)?;
        if key == "segment.bytes" && v.parse::<i64>().unwrap_or(0) < 1024 {
            return Err(err(key, "must be at least 1024"));
        }
        if key.starts_with("message.timestamp.")
            && key.ends_with(".max.ms")
            && v.parse::<i64>().unwrap_or(-1) < 0
        {
            return Err(err(key, "must be at least 0"));
        }
        let number = v.parse::<i64>().unwrap_or(-1);
        match key {
            "preallocate" if v == "true" => {
                return Err(err(key, "preallocating segment files is not implemented"))
            }
            "segment.index.bytes" if number < 4 => return Err(err(key, "must be at least 4")),
            "min.insync.replicas" if number < 1 => return Err(err(key, "must be at least 1")),
            "segment.jitter.ms"
            | "file.delete.delay.ms"
            | "delete.retention.ms"
            | "min.compaction.lag.ms"
                if number < 0 =>
            {
                return Err(err(key, "must be at least 0"))
            }
            "max.compaction.lag.ms" if number < 1 => return Err(err(key, "must be at least 1")),
            "min.cleanable.dirty.ratio" => match v.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => {}
                _ => return Err(err(key, "must be a number from 0 to 1")),
            },
            _ => {}
        }
        if let Some(range) = compression_level_range(key) {
            let level = v.parse::<i64>().unwrap_or(i64::MIN);
            let gzip_default = key == "compression.gzip.level" && level == -1;
            if !(range.contains(&level) || gzip_default) {
                return Err(err(
                    key,
                    format!("must be in [{}, {}]", range.start(), range.end()),
                ));
            }
        }
        out.insert(key.to_string(), v);
    }
    Ok(out)
}

/// Kafka 4.4 topic settings that need a feature this broker does not have yet, and which.
fn later_feature(key: &str) -> Option<&'static str> {
    Some(match key {
        "remote.storage.enable"
        | "local.retention.ms"
        | "local.retention.bytes"
        | "remote.log.copy.disable"
        | "remote.log.delete.on.disable"
        | "remote.copy.lag.ms"
        | "remote.copy.lag.bytes" => "tiered storage",
        "leader.replication.throttled.replicas" | "follower.replication.throttled.replicas" => {
            "replication throttling"
        }
        "errors.deadletterqueue.group.enable" => "share groups",
        "max.decompressed.message.bytes" => {
            "a per-topic decompression limit (the broker's is max(128 MiB, 32x the batch))"
        }
        _ => return None,
    })
}

/// Kafka's valid levels for each `compression.*.level` setting.
fn compression_level_range(key: &str) -> Option<std::ops::RangeInclusive<i64>> {
    match key {
        "compression.gzip.level" => Some(1..=9),
        "compression.lz4.level" => Some(1..=17),
        "compression.zstd.level" => Some(-131_072..=22),
        _ => None,
    }
}

/// The configuration reference as a Markdown table, generated from the declarations above.
/// README.md embeds it between `<!-- config-reference:start/end -->` markers; a test keeps the
/// two identical, so the docs cannot drift from the code (`shardlog config list --markdown`).
pub fn markdown_reference() -> String {
    let mut out = String::from("| broker setting | default | meaning |\n| --- | --- | --- |\n");
    for s in BROKER_SETTINGS {
        let default = if s.default.is_empty() {
            "(empty)".to_string()
        } else {
            format!("`{}`", s.default)
        };
        out.push_str(&format!("| `{}` | {} | {} |\n", s.name, default, s.doc));
    }
    out.push_str("\n| topic setting | defaults to | meaning |\n| --- | --- | --- |\n");
    for (s, broker) in TOPIC_SETTINGS {
        out.push_str(&format!("| `{}` | `{}` | {} |\n", s.name, broker, s.doc));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_reference_is_generated_from_the_declarations() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = "<!-- config-reference:start -->\n";
        let end = "<!-- config-reference:end -->";
        let a = readme.find(start).expect("start marker") + start.len();
        let b = readme.find(end).expect("end marker");
        assert_eq!(
            &readme[a..b],
            markdown_reference(),
            "README.md config reference is stale: run `shardlog config list --markdown` and paste it between the markers"
        );
    }

    #[test]
    fn unknown_key_is_rejected_by_name() {
        let mut c = BrokerConfig::default();
        let e = c
            .set("log.segmnet.bytes", "10", Source::CommandLine)
            .unwrap_err();
        assert_eq!(e.key, "log.segmnet.bytes");
    }

    #[test]
    fn bad_values_are_rejected() {
        let mut c = BrokerConfig::default();
        assert!(c
            .set("num.partitions", "many", Source::CommandLine)
            .is_err());
        assert!(c
            .set("auto.create.topics.enable", "yes", Source::CommandLine)
            .is_err());
        assert!(c
            .set("log.message.timestamp.type", "Now", Source::CommandLine)
            .is_err());
        c.set(
            "log.message.timestamp.type",
            "logappendtime",
            Source::CommandLine,
        )
        .unwrap();
        assert_eq!(c.get("log.message.timestamp.type"), "LogAppendTime");
    }

    #[test]
    fn toml_then_sets_override_defaults() {
        let mut c = BrokerConfig::default();
        c.apply_toml("\"num.partitions\" = 3\n\"listen\" = \"127.0.0.1:19092\"\n")
            .unwrap();
        c.apply_sets(&["num.partitions=5".into()]).unwrap();
        assert_eq!(c.int("num.partitions"), 5);
        assert_eq!(c.source("num.partitions"), Source::CommandLine);
        assert_eq!(c.source("listen"), Source::File);
        assert_eq!(c.advertised().unwrap(), ("127.0.0.1".to_string(), 19092));
    }

    #[test]
    fn topic_overrides_merge_over_broker_defaults() {
        let c = BrokerConfig::default();
        let o = validate_topic_configs([
            ("segment.bytes", Some("2048")),
            ("retention.ms", Some("-1")),
        ])
        .unwrap();
        let lc = c.log_config(&o);
        assert_eq!(lc.segment_bytes, 2048);
        assert_eq!(lc.retention_ms, -1);
        assert_eq!(lc.max_message_bytes, 1048588);
        assert!(validate_topic_configs([("cleanup.policy", Some("compact"))]).is_err());
        assert!(validate_topic_configs([("no.such", Some("1"))]).is_err());
    }

    #[test]
    fn every_kafka_topic_setting_is_accepted_or_refused_saying_why() {
        for (k, v) in [
            ("segment.jitter.ms", "1000"),
            ("segment.index.bytes", "4096"),
            ("file.delete.delay.ms", "0"),
            ("preallocate", "false"),
            ("min.insync.replicas", "2"),
            ("unclean.leader.election.enable", "true"),
            ("delete.retention.ms", "1000"),
            ("min.compaction.lag.ms", "0"),
            ("max.compaction.lag.ms", "1000"),
            ("min.cleanable.dirty.ratio", "0.25"),
        ] {
            assert!(validate_topic_configs([(k, Some(v))]).is_ok(), "{k}={v}");
        }
        for (k, v, why) in [
            ("preallocate", "true", "not implemented"),
            ("segment.index.bytes", "3", "at least 4"),
            ("min.insync.replicas", "0", "at least 1"),
            ("min.cleanable.dirty.ratio", "1.5", "from 0 to 1"),
            ("segment.jitter.ms", "-1", "at least 0"),
            ("remote.storage.enable", "true", "tiered storage"),
            (
                "leader.replication.throttled.replicas",
                "*",
                "replication throttling",
            ),
        ] {
            let e = validate_topic_configs([(k, Some(v))]).unwrap_err();
            assert!(e.message.contains(why), "{k}={v}: {}", e.message);
        }
    }

    #[test]
    fn compression_type_and_levels_as_kafka_validates_them() {
        let c = BrokerConfig::default();
        assert_eq!(c.log_config(&BTreeMap::new()).compression, None, "producer");
        for (value, codec, level) in [
            ("uncompressed", Codec::None, None),
            ("gzip", Codec::Gzip, None),
            ("snappy", Codec::Snappy, None),
            ("lz4", Codec::Lz4, Some(9)),
            ("zstd", Codec::Zstd, Some(3)),
        ] {
            let o = validate_topic_configs([("compression.type", Some(value))]).unwrap();
            assert_eq!(
                c.log_config(&o).compression,
                Some((codec, level)),
                "{value}"
            );
        }
        let o = validate_topic_configs([
            ("compression.type", Some("zstd")),
            ("compression.zstd.level", Some("-5")),
        ])
        .unwrap();
        assert_eq!(c.log_config(&o).compression, Some((Codec::Zstd, Some(-5))));
        for (k, v) in [
            ("compression.type", "brotli"),
            ("compression.gzip.level", "0"),
            ("compression.gzip.level", "10"),
            ("compression.lz4.level", "18"),
            ("compression.zstd.level", "23"),
        ] {
            assert!(validate_topic_configs([(k, Some(v))]).is_err(), "{k}={v}");
        }
        assert!(validate_topic_configs([("compression.gzip.level", Some("-1"))]).is_ok());
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_var_names_are_upper_case_with_underscores() {
        assert_eq!(
            env_var_name("log.retention.ms"),
            "SHARDLOG_LOG_RETENTION_MS"
        );
        assert_eq!(env_var_name("listen"), "SHARDLOG_LISTEN");
        // Every setting has a distinct variable.
        let mut names: Vec<String> = BROKER_SETTINGS
            .iter()
            .map(|s| env_var_name(s.name))
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), BROKER_SETTINGS.len());
        assert!(!names.iter().any(|n| ENV_NOT_SETTINGS.contains(&n.as_str())));
    }

    #[test]
    fn precedence_is_default_file_env_command_line() {
        let mut c = BrokerConfig::default();
        c.apply_toml("\"log.retention.ms\" = 5\n\"num.partitions\" = 3\n\"node.id\" = 7\n")
            .unwrap();
        c.apply_env(vars(&[
            ("SHARDLOG_LOG_RETENTION_MS", "1000"),
            ("SHARDLOG_NUM_PARTITIONS", "4"),
            ("SHARDLOG_BOOTSTRAP", "10.0.0.1:9092"),
            ("SHARDLOG_TEST_SEED", "42"),
            ("PATH", "/usr/bin"),
        ]))
        .unwrap();
        c.apply_sets(&["num.partitions=6".into()]).unwrap();
        assert_eq!(
            (c.int("log.retention.ms"), c.source("log.retention.ms")),
            (1000, Source::Environment)
        );
        assert_eq!(
            (c.int("num.partitions"), c.source("num.partitions")),
            (6, Source::CommandLine)
        );
        assert_eq!((c.int("node.id"), c.source("node.id")), (7, Source::File));
        assert_eq!(c.source("listen"), Source::Default);
    }

    #[test]
    fn unknown_or_bad_env_vars_are_rejected_by_variable_name() {
        let mut c = BrokerConfig::default();
        let e = c
            .apply_env(vars(&[("SHARDLOG_LOG_RETENTON_MS", "1")]))
            .unwrap_err();
        assert_eq!(e.key, "SHARDLOG_LOG_RETENTON_MS");
        let e = c
            .apply_env(vars(&[("SHARDLOG_NUM_PARTITIONS", "many")]))
            .unwrap_err();
        assert_eq!(e.key, "SHARDLOG_NUM_PARTITIONS");
        assert!(e.to_string().contains("SHARDLOG_NUM_PARTITIONS"), "{e}");
    }
}

//! The log of one partition: an ordered list of segments, with offsets, roll, retention, sync.

use crate::log::batch::{
    set_base_offset, set_create_time, set_log_append_time, set_partition_leader_epoch,
    split_and_validate, stored_prefix, BatchHeader, BatchSpan, TimestampType, UNCHECKED_PREFIX,
};
use crate::log::error::LogError;
use crate::log::producer_state::{
    self, check_client_batch, AppendCheck, ProducerStateEntry, ProducerStateManager,
    SNAPSHOTS_TO_KEEP,
};
use crate::log::record_walk::Codec;
use crate::log::recovery::{recover, CLEAN_SHUTDOWN_MARKER};
use crate::log::segment::{PlacedBatch, Segment};
use crate::log::validator::{recompress_for_topic, validate_client_records};
use crate::runtime::file::{
    blocking, replace_file_now, sync_dir, sync_dir_now, FileSlice, SerialLock,
};
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Per-topic log settings (Kafka's names in comments). `Default` gives Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    /// Capped at `i32::MAX` (index positions are u32; Kafka's setting is an int too).
    pub segment_bytes: u64,
    /// `segment.ms`: roll a non-empty active segment older than this (<= 0 disables).
    pub segment_ms: i64,
    /// `retention.ms`: delete segments whose newest timestamp is older; -1 = forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger; -1 = unlimited.
    pub retention_bytes: i64,
    /// `index.interval.bytes`: bytes of batches between two index entries.
    pub index_interval_bytes: u32,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `max.message.bytes`: largest accepted batch, header included.
    pub max_message_bytes: usize,
    /// `message.timestamp.before.max.ms`: how far in the past a CreateTime record's timestamp
    /// may lie (Kafka's default: unbounded).
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future (Kafka 4's default: one hour).
    pub timestamp_after_max_ms: i64,
    /// `compression.type` with its `compression.*.level`: the codec every batch is stored
    /// with (`Codec::None`: uncompressed); `None` is Kafka's `producer`, batches as sent.
    pub compression: Option<(Codec, Option<i32>)>,
    /// `max.producer.ids.per.partition`: idempotent producers whose state is kept.
    pub max_producer_ids: usize,
    /// `segment.jitter.ms`: the most taken off `segment.ms` for a segment.
    pub segment_jitter_ms: i64,
    /// `segment.index.bytes` / 8: offset-index entries at which a segment rolls.
    pub index_max_entries: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            timestamp_type: TimestampType::CreateTime,
            max_message_bytes: 1_048_588,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            compression: None,
            max_producer_ids: 100_000,
            segment_jitter_ms: 0,
            index_max_entries: 10_485_760 / 8,
        }
    }
}

impl LogConfig {
    fn segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }
}

/// Result of a successful append (what a ProduceResponse partition needs).
///
/// For a duplicate (`duplicate == true`: a retry of an idempotent batch that is already in the
/// log, see [`crate::log::producer_state`]) nothing was written and the offsets are those of the
/// original batch; the broker answers it like a fresh append, with error NONE, as Kafka does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset assigned to the first record (of the original batch, for a duplicate).
    pub base_offset: i64,
    /// Offset of the last record (of the original batch, for a duplicate).
    pub last_offset: i64,
    /// The broker's append time for LogAppendTime topics (the original one, for a
    /// duplicate), -1 for CreateTime.
    pub log_append_time: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// Largest batch max timestamp among the appended batches (the original batch's, for a
    /// duplicate).
    pub max_timestamp: i64,
    /// The request was a retry of a batch already in the log; nothing was appended.
    pub duplicate: bool,
}

/// The log of one partition, owned by one shard.
///
/// Invariants:
/// - `segments` is non-empty and ordered by base offset; the last one is the *active* segment,
///   the only one appended to. Segment offsets are contiguous: each segment's `next_offset` is
///   the next segment's base offset (recovery removes segments after a truncation to keep it).
/// - `log_start_offset <= high_watermark <= log_end_offset`; `log_start_offset` is at least the
///   first segment's base; `log_end_offset` (LEO) is the active segment's `next_offset`, i.e.
///   one past the last appended record. Offsets are dense: every offset in
///   `[log_start, LEO)` belongs to exactly one stored batch.
/// - The high watermark is kept here (as Kafka's UnifiedLog keeps it) but only its owner moves
///   it forward ([`PartitionLog::set_high_watermark`]): `partition::Partition` advances it to
///   the LEO after each append on one node, and will hold it at what the ISR has under
///   replication. An append alone never exposes records. Consumer reads
///   ([`PartitionLog::read`]) stop at it; retention lifts it to the log start.
/// - `flushed_offset <= LEO`: every offset below it has been `fdatasync`ed.
/// - `producers` reflects exactly the idempotent batches below the LEO (it is updated under
///   `serial`, after the write, in the same synchronous step as the LEO). Snapshots of it are
///   written at every roll and at close (see [`crate::log::producer_state`]).
/// - Appends, rolls, retention, close and delete run one at a time (`serial`); reads never
///   take that lock and never hold a `RefCell` borrow across an await, so a read proceeds while
///   an append waits for its write. A reader clones the `Rc<Segment>` it needs, so a segment
///   deleted by retention meanwhile stays readable through its open descriptor.
///
/// All methods take `&self`: state is in `Cell`/`RefCell` (single-threaded, `!Send` by design).
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: RefCell<LogConfig>,
    segments: RefCell<BTreeMap<i64, Rc<Segment>>>,
    log_start_offset: Cell<i64>,
    log_end_offset: Cell<i64>,
    high_watermark: Cell<i64>,
    flushed_offset: Cell<i64>,
    leader_epoch: Cell<Option<i32>>,
    serial: SerialLock,
    closed: Cell<bool>,
    /// Set when an fdatasync failed. Linux may drop the failed pages and report the next sync as
    /// successful ("fsyncgate"), so a retry could acknowledge data that is not on disk: from then
    /// on the log refuses appends and syncs until a restart re-runs recovery.
    failed: Cell<bool>,
    /// One sync at a time. A sync clears each segment's dirty flag before its fdatasync
    /// completes, so a second, concurrent sync (e.g. `close` writing the clean-shutdown marker)
    /// would otherwise see nothing dirty and finish while the data is not yet on disk.
    sync_lock: SerialLock,
    dir_dirty: Cell<bool>,
    producers: RefCell<ProducerStateManager>,
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `<dir>/log-start-offset`: the log start offset DeleteRecords set (one decimal line), when
/// it is past the first segment's base. Kafka keeps the same in `log-start-offset-checkpoint`.
const LOG_START_FILE: &str = "log-start-offset";

/// The log start offset DeleteRecords left, if any; a damaged file counts as none (the start
/// falls back to the first segment's base: deleted records may show again, none are lost).
async fn read_log_start(dir: &Path) -> Option<i64> {
    let path = dir.join(LOG_START_FILE);
    let text = blocking(move || std::fs::read_to_string(path)).await.ok()?;
    match text.trim().parse::<i64>() {
        Ok(v) if v >= 0 => Some(v),
        _ => {
            tracing::warn!(dir = %dir.display(), "ignoring a damaged {LOG_START_FILE} file");
            None
        }
    }
}

/// Writes the log start offset durably (beside, synced, renamed, directory synced).
async fn write_log_start(dir: &Path, offset: i64) -> std::io::Result<()> {
    let path = dir.join(LOG_START_FILE);
    blocking(move || replace_file_now(&path, format!("{offset}\n").as_bytes())).await
}

/// Creates the partition directory if needed (syncing its parent, so a new partition's
/// directory survives a crash) and consumes the clean-shutdown marker (the removal made
/// durable). Returns whether the marker was there. Blocking-pool work, like [`sync_dir`].
async fn prepare_dir(dir: &Path) -> std::io::Result<bool> {
    let dir = dir.to_path_buf();
    blocking(move || {
        if !dir.exists() {
            std::fs::create_dir_all(&dir)?;
            if let Some(parent) = dir.parent() {
                sync_dir_now(parent)?;
            }
        }
        let marker = dir.join(CLEAN_SHUTDOWN_MARKER);
        let clean = marker.exists();
        if clean {
            std::fs::remove_file(&marker)?;
            sync_dir_now(&dir)?;
        }
        Ok(clean)
    })
    .await
}
/// The error of a log that stopped after a failed fdatasync (KAFKA_STORAGE_ERROR).
/// The first offset of a group of batches.
fn base_of(group: &[BatchSpan]) -> i64 {
    group.first().map_or(0, |s| s.header.base_offset)
}

fn failed_error() -> LogError {
    LogError::Io(std::io::Error::other(
        "an earlier fdatasync of this log failed; restart the broker to recover it",
    ))
}

impl PartitionLog {
    /// Open the partition directory `dir` (created if needed) and recover it.
    ///
    /// A clean-shutdown marker left by [`PartitionLog::close`] is consumed (removed and the
    /// removal made durable *before* anything can be appended, so a later crash is never
    /// mistaken for a clean stop) and lets recovery skip the CRC scan of the last segment.
    ///
    /// The idempotent-producer state is then loaded from the newest usable snapshot and the
    /// batch headers after it (all of the log if there is none); if anything had to be
    /// replayed, a fresh snapshot at the log end is written (see [`producer_state::load`]).
    pub async fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog, LogError> {
        let clean = prepare_dir(dir).await?;
        let now = wall_clock_ms();
        let segs = recover(dir, clean, config.index_interval_bytes, now).await?;
        let mut map = BTreeMap::new();
        for s in segs {
            if !clean {
                // After a crash, recovered bytes may still be only in the page cache: the
                // first sync() must cover them before flushed_offset can claim them.
                s.mark_dirty();
            }
            map.insert(s.base_offset(), Rc::new(s));
        }
        let leo = map
            .values()
            .next_back()
            .map(|s| s.next_offset())
            .unwrap_or(0);
        // DeleteRecords may have moved the start past the first segment's base.
        let start = map
            .keys()
            .next()
            .copied()
            .unwrap_or(0)
            .max(read_log_start(dir).await.unwrap_or(0).min(leo));
        let segs: Vec<Rc<Segment>> = map.values().cloned().collect();
        let loaded = producer_state::load(dir, &segs, start, leo).await?;
        if loaded.deleted_files {
            // A deleted snapshot past the log end must not reappear after a crash once appends
            // have gone past its offset again: make the unlink durable before any append.
            sync_dir(dir).await?;
        }
        let mut dir_dirty = !clean;
        tracing::debug!(dir = %dir.display(), clean, start, leo, segments = map.len(),
            producers = loaded.state.len(), snapshot = ?loaded.snapshot,
            replayed = loaded.replayed_batches, "opened partition log");
        if loaded.replayed_batches > 0 {
            // Batches were replayed: keep the work, so the next open after a crash starts
            // from here.
            match producer_state::write_snapshot(dir, &loaded.state).await {
                Ok(_) => {
                    dir_dirty = true;
                    if let Err(e) =
                        producer_state::prune_snapshots(dir, start, SNAPSHOTS_TO_KEEP).await
                    {
                        tracing::warn!(error = %e, "could not prune producer snapshots");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not write producer snapshot"),
            }
        }
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            config: RefCell::new(config),
            segments: RefCell::new(map),
            log_start_offset: Cell::new(start),
            log_end_offset: Cell::new(leo),
            high_watermark: Cell::new(leo),
            // After an unclean stop nothing is known durable until the first sync().
            flushed_offset: Cell::new(if clean { leo } else { start }),
            leader_epoch: Cell::new(None),
            serial: SerialLock::new(),
            closed: Cell::new(false),
            failed: Cell::new(false),
            sync_lock: SerialLock::new(),
            dir_dirty: Cell::new(dir_dirty),
            producers: RefCell::new(loaded.state),
        })
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// First offset still stored.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.get()
    }
    /// One past the last appended offset (LEO).
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.get()
    }
    /// Offset up to which consumers may read (== LEO on a single node).
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.get()
    }
    /// Every offset below this is durable (`fdatasync`ed).
    pub fn flushed_offset(&self) -> i64 {
        self.flushed_offset.get()
    }
    /// Set the high watermark (replication), clamped to `[log_start, LEO]`.
    pub fn set_high_watermark(&self, hw: i64) {
        self.high_watermark
            .set(hw.clamp(self.log_start_offset.get(), self.log_end_offset.get()));
    }
    /// Stamp appended batches with this partition leader epoch (`None`: keep what the client
    /// sent). The field is outside the CRC, so stamping costs nothing.
    pub fn set_leader_epoch(&self, epoch: Option<i32>) {
        self.leader_epoch.set(epoch);
    }
    pub fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }
    /// Change settings; takes effect for the next append / roll / retention run.
    pub fn set_config(&self, config: LogConfig) {
        *self.config.borrow_mut() = config;
    }
    pub fn segment_count(&self) -> usize {
        self.segments.borrow().len()
    }
    /// Base offsets of the segments, ascending.
    pub fn segment_bases(&self) -> Vec<i64> {
        self.segments.borrow().keys().copied().collect()
    }
    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.borrow().values().map(|s| s.size()).sum()
    }
    /// The idempotence state of `producer_id` (epoch, last 5 batches), if it has any.
    pub fn producer_state(&self, producer_id: i64) -> Option<ProducerStateEntry> {
        self.producers.borrow().entry(producer_id).cloned()
    }
    /// Every producer with state, ascending by id (for DescribeProducers).
    pub fn producer_states(&self) -> Vec<ProducerStateEntry> {
        self.producers.borrow().entries().cloned().collect()
    }

    /// The segment being appended to (for tests).
    #[cfg(test)]
    pub(crate) fn active_segment(&self) -> Rc<Segment> {
        self.active().expect("an open log has an active segment")
    }

    fn active(&self) -> Result<Rc<Segment>, LogError> {
        self.segments
            .borrow()
            .values()
            .next_back()
            .cloned()
            .ok_or(LogError::Closed)
    }

    /// Validate `records` (all batches, all-or-nothing), assign offsets from the LEO, check the
    /// idempotent producers' epochs and sequences, stamp the leader epoch and (LogAppendTime
    /// topics) the append time, roll if needed, write.
    ///
    /// The whole record set goes into one segment, as in Kafka. The high watermark does not
    /// move: the owner (`partition::Partition`) advances it. Durability is *not* implied: call
    /// [`PartitionLog::sync`].
    ///
    /// A retried idempotent batch (same producer, epoch and sequence range as one of the
    /// producer's last 5) is not written again: the result has `duplicate: true` and the
    /// original batch's offsets (and, on LogAppendTime topics, its append time). Kafka answers
    /// a duplicate with the batch's stored max timestamp as log append time whatever the topic's
    /// timestamp type; we answer -1 on CreateTime topics, like a fresh append (clients only use
    /// the field when it is not -1, and on a CreateTime topic it would wrongly replace the
    /// record's create time).
    ///
    /// This is the broker's own append (the group coordinator's `__consumer_offsets` records):
    /// several batches may go in one call and the records themselves are not walked. A client's
    /// records go through [`PartitionLog::append_from_client`].
    pub async fn append(&self, records: Bytes, now_ms: i64) -> Result<AppendInfo, LogError> {
        self.check_writable()?;
        let cfg = self.config.borrow().clone();
        // Validate before taking the lock: CRC work does not hold up other appends' I/O.
        let spans = split_and_validate(&records, cfg.max_message_bytes)?;
        self.append_batches(records, spans, None, cfg, now_ms).await
    }

    /// [`PartitionLog::append`] for a producer's records: first everything Kafka's LogValidator
    /// checks for a client (one batch, every record walked, timestamps; see
    /// [`crate::log::validator`]). A batch whose `maxTimestamp` disagrees with its records is
    /// stored with the true one, as Kafka does.
    pub async fn append_from_client(
        &self,
        records: Bytes,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.check_writable()?;
        let cfg = self.config.borrow().clone();
        let v = validate_client_records(&records, &cfg, now_ms).await?;
        let true_max = (v.max_timestamp != v.span.header.max_timestamp
            && v.span.header.timestamp_type() == TimestampType::CreateTime)
            .then_some(v.max_timestamp);
        let batch = &records[v.span.pos..v.span.pos + v.span.header.total_len()];
        let (records, span) = match recompress_for_topic(batch, &v.span.header, &cfg)? {
            Some(recompressed) => {
                let header = BatchHeader::parse(&recompressed)?;
                (Bytes::from(recompressed), BatchSpan { pos: 0, header })
            }
            None => (records, v.span),
        };
        self.append_batches(records, vec![span], true_max, cfg, now_ms)
            .await
    }

    /// A follower's append (Kafka's `appendAsFollower`): record batches exactly as the leader
    /// wrote them — offsets, leader epochs, timestamps and producer fields kept — after the
    /// checks every byte from the network gets (lengths, CRC, `max.message.bytes`). The first
    /// batch must start at this log's end and each next one where the previous ended: a gap or
    /// an overlap is refused (the follower truncates or fetches again). Producer state is
    /// replayed from the batches, as recovery does, so a retry to this replica once it leads is
    /// still de-duplicated. A set larger than a segment goes in as several appends, rolling
    /// between them. `records` must hold whole batches (the fetcher drops a cut-off tail).
    /// `epoch_start(epoch, first offset)` is called for the first batch's epoch and each
    /// later epoch that starts in the appended batches (the leader-epoch cache keeps the first
    /// start it hears of), as soon as they are in the log, so an error later in the set does
    /// not lose the epochs of what was written before it.
    pub async fn append_as_follower(
        &self,
        records: Bytes,
        now_ms: i64,
        mut epoch_start: impl FnMut(i32, i64),
    ) -> Result<AppendInfo, LogError> {
        self.check_writable()?;
        let cfg = self.config.borrow().clone();
        let spans = split_and_validate(&records, cfg.max_message_bytes)?;
        let _guard = self.serial.lock().await?;
        if self.closed.get() {
            return Err(LogError::Closed);
        }
        let base_offset = self.log_end_offset.get();
        let mut next = base_offset;
        let mut epoch_starts: Vec<(i32, i64)> = Vec::new();
        let mut max_ts = -1i64;
        for span in &spans {
            let h = &span.header;
            if h.base_offset != next || h.last_offset_delta < 0 {
                return Err(LogError::InvalidRecord(format!(
                    "replicated batch at offset {} but the log continues at {next}",
                    h.base_offset
                )));
            }
            next = h
                .base_offset
                .checked_add(i64::from(h.last_offset_delta) + 1)
                .ok_or_else(|| {
                    LogError::InvalidRecord("replicated batch overflows the offset space".into())
                })?;
            let latest = epoch_starts.last().map(|e| e.0);
            if latest.is_none_or(|e| h.partition_leader_epoch > e) {
                epoch_starts.push((h.partition_leader_epoch, h.base_offset));
            }
            max_ts = max_ts.max(h.max_timestamp);
        }
        // Whole batches, in groups that each fit a segment.
        let mut group_start = 0usize;
        while group_start < spans.len() {
            let mut group_end = group_start + 1;
            let first_pos = spans[group_start].pos;
            let end_of = |i: usize| spans[i].pos + spans[i].header.total_len();
            while group_end < spans.len()
                && (end_of(group_end) - first_pos) as u64 <= cfg.segment_bytes()
            {
                group_end += 1;
            }
            let group = &spans[group_start..group_end];
            let bytes = (end_of(group_end - 1) - first_pos) as u64;
            let count = group
                .iter()
                .map(|s| i64::from(s.header.last_offset_delta) + 1)
                .sum();
            self.maybe_roll_locked(&cfg, now_ms, bytes, count).await?;
            let active = self.active()?;
            let placed: Vec<PlacedBatch> = group
                .iter()
                .map(|s| PlacedBatch {
                    rel_pos: s.pos - first_pos,
                    header: s.header,
                })
                .collect();
            active
                .append(
                    &[&records[first_pos..first_pos + bytes as usize]],
                    &placed,
                    cfg.index_interval_bytes,
                    now_ms,
                )
                .await?;
            let group_next = group
                .last()
                .map_or(self.log_end_offset.get(), |s| s.header.next_offset());
            self.log_end_offset.set(group_next);
            for &(epoch, first) in epoch_starts
                .iter()
                .filter(|(_, first)| (base_of(group)..group_next).contains(first))
            {
                epoch_start(epoch, first);
            }
            let mut producers = self.producers.borrow_mut();
            group.iter().for_each(|s| producers.replay(&s.header));
            producers.set_map_end_offset(group_next);
            producers.enforce_limit(cfg.max_producer_ids);
            drop(producers);
            group_start = group_end;
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time: -1,
            log_start_offset: self.log_start_offset.get(),
            max_timestamp: max_ts,
            duplicate: false,
        })
    }

    fn check_writable(&self) -> Result<(), LogError> {
        if self.closed.get() {
            return Err(LogError::Closed);
        }
        if self.failed.get() {
            return Err(failed_error());
        }
        Ok(())
    }

    /// The append itself, for validated `spans` of `records`. `true_max_timestamp`: the single
    /// batch's max timestamp to store instead of its header's (CreateTime only).
    async fn append_batches(
        &self,
        records: Bytes,
        spans: Vec<BatchSpan>,
        true_max_timestamp: Option<i64>,
        cfg: LogConfig,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        if records.len() as u64 > cfg.segment_bytes() {
            return Err(LogError::RecordListTooLarge {
                size: records.len(),
                max: cfg.segment_bytes(),
            });
        }
        for span in &spans {
            check_client_batch(&span.header)?;
        }
        let record_count: i64 = spans
            .iter()
            .map(|s| i64::from(s.header.last_offset_delta) + 1)
            .sum();
        // Offsets never wrap: a log whose end plus this append would pass i64::MAX refuses it
        // (a header's count is at most 2^31 per batch, so only a hostile history gets here).
        if self
            .log_end_offset
            .get()
            .checked_add(record_count)
            .is_none()
        {
            return Err(LogError::InvalidRecord(format!(
                "{record_count} records past log end offset {} overflow the offset space",
                self.log_end_offset.get()
            )));
        }

        let _guard = self.serial.lock().await?;
        if self.closed.get() {
            return Err(LogError::Closed);
        }

        // The headers as they will be written: offsets from the LEO, epoch, timestamps.
        let base_offset = self.log_end_offset.get();
        let epoch = self.leader_epoch.get();
        let mut next = base_offset;
        let mut placed = Vec::with_capacity(spans.len());
        let mut max_ts = -1i64;
        for span in &spans {
            let mut h = span.header;
            h.base_offset = next;
            if let Some(e) = epoch {
                h.partition_leader_epoch = e;
            }
            match cfg.timestamp_type {
                TimestampType::LogAppendTime => {
                    h.max_timestamp = now_ms;
                    h.attributes |= 0x08;
                }
                TimestampType::CreateTime => {
                    h.attributes &= !0x08;
                    if let Some(ts) = true_max_timestamp {
                        h.max_timestamp = ts;
                    }
                }
            }
            max_ts = max_ts.max(h.max_timestamp);
            next = h.next_offset();
            placed.push(PlacedBatch {
                rel_pos: span.pos,
                header: h,
            });
        }
        let log_append_time = match cfg.timestamp_type {
            TimestampType::LogAppendTime => now_ms,
            TimestampType::CreateTime => -1,
        };

        // Producer state: fenced epochs and sequence gaps fail the whole set; a duplicate
        // writes nothing. Checked before a roll, so a refused append changes nothing.
        let headers: Vec<_> = placed.iter().map(|p| p.header).collect();
        let check = self.producers.borrow().validate(&headers)?;
        let pending = match check {
            AppendCheck::Append(pending) => pending,
            AppendCheck::Duplicate(d) => {
                tracing::debug!(dir = %self.dir.display(), first_offset = d.first_offset,
                    first_seq = d.first_seq, "duplicate idempotent batch; not appended");
                return Ok(AppendInfo {
                    base_offset: d.first_offset,
                    last_offset: d.last_offset,
                    log_append_time: match cfg.timestamp_type {
                        TimestampType::LogAppendTime => d.timestamp,
                        TimestampType::CreateTime => -1,
                    },
                    log_start_offset: self.log_start_offset.get(),
                    max_timestamp: d.timestamp,
                    duplicate: true,
                });
            }
        };

        self.maybe_roll_locked(&cfg, now_ms, records.len() as u64, record_count)
            .await?;
        let active = self.active()?;

        // When nothing covered by a CRC changes (CreateTime topic, no client-set LogAppendTime
        // bit), each batch is written as its rewritten 16-byte prefix (offset, epoch) followed by
        // the rest straight from the request's buffer: one gathered write, no copy of the
        // records. Otherwise the set is copied and rewritten (attributes, timestamp, CRC).
        let unchanged_crc = cfg.timestamp_type == TimestampType::CreateTime
            && true_max_timestamp.is_none()
            && spans
                .iter()
                .all(|s| s.header.timestamp_type() == TimestampType::CreateTime);
        let prefixes: Vec<[u8; UNCHECKED_PREFIX]>;
        let rewritten: Vec<u8>;
        let parts: Vec<&[u8]> = if unchanged_crc {
            prefixes = placed
                .iter()
                .map(|p| stored_prefix(&records[p.rel_pos..], p.header.base_offset, epoch))
                .collect();
            placed
                .iter()
                .zip(&prefixes)
                .flat_map(|(p, prefix)| {
                    let end = p.rel_pos + p.header.total_len();
                    [&prefix[..], &records[p.rel_pos + UNCHECKED_PREFIX..end]]
                })
                .collect()
        } else {
            rewritten = rewrite_batches(&records, &placed, epoch, cfg.timestamp_type, now_ms);
            vec![&rewritten[..]]
        };
        active
            .append(&parts, &placed, cfg.index_interval_bytes, now_ms)
            .await?;
        // Appended from here on (segment state was updated in the same step). Consumers see it
        // once the owner advances the high watermark (`partition::Partition`: at once on one
        // node, once the ISR has it under replication).
        self.log_end_offset.set(next);
        {
            let mut producers = self.producers.borrow_mut();
            producers.commit(pending, next);
            let forgotten = producers.enforce_limit(cfg.max_producer_ids);
            if forgotten > 0 {
                tracing::info!(dir = %self.dir.display(), forgotten,
                    "more producer ids than max.producer.ids.per.partition: oldest forgotten");
            }
        }
        // The new index entries stay in memory until the segment is sealed or closed (see
        // `sparse_index`): the file would only matter after a crash, when recovery rebuilds the
        // last segment's indexes from the log anyway.
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time,
            log_start_offset: self.log_start_offset.get(),
            max_timestamp: max_ts,
            duplicate: false,
        })
    }

    /// Roll if the active segment is older than `segment.ms` (appends check this too).
    pub async fn maybe_roll(&self, now_ms: i64) -> Result<bool, LogError> {
        let _guard = self.serial.lock().await?;
        if self.closed.get() {
            return Err(LogError::Closed);
        }
        let cfg = self.config.borrow().clone();
        self.maybe_roll_locked(&cfg, now_ms, 0, 0).await
    }

    /// Roll decision (serial lock held). Never rolls an empty segment, so a record set larger
    /// than the remaining room always lands in a fresh segment and no segment is empty except
    /// the active one.
    async fn maybe_roll_locked(
        &self,
        cfg: &LogConfig,
        now_ms: i64,
        incoming_bytes: u64,
        incoming_records: i64,
    ) -> Result<bool, LogError> {
        let active = self.active()?;
        if active.is_empty() {
            return Ok(false);
        }
        let size_after = active.size() + incoming_bytes;
        let leo = self.log_end_offset.get();
        let by_size = size_after > cfg.segment_bytes();
        // segment.jitter.ms: a share of the jitter per segment, from a hash of the partition's
        // directory and the segment's base (so partitions created together get different
        // shares, and one segment always the same), as Kafka draws one at random per segment.
        let jitter = match cfg.segment_jitter_ms {
            j if j > 0 => {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (&self.dir, active.base_offset()).hash(&mut h);
                (h.finish() % j as u64) as i64
            }
            _ => 0,
        };
        let by_time = cfg.segment_ms > 0
            && now_ms - active.roll_base_ms() > cfg.segment_ms.saturating_sub(jitter).max(1);
        // segment.index.bytes: Kafka rolls when the offset index is full.
        let by_index = active.index.len() >= cfg.index_max_entries.max(1);
        // Relative offsets and positions are u32 in the index files.
        let by_offset =
            leo.saturating_add(incoming_records) - 1 - active.base_offset() > i64::from(u32::MAX);
        let by_position = size_after > u64::from(u32::MAX);
        if !(by_size || by_time || by_offset || by_position || by_index) {
            return Ok(false);
        }
        tracing::debug!(dir = %self.dir.display(), base = leo, by_size, by_time, "rolling segment");
        active.seal().await;
        let seg = Rc::new(Segment::create(&self.dir, leo, now_ms).await?);
        self.segments.borrow_mut().insert(leo, seg);
        self.dir_dirty.set(true);
        // Producer state as of the new segment's base (Kafka takes its snapshot here too).
        self.snapshot_producers_locked().await;
        Ok(true)
    }

    /// Write a producer-state snapshot at the LEO and keep only the newest ones (serial lock
    /// held). Failures are logged, not returned: the snapshot only shortens the replay at open
    /// (an older snapshot or the log itself serve instead), so an append or close must not fail
    /// for it.
    async fn snapshot_producers_locked(&self) {
        let state = self.producers.borrow().clone();
        debug_assert_eq!(state.map_end_offset(), self.log_end_offset.get());
        match producer_state::write_snapshot(&self.dir, &state).await {
            Ok(_) => self.dir_dirty.set(true),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not write producer snapshot");
                return;
            }
        }
        if let Err(e) = producer_state::prune_snapshots(
            &self.dir,
            self.log_start_offset.get(),
            SNAPSHOTS_TO_KEEP,
        )
        .await
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not prune producer snapshots");
        }
    }

    /// Forget producers whose last batch is older than `expiration_ms` (Kafka's
    /// `producer.id.expiration.ms`, default [`producer_state::DEFAULT_PRODUCER_ID_EXPIRATION_MS`];
    /// Kafka checks every `producer.id.expiration.check.interval.ms`, 10 minutes). The broker
    /// calls this periodically. Returns how many producers were removed.
    pub async fn expire_producers(
        &self,
        now_ms: i64,
        expiration_ms: i64,
    ) -> Result<usize, LogError> {
        let _guard = self.serial.lock().await?;
        Ok(self
            .producers
            .borrow_mut()
            .remove_expired(now_ms, expiration_ms))
    }

    /// Read whole batches from the batch containing `offset`, up to `max_bytes`, stopping at
    /// the high watermark (what a consumer may see).
    ///
    /// - `offset < log_start` or `offset > LEO`: `OffsetOutOfRange`.
    /// - `offset == LEO` (or >= high watermark): empty.
    /// - The first batch may start before `offset` (a batch is never split); the consumer skips
    ///   the records before it, as with Kafka.
    /// - If the first batch alone exceeds `max_bytes`: returned whole when `min_one_batch`
    ///   (KIP-74, so a consumer can always make progress), else empty.
    /// - Data comes from one segment per call; at a segment's end the next call continues.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Bytes, LogError> {
        self.read_up_to(offset, max_bytes, min_one_batch, self.high_watermark.get())
            .await
    }

    /// [`PartitionLog::read`] with an explicit bound: batches whose base offset is
    /// `>= upper_bound` are not returned (followers read up to the LEO: pass
    /// `log_end_offset()`).
    pub async fn read_up_to(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        upper_bound: i64,
    ) -> Result<Bytes, LogError> {
        let found = self
            .walk_segments(offset, upper_bound, |s| async move {
                s.read(offset, max_bytes, min_one_batch, upper_bound).await
            })
            .await?;
        Ok(found.unwrap_or_default())
    }

    /// The segment walk shared by reads: checks `offset` against the log's range
    /// (`OffsetOutOfRange` outside `[log start, log end]`, nothing at the end or at
    /// `upper_bound`), then asks each segment from the one holding `offset` onwards until one
    /// answers (`None` from a segment means the offset is past it).
    async fn walk_segments<T, F, Fut>(
        &self,
        offset: i64,
        upper_bound: i64,
        mut read: F,
    ) -> Result<Option<T>, LogError>
    where
        F: FnMut(Rc<Segment>) -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, LogError>>,
    {
        let (start, end) = (self.log_start_offset.get(), self.log_end_offset.get());
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        if offset >= end || offset >= upper_bound {
            return Ok(None);
        }
        let mut seg = self
            .segments
            .borrow()
            .range(..=offset)
            .next_back()
            .map(|(_, s)| s.clone());
        while let Some(s) = seg {
            let base = s.base_offset();
            if let Some(found) = read(s).await? {
                return Ok(Some(found));
            }
            seg = self
                .segments
                .borrow()
                .range((Bound::Excluded(base), Bound::Unbounded))
                .next()
                .map(|(_, s)| s.clone());
        }
        Ok(None)
    }

    /// Zero-copy counterpart of [`PartitionLog::read`]: where the data is, not the data. The
    /// fetch path sends the returned [`FileSlice`] with
    /// [`crate::runtime::sendfile::send_file`] (Kafka's `FileRecords`).
    ///
    /// Same rules and errors as `read` (`OffsetOutOfRange` outside `[log start, LEO]`, stops
    /// at the high watermark, one segment per call, the first batch may start before
    /// `offset`), with one difference, as in Kafka: the slice ends at `max_bytes` even inside a
    /// batch, so its last batch may be partial. Clients drop a truncated trailing batch and
    /// fetch again from its offset; the first batch is always whole (when `min_one_batch`
    /// lets it exceed `max_bytes`) or absent.
    ///
    /// `Ok(None)` when there is nothing to send; a returned slice is never empty. The slice
    /// holds its own descriptor, so it stays readable if retention deletes the segment
    /// before it is sent.
    pub async fn read_slice(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Option<FileSlice>, LogError> {
        let upper_bound = self.high_watermark.get();
        let found = self
            .walk_segments(offset, upper_bound, |s| async move {
                s.read_slice(offset, max_bytes, min_one_batch, upper_bound)
                    .await
            })
            .await?;
        Ok(found.filter(|s| s.len > 0))
    }

    /// ListOffsets by timestamp: the first batch (in offset order) whose max timestamp is
    /// `>= ts`, found via the segments' max timestamps, the time index, then a forward scan.
    /// Returns `(offset, timestamp)` of the first *record* with timestamp >= `ts` for
    /// uncompressed CreateTime batches, and `(batch base offset, batch max timestamp)` for
    /// compressed or LogAppendTime batches. `None` if no batch qualifies (Kafka then answers
    /// offset -1).
    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let segs: Vec<Rc<Segment>> = self.segments.borrow().values().cloned().collect();
        let start = self.log_start_offset.get();
        for s in segs {
            if s.max_timestamp() < ts {
                continue;
            }
            if let Some((o, t)) = s.find_by_timestamp(ts).await? {
                return Ok(Some((o.max(start), t)));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (-3): `(timestamp, offset)` of the first record carrying the
    /// log's largest timestamp. Segments track the batch holding their max timestamp; that batch
    /// is read (and decompressed if need be) to name the exact record, as Kafka does. `None` if
    /// the log holds no batch.
    pub async fn max_timestamp_and_offset(&self) -> Result<Option<(i64, i64)>, LogError> {
        let best = {
            let segs = self.segments.borrow();
            let mut best: Option<(i64, i64)> = None;
            for s in segs.values() {
                let ts = s.max_timestamp();
                if !s.is_empty() && best.is_none_or(|(t, _)| ts > t) {
                    best = Some((ts, s.offset_of_max_timestamp()));
                }
            }
            best
        };
        let Some((ts, batch_offset)) = best else {
            return Ok(None);
        };
        let batch = match self.read(batch_offset, 1, true).await {
            Ok(b) => b,
            // Retention may have removed it meanwhile; the batch-level answer is still valid.
            Err(LogError::OffsetOutOfRange { .. }) => return Ok(Some((ts, batch_offset))),
            Err(e) => return Err(e),
        };
        let exact = crate::log::record_walk::find_record(&batch, |t| t == ts)
            .await
            .map(|(offset, _)| offset);
        Ok(Some((ts, exact.unwrap_or(batch_offset))))
    }

    /// `fdatasync` every segment with unsynced appends (older ones first), and the directory
    /// after a roll. Many producers may share one call (group commit): every offset below the
    /// LEO seen at the start is durable when it returns, and `flushed_offset` says so.
    pub async fn sync(&self) -> Result<(), LogError> {
        if self.failed.get() {
            return Err(failed_error());
        }
        let _one_at_a_time = self.sync_lock.lock().await?;
        if self.failed.get() {
            return Err(failed_error());
        }
        let result = self.sync_segments().await;
        // A failed fdatasync poisons the log ("fsyncgate", see `failed`); a file that could not
        // be reopened to sync (no descriptor free) was never synced and can be retried.
        if result
            .as_ref()
            .is_err_and(|e| !matches!(e, LogError::Unavailable(_)))
        {
            self.failed.set(true);
        }
        result
    }

    async fn sync_segments(&self) -> Result<(), LogError> {
        let target = self.log_end_offset.get();
        let segs: Vec<Rc<Segment>> = self
            .segments
            .borrow()
            .values()
            .filter(|s| s.is_dirty())
            .cloned()
            .collect();
        for s in segs {
            s.sync().await?;
        }
        if self.dir_dirty.replace(false) {
            if let Err(e) = sync_dir(&self.dir).await {
                self.dir_dirty.set(true);
                return Err(e.into());
            }
        }
        if target > self.flushed_offset.get() {
            self.flushed_offset.set(target);
        }
        Ok(())
    }

    /// Cuts the log back so it ends before `offset` (Kafka's `truncateTo`, for a replica whose
    /// tail diverges from the new leader's log): every batch from the one containing `offset`
    /// on is removed — later segments deleted, the containing one cut — and the producer state
    /// rebuilt from what remains (snapshots past the new end deleted). The high watermark and
    /// the flushed offset come down with the end. Returns the new log end offset (`offset`, or
    /// the base of the batch that contained it). An `offset` at or past the end changes
    /// nothing; one below the log start offset is refused.
    pub async fn truncate_to(&self, offset: i64) -> Result<i64, LogError> {
        // The sync lock first (the order `sync` takes them in): a sync in flight must not
        // claim the old end durable after the cut.
        let _no_sync = self.sync_lock.lock().await?;
        let _guard = self.serial.lock().await?;
        if self.closed.get() {
            return Err(LogError::Closed);
        }
        if self.failed.get() {
            return Err(failed_error());
        }
        let (start, end) = (self.log_start_offset.get(), self.log_end_offset.get());
        if offset >= end {
            return Ok(end);
        }
        if offset < start {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        match self.truncate_locked(offset, start, end).await {
            Ok(new_end) => Ok(new_end),
            Err(e) => {
                // Files may be half cut: nothing more is written to this log until a restart
                // recovers it from what is on disk.
                self.failed.set(true);
                Err(e)
            }
        }
    }

    async fn truncate_locked(&self, offset: i64, start: i64, end: i64) -> Result<i64, LogError> {
        let (doomed, containing) = {
            let mut segs = self.segments.borrow_mut();
            let later: Vec<i64> = segs.range(offset + 1..).map(|(b, _)| *b).collect();
            let doomed: Vec<Rc<Segment>> = later.iter().filter_map(|b| segs.remove(b)).collect();
            (doomed, segs.values().next_back().cloned())
        };
        for seg in &doomed {
            seg.remove_files().await?;
        }
        let Some(containing) = containing else {
            return Err(LogError::Corrupt(format!(
                "{}: no segment holds offset {offset}",
                self.dir.display()
            )));
        };
        containing.truncate_to(offset).await?;
        let mut new_end = containing.next_offset();
        if new_end < start {
            // The batch holding `offset` began below the log start (DeleteRecords inside a
            // batch): start over, empty, at the start (Kafka's truncateFullyAndStartAt).
            let all: Vec<Rc<Segment>> = std::mem::take(&mut *self.segments.borrow_mut())
                .into_values()
                .collect();
            for seg in &all {
                seg.remove_files().await?;
            }
            let fresh = Rc::new(Segment::create(&self.dir, start, wall_clock_ms()).await?);
            self.segments.borrow_mut().insert(start, fresh);
            new_end = start;
        }
        self.log_end_offset.set(new_end);
        self.high_watermark
            .set(self.high_watermark.get().min(new_end));
        self.flushed_offset
            .set(self.flushed_offset.get().min(new_end));
        self.dir_dirty.set(true);
        let segs: Vec<Rc<Segment>> = self.segments.borrow().values().cloned().collect();
        let loaded = producer_state::load(&self.dir, &segs, start, new_end).await?;
        *self.producers.borrow_mut() = loaded.state;
        tracing::info!(dir = %self.dir.display(), from = end, to = new_end,
            "log truncated to match the leader");
        Ok(new_end)
    }

    /// DeleteRecords: makes `offset` (at most the high watermark) the log start offset, so
    /// records below it are gone for consumers, and deletes the segments entirely below it
    /// (never the active one). The new start is durable before anything is removed. Returns
    /// the log start offset after the call (unchanged if `offset` is not past it).
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let _guard = self.serial.lock().await?;
        if self.closed.get() {
            return Err(LogError::Closed);
        }
        let (start, hw) = (self.log_start_offset.get(), self.high_watermark.get());
        if offset < 0 || offset > hw {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                start,
                end: hw,
            });
        }
        if offset <= start {
            return Ok(start);
        }
        write_log_start(&self.dir, offset).await?;
        self.log_start_offset.set(offset);
        let doomed: Vec<Rc<Segment>> = {
            let mut segs = self.segments.borrow_mut();
            let below: Vec<i64> = segs
                .iter()
                .take(segs.len().saturating_sub(1))
                .filter(|(_, s)| s.next_offset() <= offset)
                .map(|(b, _)| *b)
                .collect();
            below.iter().filter_map(|b| segs.remove(b)).collect()
        };
        for seg in &doomed {
            if let Err(e) = seg.remove_files().await {
                tracing::warn!(error = %e, "could not delete segment files");
            }
        }
        if !doomed.is_empty() {
            self.dir_dirty.set(true);
        }
        Ok(offset)
    }

    /// Delete whole segments past `retention.ms` (by the segment's newest timestamp) or while
    /// the log exceeds `retention.bytes`, oldest first, stopping at the first segment kept;
    /// never the active segment. Advances the log start offset. Returns how many were deleted.
    pub async fn apply_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let _guard = self.serial.lock().await?;
        if self.closed.get() {
            return Err(LogError::Closed);
        }
        let cfg = self.config.borrow().clone();
        let doomed: Vec<Rc<Segment>> = {
            let mut segs = self.segments.borrow_mut();
            let mut total: u64 = segs.values().map(|s| s.size()).sum();
            let candidates: Vec<(i64, Rc<Segment>)> = segs
                .iter()
                .take(segs.len().saturating_sub(1))
                .map(|(b, s)| (*b, s.clone()))
                .collect();
            let mut doomed = Vec::new();
            for (base, s) in candidates {
                let newest = if s.max_timestamp() >= 0 {
                    s.max_timestamp()
                } else {
                    s.roll_base_ms()
                };
                let by_time = cfg.retention_ms >= 0 && now_ms - newest > cfg.retention_ms;
                let by_size = cfg.retention_bytes >= 0
                    && total.saturating_sub(s.size()) >= cfg.retention_bytes as u64;
                if !(by_time || by_size) {
                    break;
                }
                total -= s.size();
                segs.remove(&base);
                doomed.push(s);
            }
            if let Some(first) = segs.keys().next() {
                if *first > self.log_start_offset.get() {
                    self.log_start_offset.set(*first);
                }
            }
            doomed
        };
        if self.high_watermark.get() < self.log_start_offset.get() {
            self.high_watermark.set(self.log_start_offset.get());
        }
        let n = doomed.len();
        let mut first_err = None;
        for s in doomed {
            tracing::debug!(dir = %self.dir.display(), base = s.base_offset(), "retention: deleting segment");
            if let Err(e) = s.remove_files().await {
                tracing::warn!(error = %e, "could not delete segment files");
                first_err.get_or_insert(e);
            }
        }
        if n > 0 {
            self.dir_dirty.set(true);
            // Snapshots below the new log start cannot be replayed from any more. The state in
            // memory keeps every producer (KIP-360): only expiry removes them.
            if let Err(e) = producer_state::prune_snapshots(
                &self.dir,
                self.log_start_offset.get(),
                SNAPSHOTS_TO_KEEP,
            )
            .await
            {
                tracing::warn!(error = %e, "could not delete old producer snapshots");
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// Stop the log: wait for in-flight appends, seal the active segment, sync everything, and
    /// write the clean-shutdown marker (so the next open skips the CRC scan). Further appends
    /// fail with `Closed`; reads keep working until the value is dropped.
    pub async fn close(&self) -> Result<(), LogError> {
        let _guard = self.serial.lock().await?;
        if self.closed.replace(true) {
            return Ok(());
        }
        let active = self.active()?;
        active.seal().await;
        // Producer state at the log end, so the next open replays nothing.
        self.snapshot_producers_locked().await;
        // The directory's own sync on the shard's thread too (see the marker below).
        if self.dir_dirty.replace(false) {
            if let Err(e) = sync_dir_now(&self.dir) {
                self.dir_dirty.set(true);
                return Err(e.into());
            }
        }
        self.sync().await?;
        // The acks path syncs only log data; a clean shutdown also syncs the indexes, so the
        // next open can trust them (seal() may also have written a time-index entry).
        let segs: Vec<Rc<Segment>> = self.segments.borrow().values().cloned().collect();
        for s in segs {
            s.sync_indexes().await?;
        }
        active.index.fdatasync().await?;
        active.time_index.fdatasync().await?;
        // On the shard's thread: close runs at shutdown (or when a partition moves away), when
        // the shard serves no requests, and a stop with 10,000 partitions must not queue 10,000
        // hand-offs to the blocking pool.
        std::fs::write(self.dir.join(CLEAN_SHUTDOWN_MARKER), b"")?;
        sync_dir_now(&self.dir)?;
        Ok(())
    }

    /// Remove the partition's directory and everything in it. Waits for in-flight appends.
    pub async fn delete(self) -> Result<(), LogError> {
        let _guard = self.serial.lock().await?;
        self.closed.set(true);
        let dir = self.dir.clone();
        blocking(move || std::fs::remove_dir_all(dir)).await?;
        Ok(())
    }
}

/// A copy of `records` with every batch's stored header: offset, epoch, and the timestamp type
/// of the topic (attributes and CRC rewritten where they change).
fn rewrite_batches(
    records: &[u8],
    placed: &[PlacedBatch],
    epoch: Option<i32>,
    timestamp_type: TimestampType,
    now_ms: i64,
) -> Vec<u8> {
    let mut data = records.to_vec();
    for p in placed {
        let h = &p.header;
        let b = &mut data[p.rel_pos..p.rel_pos + h.total_len()];
        set_base_offset(b, h.base_offset);
        if let Some(e) = epoch {
            set_partition_leader_epoch(b, e);
        }
        match timestamp_type {
            TimestampType::LogAppendTime => {
                set_log_append_time(b, now_ms);
            }
            TimestampType::CreateTime => {
                set_create_time(b, h.max_timestamp);
            }
        }
    }
    data
}

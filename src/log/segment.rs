//! One log segment: `<20-digit base offset>.log` plus its `.index` and `.timeindex`.

use crate::log::batch::{BatchHeader, TimestampType, HEADER_LEN};
use crate::log::error::LogError;
use crate::log::offset_index::OffsetIndex;
use crate::log::record_walk::find_record;
use crate::log::time_index::TimeIndex;
use crate::runtime::file::FileSlice;
use crate::runtime::file_cache::{CachedFile, SyncError};
use bytes::Bytes;
use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};

/// Bytes read per I/O when walking batch headers. Large enough to cover an
/// `index.interval.bytes` (4 KiB default) of small batches in one read, small enough that
/// skipping over one big batch does not read its payload.
const SCAN_CHUNK: usize = 16 * 1024;

/// File name of a segment's log for `base_offset` (Kafka's 20-digit zero-padded form).
pub fn log_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.log")
}

/// Paths of the three files of the segment with `base_offset` in `dir`.
pub fn segment_paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join(format!("{base_offset:020}.log")),
        dir.join(format!("{base_offset:020}.index")),
        dir.join(format!("{base_offset:020}.timeindex")),
    )
}

/// How a walk over batch headers ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Every batch up to `end` was visited; the last one ends exactly at this position.
    End(u64),
    /// The visitor asked to stop at the batch at `pos` (not counted as visited).
    Stopped(u64, BatchHeader),
    /// Bytes at `pos` are not a valid batch (torn or corrupt); everything before is valid.
    Invalid { pos: u64, reason: String },
}

/// One segment of a partition log.
///
/// Invariants (all positions are byte positions in the `.log` file):
/// - `size` is the *logical* end: bytes `[0, size)` are whole, valid batches (validated on
///   append, or by recovery on open); bytes beyond it (a failed write, a torn tail before
///   recovery truncates it) are never read.
/// - Batches are contiguous and their offsets strictly increase from `base_offset`;
///   `next_offset` is one past the last record (== `base_offset` when empty). Relative offsets
///   (`offset - base_offset`) and positions fit in `u32`; the log rolls before they would not.
/// - `max_timestamp` / `offset_of_max_timestamp` cover every batch in `[0, size)` (-1 when
///   empty); `offset_of_max_timestamp` is the base offset of the first batch that reached it.
/// - Readers only ever see a state in which `size`, `next_offset` and the max timestamp agree:
///   they are updated together, synchronously, after the data write completed.
/// - `dirty` is true when bytes were appended since the last `fdatasync`.
#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    /// Opened on demand under the shard's descriptor budget (see `runtime::file_cache`).
    log: CachedFile,
    pub(crate) index: OffsetIndex,
    pub(crate) time_index: TimeIndex,
    size: Cell<u64>,
    next_offset: Cell<i64>,
    max_timestamp: Cell<i64>,
    offset_of_max_timestamp: Cell<i64>,
    /// Wall-clock ms the segment's age is measured from (for `segment.ms`).
    roll_base_ms: Cell<i64>,
    bytes_since_index: Cell<u64>,
    dirty: Cell<bool>,
    /// Appended to since the indexes were last synced (they are synced only at close).
    indexes_dirty: Cell<bool>,
    /// End of the prefix whose writeback was started (see [`Segment::write_behind`]).
    written_back: Cell<u64>,
}

/// A batch placed in a segment by [`Segment::append`]: its header (offsets already assigned)
/// and its position relative to the start of the appended buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlacedBatch {
    pub rel_pos: usize,
    pub header: BatchHeader,
}

impl Segment {
    /// Create a new, empty segment (truncating stale files of the same name, which can only
    /// be leftovers of a failed deletion).
    pub async fn create(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Segment> {
        let seg = Self::open_files(dir, base_offset).await?;
        seg.log.truncate(0).await?;
        seg.index.replace(&[]).await?;
        seg.time_index.replace(&[]).await?;
        seg.size.set(0);
        seg.written_back.set(0);
        seg.roll_base_ms.set(now_ms);
        Ok(seg)
    }

    /// Open the three files of an existing segment, loading the indexes but validating
    /// nothing: `size` is the file size and `next_offset` is the base. Recovery decides what to
    /// trust (see `recovery.rs`).
    pub(crate) async fn open_files(dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let (log_path, index_path, time_path) = segment_paths(dir, base_offset);
        let log = CachedFile::create(&log_path).await?;
        let size = log.file_size().await?;
        let index = OffsetIndex::open(&index_path, base_offset).await?;
        let time_index = TimeIndex::open(&time_path, base_offset).await?;
        Ok(Segment {
            base_offset,
            log,
            index,
            time_index,
            size: Cell::new(size),
            next_offset: Cell::new(base_offset),
            max_timestamp: Cell::new(-1),
            offset_of_max_timestamp: Cell::new(-1),
            roll_base_ms: Cell::new(0),
            bytes_since_index: Cell::new(0),
            dirty: Cell::new(false),
            indexes_dirty: Cell::new(false),
            written_back: Cell::new(size),
        })
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    /// Logical size in bytes (whole batches only).
    pub fn size(&self) -> u64 {
        self.size.get()
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset.get()
    }
    pub fn is_empty(&self) -> bool {
        self.size.get() == 0
    }
    /// Largest batch max timestamp in the segment, -1 if empty.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp.get()
    }
    /// Base offset of the first batch holding [`Segment::max_timestamp`], -1 if empty.
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp.get()
    }
    pub fn roll_base_ms(&self) -> i64 {
        self.roll_base_ms.get()
    }
    pub fn is_dirty(&self) -> bool {
        self.dirty.get()
    }
    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// Force the next [`Segment::sync`] to `fdatasync` (after recovery from a crash).
    pub(crate) fn mark_dirty(&self) {
        self.dirty.set(true);
    }

    /// Set the recovered state (used by recovery only).
    pub(crate) fn set_recovered(
        &self,
        size: u64,
        next_offset: i64,
        max_ts: i64,
        offset_of_max: i64,
        roll_base_ms: i64,
    ) {
        self.size.set(size);
        self.written_back.set(self.written_back.get().min(size));
        self.next_offset.set(next_offset.max(self.base_offset));
        self.max_timestamp.set(max_ts);
        self.offset_of_max_timestamp.set(offset_of_max);
        self.roll_base_ms.set(roll_base_ms);
        self.bytes_since_index.set(0);
    }

    /// Walk batch headers from `from` to `end`, calling `visit(pos, header)` for each batch
    /// until it returns false. With `validate_crc` every batch is read whole and its CRC32C
    /// checked; otherwise only headers are read. Never panics on garbage: anything that is not
    /// a batch ends the walk with [`ScanEnd::Invalid`].
    pub(crate) async fn scan(
        &self,
        from: u64,
        end: u64,
        validate_crc: bool,
        mut visit: impl FnMut(u64, &BatchHeader) -> bool,
    ) -> Result<ScanEnd, LogError> {
        let mut pos = from;
        while pos < end {
            let want = usize::try_from((end - pos).min(SCAN_CHUNK as u64)).unwrap_or(SCAN_CHUNK);
            let mut buf = self.log.read_at(pos, want).await?;
            let mut off = 0usize;
            loop {
                let at = pos + off as u64;
                if at >= end {
                    break;
                }
                if buf.len() - off < HEADER_LEN {
                    if at + HEADER_LEN as u64 > end {
                        return Ok(ScanEnd::Invalid {
                            pos: at,
                            reason: format!("{} trailing bytes, less than a header", end - at),
                        });
                    }
                    if off == 0 {
                        // The file is shorter than its recorded end.
                        return Ok(ScanEnd::Invalid {
                            pos: at,
                            reason: "unexpected end of file".into(),
                        });
                    }
                    break; // re-read from `at`
                }
                let header = match BatchHeader::parse(&buf[off..]) {
                    Ok(h) => h,
                    Err(e) => {
                        return Ok(ScanEnd::Invalid {
                            pos: at,
                            reason: e.to_string(),
                        })
                    }
                };
                let total = header.total_len();
                if at + total as u64 > end {
                    return Ok(ScanEnd::Invalid {
                        pos: at,
                        reason: format!("batch of {total} bytes runs past the end {end}"),
                    });
                }
                if validate_crc {
                    if buf.len() - off < total {
                        if off > 0 {
                            break; // re-read from `at` with the whole batch
                        }
                        buf = self.log.read_at(at, total).await?;
                        if buf.len() < total {
                            return Ok(ScanEnd::Invalid {
                                pos: at,
                                reason: "unexpected end of file".into(),
                            });
                        }
                    }
                    if let Err(e) = crate::log::batch::verify_crc(&buf[off..off + total], &header) {
                        return Ok(ScanEnd::Invalid {
                            pos: at,
                            reason: e.to_string(),
                        });
                    }
                }
                if !visit(at, &header) {
                    return Ok(ScanEnd::Stopped(at, header));
                }
                off += total;
                if off >= buf.len() {
                    break;
                }
            }
            pos += off as u64;
        }
        Ok(ScanEnd::End(pos))
    }

    /// Append `parts`, written in order, at the end: whole batches as they are stored, possibly
    /// split into pieces (a rewritten header prefix, then the rest from the request's buffer).
    ///
    /// On a write error the logical state is unchanged and the file is truncated back
    /// (best effort), so a partially written batch can never resurface after a restart.
    /// Index entries are added in memory; [`Segment::flush_indexes`] writes them (at seal and
    /// close).
    pub(crate) async fn append(
        &self,
        parts: &[&[u8]],
        batches: &[PlacedBatch],
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let start = self.size.get();
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        if let Err(e) = self.log.write_vectored_at(parts, start).await {
            if let Err(t) = self.log.truncate(start).await {
                tracing::warn!(error = %t, "could not truncate after a failed append");
            }
            return Err(e.into());
        }
        if start == 0 {
            // Age for segment.ms counts from the first append (wall clock, not a client
            // timestamp, so producers replaying old data do not cause a roll per append).
            self.roll_base_ms.set(now_ms);
        }
        for b in batches {
            let pos = start + b.rel_pos as u64;
            let h = &b.header;
            if h.max_timestamp > self.max_timestamp.get() {
                self.max_timestamp.set(h.max_timestamp);
                self.offset_of_max_timestamp.set(h.base_offset);
            }
            if self.bytes_since_index.get() > u64::from(index_interval_bytes) {
                self.index.push(h.base_offset, pos);
                self.time_index
                    .maybe_push(self.max_timestamp.get(), self.offset_of_max_timestamp.get());
                self.bytes_since_index.set(0);
            }
            self.bytes_since_index
                .set(self.bytes_since_index.get() + h.total_len() as u64);
            self.next_offset.set(h.next_offset());
        }
        self.size.set(start + len);
        self.dirty.set(true);
        self.write_behind(start + len);
        Ok(())
    }

    /// End of the prefix whose writeback was started (for tests).
    #[cfg(test)]
    pub(crate) fn written_back(&self) -> u64 {
        self.written_back.get()
    }

    /// Starts the kernel's writeback of every whole `log.writeback.bytes` chunk appended since
    /// the last call (see `runtime::file::set_writeback_bytes` for why). Failures are only
    /// logged: this is a hint, durability comes from `sync`.
    fn write_behind(&self, end: u64) {
        let chunk = crate::runtime::file::writeback_bytes();
        if chunk == 0 {
            return;
        }
        let from = self.written_back.get();
        let to = end - end % chunk;
        if to <= from {
            return;
        }
        if let Err(e) = self.log.start_writeback(from, to - from) {
            tracing::debug!(error = %e, "starting writeback failed");
        }
        self.written_back.set(to);
        // Drop-behind: the chunks whose writeback started `keep` bytes ago (at least two chunks,
        // see lifecycle) are usually clean by now. The kernel skips pages still dirty or under
        // writeback, so each call also covers the chunk before its range once more; a page
        // skipped twice just stays cached (never lost: only clean pages are dropped).
        let keep = crate::runtime::file::drop_behind_bytes();
        if keep > 0 && to > keep {
            let (drop_from, drop_to) = (from.saturating_sub(keep + chunk), to - keep);
            if let Err(e) = self.log.drop_cached(drop_from, drop_to - drop_from) {
                tracing::debug!(error = %e, "dropping written-back pages failed");
            }
        }
    }

    /// Write pending index entries. Failures are only logged: the indexes are derived data,
    /// the appended batches are already in the log, and a hole or stale tail is caught by the
    /// sanity check on the next open and rebuilt.
    pub(crate) async fn flush_indexes(&self) {
        if let Err(e) = self.index.flush().await {
            tracing::warn!(error = %e, "offset index write failed; it will be rebuilt on open");
        }
        if let Err(e) = self.time_index.flush().await {
            tracing::warn!(error = %e, "time index write failed; it will be rebuilt on open");
        }
    }

    /// Called when the segment stops being active (roll, close): make sure the time index's
    /// last entry holds the segment's max timestamp, so reopening knows it without a scan.
    pub(crate) async fn seal(&self) {
        if self.max_timestamp.get() >= 0 {
            self.time_index
                .maybe_push(self.max_timestamp.get(), self.offset_of_max_timestamp.get());
        }
        self.flush_indexes().await;
    }

    /// `fdatasync` the log and its indexes if anything was appended since the last sync.
    ///
    /// Only the log is synced here, on every acks=-1 / flush path: the indexes are derived data
    /// that recovery checks and rebuilds from the log ("rebuild, don't checksum", see
    /// `recovery`), so syncing them too would triple the device flushes per acknowledged write
    /// for nothing. [`Segment::sync_indexes`] syncs them at a clean shutdown.
    pub(crate) async fn sync(&self) -> Result<(), LogError> {
        if !self.dirty.replace(false) {
            return Ok(());
        }
        if let Err(e) = self.log.fdatasync().await {
            self.dirty.set(true);
            return Err(match e {
                SyncError::Reopen(e) => LogError::Unavailable(e.to_string()),
                SyncError::Sync(e) => e.into(),
            });
        }
        self.indexes_dirty.set(true);
        Ok(())
    }

    /// `fdatasync` both indexes if the segment was appended to since they were last synced.
    pub(crate) async fn sync_indexes(&self) -> Result<(), LogError> {
        if !self.indexes_dirty.replace(false) && !self.dirty.get() {
            return Ok(());
        }
        let r = async {
            self.index.fdatasync().await?;
            self.time_index.fdatasync().await
        }
        .await;
        if let Err(e) = r {
            self.indexes_dirty.set(true);
            return Err(e.into());
        }
        Ok(())
    }

    /// Position and header of the batch containing `offset`, if it is in this segment.
    /// Index lookup (largest entry <= offset), then a forward walk over headers.
    pub(crate) async fn find_batch(
        &self,
        offset: i64,
        size: u64,
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let start = self.index.lookup(offset).map(|(_, p)| p).unwrap_or(0);
        match self
            .scan(start, size, false, |_, h| h.last_offset() < offset)
            .await?
        {
            ScanEnd::Stopped(pos, h) => Ok(Some((pos, h))),
            ScanEnd::End(_) => Ok(None),
            ScanEnd::Invalid { pos, reason } => Err(LogError::Corrupt(format!(
                "{} at {pos}: {reason}",
                self.log.path().display()
            ))),
        }
    }

    /// Read whole batches starting with the one containing `offset`, at most `max_bytes`
    /// (unless `min_one_batch` and the first batch alone is larger: then exactly that batch),
    /// stopping before any batch whose base offset is `>= upper_bound`.
    /// `None` when `offset` is not in this segment (go to the next one).
    pub(crate) async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        upper_bound: i64,
    ) -> Result<Option<Bytes>, LogError> {
        // Snapshot: the logical end when the read starts; concurrent appends only add after it.
        let size = self.size.get();
        if offset >= self.next_offset.get() {
            return Ok(None);
        }
        let Some((pos, first)) = self.find_batch(offset, size).await? else {
            return Ok(None);
        };
        if first.base_offset >= upper_bound {
            return Ok(Some(Bytes::new()));
        }
        let first_len = first.total_len();
        if first_len > max_bytes {
            if !min_one_batch {
                return Ok(Some(Bytes::new()));
            }
            return Ok(Some(self.log.read_exact_at(pos, first_len).await?));
        }
        let want = usize::try_from(size - pos)
            .unwrap_or(usize::MAX)
            .min(max_bytes);
        let buf = self.log.read_at(pos, want).await?;
        // Keep whole batches only.
        let mut keep = 0usize;
        while buf.len() - keep >= HEADER_LEN {
            let Ok(h) = BatchHeader::parse(&buf[keep..]) else {
                break;
            };
            if h.base_offset >= upper_bound || keep + h.total_len() > buf.len() {
                break;
            }
            keep += h.total_len();
        }
        Ok(Some(buf.slice(..keep)))
    }

    /// Like [`Segment::read`], but returns *where* the data is instead of reading it: a
    /// [`FileSlice`] for a zero-copy send (Kafka's `FileRecords.slice`). Only batch headers
    /// are read (index lookup + header walk, as in [`Segment::find_batch`]).
    ///
    /// The slice starts at the batch containing `offset` and ends at
    /// `min(end, pos + max_bytes)`, where `end` is the segment's logical size when the read
    /// starts, or, if `upper_bound` falls inside the segment, the position of the first batch
    /// whose base offset is `>= upper_bound`. Unlike `read`, the last batch in the slice may
    /// be cut short, as with Kafka: consumers drop a truncated trailing batch (and ask again
    /// from its offset), and cutting here is what saves reading the data. If the first batch
    /// alone is larger than `max_bytes`, the slice is exactly that batch when `min_one_batch`
    /// (KIP-74), else empty.
    ///
    /// `None` when `offset` is not in this segment (go to the next one); `Some` with `len == 0`
    /// when there is nothing to send (first batch at or past `upper_bound`, or too large).
    pub(crate) async fn read_slice(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        upper_bound: i64,
    ) -> Result<Option<FileSlice>, LogError> {
        // Snapshot, taken together (no await in between): bytes below `size` are whole
        // batches up to `next_offset`; concurrent appends only add after them, so a slice
        // within `size` never covers a half-written batch.
        let size = self.size.get();
        let next_offset = self.next_offset.get();
        if offset >= next_offset {
            return Ok(None);
        }
        let Some((pos, first)) = self.find_batch(offset, size).await? else {
            return Ok(None);
        };
        let fd = self.log.shared_fd().await?;
        let slice = |len: usize| Some(FileSlice { fd, pos, len });
        if first.base_offset >= upper_bound {
            return Ok(slice(0));
        }
        let first_len = first.total_len();
        if first_len > max_bytes {
            return Ok(slice(if min_one_batch { first_len } else { 0 }));
        }
        // `size - pos` may not fit a usize only on 32-bit targets; max_bytes then bounds it.
        let limit = usize::try_from(size - pos)
            .unwrap_or(usize::MAX)
            .min(max_bytes);
        if upper_bound >= next_offset {
            // The common case (a single node: the bound is the log end): every batch in the
            // snapshot may be sent, no walk needed.
            return Ok(slice(limit));
        }
        // The bound is inside this segment (a high watermark held back below the log end):
        // walk headers from the first batch to the first one at or past it, stopping as soon
        // as the walk passes `limit` (what lies beyond is not sent anyway).
        let stop_at = pos + limit as u64;
        let end = match self
            .scan(pos, size, false, |at, h| {
                h.base_offset < upper_bound && at < stop_at
            })
            .await?
        {
            ScanEnd::Stopped(at, _) => at,
            ScanEnd::End(at) => at,
            ScanEnd::Invalid { pos, reason } => {
                return Err(LogError::Corrupt(format!(
                    "{} at {pos}: {reason}",
                    self.log.path().display()
                )))
            }
        };
        let to_bound = usize::try_from(end - pos).unwrap_or(usize::MAX);
        Ok(slice(to_bound.min(limit)))
    }

    /// First batch with max timestamp >= `target`, answered as `(offset, timestamp)`: the
    /// first *record* with timestamp >= target for CreateTime batches (compressed ones are
    /// walked decompressing as they go, in bounded memory); the batch's
    /// base offset and max timestamp otherwise (LogAppendTime:
    /// every record carries the max timestamp, so the base offset is exact).
    pub(crate) async fn find_by_timestamp(
        &self,
        target: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let size = self.size.get();
        if self.max_timestamp.get() < target {
            return Ok(None);
        }
        let start_offset = self
            .time_index
            .lookup(target)
            .map(|(_, o)| o)
            .unwrap_or(self.base_offset);
        let start = self.index.lookup(start_offset).map(|(_, p)| p).unwrap_or(0);
        match self
            .scan(start, size, false, |_, h| h.max_timestamp < target)
            .await?
        {
            ScanEnd::Stopped(pos, h) => {
                if h.timestamp_type() == TimestampType::CreateTime {
                    let batch = self.log.read_exact_at(pos, h.total_len()).await?;
                    if let Some(hit) = find_record(&batch, |ts| ts >= target).await {
                        return Ok(Some(hit));
                    }
                }
                Ok(Some((h.base_offset, h.max_timestamp)))
            }
            ScanEnd::End(_) => Ok(None),
            ScanEnd::Invalid { pos, reason } => Err(LogError::Corrupt(format!(
                "{} at {pos}: {reason}",
                self.log.path().display()
            ))),
        }
    }

    /// Truncate the log file to `size` bytes (recovery of a torn tail), dropping index entries
    /// that point at or beyond it.
    pub(crate) async fn truncate_log(&self, size: u64) -> Result<(), LogError> {
        self.log.truncate(size).await?;
        self.index.truncate_to_position(size).await?;
        self.size.set(size);
        self.written_back.set(self.written_back.get().min(size));
        Ok(())
    }

    /// Drops every batch from the one containing `offset` on (a replica cut back to where its
    /// log agrees with the leader's): the file and both indexes are cut and the segment's end
    /// and max timestamp recomputed from the batches that remain. Nothing changes if `offset`
    /// is past this segment.
    pub(crate) async fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        let Some((pos, _)) = self.find_batch(offset, self.size()).await? else {
            return Ok(());
        };
        self.truncate_log(pos).await?;
        let (mut next, mut max_ts, mut offset_of_max) = (self.base_offset, -1i64, -1i64);
        let end = self
            .scan(0, pos, false, |_, h| {
                next = h.next_offset();
                if h.max_timestamp > max_ts {
                    max_ts = h.max_timestamp;
                    offset_of_max = h.base_offset;
                }
                true
            })
            .await?;
        if let ScanEnd::Invalid { pos, reason } = end {
            return Err(LogError::Corrupt(format!(
                "{} at {pos}: {reason}",
                self.log.path().display()
            )));
        }
        self.time_index.truncate_to_offset(next).await?;
        self.set_recovered(pos, next, max_ts, offset_of_max, self.roll_base_ms());
        self.mark_dirty();
        Ok(())
    }

    /// Read one batch header at `pos` (for probing an index entry).
    pub(crate) async fn header_at(&self, pos: u64) -> Option<BatchHeader> {
        let b = self.log.read_at(pos, HEADER_LEN).await.ok()?;
        BatchHeader::parse(&b).ok()
    }

    /// Unlink the three files. Readers holding this segment keep reading their open fds.
    pub(crate) async fn remove_files(&self) -> Result<(), LogError> {
        let r1 = self.log.remove().await;
        let r2 = self.index.remove().await;
        let r3 = self.time_index.remove().await;
        r1?;
        // A missing index file is fine (it may never have been created).
        for r in [r2, r3] {
            if let Err(e) = r {
                if e.kind() != io::ErrorKind::NotFound {
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }
}

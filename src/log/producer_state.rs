//! Idempotent-producer state of one partition (KIP-98): per producer id, its epoch and the
//! metadata of its last 5 batches, used to reject out-of-order or fenced appends and to answer a
//! retried batch with the offsets it was first written at. Kafka's `ProducerStateManager`,
//! `ProducerAppendInfo` and `ProducerStateEntry`, without transactions.
//!
//! # Rules (checked for client appends, in [`ProducerStateManager::validate`])
//! A batch with `producerId < 0` is not idempotent and skips everything below. For the others,
//! in order, each batch of a produce request against the state as updated by the earlier batches
//! of the same request (all-or-nothing: one failing batch fails the request):
//! 1. *Duplicate*: same epoch as the stored entry and `(first seq, last seq)` equal to one of its
//!    (up to) 5 cached batches → nothing is appended; the answer carries the original offsets.
//!    As in Kafka (`UnifiedLog.analyzeAndValidateProducerState`), this is checked against the
//!    state *before* the request, and the first duplicate found ends the request (earlier
//!    batches of the same request are not appended either; real clients send one batch per
//!    partition per request).
//! 2. *Epoch*: `epoch < current` → `INVALID_PRODUCER_EPOCH` (47; Kafka ≥ 2.7 answers Produce
//!    with it instead of the fatal PRODUCER_FENCED).
//! 3. *Sequence* (Kafka 3.x/4.x `ProducerAppendInfo.checkSequence`, quoted at
//!    [`ProducerStateManager::validate`]): a new epoch must start at sequence 0 unless the
//!    producer has no state (then anything goes); within an epoch the base sequence must be
//!    `last seq + 1`, wrapping from `i32::MAX` to 0; a producer without state accepts any
//!    sequence (its state expired, or its batches were all removed).
//!
//! # Persistence
//! The state is derived data: it can always be rebuilt by replaying the batch headers of the
//! log (producer id, epoch, base sequence, lastOffsetDelta, offsets, max timestamp — no record
//! is decoded). Snapshots bound that replay: `<20-digit offset>.snapshot` holds the state of
//! every batch *below* that offset, written on every segment roll (at the new segment's base)
//! and on a clean close (at the log end). On open, the newest valid snapshot in
//! `[log start, log end]` is loaded and only the batches after it are replayed; snapshots past
//! the recovered log end (the log lost a tail after they were written) or before the log start
//! are deleted, and so are unreadable ones. The latest 2 are kept.
//!
//! Unlike Kafka's snapshot (which keeps only each producer's last batch), ours keeps all 5
//! cached batches, so duplicates anywhere in the window are still recognized after a restart.
//!
//! Snapshot file format (big endian):
//! ```text
//! off size field
//!   0    4 magic "SLPS"
//!   4    2 version (1)
//!   6    4 crc32c of every byte from offset 10 to the end
//!  10    8 snapshot offset (must equal the file name's)
//!  18    4 producer count
//!  22      producers, ascending by id, each:
//!           8 producer id, 2 epoch, 8 last timestamp, 1 batch count (0..=5), then per batch
//!           (oldest first): 4 first seq, 4 last seq, 8 first offset, 8 last offset, 8 max timestamp
//! ```
//! Files are written as `<name>.tmp`, fdatasync-ed, then renamed: a reader sees a whole file or
//! none, and the CRC catches anything else.
//!
//! # Retention and expiry
//! As in Kafka since KIP-360, deleting segments does not forget producers (a producer whose
//! batches are all deleted must still be fenced and sequenced); entries go only through
//! [`ProducerStateManager::remove_expired`] (Kafka's `producer.id.expiration.ms`, measured from
//! the producer's last batch max timestamp, like Kafka).

use crate::log::batch::BatchHeader;
use crate::log::error::LogError;
use crate::log::segment::{ScanEnd, Segment};
use crate::runtime::file::LogFile;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// How many batches per producer are remembered for duplicate detection (Kafka's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`; the client's `max.in.flight.requests` ≤ 5).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;
/// `producerEpoch` of a producer without state (Kafka's `RecordBatch.NO_PRODUCER_EPOCH`).
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// Sequence of a producer without batches (Kafka's `RecordBatch.NO_SEQUENCE`).
pub const NO_SEQUENCE: i32 = -1;
/// Kafka's default `producer.id.expiration.ms` (1 day).
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;

const SNAPSHOT_SUFFIX: &str = "snapshot";
const SNAPSHOT_MAGIC: &[u8; 4] = b"SLPS";
const SNAPSHOT_VERSION: u16 = 1;
const SNAPSHOT_HEADER_LEN: usize = 22;
const ENTRY_FIXED_LEN: usize = 8 + 2 + 8 + 1;
const BATCH_META_LEN: usize = 4 + 4 + 8 + 8 + 8;
/// How many snapshot files are kept (the newest, plus one to fall back on).
pub const SNAPSHOTS_TO_KEEP: usize = 2;

/// What is remembered of one appended batch (Kafka's `BatchMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The batch's max timestamp as stored (the append time on LogAppendTime topics).
    pub timestamp: i64,
}

/// The state of one producer id (Kafka's `ProducerStateEntry`, without transaction fields).
///
/// Invariants: at most [`NUM_BATCHES_TO_RETAIN`] batches, oldest first, all of epoch `epoch`
/// (an epoch change clears them); `epoch == NO_PRODUCER_EPOCH` only for a fresh, empty entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStateEntry {
    pub producer_id: i64,
    pub epoch: i16,
    batches: VecDeque<BatchMetadata>,
    /// Max timestamp of the producer's last batch (for expiry), -1 if none.
    pub last_timestamp: i64,
}

impl ProducerStateEntry {
    /// An entry for a producer with no state.
    pub fn empty(producer_id: i64) -> Self {
        ProducerStateEntry {
            producer_id,
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::with_capacity(NUM_BATCHES_TO_RETAIN),
            last_timestamp: -1,
        }
    }

    /// No batch remembered.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Cached batches, oldest first.
    pub fn batches(&self) -> impl Iterator<Item = &BatchMetadata> {
        self.batches.iter()
    }

    /// Last sequence of the newest batch, [`NO_SEQUENCE`] if none.
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    /// Last offset of the newest batch, -1 if none.
    pub fn last_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.last_offset)
    }

    /// The cached batch this one duplicates: same epoch, same first and last sequence
    /// (Kafka's `findDuplicateBatch`).
    pub fn find_duplicate(
        &self,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Option<BatchMetadata> {
        if epoch != self.epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            .copied()
    }

    /// Record an appended batch (Kafka's `addBatch`): a new epoch clears the cached batches;
    /// the oldest is dropped beyond [`NUM_BATCHES_TO_RETAIN`].
    fn add_batch(&mut self, epoch: i16, batch: BatchMetadata) {
        if self.epoch != epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
        if self.batches.len() == NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp = batch.timestamp;
    }
}

/// Last sequence of a batch: `base + lastOffsetDelta`, wrapping past `i32::MAX` to 0
/// (Kafka's `DefaultRecordBatch.incrementSequence`).
pub fn last_sequence(base_sequence: i32, last_offset_delta: i32) -> i32 {
    let delta = last_offset_delta.max(0);
    if base_sequence > i32::MAX - delta {
        delta - (i32::MAX - base_sequence) - 1
    } else {
        base_sequence + delta
    }
}

/// `next` directly follows `last` (Kafka's `ProducerAppendInfo.inSequence`).
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// Checks every batch of a produce request must pass whatever the producer state (Kafka's
/// `LogValidator` for client appends, reduced to what we support): no control batches
/// (INVALID_RECORD, as Kafka), no transactional batches (not supported yet: INVALID_REQUEST),
/// and an idempotent batch (producer id >= 0) needs a base sequence >= 0 (INVALID_RECORD).
pub fn check_client_batch(h: &BatchHeader) -> Result<(), LogError> {
    if h.is_transactional() {
        return Err(LogError::InvalidRequest(format!(
            "transactional batch from producer {} rejected: transactions are not supported",
            h.producer_id
        )));
    }
    if h.is_control() {
        return Err(LogError::InvalidRecord(
            "clients are not allowed to write control records".into(),
        ));
    }
    if h.producer_id >= 0 && h.base_sequence < 0 {
        return Err(LogError::InvalidRecord(format!(
            "invalid sequence number {} in record batch with producerId {}",
            h.base_sequence, h.producer_id
        )));
    }
    Ok(())
}

/// The state changes of a validated append, applied with [`ProducerStateManager::commit`]
/// once the batches are written (and dropped if the write fails).
#[derive(Debug, Default)]
pub struct PendingUpdate {
    entries: Vec<ProducerStateEntry>,
}

impl PendingUpdate {
    /// No idempotent batch in the append.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Outcome of validating an append.
#[derive(Debug)]
pub enum AppendCheck {
    /// Write the batches, then commit this.
    Append(PendingUpdate),
    /// A retry of a batch already in the log: write nothing, answer with these offsets.
    Duplicate(BatchMetadata),
}

/// Producer ids of one partition and what is known of each.
///
/// Invariant: the state reflects exactly the batches of the log below `map_end_offset`, which
/// equals the log end offset whenever no append is between validation and commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: BTreeMap<i64, ProducerStateEntry>,
    map_end_offset: i64,
}

impl ProducerStateManager {
    /// Empty state covering the log below `map_end_offset` (a log with no idempotent batch).
    pub fn new(map_end_offset: i64) -> Self {
        ProducerStateManager {
            producers: BTreeMap::new(),
            map_end_offset,
        }
    }

    /// One past the last offset the state reflects.
    pub fn map_end_offset(&self) -> i64 {
        self.map_end_offset
    }

    /// The state of `producer_id`, if any.
    pub fn entry(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    /// All producers, ascending by id.
    pub fn entries(&self) -> impl Iterator<Item = &ProducerStateEntry> {
        self.producers.values()
    }

    /// Number of producers with state.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Validate the batches of one client append, whose headers carry the offsets and max
    /// timestamps they will be written with. Nothing changes here; see [`AppendCheck`].
    ///
    /// The sequence rule is Kafka's `ProducerAppendInfo.checkSequence` (3.x/4.x), minus the
    /// transaction-verification parts:
    /// ```text
    /// if (producerEpoch != updatedEntry.producerEpoch()) {
    ///     if (appendFirstSeq != 0) {
    ///         if (updatedEntry.producerEpoch() != RecordBatch.NO_PRODUCER_EPOCH) {
    ///             throw new OutOfOrderSequenceException("Invalid sequence number for new epoch ...");
    ///         }
    ///     }
    /// } else {
    ///     int currentLastSeq;
    ///     if (!updatedEntry.isEmpty()) currentLastSeq = updatedEntry.lastSeq();
    ///     else if (producerEpoch == currentEntry.producerEpoch()) currentLastSeq = currentEntry.lastSeq();
    ///     else currentLastSeq = RecordBatch.NO_SEQUENCE;
    ///     // If there is no current producer epoch (possibly because all producer records have been
    ///     // deleted due to retention or the DeleteRecords API) accept writes with any sequence number
    ///     if (!(currentEntry.producerEpoch() == RecordBatch.NO_PRODUCER_EPOCH
    ///           || inSequence(currentLastSeq, appendFirstSeq))) {
    ///         throw new OutOfOrderSequenceException("Out of order sequence number ...");
    ///     }
    /// }
    /// ```
    /// `currentEntry` is the state before the request, `updatedEntry` the state after the
    /// request's earlier batches (here: a copy of `currentEntry` the batches are added to,
    /// which gives the same `lastSeq` as Kafka's two-entry lookup). So a producer with no state
    /// accepts any first sequence, in any epoch, and within that request any later sequence too.
    /// The epoch check before it is `checkProducerEpoch`: `producerEpoch < updatedEntry.epoch`
    /// → INVALID_PRODUCER_EPOCH.
    pub fn validate(&self, batches: &[BatchHeader]) -> Result<AppendCheck, LogError> {
        // (producer id, epoch before the request, updated entry), and where each id is in it:
        // a lookup per batch, never a scan (a request with many batches of distinct producer
        // ids must cost linear time, not quadratic, on the shard).
        let mut updated: Vec<(i64, i16, ProducerStateEntry)> = Vec::new();
        let mut position: std::collections::HashMap<i64, usize> = Default::default();
        for h in batches {
            if h.producer_id < 0 {
                continue;
            }
            let pid = h.producer_id;
            let first_seq = h.base_sequence;
            let last_seq = last_sequence(h.base_sequence, h.last_offset_delta);
            let current = self.producers.get(&pid);
            if let Some(dup) =
                current.and_then(|e| e.find_duplicate(h.producer_epoch, first_seq, last_seq))
            {
                return Ok(AppendCheck::Duplicate(dup));
            }
            let idx = *position.entry(pid).or_insert_with(|| {
                let e = current
                    .cloned()
                    .unwrap_or_else(|| ProducerStateEntry::empty(pid));
                updated.push((pid, e.epoch, e));
                updated.len() - 1
            });
            let (_, current_epoch, entry) = &mut updated[idx];
            let epoch = h.producer_epoch;
            if epoch < entry.epoch {
                return Err(LogError::InvalidProducerEpoch(format!(
                    "epoch of producer {pid} at offset {} is {epoch}, smaller than the last seen epoch {}",
                    h.base_offset, entry.epoch
                )));
            }
            if epoch != entry.epoch {
                if first_seq != 0 && entry.epoch != NO_PRODUCER_EPOCH {
                    return Err(LogError::OutOfOrderSequence(format!(
                        "invalid sequence number for new epoch of producer {pid} at offset {}: \
                         {epoch} (request epoch), {first_seq} (seq. number), {} (current producer epoch)",
                        h.base_offset, entry.epoch
                    )));
                }
            } else if !(*current_epoch == NO_PRODUCER_EPOCH
                || in_sequence(entry.last_seq(), first_seq))
            {
                return Err(LogError::OutOfOrderSequence(format!(
                    "out of order sequence number for producer {pid} at offset {}: \
                     {first_seq} (incoming seq. number), {} (current end sequence number)",
                    h.base_offset,
                    entry.last_seq()
                )));
            }
            entry.add_batch(
                epoch,
                BatchMetadata {
                    first_seq,
                    last_seq,
                    first_offset: h.base_offset,
                    last_offset: h.last_offset(),
                    timestamp: h.max_timestamp,
                },
            );
        }
        Ok(AppendCheck::Append(PendingUpdate {
            entries: updated.into_iter().map(|(_, _, e)| e).collect(),
        }))
    }

    /// Apply a validated append once its batches are in the log; the state now covers the log
    /// below `end_offset`.
    pub fn commit(&mut self, pending: PendingUpdate, end_offset: i64) {
        for e in pending.entries {
            self.producers.insert(e.producer_id, e);
        }
        self.map_end_offset = end_offset;
    }

    /// Replay a batch already in the log (recovery): no checks, as Kafka's loading with
    /// `AppendOrigin.REPLICATION` (the batch was validated when it was appended).
    pub fn replay(&mut self, h: &BatchHeader) {
        if h.producer_id >= 0 {
            self.producers
                .entry(h.producer_id)
                .or_insert_with(|| ProducerStateEntry::empty(h.producer_id))
                .add_batch(
                    h.producer_epoch,
                    BatchMetadata {
                        first_seq: h.base_sequence,
                        last_seq: last_sequence(h.base_sequence, h.last_offset_delta),
                        first_offset: h.base_offset,
                        last_offset: h.last_offset(),
                        timestamp: h.max_timestamp,
                    },
                );
        }
        self.map_end_offset = self.map_end_offset.max(h.next_offset());
    }

    /// Set the offset the state covers up to (after a replay that ended on non-batches).
    pub fn set_map_end_offset(&mut self, offset: i64) {
        self.map_end_offset = offset;
    }

    /// Keep at most `max` producers: past it, forget the ones whose last batch is oldest (the
    /// ones Kafka's `producer.id.expiration.ms` would expire first) down to 90% of `max`, so a
    /// client inventing producer ids cannot grow a partition's memory (or its snapshots) without
    /// bound, at O(log n) amortised per new id. A forgotten producer's next batch is accepted
    /// with any sequence, as after expiry. Returns how many were forgotten.
    pub fn enforce_limit(&mut self, max: usize) -> usize {
        let max = max.max(1);
        if self.producers.len() <= max {
            return 0;
        }
        let keep = (max - max / 10).max(1);
        let mut stamps: Vec<(i64, i64)> = self
            .producers
            .values()
            .map(|e| (e.last_timestamp, e.producer_id))
            .collect();
        let drop_n = stamps.len() - keep;
        stamps.select_nth_unstable(drop_n - 1);
        for (_, pid) in &stamps[..drop_n] {
            self.producers.remove(pid);
        }
        drop_n
    }

    /// Forget producers whose last batch timestamp is `expiration_ms` or more before `now_ms`
    /// (Kafka's `removeExpiredProducers` / `producer.id.expiration.ms`). Returns how many.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// Serialize the state as a snapshot at `map_end_offset` (format in the module docs).
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            SNAPSHOT_HEADER_LEN
                + self.producers.len() * (ENTRY_FIXED_LEN + NUM_BATCHES_TO_RETAIN * BATCH_META_LEN),
        );
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // crc, set below
        out.extend_from_slice(&self.map_end_offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for e in self.producers.values() {
            out.extend_from_slice(&e.producer_id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out[10..]);
        out[6..10].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parse a snapshot. Every count is checked against the bytes that remain before anything
    /// is allocated; any inconsistency is an error (the caller falls back to the log).
    pub fn decode_snapshot(buf: &[u8]) -> Result<ProducerStateManager, String> {
        let mut r = Reader { buf, pos: 0 };
        if r.take(4)? != SNAPSHOT_MAGIC {
            return Err("bad magic".into());
        }
        let version = r.u16()?;
        if version != SNAPSHOT_VERSION {
            return Err(format!("unsupported version {version}"));
        }
        let crc = r.u32()?;
        let actual = crc32c::crc32c(&buf[10..]);
        if crc != actual {
            return Err(format!(
                "CRC mismatch: stored {crc:#010x}, computed {actual:#010x}"
            ));
        }
        let map_end_offset = r.i64()?;
        let count = r.u32()? as usize;
        if count > r.remaining() / ENTRY_FIXED_LEN {
            return Err(format!("producer count {count} exceeds the file"));
        }
        let mut producers = BTreeMap::new();
        let mut prev_id = -1i64;
        for _ in 0..count {
            let producer_id = r.i64()?;
            if producer_id <= prev_id {
                return Err(format!("producer id {producer_id} out of order"));
            }
            prev_id = producer_id;
            let epoch = r.i16()?;
            let last_timestamp = r.i64()?;
            let n = usize::from(r.u8()?);
            if n > NUM_BATCHES_TO_RETAIN {
                return Err(format!("{n} batches for producer {producer_id}"));
            }
            let mut batches = VecDeque::with_capacity(NUM_BATCHES_TO_RETAIN);
            for _ in 0..n {
                let b = BatchMetadata {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    timestamp: r.i64()?,
                };
                if b.first_offset > b.last_offset || b.last_offset >= map_end_offset {
                    return Err(format!(
                        "batch offsets of producer {producer_id} out of range"
                    ));
                }
                batches.push_back(b);
            }
            producers.insert(
                producer_id,
                ProducerStateEntry {
                    producer_id,
                    epoch,
                    batches,
                    last_timestamp,
                },
            );
        }
        if r.remaining() != 0 {
            return Err(format!("{} trailing bytes", r.remaining()));
        }
        Ok(ProducerStateManager {
            producers,
            map_end_offset,
        })
    }
}

/// Bounds-checked big-endian reader for snapshot decoding.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.remaining() < n {
            return Err("truncated snapshot".into());
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.array()?))
    }
}

// ---- snapshot files -------------------------------------------------------------------------

/// Path of the snapshot at `offset` in `dir`: `<20-digit offset>.snapshot`.
pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{SNAPSHOT_SUFFIX}"))
}

fn snapshot_tmp_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{SNAPSHOT_SUFFIX}.tmp"))
}

/// Offsets of the snapshot files in `dir`, ascending. Leftover `.snapshot.tmp` files (a crash
/// while writing one) are removed. Blocking `std::fs`: shards call it through the blocking pool
/// ([`load`], [`prune_snapshots`]).
pub fn list_snapshots(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(offset) = stem.parse::<i64>() else {
            continue;
        };
        if ext == SNAPSHOT_SUFFIX {
            out.push(offset);
        } else if ext == "snapshot.tmp" {
            remove_file_if_exists(&entry.path())?;
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn remove_file_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Delete the snapshot at `offset` (missing is fine).
pub fn delete_snapshot(dir: &Path, offset: i64) -> Result<(), LogError> {
    Ok(remove_file_if_exists(&snapshot_path(dir, offset))?)
}

/// Write `state` as the snapshot at its `map_end_offset`: tmp file, fdatasync, rename. The
/// directory entry becomes durable with the next directory fsync (the caller's business); until
/// then a crash merely loses the snapshot, and the log is replayed from an older one.
pub async fn write_snapshot(dir: &Path, state: &ProducerStateManager) -> Result<PathBuf, LogError> {
    let offset = state.map_end_offset();
    let bytes = state.encode_snapshot();
    let tmp = snapshot_tmp_path(dir, offset);
    let file = LogFile::open(&tmp).await?;
    let r = async {
        file.truncate(0).await?;
        file.write_all_at(&bytes, 0).await?;
        file.fdatasync().await
    }
    .await;
    let closed = file.close().await;
    if let Err(e) = r.and(closed) {
        let _ = remove_file_if_exists(&tmp);
        return Err(e.into());
    }
    let path = snapshot_path(dir, offset);
    crate::runtime::file::rename(&tmp, &path).await?;
    Ok(path)
}

/// Delete snapshots outside `[keep_from, ..]` and all but the newest `keep` of the rest, on the
/// blocking-thread pool (a directory listing has no io_uring form). Returns whether anything
/// was deleted.
pub async fn prune_snapshots(dir: &Path, keep_from: i64, keep: usize) -> Result<bool, LogError> {
    let dir = dir.to_path_buf();
    crate::runtime::file::blocking(move || prune_snapshots_now(&dir, keep_from, keep)).await
}

fn prune_snapshots_now(dir: &Path, keep_from: i64, keep: usize) -> Result<bool, LogError> {
    let snaps = list_snapshots(dir)?;
    let in_range: Vec<i64> = snaps.iter().copied().filter(|o| *o >= keep_from).collect();
    let newest_kept = &in_range[in_range.len().saturating_sub(keep)..];
    let mut deleted = false;
    for o in snaps {
        if !newest_kept.contains(&o) {
            delete_snapshot(dir, o)?;
            deleted = true;
        }
    }
    Ok(deleted)
}

/// What [`load`] did.
#[derive(Debug)]
pub struct Loaded {
    pub state: ProducerStateManager,
    /// The snapshot the state started from, if any.
    pub snapshot: Option<i64>,
    /// Batch headers replayed after it.
    pub replayed_batches: u64,
    /// Snapshot files were deleted (the directory needs an fsync).
    pub deleted_files: bool,
}

/// Rebuild the producer state of a recovered log: load the newest readable snapshot in
/// `[log_start, log_end]` (deleting the others that lie outside, or do not read), then replay
/// the headers of every batch from its offset to the log end. `segments` are the recovered
/// segments in offset order.
pub async fn load(
    dir: &Path,
    segments: &[Rc<Segment>],
    log_start: i64,
    log_end: i64,
) -> Result<Loaded, LogError> {
    let mut deleted_files = false;
    let mut state = None;
    let mut snapshot = None;
    let listed = {
        let dir = dir.to_path_buf();
        crate::runtime::file::blocking(move || list_snapshots(&dir)).await?
    };
    for offset in listed.into_iter().rev() {
        if offset > log_end || offset < log_start {
            // Past the end: the log lost a tail after the snapshot was taken, and later
            // appends would make it lie. Before the start: the batches it needs are gone.
            tracing::info!(dir = %dir.display(), offset, log_start, log_end,
                "deleting producer snapshot outside the log");
            crate::runtime::file::remove_file(&snapshot_path(dir, offset)).await?;
            deleted_files = true;
            continue;
        }
        if state.is_some() {
            continue;
        }
        let path = snapshot_path(dir, offset);
        let read = {
            let path = path.clone();
            crate::runtime::file::blocking(move || std::fs::read(path)).await
        };
        let decoded = read
            .map_err(|e| e.to_string())
            .and_then(|b| ProducerStateManager::decode_snapshot(&b))
            .and_then(|s| {
                if s.map_end_offset == offset {
                    Ok(s)
                } else {
                    Err(format!("holds offset {}", s.map_end_offset))
                }
            });
        match decoded {
            Ok(s) => {
                state = Some(s);
                snapshot = Some(offset);
            }
            Err(reason) => {
                tracing::warn!(path = %path.display(), reason,
                    "unreadable producer snapshot; deleting it and rebuilding from the log");
                crate::runtime::file::remove_file(&path).await?;
                deleted_files = true;
            }
        }
    }
    let from = snapshot.unwrap_or(log_start);
    let mut state = state.unwrap_or_else(|| ProducerStateManager::new(from));
    let mut replayed_batches = 0u64;
    for seg in segments {
        if seg.next_offset() <= from || seg.is_empty() {
            continue;
        }
        let start_pos = if from > seg.base_offset() {
            seg.index.lookup(from).map(|(_, p)| p).unwrap_or(0)
        } else {
            0
        };
        let end = seg
            .scan(start_pos, seg.size(), false, |_, h| {
                if h.base_offset >= from {
                    state.replay(h);
                    replayed_batches += 1;
                }
                true
            })
            .await?;
        if let ScanEnd::Invalid { pos, reason } = end {
            // Recovery validated the log; this is damage in an older segment it did not
            // rescan. Keep what was read: the state misses at most that segment's remainder.
            tracing::warn!(
                segment = seg.base_offset(),
                pos,
                reason,
                "unreadable batch while rebuilding producer state"
            );
        }
    }
    state.set_map_end_offset(log_end);
    Ok(Loaded {
        state,
        snapshot,
        replayed_batches,
        deleted_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch_builder;

    fn header(pid: i64, epoch: i16, seq: i32, records: usize, base_offset: i64) -> BatchHeader {
        let mut b = batch_builder::idempotent_batch(records, 1_000, 4, pid, epoch, seq);
        crate::log::batch::set_base_offset(&mut b, base_offset);
        crate::log::batch::validate_batch(&b).unwrap()
    }

    fn apply(m: &mut ProducerStateManager, hs: &[BatchHeader]) -> Result<AppendCheck, LogError> {
        let r = m.validate(hs)?;
        if let AppendCheck::Append(p) = r {
            let end = hs.last().map_or(m.map_end_offset(), |h| h.next_offset());
            m.commit(p, end);
            return Ok(AppendCheck::Append(PendingUpdate::default()));
        }
        Ok(r)
    }

    #[test]
    fn last_sequence_wraps() {
        assert_eq!(last_sequence(0, 0), 0);
        assert_eq!(last_sequence(5, 4), 9);
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 1), 0);
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
        assert!(in_sequence(i32::MAX, 0));
        assert!(in_sequence(4, 5));
        assert!(!in_sequence(4, 6));
        assert!(!in_sequence(i32::MAX, i32::MIN));
    }

    #[test]
    fn unknown_producer_accepts_any_sequence_even_within_the_request() {
        let m = ProducerStateManager::new(0);
        // Kafka: currentEntry.producerEpoch == NO_PRODUCER_EPOCH → any sequence.
        let hs = [header(7, 3, 42, 2, 0), header(7, 3, 100, 1, 2)];
        assert!(matches!(m.validate(&hs), Ok(AppendCheck::Append(_))));
    }

    #[test]
    fn later_batches_validate_against_earlier_ones() {
        let mut m = ProducerStateManager::new(0);
        apply(&mut m, &[header(1, 0, 0, 2, 0)]).unwrap();
        assert!(apply(&mut m, &[header(1, 0, 2, 2, 2), header(1, 0, 4, 1, 4)]).is_ok());
        // gap in the second batch fails the whole request, state unchanged
        let before = m.clone();
        let e = m
            .validate(&[header(1, 0, 5, 1, 5), header(1, 0, 7, 1, 6)])
            .unwrap_err();
        assert_eq!(e.kafka_error_code(), 45);
        assert_eq!(m, before);
        // a bump followed by its continuation in one request
        assert!(apply(&mut m, &[header(1, 1, 0, 3, 5), header(1, 1, 3, 1, 8)]).is_ok());
        assert_eq!(m.entry(1).unwrap().epoch, 1);
        assert_eq!(m.entry(1).unwrap().last_seq(), 3);
        assert_eq!(m.entry(1).unwrap().batches().count(), 2);
    }

    #[test]
    fn window_keeps_five_batches() {
        let mut m = ProducerStateManager::new(0);
        for i in 0..7 {
            apply(&mut m, &[header(1, 0, i, 1, i64::from(i))]).unwrap();
        }
        let e = m.entry(1).unwrap();
        let seqs: Vec<i32> = e.batches().map(|b| b.first_seq).collect();
        assert_eq!(seqs, vec![2, 3, 4, 5, 6]);
        assert!(matches!(
            m.validate(&[header(1, 0, 2, 1, 99)]),
            Ok(AppendCheck::Duplicate(BatchMetadata {
                first_offset: 2,
                ..
            }))
        ));
        // out of the window: an old sequence, not a duplicate
        assert_eq!(
            m.validate(&[header(1, 0, 1, 1, 99)])
                .unwrap_err()
                .kafka_error_code(),
            45
        );
    }

    #[test]
    fn expiry_uses_last_timestamp() {
        let mut m = ProducerStateManager::new(0);
        apply(&mut m, &[header(1, 0, 0, 1, 0)]).unwrap(); // max ts 1000
        apply(&mut m, &[header(2, 0, 0, 1, 1)]).unwrap();
        assert_eq!(m.remove_expired(1_000 + 99, 100), 0);
        assert_eq!(m.remove_expired(1_000 + 100, 100), 2);
        assert!(m.is_empty());
    }

    #[test]
    fn snapshot_roundtrip_and_garbage() {
        let mut m = ProducerStateManager::new(0);
        for i in 0..7 {
            apply(&mut m, &[header(1, 0, i * 2, 2, i64::from(i) * 2)]).unwrap();
        }
        apply(&mut m, &[header(9, 4, 0, 3, 14)]).unwrap();
        let bytes = m.encode_snapshot();
        let back = ProducerStateManager::decode_snapshot(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.map_end_offset(), 17);
        // any truncation or flipped byte is refused, never a panic
        for cut in 0..bytes.len() {
            assert!(ProducerStateManager::decode_snapshot(&bytes[..cut]).is_err());
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            assert!(
                ProducerStateManager::decode_snapshot(&b).is_err(),
                "byte {i}"
            );
        }
        // a huge count with a valid CRC is refused before allocating
        let mut b = bytes[..SNAPSHOT_HEADER_LEN].to_vec();
        b[18..22].copy_from_slice(&u32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&b[10..]);
        b[6..10].copy_from_slice(&crc.to_be_bytes());
        assert!(ProducerStateManager::decode_snapshot(&b).is_err());
    }

    #[test]
    fn client_batch_checks() {
        let mut b = batch_builder::idempotent_batch(1, 0, 1, 5, 0, 0);
        let h = crate::log::batch::validate_batch(&b).unwrap();
        assert!(check_client_batch(&h).is_ok());
        // transactional
        b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
        batch_builder::fix_crc(&mut b);
        let h = crate::log::batch::validate_batch(&b).unwrap();
        assert_eq!(check_client_batch(&h).unwrap_err().kafka_error_code(), 42);
        // control
        b[21..23].copy_from_slice(&0x20i16.to_be_bytes());
        batch_builder::fix_crc(&mut b);
        let h = crate::log::batch::validate_batch(&b).unwrap();
        assert_eq!(check_client_batch(&h).unwrap_err().kafka_error_code(), 87);
        // producer id without a sequence
        let b = batch_builder::idempotent_batch(1, 0, 1, 5, 0, -1);
        let h = crate::log::batch::validate_batch(&b).unwrap();
        assert_eq!(check_client_batch(&h).unwrap_err().kafka_error_code(), 87);
    }
}

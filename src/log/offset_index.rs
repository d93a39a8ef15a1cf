//! The sparse offset index of one segment (`<base>.index`).
//!
//! File format: a sequence of 8-byte entries, big endian, as Kafka's `OffsetIndex`:
//! `relativeOffset: u32` (offset − segment base offset) then `position: u32` (byte position of
//! a batch in the `.log` file). An entry is added after every `index.interval.bytes` of appended
//! data. Unlike Kafka (which indexes a batch's *last* offset), an entry here names the batch's
//! *base* offset, so "the last entry whose offset is <= target" always points at a batch that
//! starts at or before the target and scanning forward from it finds the target's batch.

use crate::log::sparse_index::{IndexEntry, Loaded, SparseIndex};
use std::io;
use std::path::Path;

/// Size of one offset-index entry on disk.
pub const OFFSET_ENTRY_SIZE: usize = 8;

/// One offset-index entry: the batch starting at `relative_offset` begins at byte `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = OFFSET_ENTRY_SIZE;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// The offset index of one segment.
///
/// Invariants: relative offsets and positions are both strictly increasing; every position is
/// a batch boundary inside the segment's valid bytes and the batch there has base offset
/// `base_offset + relative_offset`. The index is sparse: a missing entry only costs a longer
/// forward scan, never a wrong answer, so losing the tail of the file in a crash is harmless.
/// If a loaded file violates the invariants, [`OffsetIndex::sane`] says so and the segment
/// rebuilds the index from the log.
#[derive(Debug)]
pub struct OffsetIndex {
    base_offset: i64,
    inner: SparseIndex<OffsetEntry>,
    loaded_ok: bool,
}

impl OffsetIndex {
    /// Open or create the index file of the segment with `base_offset` and load it.
    pub async fn open(path: &Path, base_offset: i64) -> io::Result<OffsetIndex> {
        let (inner, loaded) = SparseIndex::open(path).await?;
        let loaded_ok = !matches!(loaded, Loaded::BadSize);
        Ok(OffsetIndex {
            base_offset,
            inner,
            loaded_ok,
        })
    }

    /// Sanity check on open: file size a multiple of 8, strictly increasing offsets and
    /// positions, positions below `log_size`. (The segment additionally probes the batch at the
    /// last entry.)
    pub fn sane(&self, log_size: u64) -> Result<(), String> {
        if !self.loaded_ok {
            return Err("index file size is not a multiple of 8".into());
        }
        check_entries(&self.inner.entries(), log_size)
    }

    /// Absolute offset of an entry.
    pub fn offset_of(&self, e: &OffsetEntry) -> i64 {
        self.base_offset + i64::from(e.relative_offset)
    }

    /// The entry with the largest offset <= `offset`, as `(absolute offset, position)`;
    /// `None` if `offset` is before the first entry (scan from position 0).
    pub fn lookup(&self, offset: i64) -> Option<(i64, u64)> {
        let rel = offset - self.base_offset;
        if rel < 0 {
            return None;
        }
        let rel = u32::try_from(rel).unwrap_or(u32::MAX);
        self.inner
            .floor(rel, |e| e.relative_offset)
            .map(|e| (self.offset_of(&e), u64::from(e.position)))
    }

    /// The last entry as `(absolute offset, position)`.
    pub fn last(&self) -> Option<(i64, u64)> {
        self.inner
            .last()
            .map(|e| (self.offset_of(&e), u64::from(e.position)))
    }

    pub fn len(&self) -> usize {
        self.inner.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add an entry in memory (ignored if it would break monotonicity or does not fit u32).
    pub fn push(&self, offset: i64, position: u64) {
        let (Ok(rel), Ok(pos)) = (
            u32::try_from(offset - self.base_offset),
            u32::try_from(position),
        ) else {
            return;
        };
        if let Some(last) = self.inner.last() {
            if rel <= last.relative_offset || pos <= last.position {
                return;
            }
        }
        self.inner.push(OffsetEntry {
            relative_offset: rel,
            position: pos,
        });
    }

    /// Write pending entries to the file.
    pub async fn flush(&self) -> io::Result<()> {
        self.inner.flush().await
    }

    /// Replace all entries (after a rebuild). `entries` are `(absolute offset, position)`.
    pub async fn replace(&self, entries: &[(i64, u64)]) -> io::Result<()> {
        let mut v: Vec<OffsetEntry> = Vec::with_capacity(entries.len());
        for &(offset, position) in entries {
            if let (Ok(rel), Ok(pos)) = (
                u32::try_from(offset - self.base_offset),
                u32::try_from(position),
            ) {
                if v.last()
                    .is_none_or(|l| rel > l.relative_offset && pos > l.position)
                {
                    v.push(OffsetEntry {
                        relative_offset: rel,
                        position: pos,
                    });
                }
            }
        }
        self.inner.replace(v).await
    }

    /// Drop entries at or beyond byte `position` (after the log was truncated there).
    pub async fn truncate_to_position(&self, position: u64) -> io::Result<()> {
        let n = self
            .inner
            .entries()
            .partition_point(|e| u64::from(e.position) < position);
        self.inner.truncate_entries(n).await
    }

    pub async fn fdatasync(&self) -> io::Result<()> {
        self.inner.fdatasync().await
    }

    pub async fn remove(&self) -> io::Result<()> {
        self.inner.remove().await
    }
}

/// The ordering checks of [`OffsetIndex::sane`], on plain entries (unit-testable).
pub fn check_entries(entries: &[OffsetEntry], log_size: u64) -> Result<(), String> {
    for (i, e) in entries.iter().enumerate() {
        if u64::from(e.position) >= log_size {
            return Err(format!(
                "entry {i} points at {} beyond the log size {log_size}",
                e.position
            ));
        }
        if i > 0 {
            let p = entries[i - 1];
            if e.relative_offset <= p.relative_offset || e.position <= p.position {
                return Err(format!("entry {i} {e:?} not after {p:?}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::file::run_local;

    #[test]
    fn lookup_edges_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        run_local(async {
            let idx = OffsetIndex::open(&path, 100).await.unwrap();
            assert!(idx.is_empty());
            assert_eq!(idx.lookup(100), None);
            idx.push(110, 1000);
            idx.push(120, 2000);
            idx.push(130, 3000);
            idx.push(125, 4000); // out of order: ignored
            idx.flush().await.unwrap();
            // before the first entry
            assert_eq!(idx.lookup(105), None);
            assert_eq!(idx.lookup(50), None);
            // exact
            assert_eq!(idx.lookup(110), Some((110, 1000)));
            assert_eq!(idx.lookup(130), Some((130, 3000)));
            // between
            assert_eq!(idx.lookup(119), Some((110, 1000)));
            assert_eq!(idx.lookup(121), Some((120, 2000)));
            // after the last
            assert_eq!(idx.lookup(1_000_000), Some((130, 3000)));
            assert_eq!(idx.lookup(i64::MAX), Some((130, 3000)));
            assert!(idx.sane(3001).is_ok());
            assert!(idx.sane(3000).is_err());

            let again = OffsetIndex::open(&path, 100).await.unwrap();
            assert_eq!(again.len(), 3);
            assert_eq!(again.lookup(121), Some((120, 2000)));
            assert!(again.sane(10_000).is_ok());

            again.truncate_to_position(2000).await.unwrap();
            assert_eq!(again.last(), Some((110, 1000)));
            let third = OffsetIndex::open(&path, 100).await.unwrap();
            assert_eq!(third.len(), 1);
        });
    }

    #[test]
    fn bad_files_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        std::fs::write(&path, [0u8; 13]).unwrap();
        run_local(async {
            let idx = OffsetIndex::open(&path, 0).await.unwrap();
            assert!(idx.sane(1 << 20).is_err());
        });
        // non-monotonic
        let mut b = Vec::new();
        for (r, p) in [(5u32, 100u32), (3, 200)] {
            b.extend_from_slice(&r.to_be_bytes());
            b.extend_from_slice(&p.to_be_bytes());
        }
        std::fs::write(&path, &b).unwrap();
        run_local(async {
            let idx = OffsetIndex::open(&path, 0).await.unwrap();
            assert!(idx.sane(1 << 20).is_err());
        });
    }
}

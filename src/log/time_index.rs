//! The sparse time index of one segment (`<base>.timeindex`).
//!
//! File format: 12-byte entries, big endian, as Kafka's `TimeIndex`: `timestamp: i64` then
//! `relativeOffset: u32`. An entry `(T, O)` means: the largest timestamp of the segment's
//! batches *up to and including* the batch at offset `O` is `T`, and `O` is the first batch
//! that reached `T` — so every batch before `O` has a max timestamp `< T`. Entries are written
//! together with offset-index entries (every `index.interval.bytes`) when the max timestamp has
//! grown, and once more when the segment is sealed (rolled or closed), so the last entry holds
//! the segment's max timestamp.

use crate::log::sparse_index::{IndexEntry, Loaded, SparseIndex};
use std::io;
use std::path::Path;

/// Size of one time-index entry on disk.
pub const TIME_ENTRY_SIZE: usize = 12;

/// One time-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = TIME_ENTRY_SIZE;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(t),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

/// The time index of one segment.
///
/// Invariants: timestamps strictly increase and offsets never decrease from one entry to the
/// next (an entry is only appended when the max timestamp grew). Lookups are therefore a binary
/// search on timestamp. Like the offset index it is sparse and derived data: a bad file is
/// detected by [`TimeIndex::sane`] and rebuilt from the log.
#[derive(Debug)]
pub struct TimeIndex {
    base_offset: i64,
    inner: SparseIndex<TimeEntry>,
    loaded_ok: bool,
}

impl TimeIndex {
    /// Open or create the time index of the segment with `base_offset` and load it.
    pub async fn open(path: &Path, base_offset: i64) -> io::Result<TimeIndex> {
        let (inner, loaded) = SparseIndex::open(path).await?;
        let loaded_ok = !matches!(loaded, Loaded::BadSize);
        Ok(TimeIndex {
            base_offset,
            inner,
            loaded_ok,
        })
    }

    /// Sanity check on open: size a multiple of 12, timestamps strictly increasing, offsets
    /// non-decreasing.
    pub fn sane(&self) -> Result<(), String> {
        if !self.loaded_ok {
            return Err("time index file size is not a multiple of 12".into());
        }
        check_entries(&self.inner.entries())
    }

    /// The entry with the largest timestamp <= `timestamp`, as `(timestamp, absolute offset)`.
    /// `None` if `timestamp` is before the first entry (search from the segment start).
    pub fn lookup(&self, timestamp: i64) -> Option<(i64, i64)> {
        self.inner
            .floor(timestamp, |e| e.timestamp)
            .map(|e| (e.timestamp, self.base_offset + i64::from(e.relative_offset)))
    }

    /// The last entry as `(timestamp, absolute offset)`.
    pub fn last(&self) -> Option<(i64, i64)> {
        self.inner
            .last()
            .map(|e| (e.timestamp, self.base_offset + i64::from(e.relative_offset)))
    }

    pub fn len(&self) -> usize {
        self.inner.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append `(timestamp, offset)` in memory if `timestamp` is larger than the last entry's.
    pub fn maybe_push(&self, timestamp: i64, offset: i64) {
        let Ok(rel) = u32::try_from(offset - self.base_offset) else {
            return;
        };
        if let Some(last) = self.inner.last() {
            if timestamp <= last.timestamp || rel < last.relative_offset {
                return;
            }
        }
        self.inner.push(TimeEntry {
            timestamp,
            relative_offset: rel,
        });
    }

    /// Write pending entries to the file.
    pub async fn flush(&self) -> io::Result<()> {
        self.inner.flush().await
    }

    /// Replace all entries (after a rebuild); `entries` are `(timestamp, absolute offset)`.
    pub async fn replace(&self, entries: &[(i64, i64)]) -> io::Result<()> {
        let mut v: Vec<TimeEntry> = Vec::with_capacity(entries.len());
        for &(ts, offset) in entries {
            if let Ok(rel) = u32::try_from(offset - self.base_offset) {
                if v.last()
                    .is_none_or(|l| ts > l.timestamp && rel >= l.relative_offset)
                {
                    v.push(TimeEntry {
                        timestamp: ts,
                        relative_offset: rel,
                    });
                }
            }
        }
        self.inner.replace(v).await
    }

    /// Drops entries pointing at `end_offset` or beyond (the log was truncated there), in
    /// memory and on disk.
    pub async fn truncate_to_offset(&self, end_offset: i64) -> io::Result<()> {
        let keep = self
            .inner
            .entries()
            .iter()
            .take_while(|e| self.base_offset + i64::from(e.relative_offset) < end_offset)
            .count();
        self.inner.truncate_entries(keep).await
    }

    pub async fn fdatasync(&self) -> io::Result<()> {
        self.inner.fdatasync().await
    }

    pub async fn remove(&self) -> io::Result<()> {
        self.inner.remove().await
    }
}

/// The ordering checks of [`TimeIndex::sane`], on plain entries.
pub fn check_entries(entries: &[TimeEntry]) -> Result<(), String> {
    for w in entries.windows(2) {
        if w[1].timestamp <= w[0].timestamp || w[1].relative_offset < w[0].relative_offset {
            return Err(format!("time index entry {:?} not after {:?}", w[1], w[0]));
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
        let path = dir.path().join("00000000000000000050.timeindex");
        run_local(async {
            let t = TimeIndex::open(&path, 50).await.unwrap();
            assert_eq!(t.lookup(0), None);
            t.maybe_push(1000, 50);
            t.maybe_push(1000, 55); // not larger: ignored
            t.maybe_push(2000, 60);
            t.maybe_push(1500, 70); // smaller: ignored
            t.maybe_push(3000, 80);
            t.flush().await.unwrap();
            assert_eq!(t.len(), 3);
            assert_eq!(t.lookup(999), None); // before first
            assert_eq!(t.lookup(1000), Some((1000, 50))); // exact
            assert_eq!(t.lookup(2500), Some((2000, 60))); // between
            assert_eq!(t.lookup(i64::MAX), Some((3000, 80))); // after last
            assert!(t.sane().is_ok());
            let again = TimeIndex::open(&path, 50).await.unwrap();
            assert_eq!(again.len(), 3);
            assert_eq!(again.last(), Some((3000, 80)));
        });
        std::fs::write(&path, [1u8; 20]).unwrap();
        run_local(async {
            assert!(TimeIndex::open(&path, 50).await.unwrap().sane().is_err());
        });
    }
}

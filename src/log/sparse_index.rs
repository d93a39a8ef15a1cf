//! The machinery shared by the offset index and the time index: a file of fixed-size,
//! big-endian entries mirrored by an in-memory `Vec`, appended to and binary-searched.
//!
//! Why the index files go through [`LogFile`] (io_uring) rather than `std::fs`: a blocking
//! `write(2)` or `open(2)` on a shard would stall every other partition and connection of it.
//! Loading at open reads the whole file once.
//!
//! No descriptor is kept: the in-memory copy answers every lookup, so the file is opened only to
//! be loaded, written (when the segment is sealed, closed or rebuilt), synced or removed, and
//! closed again. A partition then holds one descriptor per segment (its `.log`), as Kafka's lazy
//! indexes do, instead of three: 10,000 partitions fit a 20,000-descriptor limit. The active
//! segment's entries reach the file when it is sealed or closed; after a crash, recovery
//! rebuilds the last segment's indexes from the log anyway.
//!
//! "Rebuild, don't checksum" (Kafka): index files carry no checksum. They are derived data;
//! the owning segment sanity-checks them on open and rebuilds them from the log when in doubt.

use crate::runtime::file::LogFile;
use std::cell::{Cell, Ref, RefCell};
use std::io;
use std::path::{Path, PathBuf};

/// A fixed-size index entry with a big-endian on-disk encoding.
pub(crate) trait IndexEntry: Copy + std::fmt::Debug {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    /// `b.len() == SIZE`.
    fn decode(b: &[u8]) -> Self;
}

/// An append-only sparse index file plus its in-memory copy.
///
/// Invariants: `entries` is what a reader should use (it may run ahead of the file);
/// `entries[..persisted]` is exactly the content of the file; entries are only appended in the
/// order of the owner's sort key (checked by the owner, not here).
#[derive(Debug)]
pub(crate) struct SparseIndex<E: IndexEntry> {
    path: PathBuf,
    entries: RefCell<Vec<E>>,
    persisted: Cell<usize>,
    /// The file was written since its last fdatasync (otherwise a sync has nothing to do, and
    /// closing 10,000 idle partitions does not open 20,000 files to sync them).
    unsynced: Cell<bool>,
}

/// What [`SparseIndex::open`] found on disk.
pub(crate) enum Loaded {
    /// The file was absent or empty.
    Empty,
    /// Entries decoded (not yet checked for order by the owner).
    Entries,
    /// The file's size is not a multiple of the entry size: rebuild.
    BadSize,
}

impl<E: IndexEntry> SparseIndex<E> {
    /// Open (creating if absent) and load every entry.
    pub(crate) async fn open(path: &Path) -> io::Result<(SparseIndex<E>, Loaded)> {
        let file = LogFile::open(path).await?;
        let idx = SparseIndex {
            path: path.to_path_buf(),
            entries: RefCell::new(Vec::new()),
            persisted: Cell::new(0),
            unsynced: Cell::new(false),
        };
        let loaded = idx.load(&file).await;
        file.close().await?;
        loaded.map(|l| (idx, l))
    }

    async fn load(&self, file: &LogFile) -> io::Result<Loaded> {
        let size = file.file_size().await?;
        if size == 0 {
            return Ok(Loaded::Empty);
        }
        if size % E::SIZE as u64 != 0 {
            return Ok(Loaded::BadSize);
        }
        let len = usize::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "index file too large"))?;
        let bytes = file.read_exact_at(0, len).await?;
        let v: Vec<E> = bytes.chunks_exact(E::SIZE).map(E::decode).collect();
        self.persisted.set(v.len());
        *self.entries.borrow_mut() = v;
        Ok(Loaded::Entries)
    }

    /// Runs `op` on the index file, opened for it and closed after.
    async fn with_file<T>(&self, op: impl AsyncFnOnce(&LogFile) -> io::Result<T>) -> io::Result<T> {
        self.unsynced.set(true);
        let file = LogFile::open(&self.path).await?;
        let result = op(&file).await;
        let closed = file.close().await;
        let value = result?;
        closed?;
        Ok(value)
    }

    pub(crate) fn entries(&self) -> Ref<'_, Vec<E>> {
        self.entries.borrow()
    }

    pub(crate) fn last(&self) -> Option<E> {
        self.entries.borrow().last().copied()
    }

    /// The last entry whose key is `<= target`, given that keys are sorted ascending.
    pub(crate) fn floor<K: Ord>(&self, target: K, key: impl Fn(&E) -> K) -> Option<E> {
        let entries = self.entries.borrow();
        let n = entries.partition_point(|e| key(e) <= target);
        n.checked_sub(1).map(|i| entries[i])
    }

    /// Append in memory; [`SparseIndex::flush`] writes it out.
    pub(crate) fn push(&self, e: E) {
        self.entries.borrow_mut().push(e);
    }

    /// Write the entries not yet in the file. On failure nothing is marked persisted, so the
    /// next flush rewrites the same range (no holes in the file).
    pub(crate) async fn flush(&self) -> io::Result<()> {
        let start = self.persisted.get();
        let (buf, end) = {
            let entries = self.entries.borrow();
            if start >= entries.len() {
                return Ok(());
            }
            let mut buf = Vec::with_capacity((entries.len() - start) * E::SIZE);
            for e in &entries[start..] {
                e.encode(&mut buf);
            }
            (buf, entries.len())
        };
        self.with_file(async |f| f.write_all_at(&buf, (start * E::SIZE) as u64).await)
            .await?;
        // Only ever grows: a concurrent replace() is excluded by the log's append lock.
        if self.persisted.get() < end {
            self.persisted.set(end);
        }
        Ok(())
    }

    /// Replace the whole index (after a rebuild or truncation) in memory and on disk.
    pub(crate) async fn replace(&self, entries: Vec<E>) -> io::Result<()> {
        *self.entries.borrow_mut() = entries;
        self.persisted.set(0);
        self.with_file(async |f| f.truncate(0).await).await?;
        self.flush().await
    }

    /// Keep only the first `n` entries, in memory and on disk.
    pub(crate) async fn truncate_entries(&self, n: usize) -> io::Result<()> {
        {
            let mut entries = self.entries.borrow_mut();
            if n >= entries.len() {
                return Ok(());
            }
            entries.truncate(n);
        }
        if self.persisted.get() > n {
            self.persisted.set(n);
        }
        self.with_file(async |f| f.truncate((n * E::SIZE) as u64).await)
            .await
    }

    pub(crate) async fn fdatasync(&self) -> io::Result<()> {
        if !self.unsynced.get() {
            return Ok(());
        }
        self.with_file(async |f| f.fdatasync().await).await?;
        self.unsynced.set(false);
        Ok(())
    }

    pub(crate) async fn remove(&self) -> io::Result<()> {
        crate::runtime::file::remove_file(&self.path).await
    }
}

//! Segment files opened on demand, under a per-shard descriptor budget (Redpanda's file-handle
//! cache; Kafka opens its indexes lazily for the same reason).
//!
//! A broker with 50,000 partitions cannot hold a descriptor per segment under a 20,000-file
//! limit, and a restart that runs out of descriptors cannot even bind its listener. So a
//! [`CachedFile`] holds its [`LogFile`] only while it is used: it is opened on first use,
//! counted against this shard's budget (`log.open.files.max`), and when the shard is over the
//! budget the least recently used open file is closed (CLOCK, "second chance": a file used since
//! the hand last passed it is spared once). The next read or write reopens it: one io_uring
//! `openat`, never a blocking call on the shard.
//!
//! Closing a descriptor loses nothing: written bytes live in the inode's page cache, and an
//! `fdatasync` through a newer descriptor flushes them. A writeback error that happened while no
//! descriptor was open is still reported to the next one (Linux >= 4.16 keeps an error nobody has
//! seen for the next opener, `errseq_sample`).
//!
//! # Invariants
//! - `OPEN` counts the slots of this thread whose `file` is `Some`; a slot's entry in the
//!   ring exists while it is open and evictable (an entry may also be stale: its slot was dropped,
//!   closed or pinned since; stale entries are skipped and the ring is compacted when they pile up).
//! - A file in use stays open for the whole operation: every operation holds its own `Rc` of the
//!   [`LogFile`], so evicting only drops the cache's reference and the descriptor closes when the
//!   last operation finishes.
//! - A removed (unlinked) file is pinned open until its `CachedFile` is dropped: readers still
//!   holding the segment keep reading it, as they would with a descriptor held for good.

use crate::runtime::file::LogFile;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

thread_local! {
    /// Open segment files of this shard.
    static OPEN: Cell<usize> = const { Cell::new(0) };
    /// The most this shard keeps open (0 until set: no limit).
    static BUDGET: Cell<usize> = const { Cell::new(0) };
    /// CLOCK ring of open, evictable slots (oldest first).
    static RING: RefCell<VecDeque<Weak<Slot>>> = const { RefCell::new(VecDeque::new()) };
    /// Files closed to stay within the budget (metric).
    static EVICTED: Cell<u64> = const { Cell::new(0) };
    /// Files (re)opened on demand (metric).
    static OPENED: Cell<u64> = const { Cell::new(0) };
}

/// Sets how many segment files this shard keeps open at most (0: no limit).
pub fn set_budget(files: usize) {
    BUDGET.with(|b| b.set(files));
    evict_over_budget();
}

/// This shard's descriptor cache: open files, budget, evictions and opens so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub open: usize,
    pub budget: usize,
    pub evicted: u64,
    pub opened: u64,
}

/// The calling shard's [`CacheStats`].
pub fn stats() -> CacheStats {
    CacheStats {
        open: OPEN.with(Cell::get),
        budget: BUDGET.with(Cell::get),
        evicted: EVICTED.with(Cell::get),
        opened: OPENED.with(Cell::get),
    }
}

#[derive(Debug, Default)]
struct Slot {
    file: RefCell<Option<Rc<LogFile>>>,
    /// Used since the clock hand last passed (second chance).
    referenced: Cell<bool>,
    /// Never evicted (the file was unlinked: reopening it by name would fail).
    pinned: Cell<bool>,
    /// (device, inode, birth time) of the file first opened: a reopen that finds another file at the path
    /// (the topic was deleted and created again while a reader held this segment) is refused.
    identity: Cell<Option<(u64, u64, i64, u32)>>,
}

impl Slot {
    /// Drops this slot's descriptor (the file closes when no operation holds it any more).
    fn release(&self) -> Option<Rc<LogFile>> {
        let file = self.file.borrow_mut().take();
        if file.is_some() {
            OPEN.with(|o| o.set(o.get().saturating_sub(1)));
        }
        file
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.file.get_mut().take().is_some() {
            // `try_with`: a slot dropped while the thread's locals are torn down counts nothing.
            let _ = OPEN.try_with(|o| o.set(o.get().saturating_sub(1)));
        }
    }
}

/// Closes least recently used files until this shard is within its budget. Bounded: each entry
/// is looked at most twice (once to clear its mark, once to close it).
fn evict_over_budget() {
    compact_ring();
    let budget = BUDGET.with(Cell::get);
    if budget == 0 {
        return;
    }
    let mut steps = RING.with(|r| r.borrow().len()) * 2 + 1;
    while OPEN.with(Cell::get) > budget && steps > 0 {
        steps -= 1;
        let Some(weak) = RING.with(|r| r.borrow_mut().pop_front()) else {
            break;
        };
        let Some(slot) = weak.upgrade() else {
            continue;
        };
        if slot.pinned.get() || slot.file.borrow().is_none() {
            continue; // stale entry
        }
        if slot.referenced.replace(false) {
            RING.with(|r| r.borrow_mut().push_back(weak));
            continue;
        }
        drop(slot.release());
        EVICTED.with(|e| e.set(e.get() + 1));
    }
}

fn compact_ring() {
    // Stale entries (slots dropped, closed or pinned while in the ring) would otherwise pile up
    // on a shard that never reaches its budget: one per segment ever rolled.
    RING.with(|r| {
        let mut ring = r.borrow_mut();
        if ring.len() > 2 * OPEN.with(Cell::get) + 64 {
            ring.retain(|w| {
                w.upgrade()
                    .is_some_and(|s| !s.pinned.get() && s.file.borrow().is_some())
            });
        }
    });
}

/// Why [`CachedFile::fdatasync`] failed.
#[derive(Debug)]
pub enum SyncError {
    /// The closed file could not be opened again (e.g. EMFILE): nothing was synced.
    Reopen(io::Error),
    /// The fdatasync itself failed.
    Sync(io::Error),
}

/// A segment's `.log`, opened when used and closed when the shard needs the descriptor.
///
/// Same operations as [`LogFile`]; each one opens the file first if it is closed. The path is
/// never created again after [`CachedFile::create`]: a file deleted behind the broker's back
/// reads as an error, not as an empty segment.
#[derive(Debug)]
pub struct CachedFile {
    path: PathBuf,
    slot: Rc<Slot>,
}

impl CachedFile {
    /// Opens `path`, creating it if absent, and keeps it open (within the budget).
    pub async fn create(path: &Path) -> io::Result<CachedFile> {
        let f = CachedFile {
            path: path.to_path_buf(),
            slot: Rc::new(Slot::default()),
        };
        let file = LogFile::open(path).await?;
        f.slot.identity.set(Some(file.identity()?));
        f.install(file);
        Ok(f)
    }

    fn install(&self, file: LogFile) -> Rc<LogFile> {
        let file = Rc::new(file);
        // Just used: the eviction below must not pick the file it opened for this operation.
        self.slot.referenced.set(true);
        let previous = self.slot.file.borrow_mut().replace(file.clone());
        if previous.is_none() {
            OPEN.with(|o| o.set(o.get() + 1));
            if !self.slot.pinned.get() {
                RING.with(|r| r.borrow_mut().push_back(Rc::downgrade(&self.slot)));
            }
        }
        OPENED.with(|o| o.set(o.get() + 1));
        evict_over_budget();
        file
    }

    /// The open file, opening it if the cache closed it.
    async fn file(&self) -> io::Result<Rc<LogFile>> {
        if let Some(f) = self.slot.file.borrow().as_ref() {
            self.slot.referenced.set(true);
            return Ok(f.clone());
        }
        let file = LogFile::open_existing(&self.path).await?;
        // Another task may have opened it while this one awaited: keep theirs.
        if let Some(f) = self.slot.file.borrow().as_ref() {
            self.slot.referenced.set(true);
            return Ok(f.clone());
        }
        let identity = file.identity()?;
        match self.slot.identity.get() {
            Some(first) if first != identity => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "{}: the segment was deleted (another file has its name now)",
                        self.path.display()
                    ),
                ));
            }
            _ => self.slot.identity.set(Some(identity)),
        }
        Ok(self.install(file))
    }

    /// The file if it is open right now (for hints that are pointless on a closed file).
    fn open_now(&self) -> Option<Rc<LogFile>> {
        self.slot.file.borrow().clone()
    }

    /// Whether the descriptor is open right now (tests, diagnostics).
    pub fn is_open(&self) -> bool {
        self.slot.file.borrow().is_some()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// See [`LogFile::shared_fd`].
    pub async fn shared_fd(&self) -> io::Result<std::sync::Arc<std::os::fd::OwnedFd>> {
        self.file().await?.shared_fd()
    }

    /// See [`LogFile::write_vectored_at`].
    pub async fn write_vectored_at(&self, parts: &[&[u8]], pos: u64) -> io::Result<()> {
        self.file().await?.write_vectored_at(parts, pos).await
    }

    /// See [`LogFile::start_writeback`]; nothing to do if the file is closed (closing does not
    /// lose the pages, and this is only a hint).
    pub fn start_writeback(&self, pos: u64, len: u64) -> io::Result<()> {
        match self.open_now() {
            Some(f) => f.start_writeback(pos, len),
            None => Ok(()),
        }
    }

    /// See [`LogFile::drop_cached`]; a hint, skipped when the file is closed.
    pub fn drop_cached(&self, pos: u64, len: u64) -> io::Result<()> {
        match self.open_now() {
            Some(f) => f.drop_cached(pos, len),
            None => Ok(()),
        }
    }

    /// See [`LogFile::read_at`].
    pub async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        self.file().await?.read_at(pos, len).await
    }

    /// See [`LogFile::read_exact_at`].
    pub async fn read_exact_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        self.file().await?.read_exact_at(pos, len).await
    }

    /// See [`LogFile::fdatasync`]. Tells a file that could not be reopened (nothing was synced,
    /// a retry may work) from a failed fdatasync (the kernel may have dropped the pages).
    pub async fn fdatasync(&self) -> Result<(), SyncError> {
        let file = self.file().await.map_err(SyncError::Reopen)?;
        file.fdatasync().await.map_err(SyncError::Sync)
    }

    /// See [`LogFile::truncate`].
    pub async fn truncate(&self, len: u64) -> io::Result<()> {
        self.file().await?.truncate(len).await
    }

    /// See [`LogFile::file_size`].
    pub async fn file_size(&self) -> io::Result<u64> {
        self.file().await?.file_size().await
    }

    /// Unlinks the file, keeping it open (pinned, outside the budget) for readers that still
    /// hold it, until this value is dropped. Pinned before it is (re)opened, so the eviction
    /// that opening may trigger cannot close it; unlinked even if it cannot be opened (readers
    /// then fail cleanly), so deleted data never survives a restart.
    pub async fn remove(&self) -> io::Result<()> {
        if self.slot.pinned.replace(true) {
            return Ok(()); // already removed
        }
        if let Err(e) = self.file().await {
            tracing::warn!(path = %self.path.display(), error = %e,
                "removing a segment file that could not be reopened for its readers");
        }
        crate::runtime::file::remove_file(&self.path).await
    }

    /// Closes the descriptor now if the cache holds it, reporting errors.
    pub async fn close(self) -> io::Result<()> {
        match self.slot.release() {
            Some(f) => match Rc::try_unwrap(f) {
                Ok(file) => file.close().await,
                Err(_) => Ok(()), // an operation still holds it; it closes when that ends
            },
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::file::run_local;

    #[test]
    fn files_over_the_budget_are_closed_and_reopened_on_use() {
        let dir = tempfile::tempdir().unwrap();
        run_local(async {
            set_budget(3);
            let before = stats();
            let mut files = Vec::new();
            for i in 0..10u8 {
                let f = CachedFile::create(&dir.path().join(format!("f{i}")))
                    .await
                    .unwrap();
                f.write_vectored_at(&[&[i; 10]], 0).await.unwrap();
                files.push(f);
            }
            assert_eq!(stats().open, 3);
            assert_eq!(files.iter().filter(|f| f.is_open()).count(), 3);
            // Every file reads back through a reopened descriptor, still within the budget.
            for (i, f) in files.iter().enumerate() {
                assert_eq!(f.read_at(0, 10).await.unwrap().to_vec(), vec![i as u8; 10]);
                f.fdatasync().await.unwrap();
                assert!(stats().open <= 3);
            }
            assert!(stats().evicted - before.evicted >= 7);
            // The most recently used stay open; a closed file's hints are no-ops.
            assert!(files[9].is_open() && !files[0].is_open());
            files[0].start_writeback(0, 10).unwrap();
            files[0].drop_cached(0, 10).unwrap();
            drop(files);
            assert_eq!(stats().open, 0);
            set_budget(0);
        });
    }

    #[test]
    fn a_removed_file_stays_readable_until_dropped_and_is_not_recreated() {
        let dir = tempfile::tempdir().unwrap();
        run_local(async {
            set_budget(1);
            let a = CachedFile::create(&dir.path().join("a")).await.unwrap();
            a.write_vectored_at(&[b"kept"], 0).await.unwrap();
            a.remove().await.unwrap();
            assert!(!dir.path().join("a").exists());
            // Other files come and go; the pinned one is not evicted and still reads.
            for i in 0..3 {
                let f = CachedFile::create(&dir.path().join(format!("b{i}")))
                    .await
                    .unwrap();
                f.file_size().await.unwrap();
            }
            assert!(a.is_open());
            assert_eq!(&a.read_at(0, 4).await.unwrap()[..], b"kept");
            drop(a);
            // A file deleted behind the broker's back is an error, never an empty new file.
            let c = CachedFile::create(&dir.path().join("c")).await.unwrap();
            let d = CachedFile::create(&dir.path().join("d")).await.unwrap();
            assert!(!c.is_open());
            std::fs::remove_file(dir.path().join("c")).unwrap();
            let err = c.read_at(0, 1).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
            assert!(!dir.path().join("c").exists());
            // ... nor another file created at its path since (a topic deleted and created again
            // while a reader held this segment).
            std::fs::write(dir.path().join("c"), b"new topic's bytes").unwrap();
            assert_eq!(
                c.read_at(0, 1).await.unwrap_err().kind(),
                io::ErrorKind::NotFound
            );
            drop((c, d));
            assert_eq!(stats().open, 0);
            set_budget(0);
        });
    }

    #[test]
    fn removing_an_evicted_file_pins_it_for_readers_and_a_failed_reopen_is_not_a_failed_sync() {
        let dir = tempfile::tempdir().unwrap();
        run_local(async {
            set_budget(1);
            let a = CachedFile::create(&dir.path().join("a")).await.unwrap();
            a.write_vectored_at(&[b"old"], 0).await.unwrap();
            let b = CachedFile::create(&dir.path().join("b")).await.unwrap();
            assert!(!a.is_open() && b.is_open());
            // Retention removes the closed file: reopened and pinned before the unlink, so the
            // eviction its reopening causes closes `b`, not `a`.
            a.remove().await.unwrap();
            assert!(a.is_open() && !dir.path().join("a").exists());
            assert_eq!(&a.read_at(0, 3).await.unwrap()[..], b"old");
            // A closed file that cannot be reopened: nothing was synced, and it says so.
            std::fs::remove_file(dir.path().join("b")).unwrap();
            assert!(matches!(b.fdatasync().await, Err(SyncError::Reopen(_))));
            drop((a, b));
            set_budget(0);
        });
    }

    #[test]
    fn stale_ring_entries_do_not_accumulate_under_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        run_local(async {
            set_budget(1000);
            for i in 0..500 {
                let f = CachedFile::create(&dir.path().join(format!("f{i}")))
                    .await
                    .unwrap();
                f.close().await.unwrap();
            }
            assert_eq!(stats().open, 0);
            assert!(RING.with(|r| r.borrow().len()) < 100);
            set_budget(0);
        });
    }
}

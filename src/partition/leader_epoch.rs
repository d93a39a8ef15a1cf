//! The leader-epoch cache of a partition and its `leader-epoch-checkpoint` file (Kafka's
//! `LeaderEpochFileCache` / `LeaderEpochCheckpointFile`): for each leader epoch, the first
//! offset appended under it. Followers use it (OffsetsForLeaderEpoch) to find where their log
//! diverges from a new leader's and truncate there (KIP-101, KIP-279).
//!
//! File format, Kafka's, so Kafka's tools read it:
//! ```text
//! 0              <- version
//! 2              <- number of entries
//! 0 0            <- epoch start_offset
//! 3 1200
//! ```
//! Written whole to `leader-epoch-checkpoint.tmp`, fdatasync-ed and renamed over the file.
//!
//! # Invariants
//! - Entries are strictly increasing in both epoch and start offset (a newer epoch starting at
//!   an older one's offset replaces it).
//! - Every entry's start offset is below the log end offset of the log it describes: entries at
//!   or past it are dropped when the log is opened or truncated ([`LeaderEpochCache::truncate_from_end`]).

use std::cell::{Cell, RefCell};
use std::io;
use std::path::{Path, PathBuf};

use crate::runtime::file::{remove_file, rename, sync_dir, LogFile, SerialLock};

/// File name inside the partition directory (Kafka's).
pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// (leader epoch, first offset appended under it).
pub type EpochEntry = (i32, i64);

#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: RefCell<Vec<EpochEntry>>,
    /// One file write at a time, so an older snapshot never lands after a newer one.
    writing: SerialLock,
    /// Entries changed since the file was last written.
    dirty: Cell<bool>,
    /// The file was written without an fdatasync since (see [`LeaderEpochCache::flush`]).
    unsynced: Cell<bool>,
    /// Set by [`LeaderEpochCache::close`]: later writes are refused (the partition may be moving
    /// or its directory about to be deleted).
    closed: Cell<bool>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint of `dir` (empty if there is none). A file that does not parse is
    /// logged and ignored: it is derived data, and the next epoch assignment rewrites it.
    pub async fn load(dir: &Path) -> LeaderEpochCache {
        let path = dir.join(CHECKPOINT_FILE);
        let entries = match read_checkpoint(&path).await {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e,
                    "unreadable leader-epoch checkpoint; starting without it");
                Vec::new()
            }
        };
        LeaderEpochCache {
            path,
            entries: RefCell::new(entries),
            writing: SerialLock::new(),
            dirty: Cell::new(false),
            unsynced: Cell::new(false),
            closed: Cell::new(false),
        }
    }

    pub fn entries(&self) -> Vec<EpochEntry> {
        self.entries.borrow().clone()
    }

    /// The latest epoch with an entry.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.borrow().last().map(|e| e.0)
    }

    /// Records, in memory, that `epoch` starts at `start_offset` (the first append under a new
    /// leader epoch). Returns false (nothing changed) if `epoch` is not newer than the latest
    /// entry; otherwise the caller writes the file with [`LeaderEpochCache::flush`].
    pub fn record(&self, epoch: i32, start_offset: i64) -> bool {
        let mut entries = self.entries.borrow_mut();
        if entries.last().is_some_and(|(e, _)| *e >= epoch) {
            return false;
        }
        // A newer epoch starting at or before older entries replaces them (Kafka does the same
        // when a leader's log was truncated below them).
        entries.retain(|(_, start)| *start < start_offset);
        entries.push((epoch, start_offset));
        self.dirty.set(true);
        true
    }

    /// [`LeaderEpochCache::record`], then the file written durably.
    pub async fn assign(&self, epoch: i32, start_offset: i64) -> io::Result<()> {
        if self.record(epoch, start_offset) {
            self.flush(true).await?;
        }
        Ok(())
    }

    /// Kafka's `endOffsetFor`: the end of `requested` epoch in a log ending at `log_end_offset`,
    /// as `(epoch, end offset)` — the largest epoch not above `requested` and the start of the
    /// first epoch after it (the log end for the latest epoch). `(-1, -1)` when `requested` is
    /// undefined (-1) or above every known epoch; a `requested` below every known epoch ends
    /// where the first known one starts.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        let entries = self.entries.borrow();
        if requested < 0 {
            return (-1, -1);
        }
        if entries.last().is_some_and(|(e, _)| *e == requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = entries.iter().find(|(e, _)| *e > requested) else {
            return (-1, -1);
        };
        match entries.iter().rev().find(|(e, _)| *e <= requested) {
            Some((floor, _)) => (*floor, higher.1),
            None => (requested, higher.1),
        }
    }

    /// Drops entries that start at or after `end_offset` (the log was truncated there).
    /// Returns whether anything changed (the caller flushes).
    pub fn truncate_from_end(&self, end_offset: i64) -> bool {
        let mut entries = self.entries.borrow_mut();
        let before = entries.len();
        entries.retain(|(_, start)| *start < end_offset);
        let changed = entries.len() != before;
        if changed {
            self.dirty.set(true);
        }
        changed
    }

    /// Writes the current entries: temporary file, fdatasync if `durable`, rename. Writes made
    /// while serving (the first append of a new epoch) skip the fdatasync: the entries are
    /// derived from the batches, a crash can at worst leave a file that does not parse (ignored
    /// at the next open), and a clean shutdown makes the file durable.
    pub async fn flush(&self, durable: bool) -> io::Result<()> {
        let _one_at_a_time = self.writing.lock().await?;
        if self.closed.get() {
            return Ok(());
        }
        self.write(durable).await
    }

    /// Waits for a write in progress, makes the file durable if it lags the entries or was
    /// written without an fdatasync, and refuses writes from then on.
    pub async fn close(&self) -> io::Result<()> {
        let _one_at_a_time = self.writing.lock().await?;
        let result = if self.dirty.get() || self.unsynced.get() {
            self.write(true).await
        } else {
            Ok(())
        };
        self.closed.set(true);
        result
    }

    /// One write of the entries (the caller holds `writing`).
    async fn write(&self, durable: bool) -> io::Result<()> {
        // Taken now: a write queued behind another writes the newest entries.
        let text = encode(&self.entries.borrow());
        self.dirty.set(false);
        let result = self.write_file(&text, durable).await;
        match &result {
            Ok(()) => self.unsynced.set(!durable),
            // The file may be missing or old: write it again next time, durably at close.
            Err(_) => self.dirty.set(true),
        }
        result
    }

    async fn write_file(&self, text: &str, durable: bool) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let file = LogFile::open(&tmp).await?;
        let written = async {
            file.truncate(0).await?;
            file.write_all_at(text.as_bytes(), 0).await?;
            if durable {
                file.fdatasync().await?;
            }
            Ok(())
        }
        .await;
        let closed = file.close().await;
        if let Err(e) = written.and(closed) {
            let _ = remove_file(&tmp).await;
            return Err(e);
        }
        rename(&tmp, &self.path).await?;
        if durable {
            // The rename itself survives a crash once the directory is synced.
            if let Some(dir) = self.path.parent() {
                sync_dir(dir).await?;
            }
        }
        Ok(())
    }
}

fn encode(entries: &[EpochEntry]) -> String {
    let mut out = format!("0\n{}\n", entries.len());
    for (epoch, start) in entries {
        out.push_str(&format!("{epoch} {start}\n"));
    }
    out
}

/// Parses Kafka's checkpoint text; every line is checked (the file is untrusted input).
pub fn decode(text: &str) -> Result<Vec<EpochEntry>, String> {
    let mut lines = text.lines();
    match lines.next().map(str::trim) {
        Some("0") => {}
        other => return Err(format!("unknown version {other:?}")),
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("missing entry count")?;
    let mut out: Vec<EpochEntry> = Vec::new();
    for line in lines.by_ref().take(count) {
        let mut parts = line.split_whitespace();
        let (Some(e), Some(o), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("bad entry {line:?}"));
        };
        let epoch: i32 = e.parse().map_err(|_| format!("bad epoch {e:?}"))?;
        let start: i64 = o.parse().map_err(|_| format!("bad offset {o:?}"))?;
        if epoch < 0 || start < 0 {
            return Err(format!("negative entry {line:?}"));
        }
        if out
            .last()
            .is_some_and(|(pe, ps)| *pe >= epoch || *ps >= start)
        {
            return Err(format!("entry {line:?} out of order"));
        }
        out.push((epoch, start));
    }
    if out.len() != count {
        return Err(format!("{count} entries announced, {} found", out.len()));
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err("trailing lines".into());
    }
    Ok(out)
}

async fn read_checkpoint(path: &Path) -> io::Result<Vec<EpochEntry>> {
    let file = LogFile::open_existing(path).await?;
    let read = async {
        let size = file.file_size().await?;
        // A checkpoint is a few lines; anything large is not one.
        if size > 1 << 20 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "checkpoint too large",
            ));
        }
        file.read_exact_at(0, size as usize).await
    }
    .await;
    let _ = file.close().await;
    let bytes = read?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    decode(text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::file::run_local;

    #[test]
    fn kafka_format_round_trips_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        run_local(async {
            let c = LeaderEpochCache::load(dir.path()).await;
            assert_eq!(c.latest_epoch(), None);
            c.assign(0, 0).await.unwrap();
            c.assign(0, 50).await.unwrap(); // same epoch: no new entry
            c.assign(3, 1200).await.unwrap();
            assert_eq!(
                std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap(),
                "0\n2\n0 0\n3 1200\n"
            );
            let again = LeaderEpochCache::load(dir.path()).await;
            assert_eq!(again.entries(), vec![(0, 0), (3, 1200)]);
            assert!(again.truncate_from_end(1200));
            assert_eq!(again.entries(), vec![(0, 0)]);
            assert!(!again.truncate_from_end(1200));
        });
    }

    #[test]
    fn malformed_checkpoints_are_refused_not_trusted() {
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\n0 0 0\n",
            "0\n2\n3 10\n1 20\n",
            "0\n2\n1 20\n2 10\n",
            "0\n1\n-1 0\n",
            "0\n1\n0 x\n",
            "0\n1\n0 0\n9 9\n",
            "0\n99999999999999999999\n",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        assert_eq!(decode("0\n0\n").unwrap(), vec![]);
        // A bad file on disk is ignored (and rewritten by the next assignment).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CHECKPOINT_FILE), "garbage").unwrap();
        run_local(async {
            let c = LeaderEpochCache::load(dir.path()).await;
            assert_eq!(c.entries(), vec![]);
            c.assign(1, 7).await.unwrap();
        });
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap(),
            "0\n1\n1 7\n"
        );
    }

    #[test]
    fn end_offsets_of_epochs_follow_kafkas_rules() {
        let dir = tempfile::tempdir().unwrap();
        run_local(async {
            let c = LeaderEpochCache::load(dir.path()).await;
            assert_eq!(c.end_offset_for(0, 10), (-1, -1), "nothing known");
            c.record(1, 5);
            c.record(4, 20);
            c.record(6, 30);
            assert_eq!(c.end_offset_for(-1, 40), (-1, -1), "undefined");
            assert_eq!(c.end_offset_for(6, 40), (6, 40), "latest: the log end");
            assert_eq!(c.end_offset_for(4, 40), (4, 30));
            // Epochs 2 and 3 appended nothing here: they end where 4 starts, named by 1.
            assert_eq!(c.end_offset_for(3, 40), (1, 20));
            assert_eq!(c.end_offset_for(5, 40), (4, 30));
            assert_eq!(c.end_offset_for(0, 40), (0, 5), "below every known epoch");
            assert_eq!(c.end_offset_for(7, 40), (-1, -1), "above every known epoch");
        });
    }
}

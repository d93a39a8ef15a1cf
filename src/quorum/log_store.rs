//! The quorum's durable state on one node: `<dir>/snapshot`, the last snapshot (the metadata as
//! of an index, from which the log was compacted), and `<dir>/raft.log`, the Raft log entries
//! after it and the last hard state (term, vote, commit), as CRC-checked frames appended and
//! fdatasync-ed before anything that depends on them is sent (a vote, an append
//! acknowledgement).
//!
//! Frame: `kind: u8` (1 entry, 2 hard state), `len: u32 BE`, `crc32c: u32 BE` of kind and
//! payload, then `payload` (the protobuf encoding raft-rs defines for the type).
//!
//! Invariants:
//! - the file is only ever appended to (or replaced whole): an entry frame whose index is at or
//!   below the last one replaces that entry and every entry after it (a follower told by a new
//!   leader that its tail diverges), so nothing is cut from the middle and no hard-state frame
//!   is ever lost to a cut; the live entries are consecutive from `first_index`, `count` of them;
//! - the last hard-state frame in the file is the node's hard state;
//! - a new snapshot is written beside the old one, synced and renamed over it before the log is
//!   rewritten without the entries it covers (also beside, synced, renamed): a crash in between
//!   leaves a snapshot and a log whose first entries it covers, which opening skips;
//! - a crash can tear only the tail: opening stops at the first frame that is incomplete, fails
//!   its CRC, does not decode, or breaks the index sequence, and cuts the file there. Only
//!   writes never acknowledged are lost that way, because nothing is acknowledged before its
//!   fdatasync.
//!
//! A failed write is fatal to the node's part in the quorum (as in etcd and KRaft): the log
//! refuses further writes and the node must restart, recovering from what reached the disk.
//!
//! Blocking std::fs: the driver runs it on the blocking-thread pool.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::prelude::{Entry, HardState, Snapshot};

use crate::runtime::file::{replace_file_now, sync_dir_now};

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_SNAPSHOT: u8 = 3;
const HEADER: usize = 9;
/// A frame larger than this is corruption (entries are metadata records, far smaller; a snapshot
/// of 400,000 partitions' metadata is some 60 MB).
const MAX_FRAME: usize = 256 << 20;

/// What a node's log held when it was opened.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovered {
    pub snapshot: Option<Snapshot>,
    /// The entries after the snapshot (or from the start), consecutive.
    pub entries: Vec<Entry>,
    pub hard_state: HardState,
}

pub struct QuorumLog {
    path: PathBuf,
    file: File,
    /// Index of the first live entry (meaningless while `count` is 0).
    first_index: u64,
    /// Live entries.
    count: u64,
    len: u64,
    hard_state: HardState,
    /// Set when a failed write could not be cut back off: every later write is refused.
    poisoned: bool,
}

impl QuorumLog {
    /// Opens (creating if needed) the log in `dir` and returns what it holds.
    pub fn open(dir: &Path) -> io::Result<(QuorumLog, Recovered)> {
        std::fs::create_dir_all(dir)?;
        let snapshot = read_snapshot(&dir.join("snapshot"))?;
        let covered = snapshot.as_ref().map_or(0, |s| s.get_metadata().index);
        let path = dir.join("raft.log");
        let existed = path.exists();
        let mut bytes = Vec::new();
        if existed {
            File::open(&path)?.read_to_end(&mut bytes)?;
        }
        let mut log = QuorumLog {
            file: OpenOptions::new().create(true).append(true).open(&path)?,
            path,
            first_index: 0,
            count: 0,
            len: 0,
            hard_state: HardState::default(),
            poisoned: false,
        };
        if !existed {
            sync_dir_now(dir)?;
        }
        let mut entries = Vec::new();
        let mut pos = 0usize;
        while let Some((kind, payload, next)) = frame_at(&bytes, pos) {
            match kind {
                KIND_ENTRY => {
                    let Ok(e) = Entry::parse_from_bytes(payload) else {
                        break;
                    };
                    if e.index == 0 {
                        break;
                    }
                    if log.count > 0 && e.index > log.next_index() && e.index == covered + 1 {
                        // Written after a leader's snapshot replaced a log that ended below it
                        // (the log's rewrite was lost to a crash): the snapshot bridges the gap.
                        log.count = 0;
                        entries.clear();
                    }
                    if log.count > 0 {
                        if e.index > log.next_index() || e.index < log.first_index {
                            break; // a gap, or before the log began: not a write of ours
                        }
                        // Replaces this index and everything after it.
                        let keep = e.index - log.first_index;
                        log.count = keep;
                        entries.truncate(keep as usize);
                    }
                    if log.count == 0 {
                        log.first_index = e.index;
                    }
                    log.count += 1;
                    entries.push(e);
                }
                KIND_HARD_STATE => {
                    let Ok(hs) = HardState::parse_from_bytes(payload) else {
                        break;
                    };
                    log.hard_state = hs;
                }
                _ => break,
            }
            pos = next;
        }
        log.len = pos as u64;
        if log.len != bytes.len() as u64 {
            tracing::warn!(
                "{}: cutting {} bytes of torn or corrupt tail",
                log.path.display(),
                bytes.len() as u64 - log.len
            );
            log.file.set_len(log.len)?;
            log.file.sync_data()?;
        }
        // Entries the snapshot covers are history (a crash between writing a snapshot and
        // rewriting the log leaves them); what follows must start right after it.
        let stale = entries.iter().take_while(|e| e.index <= covered).count();
        entries.drain(..stale);
        log.count -= stale as u64;
        log.first_index += stale as u64;
        if let Some(first) = entries.first() {
            if covered > 0 && first.index != covered + 1 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: entries start at {} but the snapshot ends at {covered}",
                        log.path.display(),
                        first.index
                    ),
                ));
            }
        }
        let recovered = Recovered {
            snapshot,
            entries,
            hard_state: log.hard_state.clone(),
        };
        Ok((log, recovered))
    }

    /// Index the next appended entry must have (if the log is not empty).
    fn next_index(&self) -> u64 {
        self.first_index + self.count
    }

    pub fn last_index(&self) -> u64 {
        match self.count {
            0 => 0,
            n => self.first_index + n - 1,
        }
    }

    /// Makes `entries` (consecutive; replacing any entries from the first one's index on) and
    /// `hard_state` durable before returning.
    pub fn persist(&mut self, entries: &[Entry], hard_state: Option<&HardState>) -> io::Result<()> {
        if self.poisoned {
            return Err(io::Error::other(format!(
                "{}: an earlier failed write could not be undone; restart to recover",
                self.path.display()
            )));
        }
        if entries.is_empty() && hard_state.is_none_or(|hs| *hs == self.hard_state) {
            return Ok(());
        }
        if let Some(first) = entries.first() {
            if self.count > 0 && (first.index > self.next_index() || first.index < self.first_index)
            {
                return Err(io::Error::other(format!(
                    "entry {} does not fit the log ({}..={})",
                    first.index,
                    self.first_index,
                    self.last_index()
                )));
            }
        }
        let mut buf = Vec::new();
        for e in entries {
            push_frame(
                &mut buf,
                KIND_ENTRY,
                &e.write_to_bytes().map_err(io::Error::other)?,
            );
        }
        if let Some(hs) = hard_state {
            push_frame(
                &mut buf,
                KIND_HARD_STATE,
                &hs.write_to_bytes().map_err(io::Error::other)?,
            );
        }
        let written = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += buf.len() as u64;
                if let Some(first) = entries.first() {
                    if self.count == 0 {
                        self.first_index = first.index;
                    }
                    self.count = first.index - self.first_index + entries.len() as u64;
                }
                if let Some(hs) = hard_state {
                    self.hard_state = hs.clone();
                }
                Ok(())
            }
            Err(e) => {
                // Raft treats a failed write of its log as fatal (the node stops; a restart
                // recovers from what reached the disk), so no undo: refuse every later write.
                self.poisoned = true;
                Err(io::Error::new(
                    e.kind(),
                    format!("writing {}: {e}", self.path.display()),
                ))
            }
        }
    }
}

impl QuorumLog {
    /// Persists the durable half of a Ready: a leader's snapshot (which replaces the log) if
    /// there is one, the entries and the hard state.
    pub fn persist_ready(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> io::Result<()> {
        match snapshot {
            Some(s) => {
                let hs = hard_state.unwrap_or(&self.hard_state).clone();
                self.replace_with_snapshot(s, entries, &hs)
            }
            None => self.persist(entries, hard_state),
        }
    }

    /// Makes `snapshot` the node's snapshot and `entries` (those after it) with `hard_state`
    /// its whole log, durably (see the module docs for the order).
    pub fn replace_with_snapshot(
        &mut self,
        snapshot: &Snapshot,
        entries: &[Entry],
        hard_state: &HardState,
    ) -> io::Result<()> {
        if self.poisoned {
            return Err(io::Error::other(format!(
                "{}: an earlier failed write could not be undone; restart to recover",
                self.path.display()
            )));
        }
        let dir = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut snap = Vec::new();
        push_frame(
            &mut snap,
            KIND_SNAPSHOT,
            &snapshot.write_to_bytes().map_err(io::Error::other)?,
        );
        let mut log = Vec::new();
        for e in entries {
            push_frame(
                &mut log,
                KIND_ENTRY,
                &e.write_to_bytes().map_err(io::Error::other)?,
            );
        }
        push_frame(
            &mut log,
            KIND_HARD_STATE,
            &hard_state.write_to_bytes().map_err(io::Error::other)?,
        );
        // The snapshot's rename is durable before the log's: a log without the entries a
        // snapshot covers must never be found beside the older snapshot.
        let done = replace_file_now(&dir.join("snapshot"), &snap)
            .and_then(|()| replace_file_now(&self.path, &log))
            .and_then(|()| OpenOptions::new().append(true).open(&self.path));
        match done {
            Ok(file) => {
                self.file = file;
                self.first_index = entries.first().map_or(0, |e| e.index);
                self.count = entries.len() as u64;
                self.len = log.len() as u64;
                self.hard_state = hard_state.clone();
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }
}

/// The snapshot file, if there is one. A damaged snapshot is refused, not skipped: the entries
/// it covers are gone from the log, so starting without it would start from nothing.
fn read_snapshot(path: &Path) -> io::Result<Option<Snapshot>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: {why}; the metadata quorum cannot start",
                path.display()
            ),
        )
    };
    match frame_at(&bytes, 0) {
        Some((KIND_SNAPSHOT, payload, end)) if end == bytes.len() => {
            Snapshot::parse_from_bytes(payload)
                .map(Some)
                .map_err(|e| bad(&format!("undecodable snapshot: {e}")))
        }
        _ => Err(bad("damaged snapshot")),
    }
}

fn push_frame(buf: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let mut crc = crc32c::crc32c(&[kind]);
    crc = crc32c::crc32c_append(crc, payload);
    buf.push(kind);
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&crc.to_be_bytes());
    buf.extend_from_slice(payload);
}

/// The frame at `pos`: (kind, payload, position after it), if complete and its CRC matches.
fn frame_at(bytes: &[u8], pos: usize) -> Option<(u8, &[u8], usize)> {
    let header = bytes.get(pos..pos.checked_add(HEADER)?)?;
    let kind = header[0];
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let crc = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
    if len > MAX_FRAME {
        return None;
    }
    let start = pos + HEADER;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    let actual = crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload);
    (actual == crc).then_some((kind, payload, start + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &str) -> Entry {
        Entry {
            index,
            term,
            data: data.as_bytes().to_vec().into(),
            ..Default::default()
        }
    }

    fn hs(term: u64, vote: u64, commit: u64) -> HardState {
        HardState {
            term,
            vote,
            commit,
            ..Default::default()
        }
    }

    #[test]
    fn entries_and_hard_state_survive_reopen_and_a_replaced_suffix_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, rec) = QuorumLog::open(dir.path()).unwrap();
        assert_eq!(rec, Recovered::default());
        log.persist(
            &[entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")],
            Some(&hs(1, 1, 2)),
        )
        .unwrap();
        log.persist(&[], Some(&hs(2, 3, 2))).unwrap();
        // A new leader replaces entries 2.. with its own.
        log.persist(
            &[entry(2, 2, "B"), entry(3, 2, "C"), entry(4, 2, "D")],
            None,
        )
        .unwrap();
        drop(log);
        let (log, rec) = QuorumLog::open(dir.path()).unwrap();
        let got: Vec<(u64, u64, Vec<u8>)> = rec
            .entries
            .iter()
            .map(|e| (e.index, e.term, e.data.to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 1, b"a".to_vec()),
                (2, 2, b"B".to_vec()),
                (3, 2, b"C".to_vec()),
                (4, 2, b"D".to_vec())
            ]
        );
        assert_eq!(rec.hard_state, hs(2, 3, 2));
        assert_eq!(log.last_index(), 4);
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_and_appends_go_on_after_the_last_good_frame() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = QuorumLog::open(dir.path()).unwrap();
        log.persist(&[entry(1, 1, "a"), entry(2, 1, "b")], Some(&hs(1, 1, 1)))
            .unwrap();
        drop(log);
        let path = dir.path().join("raft.log");
        let good = std::fs::metadata(&path).unwrap().len();
        for tail in [&b"\x01\x00\x00"[..], &[1, 0, 0, 0, 1, 9, 9, 9, 9, 0x55][..]] {
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(tail).unwrap();
            drop(f);
            let (mut log, rec) = QuorumLog::open(dir.path()).unwrap();
            assert_eq!(rec.entries.len(), 2);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
            log.persist(&[entry(3, 1, "c")], None).unwrap();
            drop(log);
            let (_, rec) = QuorumLog::open(dir.path()).unwrap();
            assert_eq!(rec.entries.len(), 3);
            // Put the file back for the next tail.
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(good).unwrap();
        }
    }

    #[test]
    fn a_snapshot_replaces_the_entries_it_covers_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = QuorumLog::open(dir.path()).unwrap();
        log.persist(
            &[entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")],
            Some(&hs(1, 1, 3)),
        )
        .unwrap();
        let mut snap = Snapshot {
            data: b"a,b".to_vec().into(),
            ..Default::default()
        };
        snap.mut_metadata().index = 2;
        snap.mut_metadata().term = 1;
        log.replace_with_snapshot(&snap, &[entry(3, 1, "c")], &hs(1, 1, 3))
            .unwrap();
        log.persist(&[entry(4, 1, "d")], None).unwrap();
        drop(log);
        let (log, rec) = QuorumLog::open(dir.path()).unwrap();
        assert_eq!(rec.snapshot.as_ref().unwrap().data.as_ref(), b"a,b");
        assert_eq!(
            rec.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            [3, 4]
        );
        assert_eq!(rec.hard_state, hs(1, 1, 3));
        assert_eq!(log.last_index(), 4);
        // A damaged snapshot stops the start instead of starting from nothing.
        std::fs::write(dir.path().join("snapshot"), b"\x03\x00").unwrap();
        assert!(QuorumLog::open(dir.path()).is_err());
    }

    #[test]
    fn a_crash_between_a_leaders_snapshot_and_the_log_rewrite_leaves_a_usable_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = QuorumLog::open(dir.path()).unwrap();
        log.persist(&[entry(1, 1, "a"), entry(2, 1, "b")], Some(&hs(1, 2, 2)))
            .unwrap();
        drop(log);
        // The leader's snapshot at 5 reached the disk; the rewritten log did not.
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 5;
        snap.mut_metadata().term = 2;
        let mut bytes = Vec::new();
        push_frame(&mut bytes, KIND_SNAPSHOT, &snap.write_to_bytes().unwrap());
        std::fs::write(dir.path().join("snapshot"), bytes).unwrap();
        let (mut log, rec) = QuorumLog::open(dir.path()).unwrap();
        assert!(rec.entries.is_empty());
        assert_eq!(rec.hard_state, hs(1, 2, 2), "the vote survives");
        log.persist(&[entry(6, 2, "f")], None).unwrap();
        drop(log);
        let (_, rec) = QuorumLog::open(dir.path()).unwrap();
        assert_eq!(rec.entries.iter().map(|e| e.index).collect::<Vec<_>>(), [6]);
    }

    #[test]
    fn entries_that_break_the_sequence_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = QuorumLog::open(dir.path()).unwrap();
        log.persist(&[entry(1, 1, "a")], None).unwrap();
        assert!(log.persist(&[entry(3, 1, "c")], None).is_err());
        log.persist(&[entry(2, 1, "b")], None).unwrap();
        assert_eq!(log.last_index(), 2);
    }
}

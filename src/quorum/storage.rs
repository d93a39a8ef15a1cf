//! The in-memory copy of a node's Raft log that raft-rs reads through its `Storage` trait: the
//! last snapshot (with its data: the metadata as of its index), the entries after it, the hard
//! state and the voters. `log_store` keeps the same on disk; this is rebuilt from it at start.
//!
//! Invariants: `entries[i].index == snapshot index + 1 + i` (no gaps); the hard state's commit
//! never exceeds the last index; the snapshot's index is the log's compaction point, so
//! `term(snapshot index)` is known although the entry itself is gone.

use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

#[derive(Debug, Clone, Default)]
pub struct QuorumStorage {
    hard_state: HardState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

impl QuorumStorage {
    /// Storage for a quorum of `voters`, from a node's durable state.
    pub fn new(
        voters: &[u64],
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
        hard_state: HardState,
    ) -> QuorumStorage {
        let mut s = QuorumStorage {
            hard_state,
            snapshot: snapshot.unwrap_or_default(),
            entries: Vec::new(),
        };
        if s.snapshot.get_metadata().get_conf_state().voters.is_empty() {
            s.snapshot
                .mut_metadata()
                .set_conf_state(ConfState::from((voters.to_vec(), vec![])));
        }
        let first = s.first();
        s.entries = entries.into_iter().filter(|e| e.index >= first).collect();
        s.hard_state.commit = s.hard_state.commit.clamp(s.snapshot_index(), s.last());
        s
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn first(&self) -> u64 {
        self.snapshot_index() + 1
    }

    pub fn last(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }

    /// Entries after the snapshot (for compaction decisions).
    pub fn entries_since_snapshot(&self) -> usize {
        self.entries.len()
    }

    /// Appends entries, replacing any from the first one's index on (a new leader's log wins).
    /// Entries at or below the snapshot are already covered by it and skipped.
    pub fn append(&mut self, entries: &[Entry]) {
        let first = self.first();
        let entries: Vec<&Entry> = entries.iter().filter(|e| e.index >= first).collect();
        let Some(head) = entries.first() else { return };
        let keep = (head.index - first) as usize;
        self.entries.truncate(keep.min(self.entries.len()));
        self.entries.extend(entries.into_iter().cloned());
    }

    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    /// Installs a snapshot from the leader: the log is replaced by it.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) {
        let meta = snapshot.get_metadata();
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.entries.clear();
        self.snapshot = snapshot;
    }

    /// Makes `data` (the state as of entry `index`, which must be applied) the snapshot and drops
    /// the entries it covers. Returns the new snapshot, or `None` if `index` is not past the
    /// current one or not in the log.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Option<Snapshot> {
        if index <= self.snapshot_index() || index > self.last() {
            return None;
        }
        let term = self.term(index).ok()?;
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.snapshot.get_metadata().get_conf_state().clone());
        self.entries
            .drain(..(index - self.snapshot_index()) as usize);
        self.snapshot = snapshot.clone();
        Some(snapshot)
    }

    pub fn current_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
}

impl Storage for QuorumStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state.clone(),
            conf_state: self.snapshot.get_metadata().get_conf_state().clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let from = (low - self.first()) as usize;
        let to = (high - self.first()) as usize;
        let mut out = self.entries[from..to].to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.entries
            .get((idx - self.first()) as usize)
            .map(|e| e.term)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_index() < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn append_replaces_a_suffix_and_compaction_keeps_the_term_of_its_point() {
        let mut s = QuorumStorage::new(&[1, 2, 3], None, Vec::new(), HardState::default());
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 0));
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]);
        s.append(&[entry(3, 2), entry(4, 2)]);
        assert_eq!(s.term(3).unwrap(), 2);
        assert_eq!(s.last(), 4);
        let snap = s.compact(2, b"state@2".to_vec()).unwrap();
        assert_eq!(
            (snap.get_metadata().index, snap.get_metadata().term),
            (2, 1)
        );
        assert_eq!(s.term(2).unwrap(), 1);
        assert!(matches!(
            s.term(1),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(s.first_index().unwrap(), 3);
        let got = s
            .entries(3, 5, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(got.iter().map(|e| e.index).collect::<Vec<_>>(), [3, 4]);
        assert!(s.compact(2, Vec::new()).is_none());
        assert!(s.compact(9, Vec::new()).is_none());
        assert_eq!(s.snapshot(0, 2).unwrap().data.as_ref(), b"state@2");
        // Entries the snapshot covers are skipped on append.
        s.append(&[entry(2, 1), entry(3, 2), entry(4, 2), entry(5, 2)]);
        assert_eq!(s.last(), 5);
    }

    #[test]
    fn a_restored_commit_stays_within_the_log() {
        let hs = HardState {
            term: 3,
            commit: 99,
            ..Default::default()
        };
        let s = QuorumStorage::new(&[1], None, vec![entry(1, 1), entry(2, 3)], hs);
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 2);
    }
}

//! One node's Raft state machine for the metadata quorum: raft-rs's `RawNode` over an in-memory
//! copy of the node's durable log (`storage`, mirroring `log_store`), with raft-rs's Ready protocol split into the
//! two halves around the durable write so the caller can run that write off the shard thread.
//!
//! Sans-io: nothing here touches a clock, a socket or a file. The driver calls [`QuorumCore::tick`]
//! from the timing wheel, [`QuorumCore::step`] with peers' messages, and
//! [`QuorumCore::propose`] with records; then, while [`QuorumCore::has_ready`]:
//! 1. [`QuorumCore::begin_ready`]: send `send_now` (a leader's appends may go out before its own
//!    write), replace the state with `snapshot` if there is one (a leader's snapshot, sent
//!    because this node was too far behind), apply `committed` in order, and persist `persist`;
//! 2. once that is durable, [`QuorumCore::finish_ready`]: send its `send_now` (votes and append
//!    acknowledgements, which promise durability) and apply its `committed`.
//!
//! Invariants: at most one Ready is between the two halves; entries are applied exactly once per
//! process, in index order, after the snapshot they follow (a restart starts from the snapshot
//! and applies the entries after it again: the metadata image is rebuilt, as before the quorum).
//! [`QuorumCore::compact`] turns the applied state into the snapshot and drops what it covers.

use bytes::Bytes;
use raft::prelude::{Entry, EntryType, HardState, Message, Snapshot};
use raft::{Config, RawNode, StateRole, Storage};

use super::log_store::Recovered;
use super::storage::QuorumStorage;

/// Ticks without a leader's heartbeat before a follower starts an election (randomized up to
/// twice this by raft-rs).
pub const ELECTION_TICKS: usize = 10;
/// Ticks between a leader's heartbeats.
pub const HEARTBEAT_TICKS: usize = 2;
/// Largest batch of entries in one append message.
const MAX_APPEND_BYTES: u64 = 1 << 20;

/// What to write durably before the second half of a Ready.
#[derive(Debug, Default)]
pub struct ToPersist {
    /// A leader's snapshot that replaces this node's log (then `entries` follow it).
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
}

/// What to do with half a Ready.
#[derive(Debug, Default)]
pub struct Output {
    /// Messages for peers, in order.
    pub send_now: Vec<Message>,
    /// The state to restore before applying `committed` (a snapshot's data).
    pub snapshot: Option<Bytes>,
    /// Committed entries carrying records (`data` not empty), in index order.
    pub committed: Vec<Entry>,
}

/// What a node knows of the quorum (DescribeQuorum).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuorumStatus {
    pub node: u64,
    /// The leader this node knows of.
    pub leader: Option<u64>,
    /// Raft's term: KRaft's leader epoch.
    pub term: u64,
    /// Highest index known committed: KRaft's high watermark is one past it.
    pub commit: u64,
    /// This node's last log index.
    pub last_index: u64,
    /// Voters and the highest index each is known to hold (complete on the leader; a follower
    /// knows only itself).
    pub voters: Vec<(u64, u64)>,
    /// On the leader: milliseconds since each other voter was last heard from (counted from
    /// when this node became leader, for a voter not heard since); empty elsewhere. Filled in
    /// by the driver, which sees the messages.
    pub silent_ms: Vec<(u64, u64)>,
}

/// A compaction to make durable: the snapshot and the log after it.
#[derive(Debug)]
pub struct Compaction {
    pub snapshot: Snapshot,
    pub entries: Vec<Entry>,
    pub hard_state: HardState,
}

pub struct QuorumCore {
    raw: RawNode<QuorumStorage>,
    pending: Option<raft::Ready>,
    /// Index of the last entry applied (or covered by the snapshot restored).
    applied: u64,
}

impl QuorumCore {
    /// A node `id` of the quorum of `voters`, resuming from `recovered`. A quorum of one elects
    /// itself at once.
    /// The caller restores its state from `recovered.snapshot`'s data first.
    pub fn new(id: u64, voters: &[u64], recovered: Recovered) -> raft::Result<QuorumCore> {
        // The commit index is written lazily (with the next entries or vote); the storage
        // clamps it to what the log holds.
        let storage = QuorumStorage::new(
            voters,
            recovered.snapshot,
            recovered.entries,
            recovered.hard_state,
        );
        let applied = storage.snapshot_index();
        let config = Config {
            id,
            applied,
            election_tick: ELECTION_TICKS,
            heartbeat_tick: HEARTBEAT_TICKS,
            max_size_per_msg: MAX_APPEND_BYTES,
            max_inflight_msgs: 256,
            // A node cut off and back does not disrupt a healthy leader with a higher term.
            pre_vote: true,
            // A leader that cannot reach a majority steps down instead of accepting proposals
            // it can never commit.
            check_quorum: true,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut raw = RawNode::new(&config, storage, &logger)?;
        if voters == [id] {
            raw.campaign()?;
        }
        Ok(QuorumCore {
            raw,
            pending: None,
            applied,
        })
    }

    pub fn tick(&mut self) {
        self.raw.tick();
    }

    /// A message from a peer. Messages for another node or another term are dropped by raft.
    pub fn step(&mut self, m: Message) -> raft::Result<()> {
        self.raw.step(m)
    }

    /// The transport cannot reach `peer`.
    pub fn report_unreachable(&mut self, peer: u64) {
        self.raw.report_unreachable(peer);
    }

    /// A snapshot for `peer` was sent (`ok`) or lost.
    pub fn report_snapshot(&mut self, peer: u64, ok: bool) {
        let status = match ok {
            true => raft::SnapshotStatus::Finish,
            false => raft::SnapshotStatus::Failure,
        };
        self.raw.report_snapshot(peer, status);
    }

    /// Proposes a record; a follower forwards it to the leader it knows. `context` identifies
    /// the proposal when it comes back committed. Err(ProposalDropped) when there is no leader.
    pub fn propose(&mut self, context: Vec<u8>, data: Vec<u8>) -> raft::Result<()> {
        self.raw.propose(context, data)
    }

    pub fn id(&self) -> u64 {
        self.raw.raft.id
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader this node knows of, if any.
    pub fn leader(&self) -> Option<u64> {
        match self.raw.raft.leader_id {
            raft::INVALID_ID => None,
            id => Some(id),
        }
    }

    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The highest index known committed.
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    pub fn status(&self) -> QuorumStatus {
        let raft = &self.raw.raft;
        let last_index = raft.raft_log.last_index();
        let mut voters: Vec<(u64, u64)> = raft
            .prs()
            .iter()
            .map(|(id, pr)| {
                let matched = if *id == raft.id {
                    last_index
                } else {
                    pr.matched
                };
                (*id, matched)
            })
            .collect();
        voters.sort();
        QuorumStatus {
            node: raft.id,
            leader: self.leader(),
            term: raft.term,
            commit: raft.raft_log.committed,
            last_index,
            voters,
            silent_ms: Vec::new(),
        }
    }

    pub fn has_ready(&self) -> bool {
        self.pending.is_none() && self.raw.has_ready()
    }

    /// First half of a Ready (see the module docs); `None` if there is none or one is pending.
    pub fn begin_ready(&mut self) -> Option<(Output, ToPersist)> {
        if !self.has_ready() {
            return None;
        }
        let mut rd = self.raw.ready();
        let snapshot = (!rd.snapshot().is_empty()).then(|| rd.snapshot().clone());
        if let Some(s) = &snapshot {
            self.applied = s.get_metadata().index;
        }
        let send_now = rd.take_messages();
        let committed = self.applying(rd.take_committed_entries());
        let out = Output {
            send_now,
            snapshot: snapshot.as_ref().map(|s| s.data.clone()),
            committed,
        };
        let persist = ToPersist {
            snapshot,
            entries: rd.entries().clone(),
            hard_state: rd.hs().cloned(),
        };
        self.pending = Some(rd);
        Some((out, persist))
    }

    /// Second half of the pending Ready, once its [`ToPersist`] is durable.
    pub fn finish_ready(&mut self) -> raft::Result<Output> {
        let Some(mut rd) = self.pending.take() else {
            return Ok(Output::default());
        };
        {
            let store = self.raw.mut_store();
            if !rd.snapshot().is_empty() {
                store.apply_snapshot(rd.snapshot().clone());
            }
            store.append(rd.entries());
            if let Some(hs) = rd.hs() {
                store.set_hard_state(hs.clone());
            }
        }
        let mut send_now = rd.take_persisted_messages();
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit);
        }
        send_now.extend(light.take_messages());
        let committed = self.applying(light.take_committed_entries());
        self.raw.advance_apply_to(self.applied);
        Ok(Output {
            send_now,
            snapshot: None,
            committed,
        })
    }

    /// Notes `entries` as applied and returns those carrying records.
    fn applying(&mut self, entries: Vec<Entry>) -> Vec<Entry> {
        if let Some(last) = entries.last() {
            self.applied = self.applied.max(last.index);
        }
        records(entries)
    }

    /// Index of the last entry applied.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Entries in the log after the snapshot.
    pub fn entries_since_snapshot(&self) -> usize {
        self.raw.store().entries_since_snapshot()
    }

    /// Makes `state` (the caller's state as of [`QuorumCore::applied`]) the snapshot and drops
    /// the entries it covers; the returned compaction must then be made durable
    /// (`QuorumLog::replace_with_snapshot`). `None` while a Ready is pending or nothing new
    /// was applied.
    pub fn compact(&mut self, state: Vec<u8>) -> Option<Compaction> {
        if self.pending.is_some() {
            return None;
        }
        let applied = self.applied;
        let store = self.raw.mut_store();
        let snapshot = store.compact(applied, state)?;
        let last = store.last();
        let entries = store
            .entries(
                applied + 1,
                last + 1,
                None,
                raft::GetEntriesContext::empty(false),
            )
            .ok()?;
        let hard_state = store.initial_state().ok()?.hard_state;
        Some(Compaction {
            snapshot,
            entries,
            hard_state,
        })
    }
}

/// The entries that carry a record: a new leader's empty entry and configuration changes
/// (membership is static so far) are Raft's own business.
fn records(entries: Vec<Entry>) -> Vec<Entry> {
    entries
        .into_iter()
        .filter(|e| e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty())
        .collect()
}

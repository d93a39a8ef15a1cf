//! One node's Raft state machine for the metadata quorum: raft-rs's `RawNode` over an in-memory
//! copy of the node's durable log (`log_store`), with raft-rs's Ready protocol split into the
//! two halves around the durable write so the caller can run that write off the shard thread.
//!
//! Sans-io: nothing here touches a clock, a socket or a file. The driver calls [`QuorumCore::tick`]
//! from the timing wheel, [`QuorumCore::step`] with peers' messages, and
//! [`QuorumCore::propose`] with records; then, while [`QuorumCore::has_ready`]:
//! 1. [`QuorumCore::begin_ready`]: send `send_now` (a leader's appends may go out before its own
//!    write), apply `committed` in order, and persist `persist`;
//! 2. once that is durable, [`QuorumCore::finish_ready`]: send its `send_now` (votes and append
//!    acknowledgements, which promise durability) and apply its `committed`.
//!
//! Invariants: at most one Ready is between the two halves; entries are applied exactly once per
//! process, in index order (a restart applies them again from the start: the metadata image is
//! rebuilt from the log, as before the quorum).

use raft::prelude::{ConfState, Entry, EntryType, HardState, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole};

use super::log_store::Recovered;

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
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
}

/// What to do with half a Ready.
#[derive(Debug, Default)]
pub struct Output {
    /// Messages for peers, in order.
    pub send_now: Vec<Message>,
    /// Committed entries carrying records (`data` not empty), in index order.
    pub committed: Vec<Entry>,
}

pub struct QuorumCore {
    raw: RawNode<MemStorage>,
    storage: MemStorage,
    pending: Option<raft::Ready>,
}

impl QuorumCore {
    /// A node `id` of the quorum of `voters`, resuming from `recovered`. A quorum of one elects
    /// itself at once.
    pub fn new(id: u64, voters: &[u64], recovered: Recovered) -> raft::Result<QuorumCore> {
        let storage = MemStorage::new_with_conf_state(ConfState::from((voters.to_vec(), vec![])));
        {
            let last = recovered.entries.last().map_or(0, |e| e.index);
            let mut core = storage.wl();
            core.append(&recovered.entries)?;
            let mut hs = recovered.hard_state;
            // The commit index is written lazily (with the next entries or vote); it can never
            // be beyond what the log holds.
            hs.commit = hs.commit.min(last);
            core.set_hardstate(hs);
        }
        let config = Config {
            id,
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
        let mut raw = RawNode::new(&config, storage.clone(), &logger)?;
        if voters == [id] {
            raw.campaign()?;
        }
        Ok(QuorumCore {
            raw,
            storage,
            pending: None,
        })
    }

    pub fn tick(&mut self) {
        self.raw.tick();
    }

    /// A message from a peer. Messages for another node or another term are dropped by raft.
    pub fn step(&mut self, m: Message) -> raft::Result<()> {
        self.raw.step(m)
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

    pub fn has_ready(&self) -> bool {
        self.pending.is_none() && self.raw.has_ready()
    }

    /// First half of a Ready (see the module docs); `None` if there is none or one is pending.
    pub fn begin_ready(&mut self) -> Option<(Output, ToPersist)> {
        if !self.has_ready() {
            return None;
        }
        let mut rd = self.raw.ready();
        if !rd.snapshot().is_empty() {
            // Leaders never compact their log yet, so no follower is ever sent a snapshot.
            tracing::error!("metadata quorum: ignoring a snapshot (not supported yet)");
        }
        let out = Output {
            send_now: rd.take_messages(),
            committed: records(rd.take_committed_entries()),
        };
        let persist = ToPersist {
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
            let mut core = self.storage.wl();
            core.append(rd.entries())?;
            if let Some(hs) = rd.hs() {
                core.set_hardstate(hs.clone());
            }
        }
        let mut send_now = rd.take_persisted_messages();
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.storage.wl().mut_hard_state().set_commit(commit);
        }
        send_now.extend(light.take_messages());
        let committed = records(light.take_committed_entries());
        self.raw.advance_apply();
        Ok(Output {
            send_now,
            committed,
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

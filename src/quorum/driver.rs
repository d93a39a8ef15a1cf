//! The quorum on its shard: one task that ticks the Raft core from the timing wheel, steps it
//! with peers' messages, proposes records, writes its log on the blocking-thread pool and
//! applies what is committed to a [`StateMachine`] (the controller's metadata), in order.
//!
//! Proposals: [`QuorumHandle::propose`] returns once the record has been applied *on this node*
//! (a follower's proposal is forwarded to the leader by raft-rs, committed, and comes back
//! through the log like any other entry), with the state machine's refusal if it did not fit.
//! A proposal that never commits (no leader, a leader lost mid-way) is never answered: callers
//! put a deadline on it.
//!
//! A failed write of the Raft log, or a leader's snapshot that cannot be restored, ends the task
//! with the error (the node must stop, as a KRaft controller does: continuing could acknowledge
//! what is not durable, or diverge from the others).

use std::collections::HashMap;
use std::io;
use std::rc::Rc;

use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use raft::prelude::Message;

use super::core::{QuorumCore, QuorumStatus};
use super::log_store::QuorumLog;
use crate::runtime::file::blocking;
use crate::timer::Timer;

/// Milliseconds per Raft tick (election after 10–20 ticks without a leader).
pub const TICK_MS: u64 = 100;

/// Peers' messages queued for the driver before a peer's connection waits.
pub const PEER_QUEUE: usize = 1_024;

/// Log entries kept beyond twice the snapshot's record count before the log is compacted.
const COMPACT_SLACK: usize = 1_000;

/// What the replicated log drives.
#[allow(async_fn_in_trait)]
pub trait StateMachine {
    /// Applies a committed record; `Err(reason)` if it does not fit the state (it is then
    /// skipped, alike on every node).
    async fn apply(&mut self, record: &[u8]) -> Result<(), String>;
    /// Replaces the state with a snapshot's.
    async fn restore(&mut self, snapshot: &[u8]) -> Result<(), String>;
    /// The state, as a snapshot's data.
    fn snapshot(&self) -> Vec<u8>;
    /// How many records a snapshot of the state holds (to decide when to compact).
    fn snapshot_records(&self) -> usize;
}

/// Why a proposal was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// Committed, but the state machine refused it (alike on every node).
    Refused(String),
    /// No leader is known to forward it to (an election is under way, or no majority).
    NoLeader(String),
    /// The quorum task has stopped.
    Stopped,
}

impl std::fmt::Display for ProposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProposeError::Refused(why) => f.write_str(why),
            ProposeError::NoLeader(why) => write!(f, "the metadata quorum has no leader ({why})"),
            ProposeError::Stopped => f.write_str("the metadata quorum has stopped"),
        }
    }
}

/// Where messages to peers go (the transport; nowhere for a quorum of one).
pub type Outbox = Rc<dyn Fn(Vec<Message>)>;

enum Input {
    Propose {
        record: Vec<u8>,
        done: oneshot::Sender<Result<(), ProposeError>>,
    },
    Status(oneshot::Sender<QuorumStatus>),
    /// The transport could not reach a peer.
    Unreachable(u64),
    /// A snapshot to a peer was sent (true) or lost (false).
    SnapshotSent(u64, bool),
}

/// How the rest of the node talks to the quorum task.
#[derive(Clone)]
pub struct QuorumHandle {
    tx: mpsc::UnboundedSender<Input>,
    /// Peers' messages, bounded: a peer that sends faster than the driver steps waits (and
    /// with it the TCP connection) instead of growing memory.
    peers: mpsc::Sender<Message>,
}

impl QuorumHandle {
    /// Proposes `record` and waits until it is applied here; `Err` with the state machine's
    /// refusal, or if the quorum task has stopped. Never answered if it never commits.
    pub async fn propose(&self, record: Vec<u8>) -> Result<(), ProposeError> {
        let (done, answer) = oneshot::channel();
        self.tx
            .unbounded_send(Input::Propose { record, done })
            .map_err(|_| ProposeError::Stopped)?;
        answer.await.map_err(|_| ProposeError::Stopped)?
    }

    /// What this node knows of the quorum; `None` if the quorum task has stopped.
    pub async fn status(&self) -> Option<QuorumStatus> {
        let (tx, rx) = oneshot::channel();
        self.tx.unbounded_send(Input::Status(tx)).ok()?;
        rx.await.ok()
    }

    /// A message from a peer; waits while the driver has [`PEER_QUEUE`] of them queued.
    pub async fn deliver(&mut self, m: Message) {
        if std::future::poll_fn(|cx| self.peers.poll_ready(cx))
            .await
            .is_ok()
        {
            let _ = self.peers.start_send(m);
        }
    }

    /// The transport lost or could not open its connection to `peer` (a leader then probes it
    /// again instead of streaming appends into the void).
    pub fn unreachable(&self, peer: u64) {
        let _ = self.tx.unbounded_send(Input::Unreachable(peer));
    }

    /// A snapshot for `peer` was written to its connection (`true`) or lost (`false`: the
    /// leader sends it again).
    pub fn snapshot_sent(&self, peer: u64, ok: bool) {
        let _ = self.tx.unbounded_send(Input::SnapshotSent(peer, ok));
    }
}

/// Called with the leader this node knows of whenever that changes.
pub type LeaderWatch = Box<dyn Fn(Option<u64>)>;

pub struct Driver<S> {
    core: QuorumCore,
    /// `None` while a write has it on the blocking pool.
    log: Option<QuorumLog>,
    sm: S,
    rx: mpsc::UnboundedReceiver<Input>,
    peers: mpsc::Receiver<Message>,
    outbox: Outbox,
    timer: Timer,
    /// Proposals made here and not applied yet, by number (the entry's context).
    pending: HashMap<u64, oneshot::Sender<Result<(), ProposeError>>>,
    next_proposal: u64,
    /// This process's mark on its proposals: an entry proposed before a restart, committed
    /// after it, must not answer a new proposal with the same number.
    incarnation: u64,
    next_tick: u64,
    known_leader: Option<u64>,
    leader_watch: Option<LeaderWatch>,
    /// When each peer was last heard from (timer milliseconds); on becoming leader every peer
    /// counts as heard then, so a new leader gives each a full session before judging it.
    last_heard: HashMap<u64, u64>,
}

/// What woke the driver.
enum Event {
    Input(Input),
    Peer(Message),
    Tick,
    /// Every handle is gone.
    Closed,
}

impl<S: StateMachine> Driver<S> {
    pub fn new(
        core: QuorumCore,
        log: QuorumLog,
        sm: S,
        outbox: Outbox,
        timer: Timer,
    ) -> (Driver<S>, QuorumHandle) {
        let (tx, rx) = mpsc::unbounded();
        let (peer_tx, peers) = mpsc::channel(PEER_QUEUE);
        let driver = Driver {
            core,
            log: Some(log),
            sm,
            rx,
            peers,
            outbox,
            timer,
            pending: HashMap::new(),
            next_proposal: 1,
            incarnation: uuid::Uuid::new_v4().as_u64_pair().0,
            next_tick: 0,
            known_leader: None,
            leader_watch: None,
            last_heard: HashMap::new(),
        };
        (driver, QuorumHandle { tx, peers: peer_tx })
    }

    pub fn state_machine(&mut self) -> &mut S {
        &mut self.sm
    }

    /// Handles every Ready there is (at start: applies what the log holds committed; a quorum
    /// of one commits its whole log here).
    pub async fn catch_up(&mut self) -> io::Result<()> {
        self.handle_readies().await
    }

    /// Proposes `record` and handles Readies until it is applied; for start-up, before
    /// [`Driver::run`], on a node that leads alone (a quorum of one).
    pub async fn commit_now(&mut self, record: Vec<u8>) -> io::Result<Result<(), String>> {
        let (done, mut answer) = oneshot::channel();
        self.propose(record, done);
        self.handle_readies().await?;
        Ok(match answer.try_recv() {
            Ok(Some(r)) => r.map_err(|e| e.to_string()),
            _ => Err("not committed at once: this node does not lead alone".to_string()),
        })
    }

    /// Where messages to peers go (the transport, started once the handle exists).
    pub fn set_outbox(&mut self, outbox: Outbox) {
        self.outbox = outbox;
    }

    /// Calls `watch` now and whenever the leader this node knows of changes.
    pub fn watch_leader(&mut self, watch: LeaderWatch) {
        self.known_leader = self.core.leader();
        watch(self.known_leader);
        self.leader_watch = Some(watch);
    }

    /// Runs until the handles are dropped (`Ok`) or the log cannot be written (`Err`).
    pub async fn run(mut self) -> io::Result<()> {
        while self.serve_one().await? {}
        Ok(())
    }

    /// Runs the quorum until `f` completes, and returns its output; `Ok(None)` if the handles
    /// were dropped first. `f` is polled only while the driver waits for input, never in the
    /// middle of handling one (that is what makes stopping safe).
    pub async fn run_until<F: std::future::Future>(
        &mut self,
        f: F,
    ) -> io::Result<Option<F::Output>> {
        let mut f = std::pin::pin!(f);
        loop {
            let woke = futures_lite::future::or(async { Err((&mut f).await) }, async {
                Ok(self.next_event().await)
            })
            .await;
            match woke {
                Err(out) => return Ok(Some(out)),
                Ok(event) => {
                    if !self.handle(event).await? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Waits for the next input or tick, and handles it; false once the handles are gone.
    async fn serve_one(&mut self) -> io::Result<bool> {
        let event = self.next_event().await;
        self.handle(event).await
    }

    /// The next input or tick. Cancel-safe: nothing is lost if it is dropped before it returns.
    async fn next_event(&mut self) -> Event {
        let now = self.timer.now_ms();
        if self.next_tick == 0 || now > self.next_tick + 10 * TICK_MS {
            // First call, or the driver was not run for a while (start-up work between
            // `run_until` and `run`): tick from now on instead of catching up in a burst that
            // would expire every election timeout at once.
            self.next_tick = now + TICK_MS;
        }
        let timer = self.timer.clone();
        let next_tick = self.next_tick;
        let (rx, peers) = (&mut self.rx, &mut self.peers);
        futures_lite::future::or(
            async {
                match rx.next().await {
                    Some(input) => Event::Input(input),
                    None => Event::Closed,
                }
            },
            futures_lite::future::or(
                async {
                    match peers.next().await {
                        Some(m) => Event::Peer(m),
                        // Only this handle's clones send; the handles outlive the driver.
                        None => std::future::pending().await,
                    }
                },
                async {
                    timer.sleep_until(next_tick).await;
                    Event::Tick
                },
            ),
        )
        .await
    }

    async fn handle(&mut self, event: Event) -> io::Result<bool> {
        match event {
            Event::Input(Input::Propose { record, done }) => self.propose(record, done),
            Event::Peer(m) => {
                self.last_heard.insert(m.from, self.timer.now_ms());
                let _ = self.core.step(m);
            }
            Event::Input(Input::Status(tx)) => {
                let _ = tx.send(self.status());
            }
            Event::Input(Input::Unreachable(peer)) => self.core.report_unreachable(peer),
            Event::Input(Input::SnapshotSent(peer, ok)) => self.core.report_snapshot(peer, ok),
            Event::Closed => return Ok(false),
            Event::Tick => {
                self.core.tick();
                self.next_tick += TICK_MS;
            }
        }
        self.handle_readies().await?;
        self.compact_if_long().await?;
        self.notice_leader();
        Ok(true)
    }

    fn status(&self) -> crate::quorum::core::QuorumStatus {
        let mut status = self.core.status();
        if status.leader == Some(status.node) {
            let now = self.timer.now_ms();
            status.silent_ms = status
                .voters
                .iter()
                .filter(|(id, _)| *id != status.node)
                .map(|(id, _)| {
                    let heard = self.last_heard.get(id).copied().unwrap_or(now);
                    (*id, now.saturating_sub(heard))
                })
                .collect();
        }
        status
    }

    fn notice_leader(&mut self) {
        let leader = self.core.leader();
        if leader != self.known_leader {
            if leader == Some(self.core.id()) {
                let now = self.timer.now_ms();
                for (id, _) in self.core.status().voters {
                    self.last_heard.insert(id, now);
                }
            }
            self.known_leader = leader;
            if let Some(watch) = &self.leader_watch {
                watch(leader);
            }
        }
    }

    fn propose(&mut self, record: Vec<u8>, done: oneshot::Sender<Result<(), ProposeError>>) {
        // Forget proposals nobody waits for any more (timed out; a forwarded one may never
        // commit), so retries do not pile up.
        self.pending.retain(|_, done| !done.is_canceled());
        let n = self.next_proposal;
        self.next_proposal += 1;
        let mut context = self.incarnation.to_be_bytes().to_vec();
        context.extend_from_slice(&n.to_be_bytes());
        match self.core.propose(context, record) {
            Ok(()) => {
                self.pending.insert(n, done);
            }
            Err(e) => {
                let _ = done.send(Err(ProposeError::NoLeader(e.to_string())));
            }
        }
    }

    async fn handle_readies(&mut self) -> io::Result<()> {
        while let Some((out, persist)) = self.core.begin_ready() {
            (self.outbox)(out.send_now);
            if let Some(state) = out.snapshot {
                // Raft counts the snapshot as applied: going on without it would diverge.
                self.sm.restore(&state).await.map_err(|e| {
                    io::Error::other(format!("restoring the leader's snapshot: {e}"))
                })?;
            }
            self.apply(out.committed).await;
            let mut log = self.take_log()?;
            let (log, written) = blocking(move || {
                let r = log.persist_ready(
                    persist.snapshot.as_ref(),
                    &persist.entries,
                    persist.hard_state.as_ref(),
                );
                (log, r)
            })
            .await;
            self.log = Some(log);
            written?;
            let out = self.core.finish_ready().map_err(io::Error::other)?;
            (self.outbox)(out.send_now);
            self.apply(out.committed).await;
        }
        Ok(())
    }

    async fn apply(&mut self, entries: Vec<raft::prelude::Entry>) {
        for e in entries {
            let result = self.sm.apply(&e.data).await;
            if let Some(n) = own_proposal(self.incarnation, &e.context) {
                if let Some(done) = self.pending.remove(&n) {
                    let _ = done.send(result.map_err(ProposeError::Refused));
                }
            }
        }
    }

    /// Compacts the log into a snapshot of the state once it is much longer than one.
    async fn compact_if_long(&mut self) -> io::Result<()> {
        if self.core.entries_since_snapshot() <= 2 * self.sm.snapshot_records() + COMPACT_SLACK {
            return Ok(());
        }
        let Some(c) = self.core.compact(self.sm.snapshot()) else {
            return Ok(());
        };
        let mut log = self.take_log()?;
        let (log, written) = blocking(move || {
            let r = log.replace_with_snapshot(&c.snapshot, &c.entries, &c.hard_state);
            (log, r)
        })
        .await;
        self.log = Some(log);
        written
    }

    fn take_log(&mut self) -> io::Result<QuorumLog> {
        self.log
            .take()
            .ok_or_else(|| io::Error::other("metadata quorum log busy"))
    }
}

/// The proposal number in an entry's context, if this process (`incarnation`) proposed it.
fn own_proposal(incarnation: u64, context: &[u8]) -> Option<u64> {
    let (mark, n) = context.split_at_checked(8)?;
    let mark = u64::from_be_bytes(mark.try_into().ok()?);
    let n = u64::from_be_bytes(n.try_into().ok()?);
    (mark == incarnation).then_some(n)
}

//! The quorum core and its durable log driven together, deterministically: nodes in one thread,
//! messages through an in-memory bus that can drop a node or cut it off, real files for each
//! node's log (so a "crash" is dropping the node and a restart is opening its directory again).

use std::collections::VecDeque;

use raft::prelude::Message;

use super::core::{QuorumCore, ELECTION_TICKS};
use super::log_store::QuorumLog;

struct SimNode {
    id: u64,
    dir: tempfile::TempDir,
    node: Option<(QuorumCore, QuorumLog)>,
    /// (index, record) applied by this process, in order.
    applied: Vec<(u64, Vec<u8>)>,
}

struct Sim {
    voters: Vec<u64>,
    nodes: Vec<SimNode>,
    bus: VecDeque<Message>,
    /// Nodes cut off from every other node.
    isolated: Vec<u64>,
}

impl Sim {
    fn new(n: u64) -> Sim {
        let voters: Vec<u64> = (1..=n).collect();
        let mut sim = Sim {
            voters: voters.clone(),
            nodes: voters
                .iter()
                .map(|&id| SimNode {
                    id,
                    dir: tempfile::tempdir().unwrap(),
                    node: None,
                    applied: Vec::new(),
                })
                .collect(),
            bus: VecDeque::new(),
            isolated: Vec::new(),
        };
        for id in 1..=n {
            sim.start(id);
        }
        sim
    }

    fn start(&mut self, id: u64) {
        let voters = self.voters.clone();
        let n = &mut self.nodes[(id - 1) as usize];
        let (log, recovered) = QuorumLog::open(n.dir.path()).unwrap();
        n.applied = restore(recovered.snapshot.as_ref().map(|s| s.data.as_ref()));
        n.node = Some((QuorumCore::new(id, &voters, recovered).unwrap(), log));
    }

    /// kill -9: the process and its memory are gone, its files stay.
    fn kill(&mut self, id: u64) {
        self.nodes[(id - 1) as usize].node = None;
    }

    fn core(&mut self, id: u64) -> &mut QuorumCore {
        &mut self.nodes[(id - 1) as usize].node.as_mut().unwrap().0
    }

    fn alive(&self, id: u64) -> bool {
        self.nodes[(id - 1) as usize].node.is_some()
    }

    /// Runs every Ready and delivers every message until nothing moves.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for n in &mut self.nodes {
                let Some((core, log)) = n.node.as_mut() else {
                    continue;
                };
                while let Some((out, persist)) = core.begin_ready() {
                    moved = true;
                    self.bus.extend(out.send_now);
                    if let Some(state) = &out.snapshot {
                        n.applied = restore(Some(state));
                    }
                    n.applied
                        .extend(out.committed.iter().map(|e| (e.index, e.data.to_vec())));
                    log.persist_ready(
                        persist.snapshot.as_ref(),
                        &persist.entries,
                        persist.hard_state.as_ref(),
                    )
                    .unwrap();
                    let out = core.finish_ready().unwrap();
                    self.bus.extend(out.send_now);
                    n.applied
                        .extend(out.committed.iter().map(|e| (e.index, e.data.to_vec())));
                }
            }
            while let Some(m) = self.bus.pop_front() {
                moved = true;
                let cut = self.isolated.contains(&m.from) || self.isolated.contains(&m.to);
                if !cut && self.alive(m.to) {
                    let _ = self.core(m.to).step(m);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the simulation never settled");
    }

    /// Ticks every live node `n` times, settling after each.
    fn ticks(&mut self, n: usize) {
        for _ in 0..n {
            for node in &mut self.nodes {
                if let Some((core, _)) = node.node.as_mut() {
                    core.tick();
                }
            }
            self.settle();
        }
    }

    /// The single leader among live, connected nodes, after enough ticks for an election.
    fn leader(&mut self) -> u64 {
        for _ in 0..10 {
            let leaders: Vec<u64> = self
                .nodes
                .iter()
                .filter(|n| !self.isolated.contains(&n.id))
                .filter_map(|n| n.node.as_ref().filter(|(c, _)| c.is_leader()).map(|_| n.id))
                .collect();
            if let [one] = leaders[..] {
                return one;
            }
            self.ticks(ELECTION_TICKS * 2);
        }
        panic!("no single leader");
    }

    fn propose(&mut self, via: u64, record: &str) {
        self.core(via)
            .propose(Vec::new(), record.as_bytes().to_vec())
            .unwrap();
        self.settle();
    }

    /// Compacts node `id`'s log into a snapshot of what it applied, durably.
    fn compact(&mut self, id: u64) {
        let n = &mut self.nodes[(id - 1) as usize];
        let state = snapshot_of(&n.applied);
        let (core, log) = n.node.as_mut().unwrap();
        let c = core.compact(state).expect("something to compact");
        log.replace_with_snapshot(&c.snapshot, &c.entries, &c.hard_state)
            .unwrap();
    }

    fn records(&self, id: u64) -> Vec<String> {
        self.nodes[(id - 1) as usize]
            .applied
            .iter()
            .map(|(_, r)| String::from_utf8_lossy(r).into_owned())
            .collect()
    }
}

/// The simulated state machine's snapshot: its applied records, one per line with their index.
fn snapshot_of(applied: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let lines: Vec<String> = applied
        .iter()
        .map(|(i, r)| format!("{i} {}", String::from_utf8_lossy(r)))
        .collect();
    lines.join("\n").into_bytes()
}

fn restore(state: Option<&[u8]>) -> Vec<(u64, Vec<u8>)> {
    let text = String::from_utf8_lossy(state.unwrap_or_default()).into_owned();
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(i, r)| (i.parse().unwrap(), r.as_bytes().to_vec()))
        .collect()
}

#[test]
fn a_single_voter_leads_at_once_and_replays_its_log_after_a_crash() {
    let mut sim = Sim::new(1);
    sim.settle();
    assert!(sim.core(1).is_leader());
    sim.propose(1, "a");
    sim.propose(1, "b");
    assert_eq!(sim.records(1), ["a", "b"]);
    sim.kill(1);
    sim.start(1);
    sim.settle();
    assert!(sim.core(1).is_leader());
    assert_eq!(sim.records(1), ["a", "b"], "replayed once, in order");
    sim.propose(1, "c");
    assert_eq!(sim.records(1), ["a", "b", "c"]);
}

#[test]
fn three_voters_agree_through_a_leader_crash_and_a_restart() {
    let mut sim = Sim::new(3);
    let first = sim.leader();
    let follower = (1..=3).find(|&i| i != first).unwrap();
    // A follower forwards proposals to the leader.
    sim.propose(follower, "one");
    sim.propose(first, "two");
    for id in 1..=3 {
        assert_eq!(sim.records(id), ["one", "two"], "node {id}");
    }
    sim.kill(first);
    let second = sim.leader();
    assert_ne!(second, first);
    sim.propose(second, "three");
    sim.start(first);
    sim.ticks(ELECTION_TICKS);
    for id in 1..=3 {
        assert_eq!(sim.records(id), ["one", "two", "three"], "node {id}");
    }
}

#[test]
fn a_cut_off_leader_commits_nothing_and_its_divergent_tail_is_replaced() {
    let mut sim = Sim::new(3);
    let old = sim.leader();
    sim.propose(old, "before");
    sim.isolated.push(old);
    // Accepted into its log, never committed: no majority hears of it.
    sim.core(old).propose(Vec::new(), b"lost".to_vec()).unwrap();
    sim.settle();
    let new = sim.leader();
    assert_ne!(new, old);
    sim.propose(new, "after");
    // check_quorum: the cut-off leader steps down once it hears from no majority.
    sim.ticks(ELECTION_TICKS * 3);
    assert!(!sim.core(old).is_leader());
    sim.isolated.clear();
    sim.ticks(ELECTION_TICKS * 2);
    for id in 1..=3 {
        assert_eq!(sim.records(id), ["before", "after"], "node {id}");
    }
    // And the replaced tail is gone from the old leader's disk too.
    sim.kill(old);
    sim.start(old);
    sim.ticks(ELECTION_TICKS * 2);
    assert_eq!(sim.records(old), ["before", "after"]);
}

#[test]
fn compacted_logs_restart_from_their_snapshot_and_a_far_behind_follower_gets_it() {
    let mut sim = Sim::new(3);
    let leader = sim.leader();
    for i in 0..20 {
        sim.propose(leader, &format!("r{i}"));
    }
    let lagging = (1..=3).find(|&i| i != leader).unwrap();
    sim.kill(lagging);
    for i in 20..40 {
        sim.propose(leader, &format!("r{i}"));
    }
    // Every live node compacts: the entries the lagging node lacks are gone everywhere.
    for id in (1..=3).filter(|&i| i != lagging) {
        sim.compact(id);
        assert_eq!(sim.core(id).entries_since_snapshot(), 0);
    }
    let expected: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
    // The lagging node restarts and is sent the leader's snapshot.
    sim.start(lagging);
    sim.ticks(ELECTION_TICKS);
    sim.propose(leader, "r40");
    let mut all = expected.clone();
    all.push("r40".into());
    for id in 1..=3 {
        assert_eq!(sim.records(id), all, "node {id}");
    }
    let installed = sim.nodes[(lagging - 1) as usize]
        .dir
        .path()
        .join("snapshot");
    assert!(
        installed.exists(),
        "the lagging node caught up through a snapshot"
    );
    sim.kill(lagging);
    sim.start(lagging);
    sim.ticks(ELECTION_TICKS);
    assert_eq!(sim.records(lagging), all, "and restarts from it");
    // A compacted node restarts from its snapshot plus the entries after it.
    sim.kill(leader);
    sim.start(leader);
    sim.ticks(ELECTION_TICKS * 2);
    assert_eq!(sim.records(leader), all);
    let now = sim.leader();
    sim.propose(now, "r41");
    all.push("r41".into());
    for id in 1..=3 {
        assert_eq!(sim.records(id), all, "node {id}");
    }
}

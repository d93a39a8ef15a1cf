//! State-machine and coordinator tests with a fake clock: every call passes its own `now`.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use futures_channel::oneshot;
use kafka_protocol::error::ResponseError as E;

use super::codec::{
    encode_group_value, encode_key, encode_offset_value, OffsetValue, RawRecord, RecordKey,
};
use super::coordinator::{CommitEntry, CoordinatorConfig, GroupCoordinator, GroupStorage};
use super::member::{JoinResult, SyncResult};
use super::state::{Group, GroupConfig, GroupState, JoinRequest, Reply, SyncRequest, SyncStep};
use super::timers::{Driver, LocalFuture};

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

fn cfg(delay: i64) -> GroupConfig {
    GroupConfig {
        min_session_timeout_ms: 6_000,
        max_session_timeout_ms: 60_000,
        initial_rebalance_delay_ms: delay,
        max_size: i32::MAX as usize,
    }
}

fn proto(names: &[&str]) -> Vec<(String, Bytes)> {
    names
        .iter()
        .map(|n| (n.to_string(), Bytes::from(format!("meta-{n}"))))
        .collect()
}

fn req(member: &str, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member.into(),
        instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: proto(protocols),
        require_known_member_id: true,
        supports_skip_assignment: false,
    }
}

fn now<T: std::fmt::Debug>(r: Reply<T>) -> T {
    match r {
        Reply::Now(t) => t,
        Reply::Wait(_) => panic!("expected an immediate answer"),
    }
}

fn wait<T>(r: Reply<T>) -> oneshot::Receiver<T> {
    match r {
        Reply::Wait(rx) => rx,
        Reply::Now(_) => panic!("expected a parked answer"),
    }
}

fn ready<T>(rx: &mut oneshot::Receiver<T>) -> Option<T> {
    rx.try_recv().ok().flatten()
}

/// Handshake + join: returns the member id and the parked JoinGroup.
fn join_new(g: &mut Group, protocols: &[&str], t: i64) -> (String, oneshot::Receiver<JoinResult>) {
    let first = now(g.join(req("", protocols), t));
    assert_eq!(first.error, E::MemberIdRequired.code());
    assert!(!first.member_id.is_empty());
    let id = first.member_id;
    let rx = wait(g.join(req(&id, protocols), t));
    (id, rx)
}

fn sync(g: &mut Group, member: &str, generation: i32, assign: &[(&str, &str)], t: i64) -> SyncStep {
    g.sync(
        SyncRequest {
            member_id: member.into(),
            generation_id: generation,
            assignments: assign
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                .collect(),
            ..Default::default()
        },
        t,
    )
}

/// Leader syncs and the persist succeeds: returns the leader's SyncGroup answer.
fn leader_sync(g: &mut Group, leader: &str, assign: &[(&str, &str)], t: i64) -> SyncResult {
    let generation = g.generation();
    match sync(g, leader, generation, assign, t) {
        SyncStep::Persist {
            generation,
            mut wait,
        } => {
            assert!(ready(&mut wait).is_none(), "answered before persisting");
            g.sync_persisted(generation, 0, t);
            ready(&mut wait).expect("leader answered after persist")
        }
        other => panic!("leader sync should persist, got {other:?}"),
    }
}

/// A stable group with `n` members (delay 0 between joins handled by running rebalances).
fn stable_group(n: usize) -> (Group, Vec<String>) {
    let mut g = Group::new("g", cfg(100), 0);
    let mut ids = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..n {
        let (id, rx) = join_new(&mut g, &["range"], 0);
        ids.push(id);
        rxs.push(rx);
    }
    g.tick(100);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    for rx in &mut rxs {
        assert_eq!(ready(rx).unwrap().error, 0);
    }
    let assign: Vec<(String, String)> = ids.iter().map(|i| (i.clone(), format!("a-{i}"))).collect();
    let assign_ref: Vec<(&str, &str)> = assign
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let leader = g.leader().unwrap().to_string();
    leader_sync(&mut g, &leader, &assign_ref, 100);
    assert_eq!(g.state(), GroupState::Stable);
    (g, ids)
}

#[test]
fn member_id_required_handshake_then_single_member_group_stabilizes() {
    let mut g = Group::new("g", cfg(0), 0);
    let (id, mut rx) = join_new(&mut g, &["range"], 0);
    // Delay 0: the join phase ends at once with the one member.
    let r = ready(&mut rx).expect("join answered");
    assert_eq!(r.error, 0);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, id);
    assert_eq!(r.member_id, id);
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let s = leader_sync(&mut g, &id, &[(id.as_str(), "A")], 1);
    assert_eq!(s.error, 0);
    assert_eq!(&s.assignment[..], b"A");
    assert_eq!(g.state(), GroupState::Stable);
    assert!(g.take_dirty(), "completed generation must be persisted");
}

#[test]
fn join_without_handshake_for_old_versions_and_unknown_member_rejected() {
    let mut g = Group::new("g", cfg(0), 0);
    let mut r = req("", &["range"]);
    r.require_known_member_id = false;
    let mut rx = wait(g.join(r, 0));
    assert_eq!(ready(&mut rx).unwrap().error, 0);
    let bad = now(g.join(req("nobody", &["range"]), 0));
    assert_eq!(bad.error, E::UnknownMemberId.code());
}

#[test]
fn initial_delay_collects_members_and_extends_per_newcomer() {
    let mut g = Group::new("g", cfg(3_000), 0);
    let (a, mut ra) = join_new(&mut g, &["range"], 0);
    let (b, mut rb) = join_new(&mut g, &["range"], 1_000);
    g.tick(3_000);
    assert!(
        ready(&mut ra).is_none(),
        "newcomer at 1000 extended the delay to 4000"
    );
    assert_eq!(g.next_deadline(), Some(4_000));
    g.tick(4_000);
    let ja = ready(&mut ra).unwrap();
    let jb = ready(&mut rb).unwrap();
    assert_eq!(ja.leader, a, "first member to join leads");
    assert_eq!(ja.members.len(), 2, "leader gets every member's metadata");
    assert!(jb.members.is_empty(), "followers get none");
    assert_eq!(jb.member_id, b);
    assert_eq!(ja.generation_id, jb.generation_id);
}

#[test]
fn follower_sync_waits_for_leader_assignment() {
    let mut g = Group::new("g", cfg(0), 0);
    let mut r1 = req("", &["range"]);
    r1.require_known_member_id = false;
    let mut rx1 = wait(g.join(r1, 0));
    let leader = ready(&mut rx1).unwrap().member_id;
    leader_sync(&mut g, &leader, &[(leader.as_str(), "L")], 0);
    // A second member triggers a rebalance; the leader rejoins.
    let (f, mut rf) = join_new(&mut g, &["range"], 10);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat(&leader, None, 1, 20),
        E::RebalanceInProgress.code()
    );
    let mut rl = wait(g.join(req(&leader, &["range"]), 30));
    let jl = ready(&mut rl).unwrap();
    let jf = ready(&mut rf).unwrap();
    assert_eq!(jl.generation_id, 2);
    assert_eq!(jf.generation_id, 2);
    let SyncStep::Reply(Reply::Wait(mut fw)) = sync(&mut g, &f, 2, &[], 40) else {
        panic!("follower should wait");
    };
    assert!(ready(&mut fw).is_none());
    leader_sync(
        &mut g,
        &leader,
        &[(leader.as_str(), "L2"), (f.as_str(), "F2")],
        50,
    );
    let sf = ready(&mut fw).unwrap();
    assert_eq!(&sf.assignment[..], b"F2");
    assert_eq!(g.state(), GroupState::Stable);
}

#[test]
fn heartbeat_errors() {
    let (mut g, ids) = stable_group(2);
    let gen = g.generation();
    assert_eq!(g.heartbeat(&ids[0], None, gen, 200), 0);
    assert_eq!(
        g.heartbeat(&ids[0], None, gen - 1, 200),
        E::IllegalGeneration.code()
    );
    assert_eq!(
        g.heartbeat("ghost", None, gen, 200),
        E::UnknownMemberId.code()
    );
    let mut empty = Group::new("e", cfg(0), 0);
    assert_eq!(empty.heartbeat("x", None, 0, 0), E::UnknownMemberId.code());
}

#[test]
fn session_expiry_removes_member_and_rebalances() {
    let (mut g, ids) = stable_group(2);
    let gen = g.generation();
    // Only the first member keeps heartbeating.
    for t in (1_000..=10_000).step_by(1_000) {
        assert_eq!(g.heartbeat(&ids[0], None, gen, t), 0);
    }
    g.tick(10_100 + 100); // second member's session (10 s from its join at 100) is over
    assert!(g.member(&ids[1]).is_none());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let mut rx = wait(g.join(req(&ids[0], &["range"]), 10_300));
    let r = ready(&mut rx).expect("the only member rejoined: phase complete");
    assert_eq!(r.generation_id, gen + 1);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn members_not_rejoining_within_rebalance_timeout_are_removed() {
    let (mut g, ids) = stable_group(3);
    let gen = g.generation();
    // Member 0 changes its subscription: rebalance. Member 1 rejoins, member 2 stays silent
    // but keeps heartbeating (so only the rebalance timeout removes it).
    let mut r0 = wait(g.join(req(&ids[0], &["range", "roundrobin"]), 1_000));
    let mut r1 = wait(g.join(req(&ids[1], &["range"]), 1_100));
    for t in (2_000..31_000).step_by(2_000) {
        assert_eq!(
            g.heartbeat(&ids[2], None, gen, t),
            E::RebalanceInProgress.code()
        );
    }
    assert!(ready(&mut r0).is_none());
    g.tick(31_000); // 1000 + rebalance timeout
    assert!(g.member(&ids[2]).is_none());
    assert_eq!(ready(&mut r0).unwrap().members.len(), 2);
    assert_eq!(ready(&mut r1).unwrap().generation_id, gen + 1);
}

#[test]
fn leave_rebalances_and_last_leave_empties() {
    let (mut g, ids) = stable_group(2);
    let gen = g.generation();
    assert_eq!(g.leave(&[(ids[1].clone(), None)], 200), vec![0]);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(
        g.leave(&[("ghost".into(), None)], 200),
        vec![E::UnknownMemberId.code()]
    );
    assert_eq!(g.leave(&[(ids[0].clone(), None)], 300), vec![0]);
    assert_eq!(g.state(), GroupState::Empty);
    assert!(g.generation() > gen, "emptying completes a generation");
    assert!(g.take_dirty());
}

#[test]
fn protocol_selection_votes_among_common_protocols() {
    let mut g = Group::new("g", cfg(1_000), 0);
    let _a = join_new(&mut g, &["range", "roundrobin"], 0);
    let _b = join_new(&mut g, &["roundrobin", "range"], 0);
    let _c = join_new(&mut g, &["roundrobin", "range", "sticky"], 0);
    assert_eq!(g.select_protocol().as_deref(), Some("roundrobin"));
    let mut h = Group::new("h", cfg(1_000), 0);
    let _d = join_new(&mut h, &["cooperative-sticky", "range"], 0);
    let _e = join_new(&mut h, &["range"], 0);
    assert_eq!(
        h.select_protocol().as_deref(),
        Some("range"),
        "only common protocols count"
    );
    // A member with nothing in common, or another protocol type, is refused.
    let bad = now(h.join(req("", &["sticky"]), 0));
    assert_eq!(bad.error, E::InconsistentGroupProtocol.code());
    let mut other_type = req("", &["range"]);
    other_type.protocol_type = "connect".into();
    assert_eq!(
        now(h.join(other_type, 0)).error,
        E::InconsistentGroupProtocol.code()
    );
}

#[test]
fn session_timeout_bounds() {
    let mut g = Group::new("g", cfg(0), 0);
    let mut r = req("", &["range"]);
    r.session_timeout_ms = 1_000;
    assert_eq!(
        now(g.join(r.clone(), 0)).error,
        E::InvalidSessionTimeout.code()
    );
    r.session_timeout_ms = 600_000;
    assert_eq!(now(g.join(r, 0)).error, E::InvalidSessionTimeout.code());
}

#[test]
fn static_member_replacement_keeps_stable_group_and_fences_old_id() {
    let mut g = Group::new("g", cfg(0), 0);
    let mut r = req("", &["range"]);
    r.instance_id = Some("inst-1".into());
    let mut rx = wait(g.join(r.clone(), 0)); // static members skip MEMBER_ID_REQUIRED
    let old = ready(&mut rx).unwrap().member_id;
    assert!(old.starts_with("inst-1-"));
    leader_sync(&mut g, &old, &[(old.as_str(), "A")], 0);
    let gen = g.generation();
    // The same instance restarts and joins with no member id.
    let j = now(g.join(r.clone(), 1_000));
    assert_eq!(j.error, 0);
    assert_ne!(j.member_id, old);
    assert_eq!(j.generation_id, gen, "no rebalance");
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(g.leader(), Some(j.member_id.as_str()));
    // The old id is fenced everywhere.
    assert_eq!(
        g.heartbeat(&old, Some("inst-1"), gen, 1_100),
        E::FencedInstanceId.code()
    );
    assert_eq!(
        g.validate_commit(&old, Some("inst-1"), gen, 1_100),
        Err(E::FencedInstanceId.code())
    );
    // The new one keeps the old assignment.
    let SyncStep::Reply(Reply::Now(s)) = sync(&mut g, &j.member_id, gen, &[], 1_200) else {
        panic!("stable group answers at once");
    };
    assert_eq!(&s.assignment[..], b"A");
    // Leaving by instance id with a stale member id is fenced, with the right one works.
    assert_eq!(
        g.leave(&[(old.clone(), Some("inst-1".into()))], 1_300),
        vec![E::FencedInstanceId.code()]
    );
    assert_eq!(
        g.leave(&[(String::new(), Some("inst-1".into()))], 1_300),
        vec![0]
    );
}

#[test]
fn commit_checks_follow_kafka_order() {
    let mut empty = Group::new("s", cfg(0), 0);
    assert_eq!(
        empty.validate_commit("", None, -1, 0),
        Ok(()),
        "simple commit"
    );
    let (mut g, ids) = stable_group(2);
    let gen = g.generation();
    assert_eq!(
        g.validate_commit("", None, -1, 0),
        Err(E::UnknownMemberId.code())
    );
    assert_eq!(g.validate_commit(&ids[0], None, gen, 0), Ok(()));
    assert_eq!(
        g.validate_commit(&ids[0], None, gen + 5, 0),
        Err(E::IllegalGeneration.code())
    );
    // PreparingRebalance still accepts commits of the current generation.
    g.leave(&[(ids[1].clone(), None)], 200);
    assert_eq!(g.validate_commit(&ids[0], None, gen, 200), Ok(()));
    let mut rx = wait(g.join(req(&ids[0], &["range"]), 300));
    assert!(ready(&mut rx).is_some());
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(
        g.validate_commit(&ids[0], None, gen + 1, 300),
        Err(E::RebalanceInProgress.code())
    );
}

#[test]
fn members_that_never_sync_are_removed_at_the_sync_deadline() {
    let mut g = Group::new("g", cfg(0), 0);
    let (a, mut ra) = join_new(&mut g, &["range"], 0);
    assert!(ready(&mut ra).is_some());
    let (b, _rb) = join_new(&mut g, &["range"], 10);
    let mut ra2 = wait(g.join(req(&a, &["range"]), 20));
    assert!(ready(&mut ra2).is_some());
    // Leader syncs; b never does (but heartbeats).
    leader_sync(&mut g, &a, &[(a.as_str(), "A"), (b.as_str(), "B")], 30);
    let gen = g.generation();
    for t in (5_000..=30_000).step_by(5_000) {
        assert_eq!(g.heartbeat(&a, None, gen, t), 0);
        assert_eq!(g.heartbeat(&b, None, gen, t), 0);
    }
    g.tick(20 + i64::from(REBALANCE));
    assert!(g.member(&a).is_some());
    assert!(g.member(&b).is_none());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn failed_persist_of_assignment_rebalances() {
    let mut g = Group::new("g", cfg(0), 0);
    let (a, mut ra) = join_new(&mut g, &["range"], 0);
    assert!(ready(&mut ra).is_some());
    let SyncStep::Persist {
        generation,
        mut wait,
    } = sync(&mut g, &a, 1, &[(a.as_str(), "A")], 1)
    else {
        panic!("leader persists");
    };
    g.sync_persisted(generation, E::NotCoordinator.code(), 2);
    assert_eq!(ready(&mut wait).unwrap().error, E::NotCoordinator.code());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

#[test]
fn snapshot_restores_a_stable_group() {
    let (g, ids) = stable_group(2);
    let snap = g.snapshot(500);
    let r = Group::restore("g", cfg(0), &snap, 1_000);
    assert_eq!(r.state(), GroupState::Stable);
    assert_eq!(r.generation(), g.generation());
    assert_eq!(r.leader(), g.leader());
    assert_eq!(r.member_ids(), ids);
    assert_eq!(
        r.member(&ids[1]).unwrap().assignment,
        g.member(&ids[1]).unwrap().assignment
    );
    // Restored sessions start now: a member that never comes back expires.
    assert_eq!(r.next_deadline(), Some(1_000 + i64::from(SESSION)));
}

// ---- coordinator with fake storage and a manual clock ----------------------------------------

#[derive(Default)]
struct MemStorage {
    records: RefCell<Vec<(i32, Bytes, Option<Bytes>)>>,
    fail: RefCell<Option<i16>>,
    /// If set, the next append waits until this fires (a write in flight).
    gate: RefCell<Option<oneshot::Receiver<()>>>,
}

impl GroupStorage for Rc<MemStorage> {
    fn append(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> LocalFuture<Result<i64, i16>> {
        let me = self.clone();
        Box::pin(async move {
            let gate = me.gate.borrow_mut().take();
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            if let Some(e) = *me.fail.borrow() {
                return Err(e);
            }
            let mut all = me.records.borrow_mut();
            let base = all.len() as i64;
            all.extend(records.into_iter().map(|(k, v)| (partition, k, v)));
            Ok(base)
        })
    }
}

type Wakeup = (i64, Box<dyn FnOnce()>);

struct ManualDriver {
    now: RefCell<i64>,
    wakeups: RefCell<Vec<Wakeup>>,
}

impl Driver for Rc<ManualDriver> {
    fn now_ms(&self) -> i64 {
        *self.now.borrow()
    }
    fn wake_at(&self, at_ms: i64, f: Box<dyn FnOnce()>) {
        self.wakeups.borrow_mut().push((at_ms, f));
    }
    fn spawn(&self, f: LocalFuture<()>) {
        futures_lite::future::block_on(f);
    }
}

fn coordinator() -> (Rc<GroupCoordinator>, Rc<MemStorage>, Rc<ManualDriver>) {
    let storage = Rc::new(MemStorage::default());
    let driver = Rc::new(ManualDriver {
        now: RefCell::new(1_000),
        wakeups: RefCell::new(Vec::new()),
    });
    let c = GroupCoordinator::new(
        CoordinatorConfig {
            group: cfg(0),
            partitions: 50,
            offsets_retention_ms: 60_000,
            metadata_max_bytes: 10,
        },
        Rc::new(storage.clone()),
        Rc::new(driver.clone()),
    );
    c.set_loaded();
    (c, storage, driver)
}

fn entry(topic: &str, partition: i32, offset: i64) -> CommitEntry {
    CommitEntry {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: 2,
        metadata: Some("m".into()),
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

#[test]
fn simple_commit_fetch_and_replay() {
    let (c, storage, _d) = coordinator();
    let errs = block(c.commit("g", "", None, -1, vec![entry("t", 0, 5), entry("t", 1, 7)]));
    assert_eq!(errs, vec![0, 0]);
    let mut big = entry("t", 2, 1);
    big.metadata = Some("x".repeat(11));
    let errs = block(c.commit("g", "", None, -1, vec![big, entry("t", 0, 6)]));
    assert_eq!(errs, vec![E::OffsetMetadataTooLarge.code(), 0]);
    let f = c
        .fetch("g", Some(vec![("t".into(), vec![0, 1, 2])]))
        .unwrap();
    let offs: Vec<i64> = f[0].1.iter().map(|p| p.offset).collect();
    assert_eq!(offs, vec![6, 7, -1]);
    assert_eq!(f[0].1[0].leader_epoch, 2);
    // Every record went to the group's partition, in Kafka's key format.
    let p = super::partition_for("g", 50);
    assert!(storage
        .records
        .borrow()
        .iter()
        .all(|(part, _, _)| *part == p));
    // Replaying the same records into a fresh coordinator gives the same offsets.
    let (c2, _, _) = coordinator();
    let raw: Vec<RawRecord> = storage
        .records
        .borrow()
        .iter()
        .enumerate()
        .map(|(i, (_, k, v))| RawRecord {
            offset: i as i64,
            key: Some(k.clone()),
            value: v.clone(),
        })
        .collect();
    c2.load(&raw);
    assert_eq!(c2.fetch("g", None).unwrap(), c.fetch("g", None).unwrap());
    // Unknown group: -1, no error.
    let u = c.fetch("nope", Some(vec![("t".into(), vec![0])])).unwrap();
    assert_eq!(u[0].1[0].offset, -1);
}

#[test]
fn group_commit_needs_membership_and_failed_append_is_reported() {
    let (c, storage, _d) = coordinator();
    assert_eq!(
        block(c.commit("g", "m", None, 3, vec![entry("t", 0, 1)])),
        vec![E::IllegalGeneration.code()]
    );
    *storage.fail.borrow_mut() = Some(E::KafkaStorageError.code());
    assert_eq!(
        block(c.commit("g", "", None, -1, vec![entry("t", 0, 1)])),
        vec![E::NotCoordinator.code()]
    );
    assert_eq!(c.group_count(), 0, "nothing committed, nothing kept");
}

#[test]
fn replay_takes_last_record_per_key_and_honours_tombstones() {
    let (c, _s, _d) = coordinator();
    let key = |t: &str, p: i32| {
        Some(encode_key(&RecordKey::Offset {
            group: "g".into(),
            topic: t.into(),
            partition: p,
        }))
    };
    let val = |o: i64| {
        Some(encode_offset_value(&OffsetValue {
            offset: o,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 1,
        }))
    };
    let group_key = Some(encode_key(&RecordKey::Group { group: "g".into() }));
    let (g, _) = stable_group(1);
    let recs = vec![
        RawRecord {
            offset: 0,
            key: key("t", 0),
            value: val(1),
        },
        RawRecord {
            offset: 1,
            key: key("t", 0),
            value: val(2),
        },
        RawRecord {
            offset: 2,
            key: key("t", 1),
            value: val(9),
        },
        RawRecord {
            offset: 3,
            key: key("t", 1),
            value: None,
        },
        RawRecord {
            offset: 4,
            key: group_key.clone(),
            value: Some(encode_group_value(&g.snapshot(0))),
        },
        RawRecord {
            offset: 5,
            key: Some(Bytes::from_static(b"junk")),
            value: None,
        },
        RawRecord {
            offset: 6,
            key: key("u", 0),
            value: Some(Bytes::from_static(b"\x00\x03")),
        },
    ];
    c.load(&recs);
    let f = c.fetch("g", None).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].1.len(), 1);
    assert_eq!(f[0].1[0].offset, 2);
    let d = c.describe("g");
    assert_eq!(d.state, "Stable");
    assert_eq!(d.members.len(), 1);
    // A group tombstone later removes the group's metadata.
    let (c2, _s, _d) = coordinator();
    let mut recs2 = recs.clone();
    recs2.push(RawRecord {
        offset: 7,
        key: group_key,
        value: None,
    });
    c2.load(&recs2);
    assert_eq!(c2.describe("g").state, "Empty");
}

#[test]
fn delete_group_and_offset_expiry() {
    let (c, storage, d) = coordinator();
    block(c.commit("a", "", None, -1, vec![entry("t", 0, 1)]));
    block(c.commit("b", "", None, -1, vec![entry("t", 0, 1)]));
    assert_eq!(block(c.delete_group("a")), 0);
    assert_eq!(block(c.delete_group("a")), E::GroupIdNotFound.code());
    assert_eq!(c.describe("a").error, E::GroupIdNotFound.code());
    // Tombstones for the offset and the group were written.
    let tombstones = storage
        .records
        .borrow()
        .iter()
        .filter(|(_, _, v)| v.is_none())
        .count();
    assert_eq!(tombstones, 2);
    // b's offset is committed at 1000; retention 60 s.
    *d.now.borrow_mut() = 30_000;
    assert_eq!(block(c.expire_offsets()), 0);
    *d.now.borrow_mut() = 61_000;
    assert_eq!(block(c.expire_offsets()), 1);
    assert_eq!(c.group_count(), 0);
    assert!(c.list(&[]).is_empty());
}

#[test]
fn coordinator_timers_expire_sessions() {
    let (c, _s, d) = coordinator();
    let mut r = req("", &["range"]);
    r.require_known_member_id = false;
    let j = block(c.join("g", r));
    assert_eq!(j.error, 0);
    let s = block(c.sync(
        "g",
        SyncRequest {
            member_id: j.member_id.clone(),
            generation_id: j.generation_id,
            assignments: vec![(j.member_id.clone(), Bytes::from_static(b"A"))],
            ..Default::default()
        },
    ));
    assert_eq!(&s.assignment[..], b"A");
    assert_eq!(c.list(&[GroupState::Stable]).len(), 1);
    // No heartbeat: fire the scheduled wake-ups after the session timeout.
    *d.now.borrow_mut() = 1_000 + i64::from(SESSION) + 1;
    let due: Vec<_> = d.wakeups.borrow_mut().drain(..).collect();
    assert!(!due.is_empty());
    for (_, f) in due {
        f();
    }
    assert_eq!(c.describe("g").state, "Empty");
    assert_eq!(
        c.heartbeat("g", &j.member_id, None, j.generation_id),
        E::UnknownMemberId.code()
    );
}

#[test]
fn a_full_group_refuses_new_members_with_group_max_size_reached() {
    let mut g = Group::new(
        "g",
        GroupConfig {
            max_size: 2,
            ..cfg(100)
        },
        0,
    );
    let (a, _ra) = join_new(&mut g, &["range"], 0);
    let (_b, _rb) = join_new(&mut g, &["range"], 0);
    // A third member gets its id (the handshake), then is refused.
    let first = now(g.join(req("", &["range"]), 0));
    assert_eq!(first.error, E::MemberIdRequired.code());
    let third = now(g.join(req(&first.member_id, &["range"]), 0));
    assert_eq!(third.error, E::GroupMaxSizeReached.code());
    assert_eq!(g.member_count(), 2);
    // Members already in the group rejoin as before.
    let _ = g.join(req(&a, &["range"]), 1);
    assert_eq!(g.member_count(), 2);
}

#[test]
fn a_group_being_deleted_refuses_joins_and_commits_until_it_is_gone() {
    let (c, storage, _d) = coordinator();
    block(c.commit("g", "", None, -1, vec![entry("t", 0, 1)]));
    for fail in [Some(E::KafkaStorageError.code()), None] {
        let (release, gate) = oneshot::channel();
        *storage.gate.borrow_mut() = Some(gate);
        *storage.fail.borrow_mut() = fail;
        let mut delete = Box::pin(c.delete_group("g"));
        // The tombstones are being written: the group is Dead meanwhile.
        assert!(
            futures_lite::future::block_on(futures_lite::future::poll_once(&mut delete)).is_none()
        );
        assert_eq!(c.describe("g").state, "Dead");
        let commit = block(c.commit("g", "", None, -1, vec![entry("t", 0, 9)]));
        assert_eq!(commit, vec![E::CoordinatorNotAvailable.code()]);
        let join = block(c.join("g", req("", &["range"])));
        assert_eq!(join.error, E::CoordinatorNotAvailable.code());
        release.send(()).unwrap();
        let result = block(delete);
        match fail {
            // A failed write deletes nothing: the group and its offset are back.
            Some(code) => {
                assert_ne!(result, 0, "the failed write ({code}) is reported");
                assert_eq!(c.describe("g").state, "Empty");
                let fetched = c.fetch("g", None).unwrap();
                assert_eq!(fetched.len(), 1);
            }
            None => {
                assert_eq!(result, 0);
                assert_eq!(c.describe("g").error, E::GroupIdNotFound.code());
            }
        }
    }
}

//! The classic group state machine (Kafka's `GroupCoordinator` + `GroupMetadata`, JoinGroup v0-9).
//!
//! ```text
//!            first join                 all joined / deadline            leader's SyncGroup persisted
//!   Empty ──────────────> PreparingRebalance ──────────────> CompletingRebalance ─────────────> Stable
//!     ^                      ^   │ no member left               │  member joins/leaves/expires     │
//!     └──────────────────────┼───┘                              │  (REBALANCE_IN_PROGRESS to       │
//!                            └──────────────────────────────────┴── parked SyncGroups) ────────────┘
//!   Dead: deleted (DeleteGroups, offsets expired); only seen by requests racing the removal.
//! ```
//!
//! Invariants:
//! - `generation` increases by one every time a join phase completes (also when it completes
//!   with no members, as Kafka does, so a stale member's commit can never match again).
//! - `leader` is a member of the group whenever the group has members; the first member to join
//!   an empty group leads, and a departed leader is replaced by the oldest remaining member.
//! - `protocol` is chosen only among protocols every member supports; the group's protocol type
//!   is fixed while it has members.
//! - A member's parked JoinGroup exists only in PreparingRebalance, a parked SyncGroup only in
//!   CompletingRebalance; every transition out of those states answers them.
//! - `static_members` maps each `group.instance.id` to exactly one current member id; a request
//!   carrying the instance id with another member id is fenced (FENCED_INSTANCE_ID).
//!
//! Time never comes from a clock here: every method takes `now` (ms). The coordinator asks for
//! [`Group::next_deadline`], arranges to call [`Group::tick`] then, and unit tests simply pass
//! made-up times.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use futures_channel::oneshot;
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError as E;
use uuid::Uuid;

use super::codec::{GroupValue, MemberValue};
use super::member::{JoinResult, JoinedMember, Member, SyncResult};
use super::offsets::OffsetStore;

/// How long a member added during a rebalance may take to send its JoinGroup again if its
/// first one was lost (Kafka's `GroupCoordinator.NewMemberJoinTimeoutMs`).
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 300_000;

/// The group states, named as Kafka names them in ListGroups/DescribeGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Parses a ListGroups states filter entry (case-insensitive, as Kafka does).
    pub fn parse(s: &str) -> Option<GroupState> {
        [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
        ]
        .into_iter()
        .find(|g| g.name().eq_ignore_ascii_case(s))
    }
}

/// Broker settings the state machine needs.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: i64,
    /// `group.max.size`: members a group may have (GROUP_MAX_SIZE_REACHED beyond).
    pub max_size: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
        }
    }
}

/// A decoded JoinGroup request.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    /// Empty on a first join.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    /// JoinGroup v0 has none; the handler passes the session timeout then, as Kafka does.
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a first join gets MEMBER_ID_REQUIRED and must come back with the id.
    pub require_known_member_id: bool,
    /// JoinGroup v9+.
    pub supports_skip_assignment: bool,
}

/// A decoded SyncGroup request.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation_id: i32,
    /// v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment, member id → bytes (empty from followers).
    pub assignments: Vec<(String, Bytes)>,
}

/// An answer now, or later through the receiver.
#[derive(Debug)]
pub enum Reply<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

/// What a SyncGroup asks of the coordinator.
#[derive(Debug)]
pub enum SyncStep {
    Reply(Reply<SyncResult>),
    /// The leader's assignment for `generation` is in place: persist the group (snapshot now),
    /// then call [`Group::sync_persisted`]; the leader's answer arrives on `wait`.
    Persist {
        generation: i32,
        wait: oneshot::Receiver<SyncResult>,
    },
}

/// One member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberSummary {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A consumer group: membership, generation, and its committed offsets.
#[derive(Debug)]
pub struct Group {
    pub id: String,
    cfg: GroupConfig,
    state: GroupState,
    /// When the group entered its current state (persisted as `current_state_timestamp`; offsets
    /// of an empty group age from it).
    state_since: i64,
    protocol_type: Option<String>,
    protocol: Option<String>,
    generation: i32,
    leader: Option<String>,
    /// In join order (the order decides the next leader).
    members: IndexMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline for coming back.
    pending_join: HashMap<String, i64>,
    /// Members that got their JoinGroup answer but have not sent SyncGroup yet.
    pending_sync: HashSet<String>,
    static_members: HashMap<String, String>,
    /// End of the join phase (PreparingRebalance only).
    join_deadline: Option<i64>,
    /// While the first rebalance of an empty group waits `group.initial.rebalance.delay.ms` for
    /// more members: the latest the phase may end (start + rebalance timeout).
    initial_join_limit: Option<i64>,
    /// Members still in `pending_sync` at this time are removed.
    sync_deadline: Option<i64>,
    leader_sync_in_flight: bool,
    pub offsets: OffsetStore,
    /// The persisted group metadata is out of date.
    dirty: bool,
}

fn err(e: E) -> i16 {
    e.code()
}

impl Group {
    pub fn new(id: &str, cfg: GroupConfig, now: i64) -> Group {
        Group {
            id: id.to_string(),
            cfg,
            state: GroupState::Empty,
            state_since: now,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: IndexMap::new(),
            pending_join: HashMap::new(),
            pending_sync: HashSet::new(),
            static_members: HashMap::new(),
            join_deadline: None,
            initial_join_limit: None,
            sync_deadline: None,
            leader_sync_in_flight: false,
            offsets: OffsetStore::default(),
            dirty: false,
        }
    }

    /// Rebuilds a group from its persisted metadata: Stable with its members (their sessions
    /// restart at `now`, so members that are gone expire and trigger a rebalance), or Empty.
    pub fn restore(id: &str, cfg: GroupConfig, v: &GroupValue, now: i64) -> Group {
        let mut g = Group::new(id, cfg, now);
        g.generation = v.generation;
        g.protocol_type = (!v.protocol_type.is_empty()).then(|| v.protocol_type.clone());
        g.protocol = v.protocol.clone();
        if v.current_state_timestamp > 0 {
            g.state_since = v.current_state_timestamp;
        }
        let protocol = v.protocol.clone().unwrap_or_default();
        for m in &v.members {
            let mut member = Member {
                id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocol_type: v.protocol_type.clone(),
                protocols: vec![(protocol.clone(), m.subscription.clone())],
                assignment: m.assignment.clone(),
                awaiting_join: None,
                awaiting_sync: None,
                session_deadline: 0,
                supports_skip_assignment: false,
            };
            member.touch(now);
            if let Some(i) = &m.instance_id {
                g.static_members.insert(i.clone(), m.member_id.clone());
            }
            g.members.insert(m.member_id.clone(), member);
        }
        if !g.members.is_empty() {
            g.state = GroupState::Stable;
            g.leader = v
                .leader
                .clone()
                .filter(|l| g.members.contains_key(l))
                .or_else(|| g.members.keys().next().cloned());
        }
        g
    }

    /// The persisted form of the group's metadata.
    pub fn snapshot(&self, now: i64) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: if self.state_since > 0 {
                self.state_since
            } else {
                now
            },
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(&protocol).cloned().unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    // ---- accessors ------------------------------------------------------------------------

    pub fn state(&self) -> GroupState {
        self.state
    }
    pub fn state_since(&self) -> i64 {
        self.state_since
    }
    pub fn generation(&self) -> i32 {
        self.generation
    }
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.get(id)
    }
    pub fn member_ids(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }
    pub fn member_count(&self) -> usize {
        self.members.len()
    }
    pub fn has_pending_joins(&self) -> bool {
        !self.pending_join.is_empty()
    }
    /// True once after the group's metadata changed in a way that must be persisted.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Members with their metadata for the chosen protocol and assignment (both empty unless
    /// the group is Stable, as Kafka's DescribeGroups shows them).
    pub fn summaries(&self) -> Vec<MemberSummary> {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| MemberSummary {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: match stable {
                    true => m.metadata_for(&protocol).cloned().unwrap_or_default(),
                    false => Bytes::new(),
                },
                assignment: match stable {
                    true => m.assignment.clone(),
                    false => Bytes::new(),
                },
            })
            .collect()
    }

    /// The topics the members subscribe to, when the group uses the consumer protocol (used by
    /// OffsetDelete, which refuses to delete offsets of subscribed topics).
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.clone()?;
        let mut out = HashSet::new();
        for m in self.members.values() {
            let meta = m.metadata_for(&protocol)?;
            out.extend(super::consumer_protocol::subscribed_topics(meta)?);
        }
        Some(out)
    }

    fn transition(&mut self, to: GroupState, now: i64) {
        self.state = to;
        self.state_since = now;
    }

    fn max_rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms.max(0)))
            .max()
            .unwrap_or(0)
    }

    fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|m| m != member_id)
    }

    /// Whether a joining member's protocols fit the group: any protocol type and non-empty list
    /// for an empty group; otherwise the same type and at least one protocol all members support.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(p, _)| self.members.values().all(|m| m.supports(p)))
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports, each member votes
    /// for its most preferred one; the most votes win. Ties go to the protocol the oldest member
    /// prefers, so the choice is deterministic.
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(p, _)| p)
            .filter(|p| self.members.values().all(|m| m.supports(p)))
            .collect();
        let mut votes = vec![0usize; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|(p, _)| candidates.iter().position(|c| *c == p))
            {
                votes[i] += 1;
            }
        }
        let mut best: Option<usize> = None;
        for (i, v) in votes.iter().enumerate() {
            if best.is_none_or(|b| *v > votes[b]) {
                best = Some(i);
            }
        }
        best.and_then(|i| candidates.get(i).map(|s| (*s).clone()))
    }

    fn all_member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(&protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// The JoinGroup answer of the current generation for `member_id`.
    fn join_result_for(&self, member_id: &str) -> JoinResult {
        let is_leader = self.leader.as_deref() == Some(member_id);
        JoinResult {
            error: 0,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: match is_leader {
                true => self.all_member_metadata(),
                false => Vec::new(),
            },
            skip_assignment: false,
        }
    }

    // ---- JoinGroup -------------------------------------------------------------------------

    pub fn join(&mut self, req: JoinRequest, now: i64) -> Reply<JoinResult> {
        let fail = |code: E| Reply::Now(JoinResult::error(err(code), &req.member_id));
        if self.state == GroupState::Dead {
            return fail(E::CoordinatorNotAvailable);
        }
        if req.session_timeout_ms < self.cfg.min_session_timeout_ms
            || req.session_timeout_ms > self.cfg.max_session_timeout_ms
        {
            return fail(E::InvalidSessionTimeout);
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return fail(E::InconsistentGroupProtocol);
        }
        if req.member_id.is_empty() {
            self.join_unknown(req, now)
        } else {
            self.join_known(req, now)
        }
    }

    fn join_unknown(&mut self, req: JoinRequest, now: i64) -> Reply<JoinResult> {
        let prefix = req.instance_id.as_deref().unwrap_or(&req.client_id);
        let new_id = format!("{prefix}-{}", Uuid::new_v4());
        if let Some(instance) = req.instance_id.clone() {
            // Static members skip the MEMBER_ID_REQUIRED handshake (their identity is the
            // instance id); a known instance replaces its previous member id.
            if let Some(old) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(&old, new_id, req, now);
            }
            return self.add_member_and_rebalance(new_id, req, now);
        }
        if req.require_known_member_id {
            let deadline = now.saturating_add(i64::from(req.session_timeout_ms));
            self.pending_join.insert(new_id.clone(), deadline);
            return Reply::Now(JoinResult::error(err(E::MemberIdRequired), &new_id));
        }
        self.add_member_and_rebalance(new_id, req, now)
    }

    fn join_known(&mut self, req: JoinRequest, now: i64) -> Reply<JoinResult> {
        let id = req.member_id.clone();
        if self.pending_join.remove(&id).is_some() {
            return self.add_member_and_rebalance(id, req, now);
        }
        if self.is_fenced(req.instance_id.as_deref(), &id) {
            return Reply::Now(JoinResult::error(err(E::FencedInstanceId), &id));
        }
        let Some(member) = self.members.get_mut(&id) else {
            return Reply::Now(JoinResult::error(err(E::UnknownMemberId), &id));
        };
        let same = member.same_protocols(&req.protocols);
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(req, now),
            GroupState::CompletingRebalance if same => {
                // The member lost our JoinGroup answer: send it again, nothing changed.
                member.touch(now);
                Reply::Now(self.join_result_for(&id))
            }
            GroupState::Stable if same && self.leader.as_deref() != Some(id.as_str()) => {
                member.touch(now);
                Reply::Now(self.join_result_for(&id))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(req, now)
            }
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(JoinResult::error(err(E::UnknownMemberId), &id))
            }
        }
    }

    fn new_member(&self, id: &str, req: &JoinRequest, now: i64) -> Member {
        Member {
            id: id.to_string(),
            instance_id: req.instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocol_type: req.protocol_type.clone(),
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            session_deadline: now.saturating_add(NEW_MEMBER_JOIN_TIMEOUT_MS),
            supports_skip_assignment: req.supports_skip_assignment,
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        id: String,
        req: JoinRequest,
        now: i64,
    ) -> Reply<JoinResult> {
        if self.members.len() >= self.cfg.max_size {
            // Kafka's GroupCoordinator: a new member of a full group is refused (existing
            // members, and a static member replacing itself, are not new).
            return Reply::Now(JoinResult::error(err(E::GroupMaxSizeReached), &id));
        }
        let (tx, rx) = oneshot::channel();
        let mut member = self.new_member(&id, &req, now);
        member.awaiting_join = Some(tx);
        if let Some(i) = &req.instance_id {
            self.static_members.insert(i.clone(), id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        self.members.insert(id, member);
        if self.state == GroupState::PreparingRebalance {
            // During the initial delay each newcomer buys the group another delay (capped).
            if let Some(limit) = self.initial_join_limit {
                let next = now.saturating_add(self.cfg.initial_rebalance_delay_ms);
                self.join_deadline = Some(next.min(limit));
            }
        }
        self.maybe_prepare_rebalance(now);
        self.maybe_complete_join(now);
        Reply::Wait(rx)
    }

    fn update_member_and_rebalance(&mut self, req: JoinRequest, now: i64) -> Reply<JoinResult> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(&req.member_id) {
            m.protocols = req.protocols;
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.client_id = req.client_id;
            m.client_host = req.client_host;
            m.supports_skip_assignment = req.supports_skip_assignment;
            // A retried JoinGroup supersedes the parked one.
            m.answer_join(JoinResult::error(
                err(E::RebalanceInProgress),
                &m.id.clone(),
            ));
            m.awaiting_join = Some(tx);
        }
        self.maybe_prepare_rebalance(now);
        self.maybe_complete_join(now);
        Reply::Wait(rx)
    }

    /// Kafka's static member replacement: a known `group.instance.id` joining with no member id
    /// takes over the old member's place (and assignment) under a new member id. In a Stable
    /// group with unchanged protocols this needs no rebalance; the old id is fenced.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
        now: i64,
    ) -> Reply<JoinResult> {
        let Some(index) = self.members.get_index_of(old_id) else {
            return self.add_member_and_rebalance(new_id, req, now);
        };
        let Some(mut member) = self.members.shift_remove(old_id) else {
            return self.add_member_and_rebalance(new_id, req, now);
        };
        member.answer_join(JoinResult::error(err(E::FencedInstanceId), old_id));
        member.answer_sync(SyncResult::error(err(E::FencedInstanceId)));
        member.id = new_id.clone();
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.supports_skip_assignment = req.supports_skip_assignment;
        member.touch(now);
        let same = member.same_protocols(&req.protocols);
        self.members.shift_insert(index, new_id.clone(), member);
        if let Some(i) = &req.instance_id {
            self.static_members.insert(i.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        match self.state {
            GroupState::Stable if same => {
                self.dirty = true;
                let mut r = self.join_result_for(&new_id);
                let is_leader = self.leader.as_deref() == Some(new_id.as_str());
                let skip = is_leader && req.supports_skip_assignment;
                // Older leaders get no member list, so they do not re-assign (pre-KIP-814).
                if !skip {
                    r.members.clear();
                }
                r.skip_assignment = skip;
                Reply::Now(r)
            }
            _ => {
                let mut req = req;
                req.member_id = new_id;
                self.update_member_and_rebalance(req, now)
            }
        }
    }

    // ---- rebalance phases -------------------------------------------------------------------

    fn maybe_prepare_rebalance(&mut self, now: i64) {
        if matches!(
            self.state,
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(now);
        }
    }

    fn prepare_rebalance(&mut self, now: i64) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate_assignment_error(err(E::RebalanceInProgress));
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        self.leader_sync_in_flight = false;
        let was_empty = self.state == GroupState::Empty;
        self.transition(GroupState::PreparingRebalance, now);
        let rebalance_timeout = self.max_rebalance_timeout();
        if was_empty {
            let delay = self.cfg.initial_rebalance_delay_ms.min(rebalance_timeout);
            self.initial_join_limit = Some(now.saturating_add(rebalance_timeout));
            self.join_deadline = Some(now.saturating_add(delay));
        } else {
            self.initial_join_limit = None;
            self.join_deadline = Some(now.saturating_add(rebalance_timeout));
        }
    }

    fn reset_and_propagate_assignment_error(&mut self, code: i16) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            m.answer_sync(SyncResult::error(code));
        }
    }

    fn maybe_complete_join(&mut self, now: i64) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let deadline_passed = self.join_deadline.is_some_and(|d| now >= d);
        let all_joined = self.initial_join_limit.is_none()
            && self.pending_join.is_empty()
            && self.members.values().all(|m| m.awaiting_join.is_some());
        if deadline_passed || all_joined {
            self.complete_join(now);
        }
    }

    fn complete_join(&mut self, now: i64) {
        let stale: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in stale {
            self.remove_member_entry(&id);
        }
        self.join_deadline = None;
        self.initial_join_limit = None;
        self.generation = self.generation.wrapping_add(1).max(1);
        self.dirty = true;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.transition(GroupState::Empty, now);
            return;
        }
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.protocol = self.select_protocol();
        self.protocol_type = self
            .members
            .values()
            .next()
            .map(|m| m.protocol_type.clone());
        self.transition(GroupState::CompletingRebalance, now);
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline = Some(now.saturating_add(self.max_rebalance_timeout()));
        let ids = self.member_ids();
        for id in ids {
            let r = self.join_result_for(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.answer_join(r);
                m.touch(now);
            }
        }
    }

    // ---- SyncGroup -------------------------------------------------------------------------

    pub fn sync(&mut self, req: SyncRequest, now: i64) -> SyncStep {
        let fail = |code: E| SyncStep::Reply(Reply::Now(SyncResult::error(err(code))));
        if self.state == GroupState::Dead {
            return fail(E::CoordinatorNotAvailable);
        }
        if self.is_fenced(req.instance_id.as_deref(), &req.member_id) {
            return fail(E::FencedInstanceId);
        }
        if !self.members.contains_key(&req.member_id) {
            return fail(E::UnknownMemberId);
        }
        if req.generation_id != self.generation {
            return fail(E::IllegalGeneration);
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|p| Some(p) != self.protocol.as_ref())
        {
            return fail(E::InconsistentGroupProtocol);
        }
        let ok = |g: &Group, assignment: Bytes| SyncResult {
            error: 0,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol.clone(),
            assignment,
        };
        match self.state {
            GroupState::Empty | GroupState::Dead => fail(E::UnknownMemberId),
            GroupState::PreparingRebalance => fail(E::RebalanceInProgress),
            GroupState::Stable => {
                self.pending_sync.remove(&req.member_id);
                let Some(m) = self.members.get_mut(&req.member_id) else {
                    return fail(E::UnknownMemberId);
                };
                m.touch(now);
                let assignment = m.assignment.clone();
                SyncStep::Reply(Reply::Now(ok(self, assignment)))
            }
            GroupState::CompletingRebalance => {
                self.pending_sync.remove(&req.member_id);
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&req.member_id) {
                    m.answer_sync(SyncResult::error(err(E::RebalanceInProgress)));
                    m.awaiting_sync = Some(tx);
                    m.touch(now);
                }
                let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
                if !is_leader || self.leader_sync_in_flight {
                    return SyncStep::Reply(Reply::Wait(rx));
                }
                let given: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                for m in self.members.values_mut() {
                    m.assignment = given.get(&m.id).cloned().unwrap_or_default();
                }
                self.leader_sync_in_flight = true;
                SyncStep::Persist {
                    generation: self.generation,
                    wait: rx,
                }
            }
        }
    }

    /// The leader's assignment for `generation` was persisted (`error` = 0) or not.
    /// On success every parked SyncGroup gets its assignment and the group is Stable; on failure
    /// they get the error and the group rebalances (as Kafka does when the append fails).
    pub fn sync_persisted(&mut self, generation: i32, error: i16, now: i64) {
        if generation != self.generation || self.state != GroupState::CompletingRebalance {
            return; // a newer rebalance already answered everyone
        }
        self.leader_sync_in_flight = false;
        if error != 0 {
            self.reset_and_propagate_assignment_error(error);
            self.prepare_rebalance(now);
            return;
        }
        let (pt, pn) = (self.protocol_type.clone(), self.protocol.clone());
        for m in self.members.values_mut() {
            let a = m.assignment.clone();
            m.answer_sync(SyncResult {
                error: 0,
                protocol_type: pt.clone(),
                protocol_name: pn.clone(),
                assignment: a,
            });
        }
        self.transition(GroupState::Stable, now);
    }

    // ---- Heartbeat, LeaveGroup, OffsetCommit checks -------------------------------------------

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: i64,
    ) -> i16 {
        match self.state {
            GroupState::Dead => return err(E::CoordinatorNotAvailable),
            GroupState::Empty => return err(E::UnknownMemberId),
            _ => {}
        }
        if self.is_fenced(instance_id, member_id) {
            return err(E::FencedInstanceId);
        }
        if generation != self.generation {
            return match self.members.contains_key(member_id) {
                true => err(E::IllegalGeneration),
                false => err(E::UnknownMemberId),
            };
        }
        let Some(m) = self.members.get_mut(member_id) else {
            return err(E::UnknownMemberId);
        };
        m.touch(now);
        match self.state {
            GroupState::PreparingRebalance => err(E::RebalanceInProgress),
            _ => 0,
        }
    }

    /// Removes the members named (LeaveGroup; v3+ sends several). One error code per identity.
    pub fn leave(&mut self, who: &[(String, Option<String>)], now: i64) -> Vec<i16> {
        let mut out = Vec::with_capacity(who.len());
        for (member_id, instance_id) in who {
            out.push(self.leave_one(member_id, instance_id.as_deref(), now));
        }
        self.maybe_complete_join(now);
        out
    }

    fn leave_one(&mut self, member_id: &str, instance_id: Option<&str>, now: i64) -> i16 {
        if self.state == GroupState::Dead {
            return err(E::CoordinatorNotAvailable);
        }
        if let Some(instance) = instance_id {
            return match self.static_members.get(instance).cloned() {
                None => err(E::UnknownMemberId),
                Some(m) if !member_id.is_empty() && m != member_id => err(E::FencedInstanceId),
                Some(m) => {
                    self.remove_member_and_update(&m, now);
                    0
                }
            };
        }
        if self.pending_join.remove(member_id).is_some() {
            return 0;
        }
        if self.members.contains_key(member_id) {
            self.remove_member_and_update(member_id, now);
            return 0;
        }
        err(E::UnknownMemberId)
    }

    /// Whether an OffsetCommit from this member/generation may commit (Kafka's checks, in
    /// Kafka's order). Generation -1 on an Empty group is a "simple" commit (assign() users).
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: i64,
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(err(E::CoordinatorNotAvailable));
        }
        if self.is_fenced(instance_id, member_id) {
            return Err(err(E::FencedInstanceId));
        }
        if generation < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(err(E::RebalanceInProgress));
        }
        let Some(m) = self.members.get_mut(member_id) else {
            return Err(err(E::UnknownMemberId));
        };
        if generation != self.generation {
            return Err(err(E::IllegalGeneration));
        }
        m.touch(now);
        Ok(())
    }

    fn remove_member_entry(&mut self, id: &str) -> Option<Member> {
        let mut m = self.members.shift_remove(id)?;
        if let Some(i) = &m.instance_id {
            if self.static_members.get(i).is_some_and(|cur| cur == id) {
                self.static_members.remove(i);
            }
        }
        self.pending_sync.remove(id);
        m.answer_join(JoinResult::error(err(E::UnknownMemberId), id));
        m.answer_sync(SyncResult::error(err(E::UnknownMemberId)));
        Some(m)
    }

    fn remove_member_and_update(&mut self, id: &str, now: i64) {
        if self.remove_member_entry(id).is_none() {
            return;
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.keys().next().cloned();
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ---- time -----------------------------------------------------------------------------

    /// The earliest time at which [`tick`](Self::tick) has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.session_applies())
            .map(|m| m.session_deadline);
        let join = match self.state {
            GroupState::PreparingRebalance => self.join_deadline,
            _ => None,
        };
        sessions
            .chain(self.pending_join.values().copied())
            .chain(self.sync_deadline)
            .chain(join)
            .min()
    }

    /// Applies every deadline that has passed at `now`: expired MEMBER_ID_REQUIRED ids, member
    /// sessions, members that never sent SyncGroup, and the end of the join phase.
    pub fn tick(&mut self, now: i64) {
        self.pending_join.retain(|_, d| *d > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_applies() && m.session_deadline <= now)
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(
                "group {}: member {id} session expired, removing it",
                self.id
            );
            self.remove_member_and_update(&id, now);
        }
        if self.sync_deadline.is_some_and(|d| now >= d) {
            self.sync_deadline = None;
            let late: Vec<String> = self.pending_sync.drain().collect();
            if matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            ) {
                for id in late {
                    self.remove_member_and_update(&id, now);
                }
            }
        }
        self.maybe_complete_join(now);
    }

    /// Marks the group deleted: parked requests are answered, nothing more is accepted.
    /// Undoes [`Group::mark_dead`] of an Empty group whose deletion could not be written:
    /// back to Empty with the offsets it had.
    pub fn revive_empty(&mut self, offsets: OffsetStore, now: i64) {
        self.offsets = offsets;
        self.transition(GroupState::Empty, now);
    }

    pub fn mark_dead(&mut self, now: i64) {
        let ids = self.member_ids();
        for id in ids {
            self.remove_member_entry(&id);
        }
        self.pending_join.clear();
        self.offsets.clear();
        self.transition(GroupState::Dead, now);
    }
}

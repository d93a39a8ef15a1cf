//! One member of a classic group, and the answers the coordinator owes it.
//!
//! A JoinGroup or SyncGroup that cannot be answered yet (the rebalance is still collecting
//! members, or the leader has not sent the assignment) parks a oneshot sender on the member; the
//! state machine completes it when the phase ends. Everything here is plain data: the clock is
//! passed in, which is what lets the state machine be tested with a fake one.

use bytes::Bytes;
use futures_channel::oneshot;

/// The JoinGroup answer for one member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinResult {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only: every member's metadata for the chosen protocol.
    pub members: Vec<JoinedMember>,
    /// The leader must not re-assign (static leader replaced in a stable group, JoinGroup v9+).
    pub skip_assignment: bool,
}

/// One entry of the leader's member list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The SyncGroup answer for one member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl JoinResult {
    pub fn error(code: i16, member_id: &str) -> JoinResult {
        JoinResult {
            error: code,
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

impl SyncResult {
    pub fn error(code: i16) -> SyncResult {
        SyncResult {
            error: code,
            ..Default::default()
        }
    }
}

/// A member. Invariants: `protocols` is non-empty and in the member's preference order;
/// `awaiting_join`/`awaiting_sync` are set only while the group is in the phase that will answer
/// them (PreparingRebalance / CompletingRebalance respectively).
#[derive(Debug)]
pub struct Member {
    pub id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (protocol name, metadata) in preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// The assignment of the current generation (empty until SyncGroup completes).
    pub assignment: Bytes,
    pub awaiting_join: Option<oneshot::Sender<JoinResult>>,
    pub awaiting_sync: Option<oneshot::Sender<SyncResult>>,
    /// When the session expires unless a heartbeat (or join/sync/commit) arrives first.
    pub session_deadline: i64,
    /// Whether the member speaks JoinGroup v9+ (understands `skip_assignment`).
    pub supports_skip_assignment: bool,
}

impl Member {
    /// Metadata this member sent for `protocol`, if it supports it.
    pub fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m)
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.metadata_for(protocol).is_some()
    }

    /// Same protocols (names and metadata, in order) as `other`: a rejoin with these changes
    /// nothing, so Kafka answers it without starting a rebalance.
    pub fn same_protocols(&self, other: &[(String, Bytes)]) -> bool {
        self.protocols.as_slice() == other
    }

    /// Restarts the session timer (any request from the member proves it alive).
    pub fn touch(&mut self, now: i64) {
        self.session_deadline = now.saturating_add(i64::from(self.session_timeout_ms));
    }

    /// Completes a parked JoinGroup, if any. A dropped receiver (client gone) is ignored.
    pub fn answer_join(&mut self, r: JoinResult) {
        if let Some(tx) = self.awaiting_join.take() {
            let _ = tx.send(r);
        }
    }

    /// Completes a parked SyncGroup, if any.
    pub fn answer_sync(&mut self, r: SyncResult) {
        if let Some(tx) = self.awaiting_sync.take() {
            let _ = tx.send(r);
        }
    }

    /// Whether the session timer applies now. Kafka does not expire members whose JoinGroup or
    /// SyncGroup is parked on the coordinator: the rebalance deadline bounds those instead.
    pub fn session_applies(&self) -> bool {
        self.awaiting_join.is_none() && self.awaiting_sync.is_none()
    }
}

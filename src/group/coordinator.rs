//! The per-shard group coordinator: the groups whose `__consumer_offsets` partition this shard
//! owns, their committed offsets, persistence and timers.
//!
//! Handlers (on any shard) hop here with `submit_to(owner, ..)` and call one method per API.
//! Every method runs on this shard only; state is `RefCell`ed and never borrowed across an
//! await. The order of work inside one method is always: validate and change the state machine
//! (synchronously), then await the append (if any), then apply what the append decided.
//!
//! Durability: an OffsetCommit is answered only after its records are appended *and* synced
//! (the storage does acks=-1). Group metadata is written when a generation's assignment is
//! complete (the leader's SyncGroup waits for it, as in Kafka) and, in the background, on other
//! changes (group emptied, static member replaced).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::{Rc, Weak};

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;

use super::codec::{
    decode_group_value, decode_key, decode_offset_value, encode_group_value, encode_key,
    encode_offset_value, OffsetValue, RawRecord, RecordKey,
};
use super::member::{JoinResult, SyncResult};
use super::offsets::OffsetStore;
use super::placement::partition_for;
use super::state::{
    Group, GroupConfig, GroupState, JoinRequest, MemberSummary, Reply, SyncRequest, SyncStep,
};
use super::timers::{Driver, LocalFuture};

/// Where the coordinator writes `__consumer_offsets` records.
pub trait GroupStorage {
    /// Appends `(key, value)` records (value `None` = tombstone) to `partition`, durably
    /// (synced). Returns the offset of the first record, or a Kafka error code.
    fn append(
        &self,
        partition: i32,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> LocalFuture<Result<i64, i16>>;
}

/// Coordinator settings.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub group: GroupConfig,
    /// Partitions of `__consumer_offsets`.
    pub partitions: i32,
    /// `offsets.retention.minutes` in ms.
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes`.
    pub metadata_max_bytes: usize,
}

/// One partition's commit.
#[derive(Debug, Clone)]
pub struct CommitEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// One partition's OffsetFetch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub error: i16,
}

/// ListGroups entry.
#[derive(Debug, Clone)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// DescribeGroups entry.
#[derive(Debug, Clone)]
pub struct DescribedGroup {
    pub error: i16,
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

/// Offsets to expire in one group: (group id, expired (topic, partition)s, delete the group).
type ExpiryPlan = (String, Vec<(String, i32)>, bool);

/// Per-topic answer: topic → [(partition, error)].
pub type PartitionErrors = Vec<(String, Vec<(i32, i16)>)>;

pub struct GroupCoordinator {
    me: Weak<GroupCoordinator>,
    cfg: CoordinatorConfig,
    groups: RefCell<HashMap<String, Group>>,
    storage: Rc<dyn GroupStorage>,
    driver: Rc<dyn Driver>,
    /// Earliest wake-up already scheduled per group.
    scheduled: RefCell<HashMap<String, i64>>,
    /// Set once replay has finished; requests before that get COORDINATOR_LOAD_IN_PROGRESS.
    loaded: Cell<bool>,
}

fn code(e: E) -> i16 {
    e.code()
}

/// Kafka's mapping of append errors to what group clients understand
/// (`GroupMetadataManager.storeGroup`/`storeOffsets`).
fn map_append_error(e: i16) -> i16 {
    use kafka_protocol::error::ParseResponseErrorCode;
    match e.err() {
        None => 0,
        Some(
            E::UnknownTopicOrPartition
            | E::NotEnoughReplicas
            | E::NotEnoughReplicasAfterAppend
            | E::RequestTimedOut,
        ) => code(E::CoordinatorNotAvailable),
        Some(E::NotLeaderOrFollower | E::KafkaStorageError) => code(E::NotCoordinator),
        Some(E::MessageTooLarge | E::RecordListTooLarge | E::InvalidFetchSize) => {
            code(E::InvalidCommitOffsetSize)
        }
        Some(_) => code(E::UnknownServerError),
    }
}

impl GroupCoordinator {
    pub fn new(
        cfg: CoordinatorConfig,
        storage: Rc<dyn GroupStorage>,
        driver: Rc<dyn Driver>,
    ) -> Rc<GroupCoordinator> {
        Rc::new_cyclic(|me| GroupCoordinator {
            me: me.clone(),
            cfg,
            groups: RefCell::new(HashMap::new()),
            storage,
            driver,
            scheduled: RefCell::new(HashMap::new()),
            loaded: Cell::new(false),
        })
    }

    pub fn config(&self) -> &CoordinatorConfig {
        &self.cfg
    }

    fn partition_of(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.cfg.partitions)
    }

    /// Marks replay finished (see [`load`](Self::load)).
    pub fn set_loaded(&self) {
        self.loaded.set(true);
    }

    /// An error every group API answers before anything else, if any.
    fn not_ready(&self, group_id: &str) -> Option<i16> {
        if !self.loaded.get() {
            return Some(code(E::CoordinatorLoadInProgress));
        }
        if group_id.is_empty() {
            return Some(code(E::InvalidGroupId));
        }
        None
    }

    /// After any change to a group: persist it if its metadata changed, arrange the next
    /// wake-up, and forget groups that hold nothing.
    fn after_change(&self, group_id: &str) {
        let now = self.driver.now_ms();
        let (persist, next, disposable) = {
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(group_id) else {
                return;
            };
            let persist = g.take_dirty().then(|| g.snapshot(now));
            let disposable = g.state() == GroupState::Empty
                && g.member_count() == 0
                && !g.has_pending_joins()
                && g.offsets.is_empty()
                && g.generation() == 0;
            (persist, g.next_deadline(), disposable)
        };
        if disposable {
            self.groups.borrow_mut().remove(group_id);
            self.scheduled.borrow_mut().remove(group_id);
            return;
        }
        if let Some(snapshot) = persist {
            let key = encode_key(&RecordKey::Group {
                group: group_id.to_string(),
            });
            let value = encode_group_value(&snapshot);
            let storage = self.storage.clone();
            let partition = self.partition_of(group_id);
            let gid = group_id.to_string();
            self.driver.spawn(Box::pin(async move {
                if let Err(e) = storage.append(partition, vec![(key, Some(value))]).await {
                    tracing::warn!("group {gid}: persisting group metadata failed (error {e})");
                }
            }));
        }
        if let Some(at) = next {
            let mut scheduled = self.scheduled.borrow_mut();
            let earlier = scheduled.get(group_id).is_none_or(|s| at < *s);
            if earlier {
                scheduled.insert(group_id.to_string(), at);
                let me = self.me.clone();
                let gid = group_id.to_string();
                self.driver.wake_at(
                    at,
                    Box::new(move || {
                        if let Some(c) = me.upgrade() {
                            c.on_timer(&gid, at);
                        }
                    }),
                );
            }
        }
    }

    /// A scheduled wake-up for `group_id` (planned for `at`).
    pub fn on_timer(&self, group_id: &str, at: i64) {
        {
            let mut scheduled = self.scheduled.borrow_mut();
            if scheduled.get(group_id) == Some(&at) {
                scheduled.remove(group_id);
            }
        }
        let now = self.driver.now_ms();
        if let Some(g) = self.groups.borrow_mut().get_mut(group_id) {
            g.tick(now);
        }
        self.after_change(group_id);
    }

    fn with_group<T>(&self, group_id: &str, f: impl FnOnce(&mut Group) -> T) -> Option<T> {
        self.groups.borrow_mut().get_mut(group_id).map(f)
    }

    // ---- membership APIs -------------------------------------------------------------------

    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinResult {
        if let Some(e) = self.not_ready(group_id) {
            return JoinResult::error(e, &req.member_id);
        }
        let now = self.driver.now_ms();
        let member_id = req.member_id.clone();
        let reply = {
            let mut groups = self.groups.borrow_mut();
            if !req.member_id.is_empty() && !groups.contains_key(group_id) {
                return JoinResult::error(code(E::UnknownMemberId), &member_id);
            }
            let g = groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id, self.cfg.group.clone(), now));
            g.join(req, now)
        };
        self.after_change(group_id);
        match reply {
            Reply::Now(r) => r,
            Reply::Wait(rx) => rx.await.unwrap_or_else(|_| {
                JoinResult::error(code(E::CoordinatorNotAvailable), &member_id)
            }),
        }
    }

    pub async fn sync(&self, group_id: &str, req: SyncRequest) -> SyncResult {
        if let Some(e) = self.not_ready(group_id) {
            return SyncResult::error(e);
        }
        let now = self.driver.now_ms();
        let Some(step) = self.with_group(group_id, |g| g.sync(req, now)) else {
            return SyncResult::error(code(E::UnknownMemberId));
        };
        let rx = match step {
            SyncStep::Reply(Reply::Now(r)) => return r,
            SyncStep::Reply(Reply::Wait(rx)) => {
                self.after_change(group_id);
                rx
            }
            SyncStep::Persist { generation, wait } => {
                let snapshot = self.with_group(group_id, |g| g.snapshot(now));
                let result = match snapshot {
                    Some(s) => {
                        let key = encode_key(&RecordKey::Group {
                            group: group_id.to_string(),
                        });
                        self.storage
                            .append(
                                self.partition_of(group_id),
                                vec![(key, Some(encode_group_value(&s)))],
                            )
                            .await
                    }
                    None => Err(code(E::CoordinatorNotAvailable)),
                };
                let error = match result {
                    Ok(_) => 0,
                    Err(e) => map_append_error(e),
                };
                let later = self.driver.now_ms();
                self.with_group(group_id, |g| g.sync_persisted(generation, error, later));
                self.after_change(group_id);
                wait
            }
        };
        rx.await
            .unwrap_or_else(|_| SyncResult::error(code(E::CoordinatorNotAvailable)))
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        if let Some(e) = self.not_ready(group_id) {
            return e;
        }
        let now = self.driver.now_ms();
        let r = self
            .with_group(group_id, |g| {
                g.heartbeat(member_id, instance_id, generation, now)
            })
            .unwrap_or(code(E::UnknownMemberId));
        self.after_change(group_id);
        r
    }

    /// LeaveGroup: one error per (member id, instance id), or a group-level error.
    pub fn leave(&self, group_id: &str, who: &[(String, Option<String>)]) -> Result<Vec<i16>, i16> {
        if let Some(e) = self.not_ready(group_id) {
            return Err(e);
        }
        let now = self.driver.now_ms();
        let r = self
            .with_group(group_id, |g| g.leave(who, now))
            .ok_or(code(E::UnknownMemberId));
        self.after_change(group_id);
        r
    }

    // ---- offsets ---------------------------------------------------------------------------

    /// OffsetCommit. `member_id`/`generation` -1/"" for simple (non-group-managed) commits.
    /// Returns one error per entry, in order.
    pub async fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        entries: Vec<CommitEntry>,
    ) -> Vec<i16> {
        if let Some(e) = self.not_ready(group_id) {
            return vec![e; entries.len()];
        }
        let now = self.driver.now_ms();
        let check = {
            let mut groups = self.groups.borrow_mut();
            match groups.get_mut(group_id) {
                Some(g) => g.validate_commit(member_id, instance_id, generation, now),
                None if generation < 0 => {
                    groups.insert(
                        group_id.to_string(),
                        Group::new(group_id, self.cfg.group.clone(), now),
                    );
                    Ok(())
                }
                None => Err(code(E::IllegalGeneration)),
            }
        };
        if let Err(e) = check {
            return vec![e; entries.len()];
        }
        let mut errors = vec![0i16; entries.len()];
        let mut records = Vec::new();
        let mut written = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let metadata = e.metadata.clone().unwrap_or_default();
            if metadata.len() > self.cfg.metadata_max_bytes {
                errors[i] = code(E::OffsetMetadataTooLarge);
                continue;
            }
            let value = OffsetValue {
                offset: e.offset,
                leader_epoch: e.leader_epoch,
                metadata,
                commit_timestamp: now,
            };
            records.push((
                encode_key(&RecordKey::Offset {
                    group: group_id.to_string(),
                    topic: e.topic.clone(),
                    partition: e.partition,
                }),
                Some(encode_offset_value(&value)),
            ));
            written.push((i, value));
        }
        if records.is_empty() {
            self.after_change(group_id);
            return errors;
        }
        match self
            .storage
            .append(self.partition_of(group_id), records)
            .await
        {
            Ok(base) => {
                let mut groups = self.groups.borrow_mut();
                let g = groups
                    .entry(group_id.to_string())
                    .or_insert_with(|| Group::new(group_id, self.cfg.group.clone(), now));
                for (n, (i, value)) in written.into_iter().enumerate() {
                    let e = &entries[i];
                    g.offsets.put(&e.topic, e.partition, value, base + n as i64);
                }
            }
            Err(e) => {
                let mapped = map_append_error(e);
                for (i, _) in written {
                    errors[i] = mapped;
                }
            }
        }
        self.after_change(group_id);
        errors
    }

    /// OffsetFetch for one group. `topics` None = every committed offset. Unknown group or
    /// partition: offset -1, no error (Kafka).
    pub fn fetch(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<(String, Vec<FetchedOffset>)>, i16> {
        if let Some(e) = self.not_ready(group_id) {
            return Err(e);
        }
        let groups = self.groups.borrow();
        let store = groups.get(group_id).map(|g| &g.offsets);
        let found = |topic: &str, p: i32| match store.and_then(|s| s.get(topic, p)) {
            Some(v) => FetchedOffset {
                partition: p,
                offset: v.offset,
                leader_epoch: v.leader_epoch,
                metadata: Some(v.metadata.clone()),
                error: 0,
            },
            None => FetchedOffset {
                partition: p,
                offset: -1,
                leader_epoch: -1,
                metadata: Some(String::new()),
                error: 0,
            },
        };
        Ok(match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps.into_iter().map(|p| found(&t, p)).collect();
                    (t, parts)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<FetchedOffset>> = BTreeMap::new();
                if let Some(s) = store {
                    for (t, p, _) in s.iter() {
                        by_topic.entry(t.to_string()).or_default().push(found(t, p));
                    }
                }
                by_topic.into_iter().collect()
            }
        })
    }

    /// OffsetDelete: removes committed offsets of topics the group does not subscribe to.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> Result<PartitionErrors, i16> {
        if let Some(e) = self.not_ready(group_id) {
            return Err(e);
        }
        let (subscribed, state) = {
            let groups = self.groups.borrow();
            let Some(g) = groups.get(group_id) else {
                return Err(code(E::GroupIdNotFound));
            };
            (g.subscribed_topics(), g.state())
        };
        if state == GroupState::Dead {
            return Err(code(E::GroupIdNotFound));
        }
        let empty = state == GroupState::Empty;
        if !empty && subscribed.is_none() {
            return Err(code(E::NonEmptyGroup));
        }
        let mut out: PartitionErrors = Vec::new();
        let mut records = Vec::new();
        let mut deleted = Vec::new();
        for (t, ps) in topics {
            let busy = !empty && subscribed.as_ref().is_some_and(|s| s.contains(&t));
            let mut errs = Vec::new();
            for p in ps {
                if busy {
                    errs.push((p, code(E::GroupSubscribedToTopic)));
                    continue;
                }
                errs.push((p, 0));
                records.push((
                    encode_key(&RecordKey::Offset {
                        group: group_id.to_string(),
                        topic: t.clone(),
                        partition: p,
                    }),
                    None,
                ));
                deleted.push((t.clone(), p));
            }
            out.push((t, errs));
        }
        if records.is_empty() {
            return Ok(out);
        }
        match self
            .storage
            .append(self.partition_of(group_id), records)
            .await
        {
            Ok(base) => {
                self.with_group(group_id, |g| {
                    for (n, (t, p)) in deleted.iter().enumerate() {
                        g.offsets.delete(t, *p, base + n as i64);
                    }
                });
                Ok(out)
            }
            Err(e) => Err(map_append_error(e)),
        }
    }

    // ---- administration --------------------------------------------------------------------

    /// Groups on this shard, optionally only those in `states`.
    pub fn list(&self, states: &[GroupState]) -> Vec<ListedGroup> {
        let mut out: Vec<ListedGroup> = self
            .groups
            .borrow()
            .values()
            .filter(|g| g.state() != GroupState::Dead)
            .filter(|g| states.is_empty() || states.contains(&g.state()))
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type().unwrap_or_default().to_string(),
                state: g.state(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    pub fn describe(&self, group_id: &str) -> DescribedGroup {
        let base = DescribedGroup {
            error: 0,
            group_id: group_id.to_string(),
            state: GroupState::Dead.name().to_string(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        };
        if let Some(e) = self.not_ready(group_id) {
            return DescribedGroup { error: e, ..base };
        }
        let groups = self.groups.borrow();
        let Some(g) = groups.get(group_id) else {
            return DescribedGroup {
                error: code(E::GroupIdNotFound),
                ..base
            };
        };
        DescribedGroup {
            error: 0,
            group_id: group_id.to_string(),
            state: g.state().name().to_string(),
            protocol_type: g.protocol_type().unwrap_or_default().to_string(),
            protocol: match g.state() {
                GroupState::Stable => g.protocol().unwrap_or_default().to_string(),
                _ => String::new(),
            },
            members: g.summaries(),
        }
    }

    /// DeleteGroups for one group: tombstones for its metadata and every offset, then gone.
    pub async fn delete_group(&self, group_id: &str) -> i16 {
        if let Some(e) = self.not_ready(group_id) {
            return e;
        }
        // The group turns Dead *before* its tombstones are written, as in Kafka's
        // GroupCoordinator: while the write is in flight a JoinGroup or OffsetCommit for it
        // gets COORDINATOR_NOT_AVAILABLE (retriable) instead of joining a group that is about
        // to vanish, or committing an offset that would outlive the tombstones.
        let now = self.driver.now_ms();
        let (records, saved) = {
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(group_id) else {
                return code(E::GroupIdNotFound);
            };
            match g.state() {
                GroupState::Dead => return code(E::GroupIdNotFound),
                GroupState::Empty => {}
                _ => return code(E::NonEmptyGroup),
            }
            let records = tombstones(group_id, &g.offsets);
            let saved = g.offsets.clone();
            g.mark_dead(now);
            (records, saved)
        };
        if let Err(e) = self
            .storage
            .append(self.partition_of(group_id), records)
            .await
        {
            // Nothing was deleted: the group is back as it was.
            if let Some(g) = self.groups.borrow_mut().get_mut(group_id) {
                g.revive_empty(saved, self.driver.now_ms());
            }
            return map_append_error(e);
        }
        self.groups.borrow_mut().remove(group_id);
        self.scheduled.borrow_mut().remove(group_id);
        0
    }

    /// Expires committed offsets (`offsets.retention.minutes`): every offset of a group that has
    /// been Empty for the retention period; for groups that never used group management
    /// ("simple" groups, no protocol type), each offset by its own commit time. Groups left with
    /// nothing are deleted. Returns how many offsets expired.
    pub async fn expire_offsets(&self) -> usize {
        if !self.loaded.get() {
            return 0;
        }
        let now = self.driver.now_ms();
        let retention = self.cfg.offsets_retention_ms;
        let plan: Vec<ExpiryPlan> = self
            .groups
            .borrow()
            .values()
            .filter(|g| g.state() == GroupState::Empty)
            .filter_map(|g| {
                let since = g.protocol_type().map(|_| g.state_since());
                let expired = g.offsets.expired(now, retention, since);
                let drop_group = expired.len() == g.offsets.len() && !g.has_pending_joins();
                (!expired.is_empty() || drop_group).then(|| (g.id.clone(), expired, drop_group))
            })
            .collect();
        let mut total = 0;
        for (gid, expired, drop_group) in plan {
            let mut records: Vec<(Bytes, Option<Bytes>)> = expired
                .iter()
                .map(|(t, p)| {
                    let key = RecordKey::Offset {
                        group: gid.clone(),
                        topic: t.clone(),
                        partition: *p,
                    };
                    (encode_key(&key), None)
                })
                .collect();
            if drop_group {
                records.push((encode_key(&RecordKey::Group { group: gid.clone() }), None));
            }
            match self.storage.append(self.partition_of(&gid), records).await {
                Ok(base) => {
                    total += expired.len();
                    let mut groups = self.groups.borrow_mut();
                    let still_empty = groups.get_mut(&gid).is_some_and(|g| {
                        for (n, (t, p)) in expired.iter().enumerate() {
                            g.offsets.delete(t, *p, base + n as i64);
                        }
                        g.state() == GroupState::Empty
                            && g.offsets.is_empty()
                            && !g.has_pending_joins()
                    });
                    if drop_group && still_empty {
                        groups.remove(&gid);
                    }
                }
                Err(e) => tracing::warn!("group {gid}: expiring offsets failed (error {e})"),
            }
        }
        if total > 0 {
            tracing::info!("expired {total} committed offset(s)");
        }
        total
    }

    // ---- startup ---------------------------------------------------------------------------

    /// Replays records of one `__consumer_offsets` partition (in log order; duplicates of a key
    /// are expected, since the topic is not compacted: the last record wins).
    pub fn load(&self, records: &[RawRecord]) {
        let now = self.driver.now_ms();
        let mut offsets: HashMap<String, OffsetStore> = HashMap::new();
        let mut metadata: HashMap<String, Option<Bytes>> = HashMap::new();
        let mut skipped = 0usize;
        for r in records {
            let Some(key) = r.key.as_ref().and_then(|k| decode_key(k).ok()) else {
                skipped += 1;
                continue;
            };
            match key {
                RecordKey::Offset {
                    group,
                    topic,
                    partition,
                } => {
                    let store = offsets.entry(group).or_default();
                    match &r.value {
                        None => store.delete(&topic, partition, r.offset),
                        Some(v) => match decode_offset_value(v) {
                            Ok(v) => store.put(&topic, partition, v, r.offset),
                            Err(_) => skipped += 1,
                        },
                    }
                }
                RecordKey::Group { group } => {
                    metadata.insert(group, r.value.clone());
                }
            }
        }
        if skipped > 0 {
            tracing::warn!("__consumer_offsets replay skipped {skipped} undecodable record(s)");
        }
        let mut ids: Vec<String> = offsets.keys().cloned().collect();
        ids.extend(metadata.keys().cloned());
        ids.sort();
        ids.dedup();
        let mut loaded = Vec::new();
        {
            let mut groups = self.groups.borrow_mut();
            for id in ids {
                let value = metadata
                    .get(&id)
                    .cloned()
                    .flatten()
                    .and_then(|v| decode_group_value(&v).ok());
                let store = offsets.remove(&id).unwrap_or_default();
                if value.is_none() && store.is_empty() {
                    continue;
                }
                let mut g = match &value {
                    Some(v) => Group::restore(&id, self.cfg.group.clone(), v, now),
                    None => Group::new(&id, self.cfg.group.clone(), now),
                };
                g.offsets = store;
                groups.insert(id.clone(), g);
                loaded.push(id);
            }
        }
        for id in loaded {
            self.after_change(&id);
        }
    }

    /// Number of groups held (for tests and logs).
    pub fn group_count(&self) -> usize {
        self.groups.borrow().len()
    }
}

fn tombstones(group_id: &str, offsets: &OffsetStore) -> Vec<(Bytes, Option<Bytes>)> {
    let mut out: Vec<(Bytes, Option<Bytes>)> = offsets
        .iter()
        .map(|(t, p, _)| {
            let key = RecordKey::Offset {
                group: group_id.to_string(),
                topic: t.to_string(),
                partition: p,
            };
            (encode_key(&key), None)
        })
        .collect();
    out.push((
        encode_key(&RecordKey::Group {
            group: group_id.to_string(),
        }),
        None,
    ));
    out
}

//! The consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete.
//!
//! Each handler turns the wire request into the coordinator's plain types, hops to the shard
//! that owns the group's `__consumer_offsets` partition, and builds the versioned response.
//! Fields that do not exist in the negotiated version are left at their defaults (the codec
//! refuses to encode some of them otherwise).

use std::future::Future;
use std::rc::Rc;

use futures_util::future::join_all;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{str_bytes, this_broker, AUTHORIZED_OPERATIONS_OMITTED};
use crate::group::coordinator::{CommitEntry, FetchedOffset};
use crate::group::member::{JoinResult, SyncResult};
use crate::group::state::{JoinRequest, SyncRequest};
use crate::group::{partition_for, GroupCoordinator, GroupState, OFFSETS_TOPIC};
use crate::runtime::{shard_count, submit_to};
use crate::shard;

/// With no authorizer every group operation is allowed: READ, DELETE, DESCRIBE (AclOperation
/// bits 3, 6, 8), which is what Kafka reports for a group.
const GROUP_OPERATIONS_ALL: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn code(e: E) -> i16 {
    e.code()
}

fn s(v: &StrBytes) -> String {
    v.to_string()
}

/// The shard owning `group_id`'s `__consumer_offsets` partition, from this shard's image.
fn owner_of(group_id: &str) -> Option<usize> {
    shard::current().with_image(|i| {
        let t = i.topic(OFFSETS_TOPIC)?;
        let p = partition_for(group_id, t.partitions.len() as i32);
        i.shard_of(OFFSETS_TOPIC, p)
    })
}

/// Runs `f` with the coordinator of the shard owning `group_id`; `fail(code)` when that is not
/// possible (no offsets topic yet, shard not answering, coordinator still loading).
async fn on_coordinator<T, F, Fut>(group_id: &str, f: F, fail: impl FnOnce(i16) -> T) -> T
where
    T: Send + 'static,
    F: FnOnce(Rc<GroupCoordinator>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    let Some(owner) = owner_of(group_id) else {
        return fail(code(E::CoordinatorNotAvailable));
    };
    let r = submit_to(owner, move || async move {
        match shard::current().groups.get().cloned() {
            Some(c) => Ok(f(c).await),
            None => Err(code(E::CoordinatorLoadInProgress)),
        }
    })
    .await;
    match r {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => fail(e),
        Err(_) => fail(code(E::CoordinatorNotAvailable)),
    }
}

fn topic_exists(topic: &str, partition: i32) -> bool {
    shard::current().with_image(|i| i.shard_of(topic, partition).is_some())
}

// ---- FindCoordinator ------------------------------------------------------------------------

/// Key type 0 (group): this broker. Key type 1 (transaction): COORDINATOR_NOT_AVAILABLE, since
/// transactions are not implemented (clients then fail the transactional producer's init
/// cleanly instead of talking to a coordinator that cannot answer). Other key types (2 = share
/// groups): INVALID_REQUEST.
pub fn find_coordinator(req: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let (node, host, port) = this_broker();
    let offsets_ready = shard::current().with_image(|i| i.topic(OFFSETS_TOPIC).is_some());
    let answer = |key: &StrBytes| -> (i16, Option<String>) {
        match req.key_type {
            0 if key.is_empty() => (code(E::InvalidRequest), Some("empty group id".into())),
            0 if !offsets_ready => (code(E::CoordinatorNotAvailable), None),
            0 => (0, None),
            1 => (
                code(E::CoordinatorNotAvailable),
                Some("transactions are not supported by this broker".into()),
            ),
            t => (
                code(E::InvalidRequest),
                Some(format!("unknown key type {t}")),
            ),
        }
    };
    let mut r = FindCoordinatorResponse::default();
    if version >= 4 {
        r.coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let (err, msg) = answer(k);
                let mut c = Coordinator::default();
                c.key = k.clone();
                c.error_code = err;
                c.error_message = msg.map(str_bytes);
                if err == 0 {
                    c.node_id = node;
                    c.host = host.clone();
                    c.port = port;
                } else {
                    c.node_id = BrokerId(-1);
                    c.host = str_bytes("");
                    c.port = -1;
                }
                c
            })
            .collect();
        return r;
    }
    let (err, msg) = answer(&req.key);
    r.error_code = err;
    if version >= 1 {
        r.error_message = msg.map(str_bytes);
    }
    if err == 0 {
        r.node_id = node;
        r.host = host;
        r.port = port;
    } else {
        r.node_id = BrokerId(-1);
        r.host = str_bytes("");
        r.port = -1;
    }
    r
}

// ---- JoinGroup / SyncGroup / Heartbeat / LeaveGroup -------------------------------------------

pub async fn join_group(
    req: JoinGroupRequest,
    version: i16,
    client_id: String,
) -> JoinGroupResponse {
    let group_id = s(&req.group_id.0);
    let member_id = s(&req.member_id);
    let jr = JoinRequest {
        member_id: member_id.clone(),
        instance_id: req.group_instance_id.as_ref().map(s),
        client_id,
        client_host: String::new(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: s(&req.protocol_type),
        protocols: req
            .protocols
            .iter()
            .map(|p| (s(&p.name), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let gid = group_id.clone();
    let r = on_coordinator(
        &group_id,
        move |c| async move { c.join(&gid, jr).await },
        |e| JoinResult::error(e, &member_id),
    )
    .await;
    let mut resp = JoinGroupResponse::default();
    resp.error_code = r.error;
    resp.generation_id = r.generation_id;
    if version >= 7 {
        resp.protocol_type = r.protocol_type.map(str_bytes);
        resp.protocol_name = r.protocol_name.map(str_bytes);
    } else {
        // Not nullable before v7.
        resp.protocol_name = Some(str_bytes(r.protocol_name.unwrap_or_default()));
    }
    resp.leader = str_bytes(r.leader);
    resp.skip_assignment = version >= 9 && r.skip_assignment;
    resp.member_id = str_bytes(r.member_id);
    resp.members = r
        .members
        .into_iter()
        .map(|m| {
            let mut e = JoinGroupResponseMember::default();
            e.member_id = str_bytes(m.member_id);
            if version >= 5 {
                e.group_instance_id = m.instance_id.map(str_bytes);
            }
            e.metadata = m.metadata;
            e
        })
        .collect();
    resp
}

pub async fn sync_group(req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let group_id = s(&req.group_id.0);
    let sr = SyncRequest {
        member_id: s(&req.member_id),
        instance_id: req.group_instance_id.as_ref().map(s),
        generation_id: req.generation_id,
        protocol_type: req.protocol_type.as_ref().map(s),
        protocol_name: req.protocol_name.as_ref().map(s),
        assignments: req
            .assignments
            .iter()
            .map(|a| (s(&a.member_id), a.assignment.clone()))
            .collect(),
    };
    let gid = group_id.clone();
    let r = on_coordinator(
        &group_id,
        move |c| async move { c.sync(&gid, sr).await },
        SyncResult::error,
    )
    .await;
    let mut resp = SyncGroupResponse::default();
    resp.error_code = r.error;
    if version >= 5 {
        resp.protocol_type = r.protocol_type.map(str_bytes);
        resp.protocol_name = r.protocol_name.map(str_bytes);
    }
    resp.assignment = r.assignment;
    resp
}

pub async fn heartbeat(req: HeartbeatRequest) -> HeartbeatResponse {
    let group_id = s(&req.group_id.0);
    let (gid, member, instance, generation) = (
        group_id.clone(),
        s(&req.member_id),
        req.group_instance_id.as_ref().map(s),
        req.generation_id,
    );
    let err = on_coordinator(
        &group_id,
        move |c| async move { c.heartbeat(&gid, &member, instance.as_deref(), generation) },
        |e| e,
    )
    .await;
    let mut resp = HeartbeatResponse::default();
    resp.error_code = err;
    resp
}

pub async fn leave_group(req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group_id = s(&req.group_id.0);
    let who: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| (s(&m.member_id), m.group_instance_id.as_ref().map(s)))
            .collect()
    } else {
        vec![(s(&req.member_id), None)]
    };
    let (gid, w) = (group_id.clone(), who.clone());
    let r = on_coordinator(&group_id, move |c| async move { c.leave(&gid, &w) }, Err).await;
    let mut resp = LeaveGroupResponse::default();
    // An unknown group is a per-member UNKNOWN_MEMBER_ID in v3+, as in Kafka.
    let r = match r {
        Err(e) if version >= 3 && e == code(E::UnknownMemberId) => Ok(vec![e; who.len()]),
        other => other,
    };
    match r {
        Err(e) => resp.error_code = e,
        Ok(errs) if version < 3 => resp.error_code = errs.first().copied().unwrap_or(0),
        Ok(errs) => {
            resp.members = who
                .into_iter()
                .zip(errs)
                .map(|((m, i), e)| {
                    let mut r = MemberResponse::default();
                    r.member_id = str_bytes(m);
                    r.group_instance_id = i.map(str_bytes);
                    r.error_code = e;
                    r
                })
                .collect();
        }
    }
    resp
}

// ---- offsets --------------------------------------------------------------------------------

pub async fn offset_commit(req: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
    let group_id = s(&req.group_id.0);
    // (topic index, partition index) of each entry sent to the coordinator.
    let mut slots = Vec::new();
    let mut entries = Vec::new();
    let mut resp = OffsetCommitResponse::default();
    for (ti, t) in req.topics.iter().enumerate() {
        let mut rt = OffsetCommitResponseTopic::default();
        rt.name = t.name.clone();
        for (pi, p) in t.partitions.iter().enumerate() {
            let mut rp = OffsetCommitResponsePartition::default();
            rp.partition_index = p.partition_index;
            if topic_exists(t.name.as_str(), p.partition_index) {
                slots.push((ti, pi));
                entries.push(CommitEntry {
                    topic: s(&t.name.0),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.as_ref().map(s),
                });
            } else {
                rp.error_code = code(E::UnknownTopicOrPartition);
            }
            rt.partitions.push(rp);
        }
        resp.topics.push(rt);
    }
    if entries.is_empty() {
        return resp;
    }
    let n = entries.len();
    let (gid, member, instance, generation) = (
        group_id.clone(),
        s(&req.member_id),
        req.group_instance_id.as_ref().map(s),
        req.generation_id_or_member_epoch,
    );
    let errs = on_coordinator(
        &group_id,
        move |c| async move {
            c.commit(&gid, &member, instance.as_deref(), generation, entries)
                .await
        },
        |e| vec![e; n],
    )
    .await;
    for ((ti, pi), e) in slots.into_iter().zip(errs) {
        if let Some(p) = resp
            .topics
            .get_mut(ti)
            .and_then(|t| t.partitions.get_mut(pi))
        {
            p.error_code = e;
        }
    }
    resp
}

/// Fetches one group's offsets on its coordinator.
async fn fetch_group(
    group_id: String,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Vec<(String, Vec<FetchedOffset>)>, i16> {
    let gid = group_id.clone();
    on_coordinator(
        &group_id,
        move |c| async move { c.fetch(&gid, topics) },
        Err,
    )
    .await
}

/// `require_stable` is accepted and needs no waiting: without transactions no offset is ever
/// pending, so every committed offset is stable.
pub async fn offset_fetch(req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    if version >= 8 {
        let calls = req.groups.iter().map(|g| {
            let topics = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (s(&t.name.0), t.partition_indexes.clone()))
                    .collect::<Vec<_>>()
            });
            fetch_group(s(&g.group_id.0), topics)
        });
        let results = join_all(calls).await;
        resp.groups = req
            .groups
            .iter()
            .zip(results)
            .map(|(g, r)| {
                let mut rg = OffsetFetchResponseGroup::default();
                rg.group_id = g.group_id.clone();
                match r {
                    Err(e) => rg.error_code = e,
                    Ok(topics) => {
                        rg.topics = topics
                            .into_iter()
                            .map(|(t, parts)| {
                                let mut rt = OffsetFetchResponseTopics::default();
                                rt.name = TopicName(str_bytes(t));
                                rt.partitions = parts
                                    .into_iter()
                                    .map(|f| {
                                        let mut p = OffsetFetchResponsePartitions::default();
                                        p.partition_index = f.partition;
                                        p.committed_offset = f.offset;
                                        p.committed_leader_epoch = f.leader_epoch;
                                        p.metadata = f.metadata.map(str_bytes);
                                        p.error_code = f.error;
                                        p
                                    })
                                    .collect();
                                rt
                            })
                            .collect();
                    }
                }
                rg
            })
            .collect();
        return resp;
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (s(&t.name.0), t.partition_indexes.clone()))
            .collect()
    });
    let result = fetch_group(s(&req.group_id.0), wanted.clone()).await;
    let (error, topics) = match result {
        Ok(t) => (0, t),
        // Before v2 there is no top-level error: report it on every requested partition.
        Err(e) => (
            e,
            wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps
                        .into_iter()
                        .map(|p| FetchedOffset {
                            partition: p,
                            offset: -1,
                            leader_epoch: -1,
                            metadata: Some(String::new()),
                            error: e,
                        })
                        .collect();
                    (t, parts)
                })
                .collect(),
        ),
    };
    if version >= 2 {
        resp.error_code = error;
    }
    resp.topics = topics
        .into_iter()
        .map(|(t, parts)| {
            let mut rt = OffsetFetchResponseTopic::default();
            rt.name = TopicName(str_bytes(t));
            rt.partitions = parts
                .into_iter()
                .map(|f| {
                    let mut p = OffsetFetchResponsePartition::default();
                    p.partition_index = f.partition;
                    p.committed_offset = f.offset;
                    if version >= 5 {
                        p.committed_leader_epoch = f.leader_epoch;
                    }
                    p.metadata = f.metadata.map(str_bytes);
                    p.error_code = f.error;
                    p
                })
                .collect();
            rt
        })
        .collect();
    resp
}

pub async fn offset_delete(req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group_id = s(&req.group_id.0);
    let mut resp = OffsetDeleteResponse::default();
    let mut known: Vec<(String, Vec<i32>)> = Vec::new();
    let mut unknown: Vec<(String, Vec<i32>)> = Vec::new();
    for t in &req.topics {
        let name = s(&t.name.0);
        let (k, u): (Vec<i32>, Vec<i32>) = t
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .partition(|p| topic_exists(&name, *p));
        if !k.is_empty() {
            known.push((name.clone(), k));
        }
        if !u.is_empty() {
            unknown.push((name, u));
        }
    }
    let gid = group_id.clone();
    let r = on_coordinator(
        &group_id,
        move |c| async move { c.delete_offsets(&gid, known).await },
        Err,
    )
    .await;
    let mut topics = match r {
        Err(e) => {
            resp.error_code = e;
            return resp;
        }
        Ok(t) => t,
    };
    let unknown_code = code(E::UnknownTopicOrPartition);
    topics.extend(
        unknown
            .into_iter()
            .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, unknown_code)).collect())),
    );
    resp.topics = topics
        .into_iter()
        .map(|(t, ps)| {
            let mut rt = OffsetDeleteResponseTopic::default();
            rt.name = TopicName(str_bytes(t));
            rt.partitions = ps
                .into_iter()
                .map(|(p, e)| {
                    let mut rp = OffsetDeleteResponsePartition::default();
                    rp.partition_index = p;
                    rp.error_code = e;
                    rp
                })
                .collect();
            rt
        })
        .collect();
    resp
}

// ---- administration -------------------------------------------------------------------------

/// Lists the groups of every shard. States filter (v4+) and types filter (v5+; all our groups
/// are "classic") are applied; unknown state names match nothing.
pub async fn list_groups(req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let mut resp = ListGroupsResponse::default();
    if version >= 5
        && !req.types_filter.is_empty()
        && !req
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case("classic"))
    {
        return resp;
    }
    let filter: Vec<String> = if version >= 4 {
        req.states_filter.iter().map(s).collect()
    } else {
        Vec::new()
    };
    let states: Vec<GroupState> = filter.iter().filter_map(|f| GroupState::parse(f)).collect();
    if !filter.is_empty() && states.is_empty() {
        return resp;
    }
    let calls = (0..shard_count()).map(|sh| {
        let states = states.clone();
        submit_to(sh, move || async move {
            shard::current()
                .groups
                .get()
                .map(|c| c.list(&states))
                .unwrap_or_default()
        })
    });
    for r in join_all(calls).await {
        match r {
            Ok(list) => resp.groups.extend(list.into_iter().map(|g| {
                let mut e = ListedGroup::default();
                e.group_id = GroupId(str_bytes(g.group_id));
                e.protocol_type = str_bytes(g.protocol_type);
                if version >= 4 {
                    e.group_state = str_bytes(g.state.name());
                }
                if version >= 5 {
                    e.group_type = str_bytes("classic");
                }
                e
            })),
            Err(_) => resp.error_code = code(E::CoordinatorNotAvailable),
        }
    }
    resp
}

pub async fn describe_groups(req: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
    let calls = req.groups.iter().map(|g| {
        let group_id = s(&g.0);
        let gid = group_id.clone();
        async move {
            on_coordinator(
                &group_id,
                move |c| async move { c.describe(&gid) },
                |e| crate::group::coordinator::DescribedGroup {
                    error: e,
                    group_id: group_id.clone(),
                    state: String::new(),
                    protocol_type: String::new(),
                    protocol: String::new(),
                    members: Vec::new(),
                },
            )
            .await
        }
    });
    let results = join_all(calls).await;
    let ops = match req.include_authorized_operations && version >= 3 {
        true => GROUP_OPERATIONS_ALL,
        false => AUTHORIZED_OPERATIONS_OMITTED,
    };
    let mut resp = DescribeGroupsResponse::default();
    resp.groups = results
        .into_iter()
        .map(|d| {
            let mut g = DescribedGroup::default();
            g.group_id = GroupId(str_bytes(d.group_id));
            g.error_code = d.error;
            // Before v6 an unknown group is described as Dead with no error.
            if d.error == code(E::GroupIdNotFound) {
                if version < 6 {
                    g.error_code = 0;
                } else {
                    g.error_message = Some(str_bytes("Group not found."));
                }
                g.group_state = str_bytes(GroupState::Dead.name());
            } else {
                g.group_state = str_bytes(d.state);
            }
            g.protocol_type = str_bytes(d.protocol_type);
            g.protocol_data = str_bytes(d.protocol);
            g.authorized_operations = ops;
            g.members = d
                .members
                .into_iter()
                .map(|m| {
                    let mut e = DescribedGroupMember::default();
                    e.member_id = str_bytes(m.member_id);
                    if version >= 4 {
                        e.group_instance_id = m.instance_id.map(str_bytes);
                    }
                    e.client_id = str_bytes(m.client_id);
                    e.client_host = str_bytes(m.client_host);
                    e.member_metadata = m.metadata;
                    e.member_assignment = m.assignment;
                    e
                })
                .collect();
            g
        })
        .collect();
    resp
}

pub async fn delete_groups(req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let calls = req.groups_names.iter().map(|g| {
        let group_id = s(&g.0);
        let gid = group_id.clone();
        async move {
            on_coordinator(
                &group_id,
                move |c| async move { c.delete_group(&gid).await },
                |e| e,
            )
            .await
        }
    });
    let results = join_all(calls).await;
    let mut resp = DeleteGroupsResponse::default();
    resp.results = req
        .groups_names
        .into_iter()
        .zip(results)
        .map(|(g, e)| {
            let mut r = DeletableGroupResult::default();
            r.group_id = g;
            r.error_code = e;
            r
        })
        .collect();
    resp
}

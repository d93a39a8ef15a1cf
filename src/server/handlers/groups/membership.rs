//! FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup: finding the coordinator and
//! membership of a group (the classic rebalance protocol).

use super::*;

/// Key type 0 (group): the broker leading the group's `__consumer_offsets` partition
/// (COORDINATOR_NOT_AVAILABLE while that topic or its leader is missing). Key type 1
/// (transaction): COORDINATOR_NOT_AVAILABLE, since transactions are not implemented (clients
/// then fail the transactional producer's init cleanly instead of talking to a coordinator that
/// cannot answer). Other key types (2 = share groups): INVALID_REQUEST.
pub fn find_coordinator(req: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let answer = |key: &StrBytes| -> Result<(BrokerId, StrBytes, i32), (i16, Option<String>)> {
        match req.key_type {
            0 if key.is_empty() => Err((code(E::InvalidRequest), Some("empty group id".into()))),
            0 => group_coordinator(key).ok_or((code(E::CoordinatorNotAvailable), None)),
            1 => Err((
                code(E::CoordinatorNotAvailable),
                Some("transactions are not supported by this broker".into()),
            )),
            t => Err((
                code(E::InvalidRequest),
                Some(format!("unknown key type {t}")),
            )),
        }
    };
    let mut r = FindCoordinatorResponse::default();
    if version >= 4 {
        r.coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let mut c = Coordinator::default();
                c.key = k.clone();
                match answer(k) {
                    Ok((node, host, port)) => {
                        c.node_id = node;
                        c.host = host;
                        c.port = port;
                    }
                    Err((err, msg)) => {
                        c.error_code = err;
                        c.error_message = msg.map(str_bytes);
                        c.node_id = BrokerId(-1);
                        c.host = str_bytes("");
                        c.port = -1;
                    }
                }
                c
            })
            .collect();
        return r;
    }
    match answer(&req.key) {
        Ok((node, host, port)) => {
            r.node_id = node;
            r.host = host;
            r.port = port;
        }
        Err((err, msg)) => {
            r.error_code = err;
            if version >= 1 {
                r.error_message = msg.map(str_bytes);
            }
            r.node_id = BrokerId(-1);
            r.host = str_bytes("");
            r.port = -1;
        }
    }
    r
}

/// The broker leading `group_id`'s `__consumer_offsets` partition, if the topic exists and that
/// leader is registered.
fn group_coordinator(group_id: &StrBytes) -> Option<(BrokerId, StrBytes, i32)> {
    let leader = shard::current().with_image(|i| {
        let topic = i.topic(OFFSETS_TOPIC)?;
        let p = partition_for(group_id, topic.partitions.len() as i32);
        topic.partition(p).map(|m| m.leader)
    })?;
    broker_endpoint(leader)
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

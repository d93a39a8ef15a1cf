//! ListGroups, DescribeGroups, DeleteGroups: the groups as tools see them.

use super::*;

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

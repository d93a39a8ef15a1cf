//! OffsetCommit, OffsetFetch, OffsetDelete: a group's committed offsets.

use super::*;

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

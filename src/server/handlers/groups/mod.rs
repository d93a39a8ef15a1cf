//! The consumer-group APIs, in three files: `membership` (FindCoordinator, JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup), `offsets` (OffsetCommit, OffsetFetch, OffsetDelete) and `admin`
//! (ListGroups, DescribeGroups, DeleteGroups); the helpers they share are here.
//!
//! Each handler turns the wire request into the coordinator's plain types, hops to the shard
//! that owns the group's `__consumer_offsets` partition, and builds the versioned response.
//! Fields that do not exist in the negotiated version are left at their defaults (the codec
//! refuses to encode some of them otherwise).

mod admin;
mod membership;
mod offsets;

pub use admin::{delete_groups, describe_groups, list_groups};
pub use membership::{find_coordinator, heartbeat, join_group, leave_group, sync_group};
pub use offsets::{offset_commit, offset_delete, offset_fetch};

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

use super::{broker_endpoint, str_bytes, AUTHORIZED_OPERATIONS_OMITTED};
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
    let shard = shard::current();
    let partitions = shard.with_image(|i| Some(i.topic(OFFSETS_TOPIC)?.partitions.len() as i32))?;
    shard.shard_of(OFFSETS_TOPIC, partition_for(group_id, partitions))
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
        // The offsets partition lives on another broker: the client finds it again.
        let elsewhere = shard::current().with_image(|i| i.topic(OFFSETS_TOPIC).is_some());
        return fail(code(match elsewhere {
            true => E::NotCoordinator,
            false => E::CoordinatorNotAvailable,
        }));
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
    shard::current().with_image(|i| i.partition(topic, partition).is_some())
}

// ---- FindCoordinator ------------------------------------------------------------------------

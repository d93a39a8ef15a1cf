//! One file per Kafka API (or small family of APIs). Handlers decode nothing and encode nothing:
//! they turn a typed request into a typed response, splitting per partition and routing each
//! part to its owning shard through `shard::partition_ops`, or to the metadata controller
//! (`controller`).

pub mod alter_configs;
pub mod cluster;
pub mod delete_records;
pub mod describe_configs;
pub mod describe_quorum;
pub mod fetch;
pub mod groups;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod topics;

use kafka_protocol::messages::BrokerId;
use kafka_protocol::protocol::StrBytes;

use crate::shard;

/// Kafka's "authorized operations were not requested" marker (Integer.MIN_VALUE).
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// With no authorizer every operation a resource supports is allowed; Kafka reports these bit
/// sets (AclOperation codes): cluster = CREATE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
/// IDEMPOTENT_WRITE, ALTER, DESCRIBE (bits 5, 7-12); topic = READ, WRITE, CREATE, DELETE, ALTER,
/// DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS (bits 3-8, 10, 11). Clients decode the bits, so
/// sending the "omitted" marker when they asked breaks them (kafka-python raises).
pub const CLUSTER_OPERATIONS_ALL: i32 = 8096;
pub const TOPIC_OPERATIONS_ALL: i32 = 3576;

/// This broker's id and advertised endpoint.
pub fn this_broker() -> (BrokerId, StrBytes, i32) {
    let shard = shard::current();
    let (host, port) = shard
        .config
        .advertised()
        .unwrap_or_else(|_| ("127.0.0.1".into(), 9092));
    (
        BrokerId(shard.config.node_id()),
        StrBytes::from_string(host),
        port,
    )
}

/// Every registered, unfenced broker's id and endpoint, in id order (this broker always among
/// them, even before its registration is applied here).
pub fn all_brokers() -> Vec<(BrokerId, StrBytes, i32)> {
    let me = this_broker();
    let mut out: Vec<(BrokerId, StrBytes, i32)> = shard::current().with_image(|i| {
        i.brokers()
            .filter(|b| b.id != me.0 .0 && !b.fenced)
            .map(|b| {
                (
                    BrokerId(b.id),
                    StrBytes::from_string(b.host.clone()),
                    b.port,
                )
            })
            .collect()
    });
    out.push(me);
    out.sort_by_key(|b| b.0 .0);
    out
}

/// The endpoint of broker `id`, if it is registered (or is this broker).
pub fn broker_endpoint(id: i32) -> Option<(BrokerId, StrBytes, i32)> {
    all_brokers().into_iter().find(|b| b.0 .0 == id)
}

/// The active controller as clients see it: the metadata quorum's leader (every node is a
/// combined broker and controller), or this broker while no leader is known.
pub fn controller_id() -> BrokerId {
    let shard = shard::current();
    BrokerId(
        shard
            .quorum_leader()
            .unwrap_or_else(|| shard.config.node_id()),
    )
}

pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

//! One file per Kafka API (or small family of APIs). Handlers decode nothing and encode nothing:
//! they turn a typed request into a typed response, splitting per partition and routing each
//! part to its owning shard through `shard::partition_ops` / `shard::controller`.

pub mod cluster;
pub mod describe_configs;
pub mod fetch;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
pub mod topics;

use kafka_protocol::messages::BrokerId;
use kafka_protocol::protocol::StrBytes;

use crate::shard;

/// Kafka's "authorized operations were not requested" marker (Integer.MIN_VALUE).
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

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

pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

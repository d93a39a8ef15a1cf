//! The Kafka listener: one accept loop per shard, one task per connection, and the per-API
//! handlers that split requests by partition and route each part to its owning shard.

pub mod admission;
pub mod apis;
pub mod connection;
pub mod dispatch;
pub mod frame_reader;
pub mod group_host;
pub mod handlers;
pub mod lifecycle;
pub mod peer;
pub mod session;

pub use lifecycle::{request_shutdown, run_broker, shutdown_requested};

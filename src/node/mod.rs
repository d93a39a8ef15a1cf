//! This node's own state, apart from the cluster metadata: its identity (`meta_properties`) and
//! which shard serves each partition it hosts (`placement`, persisted in `placement_log`).
//! In a cluster every node keeps its own; the metadata log never names a core.

pub mod meta_properties;
pub mod placement;
pub mod placement_log;

pub use placement::{Placement, PlacementRecord};

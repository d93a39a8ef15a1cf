//! The metadata controller: every change to topics, partitions, configs and producer-id blocks.
//!
//! It runs on one shard ([`CONTROLLER_SHARD`]); its state (the metadata quorum's handle, the
//! producer-id block) lives there only (`state`). Handlers call the functions below from any
//! shard: each ships the operation to the controller shard and awaits its answer, so no handler
//! names a shard. Inside, every change is validated against the controller's image and goes
//! through `commit::commit`, which proposes it to the metadata quorum (`quorum`) and answers
//! once it is committed and applied here: to the committed image (`state_machine`) and, through
//! `shard::publish`, on every shard.
//!
//! Files: `topics` (create, delete, grow; the partition budget), `assignment` (which brokers
//! hold a new partition's replicas), `configs` (AlterConfigs and
//! IncrementalAlterConfigs), `producer_ids` (InitProducerId blocks), `liveness` (fencing
//! brokers that fell silent), `commit` (the controller
//! lock, the proposal), `state_machine` (the metadata as the quorum's state machine),
//! `bootstrap` (start-up: the quorum's log replayed, an older metadata log converted), `state`.

mod assignment;
mod bootstrap;
mod commit;
mod configs;
mod liveness;
mod producer_ids;
mod state;
mod state_machine;
mod topics;

pub use bootstrap::{bootstrap, QuorumTask};
pub use configs::{apply_config_change, ConfigChange, ConfigRefusal};
pub use configs::{OP_APPEND, OP_DELETE, OP_SET, OP_SUBTRACT};
pub use topics::{DeleteTarget, TopicOutcome, TopicSpec, MAX_PARTITIONS_PER_TOPIC};

use crate::runtime::{submit_to, SubmitError};

/// The shard that runs the controller and the metadata quorum.
pub const CONTROLLER_SHARD: usize = 0;

/// Before this node stops: its controlled shutdown (see `liveness::controlled_shutdown`), run on
/// the controller shard.
pub async fn controlled_shutdown() {
    let _ = submit_to(CONTROLLER_SHARD, liveness::controlled_shutdown).await;
}

/// Creates topics; one outcome per spec, in order.
pub async fn create_topics(specs: Vec<TopicSpec>) -> Result<Vec<TopicOutcome>, SubmitError> {
    submit_to(CONTROLLER_SHARD, move || topics::create_topics(specs)).await
}

/// Deletes topics; one outcome per target, in order.
pub async fn delete_topics(targets: Vec<DeleteTarget>) -> Result<Vec<TopicOutcome>, SubmitError> {
    submit_to(CONTROLLER_SHARD, move || topics::delete_topics(targets)).await
}

/// Grows topic `name` to `count` partitions.
pub async fn create_partitions(
    name: String,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> Result<TopicOutcome, SubmitError> {
    submit_to(CONTROLLER_SHARD, move || {
        topics::create_partitions(name, count, assignments, validate_only)
    })
    .await
}

/// Changes topic `name`'s configuration.
pub async fn alter_topic_configs(
    name: String,
    change: ConfigChange,
    validate_only: bool,
) -> Result<Result<(), ConfigRefusal>, SubmitError> {
    submit_to(CONTROLLER_SHARD, move || {
        configs::alter_topic_configs(name, change, validate_only)
    })
    .await
}

/// What this node knows of the metadata quorum (DescribeQuorum); `None` before start-up has
/// started it or after it stopped.
pub async fn quorum_status() -> Result<Option<crate::quorum::core::QuorumStatus>, SubmitError> {
    submit_to(CONTROLLER_SHARD, || async {
        match state::quorum() {
            Some(q) => q.status().await,
            None => None,
        }
    })
    .await
}

/// A new producer id, never handed out before (InitProducerId without a transactional id).
pub async fn allocate_producer_id() -> Result<Result<i64, String>, SubmitError> {
    submit_to(CONTROLLER_SHARD, producer_ids::allocate_producer_id).await
}

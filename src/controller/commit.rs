//! The one way a metadata change happens: persisted to the metadata log, then published to this
//! node's shards (`shard::publish`). [`commit`] is the function a Raft quorum replaces in a cluster (the
//! record is appended to the quorum's log and applied once committed); nothing else writes the
//! metadata log.
//!
//! Changes are serialized: each operation holds the controller lock from its validation until
//! every shard has applied it, so two concurrent requests for one name cannot both pass
//! validation, and a delete has renamed a topic's directories before a create of the same name
//! can run. Holding it across awaits is what lets the metadata log's write and fdatasync run on
//! the blocking-thread pool instead of stalling shard 0's clients.

use super::state;
use crate::metadata::MetadataRecord;
use crate::runtime::file::{blocking, SerialLock};
use crate::shard::publish::publish;

thread_local! {
    static CONTROLLER_LOCK: std::rc::Rc<SerialLock> = std::rc::Rc::new(SerialLock::new());
}

/// The lock every metadata change holds from validation to its last shard's apply.
pub(super) fn controller_lock() -> std::rc::Rc<SerialLock> {
    CONTROLLER_LOCK.with(|l| l.clone())
}

/// Appends records to the metadata log, written and fdatasync-ed on the blocking-thread pool.
/// The caller holds the controller lock, so no other change uses the store meanwhile.
pub(super) async fn persist(records: Vec<MetadataRecord>) -> Result<(), String> {
    let Some(mut store) = state::take_store() else {
        return Err("metadata changes must run on shard 0".to_string());
    };
    let (store, written) = blocking(move || {
        let r = store.append(&records);
        (store, r)
    })
    .await;
    state::put_store(store);
    written.map_err(|e| format!("metadata log: {e}"))
}

/// Persists a record, then publishes it on this node (`shard::publish`: placement, then every
/// shard applies it).
pub(super) async fn commit(record: MetadataRecord) -> Result<(), String> {
    persist(vec![record.clone()]).await?;
    publish(record).await
}

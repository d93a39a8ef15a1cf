//! The one way a metadata change happens: persisted to the metadata log, then applied on shard 0
//! and every other shard. [`commit`] is the function a Raft quorum replaces in a cluster (the
//! record is appended to the quorum's log and applied once committed); nothing else writes the
//! metadata log.
//!
//! Changes are serialized: each operation holds the controller lock from its validation until
//! every shard has applied it, so two concurrent requests for one name cannot both pass
//! validation, and a delete has renamed a topic's directories before a create of the same name
//! can run. Holding it across awaits is what lets the metadata log's write and fdatasync run on
//! the blocking-thread pool instead of stalling shard 0's clients.

use futures_util::future::join_all;

use super::state;
use crate::metadata::MetadataRecord;
use crate::runtime::file::{blocking, SerialLock};
use crate::runtime::{shard_count, submit_to};
use crate::shard::current;

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

/// Persists a record, then applies it on shard 0 and on every other shard.
pub(super) async fn commit(record: MetadataRecord) -> Result<(), String> {
    let shard = current();
    persist(vec![record.clone()]).await?;
    // Shard 0 first: its image changes on the first poll, before any other request can run.
    shard.apply(&record).await.map_err(|e| e.to_string())?;
    broadcast(vec![record], false).await
}

/// Applies `records` on every shard other than this one (and on this one too if `include_self`).
pub(super) async fn broadcast(
    records: Vec<MetadataRecord>,
    include_self: bool,
) -> Result<(), String> {
    let me = current().id;
    let calls = (0..shard_count())
        .filter(|s| include_self || *s != me)
        .map(|s| {
            let records = records.clone();
            submit_to(s, move || async move {
                let shard = current();
                for r in &records {
                    shard.apply(r).await.map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            })
        });
    for r in join_all(calls).await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(())
}

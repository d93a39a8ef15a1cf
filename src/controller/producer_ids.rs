//! Producer ids for idempotent producers (InitProducerId), reserved from the metadata log a block
//! at a time.

use super::commit::{commit, controller_lock, CommitError};
use super::state;
use crate::metadata::image::BLOCK_TAKEN;
use crate::metadata::MetadataRecord;
use crate::shard::current;

/// Producer ids are reserved this many at a time, so the metadata log sees one record per block.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Hands out a new producer id (InitProducerId for idempotent producers). Ids are never reused:
/// a block is persisted before any id in it is returned.
pub async fn allocate_producer_id() -> Result<i64, String> {
    let (next, end) = state::producer_ids();
    if next < end {
        state::set_producer_ids((next + 1, end));
        return Ok(next);
    }
    // The block is used up: reserve the next one, durably, before handing out any id of it.
    // Callers arriving meanwhile wait here and then take ids from the new block.
    let lock = controller_lock();
    let _serial = lock.lock().await;
    let (next, end) = state::producer_ids();
    if next < end {
        state::set_producer_ids((next + 1, end));
        return Ok(next);
    }
    // The committed image knows the highest block any node reserved (a node's own view may
    // lag); a block someone else took first is refused, and the next one is tried.
    let mut end = end.max(current().with_image(|i| i.producer_id_block_end));
    for _ in 0..10 {
        let new_end = end + PRODUCER_ID_BLOCK;
        match commit(MetadataRecord::ProducerIdBlock { end: new_end }).await {
            Ok(()) => {
                state::set_producer_ids((end + 1, new_end));
                return Ok(end);
            }
            Err(CommitError::Refused(why)) if why.starts_with(BLOCK_TAKEN) => {
                end = end.max(current().with_image(|i| i.producer_id_block_end));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("could not reserve a producer-id block".to_string())
}

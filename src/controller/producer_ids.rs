//! Producer ids for idempotent producers (InitProducerId), reserved from the metadata log a block
//! at a time.

use super::commit::{controller_lock, persist};
use super::state;
use crate::metadata::MetadataRecord;

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
    let new_end = end + PRODUCER_ID_BLOCK;
    persist(vec![MetadataRecord::ProducerIdBlock { end: new_end }]).await?;
    state::set_producer_ids((end + 1, new_end));
    Ok(end)
}

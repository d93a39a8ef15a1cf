//! The controller's own state, kept on shard 0 (the controller shard) only: the metadata log and
//! the producer-id block being handed out. Other shards hold a read-only copy of the metadata
//! image (`shard::Shard`), never this.

use std::cell::{Cell, RefCell};

use crate::metadata::store::MetadataStore;

thread_local! {
    static STORE: RefCell<Option<MetadataStore>> = const { RefCell::new(None) };
    /// The next producer id to hand out and the end of the reserved block.
    static PRODUCER_IDS: Cell<(i64, i64)> = const { Cell::new((0, 0)) };
}

/// Takes the metadata log out for a write on the blocking pool (the caller holds the controller
/// lock and puts it back with [`put_store`]). `None` off the controller shard.
pub(super) fn take_store() -> Option<MetadataStore> {
    STORE.with(|s| s.borrow_mut().take())
}

pub(super) fn put_store(store: MetadataStore) {
    STORE.with(|s| *s.borrow_mut() = Some(store));
}

pub(super) fn producer_ids() -> (i64, i64) {
    PRODUCER_IDS.with(Cell::get)
}

pub(super) fn set_producer_ids(next_and_end: (i64, i64)) {
    PRODUCER_IDS.with(|p| p.set(next_and_end));
}

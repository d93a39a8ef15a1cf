//! The controller's own state, kept on shard 0 (the controller shard) only: the handle of the
//! metadata quorum and the producer-id block being handed out. Other shards hold a read-only
//! copy of the metadata image (`shard::Shard`), never this.

use std::cell::{Cell, RefCell};

use crate::quorum::driver::QuorumHandle;

thread_local! {
    static QUORUM: RefCell<Option<QuorumHandle>> = const { RefCell::new(None) };
    /// The next producer id to hand out and the end of the reserved block.
    static PRODUCER_IDS: Cell<(i64, i64)> = const { Cell::new((0, 0)) };
}

/// The quorum, once start-up has started it; `None` before, and off the controller shard.
pub(super) fn quorum() -> Option<QuorumHandle> {
    QUORUM.with(|q| q.borrow().clone())
}

pub(super) fn set_quorum(handle: QuorumHandle) {
    QUORUM.with(|q| *q.borrow_mut() = Some(handle));
}

pub(super) fn producer_ids() -> (i64, i64) {
    PRODUCER_IDS.with(Cell::get)
}

pub(super) fn set_producer_ids(next_and_end: (i64, i64)) {
    PRODUCER_IDS.with(|p| p.set(next_and_end));
}

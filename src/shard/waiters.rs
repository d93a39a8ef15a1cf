//! Wake-ups for delayed operations that wait on a partition, and group commit for acks=-1.
//!
//! A fetch that has too few bytes registers a waiter on each partition it reads, on that
//! partition's owning shard; the next append there fires every waiter (a `futures` oneshot,
//! which may be awaited from another shard). A waiter whose fetch gave up (deadline, connection
//! closed) is a cancelled sender and is pruned on the next registration or append, so idle
//! partitions never accumulate them.
//!
//! Group commit: `sync_through` makes everything up to an offset durable. At most one fdatasync
//! runs per partition at a time; producers arriving while it runs queue behind it and usually
//! find, when their turn comes, that the sync that just finished (or the one the first of them
//! starts) already covered their batch — so N concurrent acks=-1 producers share one sync.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;

use super::TopicPartition;
use crate::log::LogError;
use crate::partition::Partition;
use crate::runtime::file::SerialLock;

/// Per-shard registry of partition waiters and sync gates.
#[derive(Default)]
pub struct Waiters {
    data: RefCell<HashMap<TopicPartition, Vec<oneshot::Sender<()>>>>,
    sync_gates: RefCell<HashMap<TopicPartition, Rc<SerialLock>>>,
    /// fdatasync rounds made (for tests and metrics: syncs vs acks=-1 appends).
    pub syncs: Cell<u64>,
    /// acks=-1 partition appends that waited for durability.
    pub acks_all_appends: Cell<u64>,
    /// Monotonic time of each partition's last completed sync (for `flush.ms`).
    last_sync_ms: RefCell<HashMap<TopicPartition, u64>>,
}

impl Waiters {
    /// A receiver that completes on the next append to `tp` (or at once if `ready`).
    pub fn register(&self, tp: TopicPartition, ready: bool) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if ready {
            let _ = tx.send(());
            return rx;
        }
        crate::metrics::with(|m| m.fetch_waiters_registered.inc());
        let mut data = self.data.borrow_mut();
        let list = data.entry(tp).or_default();
        // Prune given-up waiters only when the list has doubled since the last prune: pruning on
        // every registration made a fetch naming one partition N times cost O(N^2) here.
        if list.len() >= 16 && list.len().is_power_of_two() {
            list.retain(|s| !s.is_canceled());
        }
        list.push(tx);
        rx
    }

    /// Waiters registered and not yet fired or given up (metrics).
    pub fn pending_waiters(&self) -> usize {
        self.data
            .borrow()
            .values()
            .map(|l| l.iter().filter(|s| !s.is_canceled()).count())
            .sum()
    }

    /// Fires every waiter of `tp` (called after each successful append).
    pub fn notify(&self, tp: &TopicPartition) {
        let waiting = self.data.borrow_mut().remove(tp);
        for tx in waiting.into_iter().flatten() {
            let _ = tx.send(());
        }
    }

    /// Makes `partition` durable through `offset` (exclusive), sharing syncs between callers.
    pub async fn sync_through(
        &self,
        tp: &TopicPartition,
        partition: &Partition,
        offset: i64,
    ) -> Result<(), LogError> {
        if partition.flushed_offset() >= offset {
            return Ok(());
        }
        let gate = self
            .sync_gates
            .borrow_mut()
            .entry(tp.clone())
            .or_insert_with(|| Rc::new(SerialLock::new()))
            .clone();
        let _turn = gate.lock().await?;
        if partition.flushed_offset() >= offset {
            return Ok(()); // the sync we queued behind covered us
        }
        self.syncs.set(self.syncs.get() + 1);
        let started = std::time::Instant::now();
        let synced = partition.sync().await;
        crate::metrics::with(|m| m.sync_duration.record_since(started));
        synced?;
        self.last_sync_ms
            .borrow_mut()
            .insert(tp.clone(), crate::runtime::monotonic_ms());
        Ok(())
    }

    /// Milliseconds since `tp` was last synced; the first call starts the clock (returns 0).
    pub fn since_last_sync(&self, tp: &TopicPartition) -> u64 {
        let now = crate::runtime::monotonic_ms();
        let last = *self
            .last_sync_ms
            .borrow_mut()
            .entry(tp.clone())
            .or_insert(now);
        now.saturating_sub(last)
    }

    /// Forgets a deleted partition's state.
    pub fn remove(&self, tp: &TopicPartition) {
        self.notify(tp);
        self.sync_gates.borrow_mut().remove(tp);
        self.last_sync_ms.borrow_mut().remove(tp);
    }
}

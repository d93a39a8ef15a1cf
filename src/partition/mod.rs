//! A partition replica on this node (Kafka's `Partition`, over its `UnifiedLog`): the log, the
//! replica set, the leader epoch and its checkpoint, and the one place that decides how far
//! consumers may read (the high watermark).
//!
//! Replication (issue 16) lives here: follower fetch state, the ISR, and a high watermark held
//! at the minimum the ISR has. Built so far, each with its tests: the leader's view of its
//! followers (`replicas::ReplicaSet`), a follower's append of the leader's batches and its
//! high watermark ([`Partition::append_as_follower`]), cutting a divergent tail back
//! ([`Partition::truncate_to`]) and where an epoch ends ([`Partition::end_offset_for_epoch`]).
//! Not wired yet (no replica fetcher): every partition has one replica and leads alone, so
//! the high watermark follows the log end after every append — through
//! [`Partition::maybe_increment_high_watermark`], the function replication changes.
//!
//! # Invariants
//! - `log_start_offset <= high_watermark <= log_end_offset` (kept by the log, moved by us).
//! - Every batch appended through this partition carries the current leader epoch in its
//!   `partitionLeaderEpoch`, and the leader-epoch cache has an entry `(epoch, first offset)` for
//!   each epoch that appended anything, start offsets below the log end.
//! - `replicas` names node ids, never cores; the local node is always one of them.

pub mod leader_epoch;
pub mod replicas;

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use crate::log::{AppendInfo, LogConfig, LogError, PartitionLog};
use crate::runtime::file::FileSlice;
use leader_epoch::LeaderEpochCache;

#[derive(Debug)]
pub struct Partition {
    log: Rc<PartitionLog>,
    leader_epoch: Cell<i32>,
    epochs: Rc<LeaderEpochCache>,
    replicas: RefCell<Vec<i32>>,
}

impl Partition {
    /// Opens (and recovers) the partition's log in `dir` as leader at `leader_epoch`, with
    /// `replicas` (node ids) as its replica set.
    pub async fn open(
        dir: &Path,
        config: LogConfig,
        replicas: Vec<i32>,
        leader_epoch: i32,
    ) -> Result<Partition, LogError> {
        let log = PartitionLog::open(dir, config).await?;
        let epochs = LeaderEpochCache::load(dir).await;
        // Recovery may have cut the log below entries written before a crash. The file is
        // derived data: failing to rewrite it is worth a warning, not an offline partition.
        if epochs.truncate_from_end(log.log_end_offset()) {
            if let Err(e) = epochs.flush(true).await {
                tracing::warn!(dir = %dir.display(), error = %e,
                    "rewriting the leader-epoch checkpoint after recovery");
            }
        }
        log.set_leader_epoch(Some(leader_epoch));
        // One node: the ISR is this replica, so everything in the log is committed.
        log.set_high_watermark(log.log_end_offset());
        Ok(Partition {
            log: Rc::new(log),
            leader_epoch: Cell::new(leader_epoch),
            epochs: Rc::new(epochs),
            replicas: RefCell::new(replicas),
        })
    }

    /// Takes the replica set and leader epoch the metadata now gives this partition; appends
    /// from here on carry the new epoch.
    pub fn follow_metadata(&self, replicas: Vec<i32>, leader_epoch: i32) {
        if leader_epoch != self.leader_epoch.get() {
            self.leader_epoch.set(leader_epoch);
            self.log.set_leader_epoch(Some(leader_epoch));
        }
        *self.replicas.borrow_mut() = replicas;
    }

    /// Where leader epoch `epoch` ends in this replica's log (OffsetForLeaderEpoch):
    /// `(epoch, end offset)` by Kafka's rules (`LeaderEpochCache::end_offset_for`). The current
    /// epoch ends at the log end even before anything was appended under it (Kafka's leader
    /// records its epoch when it takes over; ours at its first append).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        if epoch >= 0 && epoch == self.leader_epoch.get() {
            return (epoch, self.log.log_end_offset());
        }
        self.epochs.end_offset_for(epoch, self.log.log_end_offset())
    }

    /// The log, for what has no partition-level meaning (retention, producer expiry, configs).
    pub fn log(&self) -> &Rc<PartitionLog> {
        &self.log
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.get()
    }

    /// `(epoch, first offset)` of every leader epoch that appended to this log.
    pub fn leader_epochs(&self) -> Vec<leader_epoch::EpochEntry> {
        self.epochs.entries()
    }

    pub fn replicas(&self) -> Vec<i32> {
        self.replicas.borrow().clone()
    }

    /// Appends a client's (or the group coordinator's) records as leader, then lets consumers
    /// see them as far as the high watermark allows.
    pub async fn append_from_client(
        &self,
        records: Bytes,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let info = self.log.append_from_client(records, now_ms).await?;
        if !info.duplicate
            && self
                .epochs
                .record(self.leader_epoch.get(), info.base_offset)
        {
            // Written in the background without an fdatasync, off the produce path (Kafka moved
            // this fsync off the request path too, KAFKA-15046): the entry is derived from the
            // batches' own partitionLeaderEpoch; close() makes the file durable.
            let epochs = self.epochs.clone();
            crate::runtime::spawn(async move {
                if let Err(e) = epochs.flush(false).await {
                    tracing::warn!(error = %e, "writing the leader-epoch checkpoint");
                }
            });
        }
        self.maybe_increment_high_watermark();
        Ok(info)
    }

    /// Appends records fetched from the leader as this replica's follower (the leader's
    /// offsets and epochs kept, `PartitionLog::append_as_follower`), recording each leader
    /// epoch that starts in them; the high watermark follows `leader_high_watermark`, never
    /// past this log's end.
    pub async fn append_as_follower(
        &self,
        records: Bytes,
        leader_high_watermark: i64,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let mut changed = false;
        let appended = self
            .log
            .append_as_follower(records, now_ms, |epoch, start| {
                changed |= self.epochs.record(epoch, start);
            })
            .await;
        if changed {
            if let Err(e) = self.epochs.flush(false).await {
                tracing::warn!(error = %e, "writing the leader-epoch checkpoint");
            }
        }
        let info = appended?;
        self.follow_high_watermark(leader_high_watermark);
        Ok(info)
    }

    /// A follower's high watermark: the leader's, as far as this log reaches.
    pub fn follow_high_watermark(&self, leader_high_watermark: i64) {
        let hw = leader_high_watermark.min(self.log.log_end_offset());
        if hw > self.log.high_watermark() {
            self.log.set_high_watermark(hw);
        }
    }

    /// Cuts this replica's log back before `offset`, where it diverges from the leader's
    /// (`PartitionLog::truncate_to`), and the leader-epoch cache with it. Returns the new log
    /// end offset.
    pub async fn truncate_to(&self, offset: i64) -> Result<i64, LogError> {
        let end = self.log.truncate_to(offset).await?;
        if self.epochs.truncate_from_end(end) {
            if let Err(e) = self.epochs.flush(true).await {
                tracing::warn!(error = %e, "rewriting the leader-epoch checkpoint after truncation");
            }
        }
        Ok(end)
    }

    /// Moves the high watermark to what every in-sync replica has. On one node the ISR is this
    /// replica alone: the log end.
    fn maybe_increment_high_watermark(&self) {
        self.log.set_high_watermark(self.log.log_end_offset());
    }

    pub fn high_watermark(&self) -> i64 {
        self.log.high_watermark()
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }
    pub fn flushed_offset(&self) -> i64 {
        self.log.flushed_offset()
    }

    /// DeleteRecords: records below `offset` (-1: the high watermark) are deleted; returns the
    /// new log start offset (Kafka's low watermark). Beyond the high watermark is out of range.
    pub async fn delete_records(&self, offset: i64) -> Result<i64, LogError> {
        let offset = if offset == -1 {
            self.high_watermark()
        } else {
            offset
        };
        self.log.delete_records_before(offset).await
    }

    /// Records from `offset`, up to the high watermark (see [`PartitionLog::read`]).
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Bytes, LogError> {
        self.log.read(offset, max_bytes, min_one_batch).await
    }

    /// [`Partition::read`] as a file range for zero-copy sends.
    pub async fn read_slice(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Option<FileSlice>, LogError> {
        self.log.read_slice(offset, max_bytes, min_one_batch).await
    }

    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        self.log.offset_for_timestamp(ts).await
    }

    pub async fn max_timestamp_and_offset(&self) -> Result<Option<(i64, i64)>, LogError> {
        self.log.max_timestamp_and_offset().await
    }

    /// Makes everything appended so far durable.
    pub async fn sync(&self) -> Result<(), LogError> {
        self.log.sync().await
    }

    /// Closes the log (synced, clean-shutdown marker) and the leader-epoch checkpoint (waits
    /// for a background write, makes the file durable, refuses later writes). The log is
    /// closed whatever happens to the checkpoint, which is derived data.
    pub async fn close(&self) -> Result<(), LogError> {
        let epochs = self.epochs.close().await;
        self.log.close().await?;
        epochs.map_err(LogError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch_builder;
    use crate::runtime::file::run_local;

    #[test]
    fn appends_carry_the_leader_epoch_and_the_high_watermark_follows_the_log_end() {
        let dir = tempfile::tempdir().unwrap();
        run_local(async {
            let p = Partition::open(dir.path(), LogConfig::default(), vec![1], 0)
                .await
                .unwrap();
            assert_eq!(p.high_watermark(), 0);
            assert!(p.leader_epochs().is_empty());
            let a = p
                .append_from_client(Bytes::from(batch_builder::batch(3, 1000, 10)), 1000)
                .await
                .unwrap();
            assert_eq!((a.base_offset, p.high_watermark()), (0, 3));
            p.append_from_client(Bytes::from(batch_builder::batch(2, 1000, 10)), 1000)
                .await
                .unwrap();
            assert_eq!(p.high_watermark(), 5);
            assert_eq!(p.leader_epochs(), vec![(0, 0)]);
            let read = p.read(0, 1 << 20, true).await.unwrap();
            let h = crate::log::batch::BatchHeader::parse(&read).unwrap();
            assert_eq!(h.partition_leader_epoch, 0);
            p.close().await.unwrap();
            drop(p);
            // Reopened under a later epoch: the old entry stays, the next append adds one.
            let p = Partition::open(dir.path(), LogConfig::default(), vec![1], 2)
                .await
                .unwrap();
            assert_eq!(p.high_watermark(), 5);
            p.append_from_client(Bytes::from(batch_builder::batch(1, 1000, 10)), 1000)
                .await
                .unwrap();
            assert_eq!(p.leader_epochs(), vec![(0, 0), (2, 5)]);
            assert_eq!(p.replicas(), vec![1]);
        });
    }

    /// A follower copies a leader's batches with their epochs, follows its high watermark, and
    /// cuts back a divergent tail with the epochs that started in it.
    #[test]
    fn a_follower_keeps_the_leaders_epochs_and_truncates_them_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let (l, f) = (dir.path().join("l"), dir.path().join("f"));
        run_local(async {
            let leader = Partition::open(&l, LogConfig::default(), vec![1, 2], 3)
                .await
                .unwrap();
            for _ in 0..2 {
                leader
                    .append_from_client(Bytes::from(batch_builder::batch(2, 1000, 10)), 1000)
                    .await
                    .unwrap();
            }
            leader.follow_metadata(vec![1, 2], 5);
            leader
                .append_from_client(Bytes::from(batch_builder::batch(2, 1000, 10)), 1000)
                .await
                .unwrap();
            let all = leader.read(0, 1 << 20, true).await.unwrap();
            let follower = Partition::open(&f, LogConfig::default(), vec![1, 2], 5)
                .await
                .unwrap();
            // A new follower log: its high watermark waits for the leader's.
            follower.log().set_high_watermark(0);
            let info = follower.append_as_follower(all, 4, 2000).await.unwrap();
            assert_eq!((info.base_offset, info.last_offset), (0, 5));
            assert_eq!(follower.leader_epochs(), vec![(3, 0), (5, 4)]);
            assert_eq!(follower.high_watermark(), 4);
            follower.follow_high_watermark(100);
            assert_eq!(follower.high_watermark(), 6, "never past its own end");
            assert_eq!(follower.end_offset_for_epoch(3), (3, 4));
            // The leader of epoch 5 is gone and the new one never had its batch: cut it.
            assert_eq!(follower.truncate_to(4).await.unwrap(), 4);
            assert_eq!(follower.leader_epochs(), vec![(3, 0)]);
            assert_eq!(follower.log_end_offset(), 4);
            assert_eq!(follower.high_watermark(), 4);
        });
    }
}

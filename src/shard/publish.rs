//! How committed metadata reaches this node's shards (Kafka's metadata publisher on a broker).
//!
//! It runs on shard 0, which keeps this node's placement log. For each record it works out the
//! placement the record brings here (partitions this node hosts get a shard, a deleted topic's
//! are forgotten), persists that, and then applies record and placement on every shard — shard 0
//! first, so its image has changed before any other request runs there. Committing a record is
//! the controller's business (`controller::commit`); in a cluster, records committed by the
//! quorum arrive here on every node alike.

use std::cell::RefCell;
use std::io;

use futures_util::future::join_all;

use super::current;
use crate::metadata::{MetadataImage, MetadataRecord};
use crate::node::placement_log::PlacementLog;
use crate::node::{Placement, PlacementRecord};
use crate::runtime::file::blocking;
use crate::runtime::{shard_count, submit_to};

/// The shard that keeps this node's placement log and publishes metadata to the others.
pub const PUBLISHING_SHARD: usize = 0;

thread_local! {
    /// This node's placement log; on the publishing shard only, `None` while a write has it.
    static PLACEMENT_LOG: RefCell<Option<PlacementLog>> = const { RefCell::new(None) };
}

thread_local! {
    static LEADER_SEQ: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Tells every shard the metadata quorum's leader changed (Metadata and DescribeCluster report
/// it as the controller). Called on the publishing shard; does not wait.
pub fn publish_quorum_leader(leader: Option<i32>) {
    let seq = LEADER_SEQ.with(|s| {
        s.set(s.get() + 1);
        s.get()
    });
    current().set_quorum_leader(seq, leader);
    crate::runtime::spawn(async move {
        for s in (0..shard_count()).filter(|s| *s != PUBLISHING_SHARD) {
            let _ = submit_to(s, move || async move {
                current().set_quorum_leader(seq, leader)
            })
            .await;
        }
    });
}

/// Start-up on the publishing shard, once the metadata is known: opens this node's placement log, brings it in line with `image` (`legacy` first: the shards an old metadata log
/// named), persists the result, and returns it. Nothing is loaded on the shards yet ([`load`]).
pub async fn open_placement(
    image: &MetadataImage,
    legacy: Option<Vec<(uuid::Uuid, i32, usize)>>,
) -> io::Result<Placement> {
    let shard = current();
    let data_dir = shard.config.data_dir();
    let node = shard.config.node_id();
    let shards = shard_count();
    let image = image.clone();
    let (log, placement) = blocking(move || -> io::Result<_> {
        let (mut log, mut placement) = PlacementLog::open(&data_dir)?;
        if let Some(old) = legacy {
            // The old metadata log is the truth about where partitions were; it is rewritten
            // only after this is durable, so a crash in between converts it again.
            placement = Placement::default();
            for (topic, p, s) in old {
                placement.apply(&PlacementRecord::Place {
                    topic,
                    partitions: vec![(p, s)],
                });
            }
            log.replace(&placement)?;
        }
        let changes = placement.reconcile(&image, node, shards);
        changes.iter().for_each(|r| placement.apply(r));
        // Not fatal (see `publish`): the next start re-places whatever did not get written.
        if let Err(e) = log
            .append(&changes)
            .and_then(|()| log.compact_if_long(&placement))
        {
            tracing::error!("placement log: {e}; serving with the placement in memory");
        }
        Ok((log, placement))
    })
    .await?;
    PLACEMENT_LOG.with(|l| *l.borrow_mut() = Some(log));
    Ok(placement)
}

/// Start-up: loads `placement` and then `records` (the metadata's current state) on every shard,
/// opening and recovering each shard's partitions.
pub async fn load(records: Vec<MetadataRecord>, placement: Placement) -> Result<(), String> {
    let calls = (0..shard_count()).map(|s| {
        let records = records.clone();
        let placement = placement.clone();
        submit_to(s, move || async move {
            let shard = current();
            shard.set_placement(placement);
            for r in &records {
                shard.apply(r, &[]).await.map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        })
    });
    for r in join_all(calls).await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Publishes one committed (durable) record on this node; call on the publishing shard, in
/// commit order. Errors are the shards' (a shard that did not answer), never the placement log's.
pub async fn publish(record: MetadataRecord) -> Result<(), String> {
    let shard = current();
    let placed = shard.with_image(|image| {
        shard.with_placement(|p| {
            p.changes_for(image, &record, shard.config.node_id(), shard_count())
        })
    });
    if !placed.is_empty() {
        // The record is durable already: failing here would leave it on disk but unapplied
        // (a delete undone in memory, then redone at the next start). Placement need not be
        // durable for correctness — a start re-places whatever the log lacks, and a
        // partition's files do not depend on its shard — so a failed write is only logged.
        if let Err(e) = persist(placed.clone()).await {
            tracing::error!("{e}; applying the change anyway (the next start re-places)");
        }
    }
    shard
        .apply(&record, &placed)
        .await
        .map_err(|e| e.to_string())?;
    let me = shard.id;
    let calls = (0..shard_count()).filter(|s| *s != me).map(|s| {
        let record = record.clone();
        let placed = placed.clone();
        submit_to(s, move || async move {
            current()
                .apply(&record, &placed)
                .await
                .map_err(|e| e.to_string())
        })
    });
    for r in join_all(calls).await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Appends placement changes to the placement log on the blocking-thread pool. Callers publish
/// one record at a time (the controller lock), so no other write uses the log meanwhile.
async fn persist(records: Vec<PlacementRecord>) -> Result<(), String> {
    let Some(mut log) = PLACEMENT_LOG.with(|l| l.borrow_mut().take()) else {
        return Err("metadata is published on the publishing shard only".to_string());
    };
    let (log, written) = blocking(move || {
        let r = log.append(&records);
        (log, r)
    })
    .await;
    PLACEMENT_LOG.with(|l| *l.borrow_mut() = Some(log));
    written.map_err(|e| format!("placement log: {e}"))
}
